//! Personal access tokens.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{AccessToken, Timestamp, UserId};

/// Each user's personal access tokens, found by the digest of the token.
///
/// Contract (checked by `testkit::conformance::store::access_tokens`):
/// listing and revoking are scoped by owner; an expired token is never
/// found; at most `limit` tokens per user.
#[async_trait]
pub trait AccessTokenStore: Send + Sync {
    /// Records a new token, unless its owner already has `limit` (then
    /// `QuotaExceeded`).
    async fn insert_access_token(&self, token: &AccessToken, limit: u32) -> Result<(), StoreError>;
    /// The owner's tokens, newest first (expired ones too, until revoked).
    async fn list_access_tokens(&self, owner: UserId) -> Result<Vec<AccessToken>, StoreError>;
    /// The token with digest `token_hash`, if it is live at `now`.
    async fn find_access_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<AccessToken>, StoreError>;
    /// Notes that the token was used at `at`.
    async fn touch_access_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Revokes one of the owner's tokens; `false` if there is none of that id.
    async fn delete_access_token(&self, owner: UserId, id: &str) -> Result<bool, StoreError>;
}
