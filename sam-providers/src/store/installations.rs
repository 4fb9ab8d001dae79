//! [`InstallationStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::{GithubInstallation, InstallationId, Timestamp};
use sam_core::ports::{InstallationStore, StoreError};

use super::statement::Statement;
use super::{Dialect, SqlStore, rows};

#[async_trait]
impl<D: Dialect> InstallationStore for SqlStore<D> {
    async fn upsert_installation(&self, installation: &GithubInstallation) -> Result<(), StoreError> {
        let statement = Statement::new(
            "INSERT INTO installations (id, account_login, account_type, account_id, suspended, removed_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET account_login = excluded.account_login, \
             account_type = excluded.account_type, account_id = excluded.account_id, \
             suspended = excluded.suspended, removed_at = excluded.removed_at, updated_at = excluded.updated_at",
        )
        .int(installation.id.0)
        .text(installation.account_login.as_str())
        .text(installation.account_type.as_str())
        .int(installation.account_id.0)
        .flag(installation.suspended)
        .opt_time(installation.removed_at)?
        .time(installation.updated_at)?;
        self.execute(statement, "upsert installation").await?;
        Ok(())
    }

    async fn get_installation(&self, id: InstallationId) -> Result<Option<GithubInstallation>, StoreError> {
        let statement = Statement::new(
            "SELECT id, account_login, account_type, account_id, suspended, removed_at, updated_at \
             FROM installations WHERE id = $1",
        )
        .int(id.0);
        self.fetch_optional(statement, "get installation").await?.as_ref().map(rows::installation::<D>).transpose()
    }

    async fn mark_installation_removed(&self, id: InstallationId, at: Timestamp) -> Result<bool, StoreError> {
        let statement = Statement::new("UPDATE installations SET removed_at = $2, updated_at = $2 WHERE id = $1")
            .int(id.0)
            .time(at)?;
        Ok(self.execute(statement, "mark installation removed").await? > 0)
    }
}
