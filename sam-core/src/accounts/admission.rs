//! Who may use a deployment: an operator's list of GitHub users and
//! organizations, checked when someone signs in and again on every use of a
//! session (so removing someone from the list, or from the organization,
//! locks them out without waiting for their session to end).
//!
//! Organization membership is what GitHub shows the user through SAM's app:
//! a member of a listed organization sees the app's installation on it
//! (`GET /user/installations` with their own token). The answer is kept for
//! [`RECHECK_EVERY`] per user, so a session's requests do not each ask
//! GitHub.

use std::collections::HashMap;

use crate::domain::{User, UserId};
use crate::ports::InstallationInfo;
use crate::secret::SecretString;

use super::{Accounts, AccountsError, AccountsErrorKind};

/// How long an organization-membership answer is trusted.
pub const RECHECK_EVERY: time::Duration = time::Duration::minutes(10);

/// Who may sign in. Both lists empty: anyone with a GitHub account.
///
/// ```
/// use sam_core::accounts::SignInPolicy;
/// let policy = SignInPolicy::new(["Octocat", "583231"], ["octo-org"]);
/// assert!(policy.admits_user("octocat", 1));
/// assert!(policy.admits_user("renamed", 583_231), "a numeric entry is a GitHub id");
/// assert!(!policy.admits_user("hubot", 2));
/// assert!(SignInPolicy::default().is_open());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignInPolicy {
    users: Vec<String>,
    organizations: Vec<String>,
}

impl SignInPolicy {
    /// A policy admitting `users` (GitHub logins, or numeric GitHub ids,
    /// which survive a rename) and the members of `organizations` (logins).
    /// Case does not matter; empty entries are dropped.
    pub fn new<U: AsRef<str>, O: AsRef<str>>(
        users: impl IntoIterator<Item = U>,
        organizations: impl IntoIterator<Item = O>,
    ) -> Self {
        let clean = |s: &str| Some(s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        Self {
            users: users.into_iter().filter_map(|u| clean(u.as_ref())).collect(),
            organizations: organizations.into_iter().filter_map(|o| clean(o.as_ref())).collect(),
        }
    }

    /// Whether anyone may sign in.
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.organizations.is_empty()
    }

    /// Whether the user is listed by login or numeric id.
    pub fn admits_user(&self, login: &str, github_id: i64) -> bool {
        let id = github_id.to_string();
        self.users.iter().any(|u| u.eq_ignore_ascii_case(login) || *u == id)
    }

    /// Whether one of `installations` is on a listed organization.
    fn admits_through(&self, installations: &[InstallationInfo]) -> bool {
        installations.iter().any(|i| {
            i.account_type == "Organization"
                && !i.suspended
                && self.organizations.iter().any(|o| o.eq_ignore_ascii_case(&i.account_login))
        })
    }

    /// The listed users.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// The listed organizations.
    pub fn organizations(&self) -> &[String] {
        &self.organizations
    }
}

fn refused() -> AccountsError {
    AccountsError::new(
        AccountsErrorKind::NotAllowed,
        "This SAM deployment is limited to the GitHub users and organizations its operator listed. Ask the operator to add you.",
    )
}

impl Accounts {
    /// At sign-in: whether the policy admits the user (with their fresh
    /// token, before anything is stored); `true` when through an
    /// organization (then record it with `admitted`).
    pub(super) async fn admit_new(
        &self,
        login: &str,
        github_id: i64,
        token: &SecretString,
    ) -> Result<bool, AccountsError> {
        let policy = &self.config.sign_in_policy;
        if policy.is_open() || policy.admits_user(login, github_id) {
            return Ok(false);
        }
        if !policy.organizations.is_empty() {
            match self.ports.repos.list_installations(token).await {
                Ok(list) if policy.admits_through(&list) => return Ok(true),
                Ok(_) => {}
                Err(e) => return Err(super::github_auth::github_error(e, "installation")),
            }
        }
        tracing::info!(github_id, "sign-in refused by the sign-in policy");
        Err(refused())
    }

    /// Records that `user` was just admitted through an organization, so
    /// their session's first requests do not ask GitHub again.
    pub(super) fn admitted(&self, user: UserId) {
        remember(&mut crate::sync::lock(&self.admissions), user, self.ports.clock.now(), true);
    }

    /// On a session's use: whether the policy still admits the user.
    pub(super) async fn admit_again(&self, user: &User) -> Result<(), AccountsError> {
        let policy = &self.config.sign_in_policy;
        if policy.is_open() || policy.admits_user(&user.login, user.github_id.0) {
            return Ok(());
        }
        if policy.organizations.is_empty() {
            return Err(refused());
        }
        let now = self.ports.clock.now();
        let known = crate::sync::lock(&self.admissions).get(&user.id).copied();
        if let Some((at, admitted)) = known
            && now - at < RECHECK_EVERY
        {
            return if admitted { Ok(()) } else { Err(refused()) };
        }
        let repos = &self.ports.repos;
        let checked =
            self.as_github_user(user.id, "installation", |token| async move { repos.list_installations(&token).await });
        let admitted = match checked.await {
            Ok(list) => policy.admits_through(&list),
            // GitHub is down: the last answer stands (none: refuse).
            Err(e) if e.kind == AccountsErrorKind::ProviderUnavailable => known.is_some_and(|(_, a)| a),
            Err(e) => return Err(e),
        };
        remember(&mut crate::sync::lock(&self.admissions), user.id, now, admitted);
        if admitted { Ok(()) } else { Err(refused()) }
    }
}

fn remember(
    map: &mut HashMap<UserId, (crate::domain::Timestamp, bool)>,
    user: UserId,
    at: crate::domain::Timestamp,
    admitted: bool,
) {
    // Bounded: entries older than the recheck interval are worthless.
    if map.len() > 10_000 {
        map.retain(|_, (t, _)| at - *t < RECHECK_EVERY);
    }
    map.insert(user, (at, admitted));
}
