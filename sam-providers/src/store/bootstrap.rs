//! [`BootstrapTokenStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::Timestamp;
use sam_core::ports::{BootstrapToken, BootstrapTokenStore, StoreError, StoreErrorKind};

use super::statement::Statement;
use super::{Dialect, SqlStore, rows};

#[async_trait]
impl<D: Dialect> BootstrapTokenStore for SqlStore<D> {
    async fn create_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StoreError> {
        // Inserted only if the workspace exists for this owner.
        let statement = Statement::new(
            "INSERT INTO bootstrap_tokens (token_hash, workspace_id, owner, created_at, expires_at) \
             SELECT $1, id, owner, $4, $5 FROM workspaces WHERE id = $2 AND owner = $3",
        )
        .text(token.token_hash.as_str())
        .text(token.workspace_id.to_string())
        .text(token.owner.to_string())
        .time(token.created_at)?
        .time(token.expires_at)?;
        if self.execute(statement, "create bootstrap token").await? == 0 {
            return Err(StoreError::new(StoreErrorKind::NotFound, "workspace not found"));
        }
        Ok(())
    }

    async fn find_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError> {
        let statement = Statement::new(
            "SELECT token_hash, workspace_id, owner, created_at, expires_at FROM bootstrap_tokens \
             WHERE token_hash = $1 AND redeemed_at IS NULL AND expires_at > $2",
        )
        .text(token_hash)
        .time(now)?;
        self.fetch_optional(statement, "find bootstrap token")
            .await?
            .as_ref()
            .map(rows::bootstrap_token::<D>)
            .transpose()
    }

    async fn redeem_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError> {
        let statement = Statement::new(
            "UPDATE bootstrap_tokens SET redeemed_at = $2 \
             WHERE token_hash = $1 AND redeemed_at IS NULL AND expires_at > $2 \
             RETURNING token_hash, workspace_id, owner, created_at, expires_at",
        )
        .text(token_hash)
        .time(now)?;
        self.fetch_optional(statement, "redeem bootstrap token")
            .await?
            .as_ref()
            .map(rows::bootstrap_token::<D>)
            .transpose()
    }
}
