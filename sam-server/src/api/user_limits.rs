//! Budgets per signed-in user rather than per address (one user behind many
//! addresses, or many users behind one, are both normal): live event streams
//! open at once — each holds a connection and re-reads the user's
//! workspaces on every change — and writes of a cloud credential, each of which asks the provider
//! whether the token works. In-process, like the address limits: each
//! replica bounds what it serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sam_core::domain::UserId;

use super::error::ApiError;
use super::ratelimit::RateLimiter;

/// Live event streams one user may hold open on one replica (a dashboard
/// and a few workspace pages in several tabs).
pub const MAX_STREAMS_PER_USER: usize = 8;

/// Cloud credential writes (each validated with the provider) per user and
/// minute.
pub const CREDENTIAL_WRITES_PER_MINUTE: u32 = 10;

/// The per-user budgets of one replica.
#[derive(Debug)]
pub struct UserLimits {
    streams: Mutex<HashMap<UserId, usize>>,
    credential_writes: RateLimiter<UserId>,
}

impl Default for UserLimits {
    fn default() -> Self {
        Self {
            streams: Mutex::new(HashMap::new()),
            credential_writes: RateLimiter::new(CREDENTIAL_WRITES_PER_MINUTE, Duration::from_secs(60)),
        }
    }
}

/// One open stream of a user; its place is given back when dropped (when
/// the client goes away or the stream ends).
#[derive(Debug)]
pub struct StreamSlot {
    limits: Arc<UserLimits>,
    user: UserId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.limits.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.user);
            }
        }
    }
}

impl UserLimits {
    /// A place for one more stream of `user`, or 429 when they hold
    /// [`MAX_STREAMS_PER_USER`] already.
    pub fn open_stream(self: &Arc<Self>, user: UserId) -> Result<StreamSlot, ApiError> {
        let mut streams = self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = streams.entry(user).or_insert(0);
        if *open >= MAX_STREAMS_PER_USER {
            tracing::warn!(user_id = %user, open = *open, "too many live streams");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {MAX_STREAMS_PER_USER} live views at once: close a tab"),
            ));
        }
        *open += 1;
        Ok(StreamSlot { limits: Arc::clone(self), user })
    }

    /// Counts a credential write of `user`; 429 past the budget.
    pub fn credential_write(&self, user: UserId) -> Result<(), ApiError> {
        self.credential_writes.check(user, Instant::now()).map_err(|wait| {
            tracing::warn!(user_id = %user, "too many credential writes");
            ApiError::rate_limited(format!("too many token changes; try again in {} s", wait.as_secs().max(1)), wait)
        })
    }

    /// Streams `user` holds open now.
    pub fn streams_of(&self, user: UserId) -> usize {
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&user).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_gives_its_place_back_when_dropped() {
        let limits = Arc::new(UserLimits::default());
        let (alice, bob) = (UserId::new(), UserId::new());
        let mut held: Vec<StreamSlot> = (0..MAX_STREAMS_PER_USER).map(|_| limits.open_stream(alice).unwrap()).collect();
        assert_eq!(limits.open_stream(alice).unwrap_err().status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.open_stream(bob).is_ok(), "another user's budget is their own");
        held.pop();
        assert_eq!(limits.streams_of(alice), MAX_STREAMS_PER_USER - 1);
        assert!(limits.open_stream(alice).is_ok());
        drop(held);
        assert_eq!(limits.streams_of(alice), 0);
    }
}
