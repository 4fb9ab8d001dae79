//! Repository access for a signed-in user: the GitHub App's installations
//! the user can reach (refreshed from GitHub and recorded), their
//! repositories and branches, and installation changes GitHub announces.

use crate::domain::{GithubInstallation, InstallationId, RepoFullName, Timestamp, UserId};
use crate::ports::{InstallationChange, InstallationInfo, Page, Repository};

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
        let repos = &self.ports.repos;
        let list = self
            .as_github_user(user, "installation", |token| async move { repos.list_installations(&token).await })
            .await?;
        let now = self.ports.clock.now();
        for info in &list {
            // GitHub gives a reinstall a new id, so an uninstall recorded from
            // a webhook stays recorded even if a listing still shows the old id.
            let removed_at = self.ports.store.get_installation(info.id).await?.and_then(|known| known.removed_at);
            self.ports.store.upsert_installation(&record(info, info.suspended, removed_at, now)).await?;
        }
        Ok(list)
    }

    /// One page (from 1) of the repositories of an installation that the
    /// user can access through it (GitHub decides, with the user's own
    /// token), optionally only those owned by `org`.
    pub async fn repositories(
        &self,
        user: UserId,
        installation: InstallationId,
        page: u32,
        org: Option<&str>,
    ) -> Result<Page<Repository>, AccountsError> {
        let page = page.clamp(1, MAX_PAGE);
        let repos = &self.ports.repos;
        let page = self
            .as_github_user(user, "installation", |token| async move {
                repos.list_repositories(&token, installation, page).await
            })
            .await?;
        let items = page
            .items
            .into_iter()
            .filter(|r| org.is_none_or(|org| r.full_name.owner().eq_ignore_ascii_case(org)))
            .collect();
        Ok(Page { items, next_page: page.next_page })
    }

    /// One repository as the user sees it on GitHub, with their push
    /// permission; `NotFound` when they cannot see it.
    pub async fn repository(&self, user: UserId, repository: &RepoFullName) -> Result<Repository, AccountsError> {
        let repos = &self.ports.repos;
        self.as_github_user(user, "repository", |token| async move { repos.repository(&token, repository).await }).await
    }

    /// Branch names of a repository the user can see, the default first;
    /// `NotFound` when they cannot see it.
    pub async fn branches(&self, user: UserId, repository: &RepoFullName) -> Result<Vec<String>, AccountsError> {
        let repos = &self.ports.repos;
        self.as_github_user(user, "repository", |token| async move { repos.list_branches(&token, repository).await })
            .await
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

    /// The installation to clone `repository` through, checked with the
    /// user's own token (never taken on trust): the user must see the
    /// repository (else `NotFound`, as GitHub hides it) and an installation
    /// on its owner account (`requested`, if given; else `AppNotInstalled`).
    pub async fn installation_for(
        &self,
        user: UserId,
        repository: &RepoFullName,
        requested: Option<InstallationId>,
    ) -> Result<InstallationId, AccountsError> {
        let installations = self.installations(user).await?;
        let on_owner = installations
            .iter()
            .filter(|i| requested.is_none_or(|id| i.id == id))
            .find(|i| i.account_login.eq_ignore_ascii_case(repository.owner()))
            .map(|i| i.id);
        let Some(installation) = on_owner else {
            return Err(AccountsError::new(
                AccountsErrorKind::AppNotInstalled,
                format!("Install the SAM GitHub App on {} first.", repository.owner()),
            ));
        };
        self.repository(user, repository).await?;
        Ok(installation)
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
