//! GitHub App installations.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{GithubInstallation, InstallationId, Timestamp};

/// The GitHub App installations SAM has heard of (from webhooks or listings).
#[async_trait]
pub trait InstallationStore: Send + Sync {
    /// Records an installation (from a webhook or a listing).
    async fn upsert_installation(&self, installation: &GithubInstallation) -> Result<(), StoreError>;
    /// One installation.
    async fn get_installation(&self, id: InstallationId) -> Result<Option<GithubInstallation>, StoreError>;
    /// Marks an installation removed; `false` when unknown.
    async fn mark_installation_removed(&self, id: InstallationId, at: Timestamp) -> Result<bool, StoreError>;
}
