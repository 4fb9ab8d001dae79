//! Users and their browser sessions.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{NewSession, NewUser, Session, Timestamp, User, UserId};

/// Users (bound to a GitHub account) and their sessions.
///
/// Contract (checked by `testkit::conformance::store::users`): one user per
/// GitHub id; a session is invisible once expired; touching slides expiry.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user bound to `profile.github_id`, or refreshes its profile.
    async fn upsert_user(&self, profile: &NewUser, now: Timestamp) -> Result<User, StoreError>;
    /// One user.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: &NewSession, now: Timestamp) -> Result<Session, StoreError>;
    /// A session that has not expired at `now`.
    async fn get_session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError>;
    /// Sliding expiry: records use at `now` and moves expiry to `expires_at`.
    /// `false` when the session no longer exists.
    async fn touch_session(&self, id_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError>;
    /// Ends one session (absent is fine).
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a user ("sign out everywhere"); returns how many.
    async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError>;
}
