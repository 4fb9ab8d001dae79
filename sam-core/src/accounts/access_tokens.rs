//! Personal access tokens: created and revoked by a signed-in user (the
//! settings page), used by programs as `Authorization: Bearer sam_pat_…`.
//! Only a SHA-256 digest is stored; the token is shown once.

use std::time::Duration;

use super::{Accounts, AccountsError, AccountsErrorKind};
use crate::domain::{ACCESS_TOKEN_PREFIX, AccessToken, TokenScope, User, UserId};
use crate::ports::StoreErrorKind;
use crate::secret::{SecretString, random_token, sha256_hex};

/// Tokens a user may hold at once.
pub const MAX_ACCESS_TOKENS: u32 = 20;
/// The longest lifetime a token may be given, in days.
pub const MAX_ACCESS_TOKEN_DAYS: u32 = 366;
/// Use is recorded at most this often per token.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Longer bearer values are not looked up.
const MAX_TOKEN_LEN: usize = 128;

/// What a user asks for when creating a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccessToken {
    /// A name to recognise it by (1–64 characters, e.g. "laptop CLI").
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// Days until it expires (1 to [`MAX_ACCESS_TOKEN_DAYS`]); `None`: until revoked.
    pub expires_in_days: Option<u32>,
}

impl Accounts {
    /// Creates a token for `user`; returns it as stored and the token itself
    /// (shown once, never again).
    pub async fn create_access_token(
        &self,
        user: UserId,
        new: NewAccessToken,
    ) -> Result<(AccessToken, SecretString), AccountsError> {
        let name = new.name.trim();
        let chars = name.chars().count();
        if !(1..=64).contains(&chars) || name.chars().any(char::is_control) {
            return Err(AccountsError::invalid("name", "A token's name is 1 to 64 characters."));
        }
        if new.expires_in_days.is_some_and(|d| d == 0 || d > MAX_ACCESS_TOKEN_DAYS) {
            return Err(AccountsError::invalid(
                "expiresInDays",
                format!("A token expires after 1 to {MAX_ACCESS_TOKEN_DAYS} days, or never."),
            ));
        }
        let secret = random_token().map_err(|_| AccountsError::new(AccountsErrorKind::Internal, "no randomness"))?;
        let token = SecretString::new(format!("{ACCESS_TOKEN_PREFIX}{}", secret.expose()));
        let id = random_token().map_err(|_| AccountsError::new(AccountsErrorKind::Internal, "no randomness"))?;
        let now = self.ports.clock.now();
        let stored = AccessToken {
            id: id.expose().chars().take(16).collect(),
            user_id: user,
            name: name.to_owned(),
            token_hash: sha256_hex(token.expose().as_bytes()),
            scope: new.scope,
            created_at: now,
            expires_at: new.expires_in_days.map(|d| now + Duration::from_secs(u64::from(d) * 86_400)),
            last_used_at: None,
        };
        self.ports.store.insert_access_token(&stored, MAX_ACCESS_TOKENS).await.map_err(|e| {
            if e.kind() == StoreErrorKind::QuotaExceeded {
                AccountsError::new(
                    AccountsErrorKind::InUse,
                    format!("You have {MAX_ACCESS_TOKENS} tokens, the most allowed; revoke one first."),
                )
            } else {
                e.into()
            }
        })?;
        tracing::info!(user_id = %user, token_id = %stored.id, scope = %stored.scope, "access token created");
        Ok((stored, token))
    }

    /// The user's tokens, newest first.
    pub async fn access_tokens(&self, user: UserId) -> Result<Vec<AccessToken>, AccountsError> {
        Ok(self.ports.store.list_access_tokens(user).await?)
    }

    /// Revokes one of the user's tokens: it stops working at once, and so
    /// do the terminals opened with it (their agents ask with the next
    /// heartbeat).
    pub async fn revoke_access_token(&self, user: UserId, id: &str) -> Result<(), AccountsError> {
        if !self.ports.store.delete_access_token(user, id).await? {
            return Err(AccountsError::new(AccountsErrorKind::NotFound, "No such token."));
        }
        tracing::info!(user_id = %user, token_id = %id, "access token revoked");
        Ok(())
    }

    /// The user and the token a bearer value stands for, if it is a live
    /// token of a user who may still sign in.
    pub async fn access_token_user(&self, bearer: &str) -> Result<Option<(User, AccessToken)>, AccountsError> {
        if !bearer.starts_with(ACCESS_TOKEN_PREFIX) || bearer.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(bearer.as_bytes());
        let store = &self.ports.store;
        let now = self.ports.clock.now();
        let Some(token) = store.find_access_token(&hash, now).await? else { return Ok(None) };
        let Some(user) = store.get_user(token.user_id).await? else { return Ok(None) };
        self.admit_again(&user).await?;
        if token.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY) {
            store.touch_access_token(&hash, now).await?;
        }
        Ok(Some((user, token)))
    }
}
