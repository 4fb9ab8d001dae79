//! Repository access for a signed-in user: the GitHub App's installations
//! the user can reach (refreshed from GitHub and recorded), their
//! repositories and branches, and installation changes GitHub announces.

use crate::domain::{CredentialProvider, GithubInstallation, InstallationId, RepoFullName, Timestamp, UserId};
use crate::ports::{InstallationChange, InstallationInfo, Page, Repository};
use crate::secret::SecretString;

use super::{Accounts, AccountsError, AccountsErrorKind};

/// The highest repository page asked for: beyond it GitHub's listing is not
/// a picker any more.
const MAX_PAGE: u32 = 10_000;

impl Accounts {
    /// Where a user installs the GitHub App.
    pub fn install_url(&self) -> String {
        self.ports.repos.install_url()
    }

    /// The app's installations the user can access, refreshed from GitHub
    /// and recorded (so creating a workspace can check them).
    pub async fn installations(&self, user: UserId) -> Result<Vec<InstallationInfo>, AccountsError> {
        let token = self.github_token(user).await?;
        let list = self.ports.repos.list_installations(&token).await?;
        let now = self.ports.clock.now();
        for info in &list {
            // GitHub gives a reinstall a new id, so an uninstall recorded from
            // a webhook stays recorded even if a listing still shows the old id.
            let removed_at = self.ports.store.get_installation(info.id).await?.and_then(|known| known.removed_at);
            self.ports.store.upsert_installation(&record(info, info.suspended, removed_at, now)).await?;
        }
        Ok(list)
    }

    /// One page (from 1) of the repositories of an installation the user can
    /// access, optionally only those owned by `org`.
    pub async fn repositories(
        &self,
        user: UserId,
        installation: InstallationId,
        page: u32,
        org: Option<&str>,
    ) -> Result<Page<Repository>, AccountsError> {
        self.authorize_installation(user, installation).await?;
        let page = self.ports.repos.list_repositories(installation, page.clamp(1, MAX_PAGE)).await?;
        let items = page
            .items
            .into_iter()
            .filter(|r| org.is_none_or(|org| r.full_name.owner().eq_ignore_ascii_case(org)))
            .collect();
        Ok(Page { items, next_page: page.next_page })
    }

    /// Branch names of a repository through an installation the user can
    /// access, the default first.
    pub async fn branches(
        &self,
        user: UserId,
        installation: InstallationId,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, AccountsError> {
        self.authorize_installation(user, installation).await?;
        Ok(self.ports.repos.list_branches(installation, repository).await?)
    }

    /// Records what GitHub announced about an installation. Applying the same
    /// change twice leaves the same record.
    pub async fn apply_installation_change(
        &self,
        installation: &InstallationInfo,
        change: InstallationChange,
    ) -> Result<(), AccountsError> {
        let now = self.ports.clock.now();
        let installation = match change {
            InstallationChange::Created | InstallationChange::Unsuspended => record(installation, false, None, now),
            InstallationChange::Suspended => record(installation, true, None, now),
            InstallationChange::Deleted => record(installation, installation.suspended, Some(now), now),
        };
        self.ports.store.upsert_installation(&installation).await?;
        Ok(())
    }

    /// The installation to clone `repository` through: one the user can
    /// access (asked of GitHub, never taken on trust) on the repository's
    /// owner account, and `requested` if given.
    pub async fn installation_for(
        &self,
        user: UserId,
        repository: &RepoFullName,
        requested: Option<InstallationId>,
    ) -> Result<InstallationId, AccountsError> {
        self.installations(user)
            .await?
            .iter()
            .filter(|i| requested.is_none_or(|id| i.id == id))
            .find(|i| i.account_login.eq_ignore_ascii_case(repository.owner()))
            .map(|i| i.id)
            .ok_or_else(|| {
                AccountsError::new(
                    AccountsErrorKind::AppNotInstalled,
                    format!("Install the SAM GitHub App on {} first.", repository.owner()),
                )
            })
    }

    async fn authorize_installation(&self, user: UserId, id: InstallationId) -> Result<(), AccountsError> {
        if self.installations(user).await?.iter().any(|i| i.id == id) {
            Ok(())
        } else {
            Err(AccountsError::not_found("installation"))
        }
    }

    async fn github_token(&self, user: UserId) -> Result<SecretString, AccountsError> {
        self.open_credential(user, CredentialProvider::GITHUB)
            .await?
            .ok_or_else(|| AccountsError::new(AccountsErrorKind::SignInRequired, "sign in with GitHub again"))
    }
}

fn record(
    info: &InstallationInfo,
    suspended: bool,
    removed_at: Option<Timestamp>,
    now: Timestamp,
) -> GithubInstallation {
    GithubInstallation {
        id: info.id,
        account_login: info.account_login.clone(),
        account_type: info.account_type.clone(),
        account_id: info.account_id,
        suspended,
        removed_at,
        updated_at: now,
    }
}
