//! Single-use tokens a new VM trades for its agent credentials.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Timestamp, UserId, WorkspaceId};

/// A single-use bootstrap token as stored: only its hash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BootstrapToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Workspace the token bootstraps.
    pub workspace_id: WorkspaceId,
    /// Owner of the workspace.
    pub owner: UserId,
    /// Creation.
    pub created_at: Timestamp,
    /// After this instant it cannot be redeemed.
    pub expires_at: Timestamp,
}

/// Bootstrap tokens, stored as hashes. A token is redeemed at most once and
/// never after expiry (checked by `testkit::conformance::store`).
#[async_trait]
pub trait BootstrapTokenStore: Send + Sync {
    /// Stores a bootstrap token (hash only).
    async fn create_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StoreError>;
    /// The token with this hash if it exists, is unused and has not expired
    /// at `now`, without consuming it: the grant is prepared first, so a
    /// failure while preparing it leaves the token usable for the retry.
    async fn find_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError>;
    /// Atomically consumes the token with this hash if it exists, is unused and
    /// has not expired at `now`. `None` otherwise, including on every later call.
    async fn redeem_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError>;
}
