//! The user's GitHub authorization, kept sealed in the store: the access
//! token that acts for them and, when it expires (GitHub Apps: after 8
//! hours), the single-use refresh token that replaces it. Renewed shortly
//! before expiry and when GitHub rejects the token; renewals on several
//! replicas at once settle through a compare-and-swap in the store, so a
//! lost race never signs the user out.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::{Credential, CredentialProvider, Timestamp, UserId};
use crate::ports::{ProviderError, ProviderErrorKind, UserTokens};
use crate::secret::SecretString;

use super::{Accounts, AccountsError, AccountsErrorKind};

/// Renew this long before the access token expires, so a call made with it
/// does not meet the expiry halfway.
const RENEW_BEFORE: time::Duration = time::Duration::minutes(5);

/// After a refresh token was refused, how long to wait for another
/// replica's renewal (which used it a moment earlier) to reach the store.
const RACE_WAIT: Duration = Duration::from_secs(3);
const RACE_POLL: Duration = Duration::from_millis(100);

/// What is sealed: the token pair and its expiries (unix seconds).
#[derive(Serialize, Deserialize)]
struct Sealed {
    access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_expires: Option<i64>,
}

/// The stored authorization and the ciphertext it was read from (the
/// compare-and-swap's expectation).
struct Stored {
    tokens: UserTokens,
    ciphertext: Vec<u8>,
}

fn unix(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::unix_timestamp)
}

fn from_unix(t: Option<i64>) -> Option<Timestamp> {
    t.and_then(|s| Timestamp::from_unix_timestamp(s).ok())
}

pub(super) fn sign_in_again() -> AccountsError {
    AccountsError::new(AccountsErrorKind::SignInRequired, "Your GitHub sign-in has expired: sign in again.")
}

/// A GitHub refusal as the user should see it: no upstream text.
pub(super) fn github_error(e: ProviderError, what: &str) -> AccountsError {
    match e.kind() {
        ProviderErrorKind::NotFound => AccountsError::not_found(what),
        ProviderErrorKind::Unauthorized => sign_in_again(),
        ProviderErrorKind::Forbidden => {
            tracing::warn!(error = %e, "GitHub forbade a request");
            AccountsError::new(
                AccountsErrorKind::NotAllowed,
                "GitHub refused: the SAM app lacks a permission, or an organization's policy blocks it.",
            )
        }
        _ if e.is_retryable() => {
            tracing::warn!(kind = e.kind().code(), error = %e, "GitHub unavailable");
            AccountsError::new(AccountsErrorKind::ProviderUnavailable, "GitHub is unavailable; try again shortly.")
        }
        _ => {
            tracing::warn!(kind = e.kind().code(), error = %e, "GitHub refused a request");
            AccountsError::new(AccountsErrorKind::Provider, "GitHub refused the request.")
        }
    }
}

impl Accounts {
    /// Seals and stores the user's tokens (after a sign-in).
    pub(super) async fn store_github_tokens(&self, user: UserId, tokens: &UserTokens) -> Result<(), AccountsError> {
        let credential = self.seal_github(user, tokens, None).await?;
        self.ports.store.put_credential(&credential).await?;
        Ok(())
    }

    async fn seal_github(
        &self,
        user: UserId,
        tokens: &UserTokens,
        created_at: Option<Timestamp>,
    ) -> Result<Credential, AccountsError> {
        let sealed = Sealed {
            access: tokens.access_token.expose().to_owned(),
            expires: unix(tokens.expires_at),
            refresh: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            refresh_expires: unix(tokens.refresh_expires_at),
        };
        let plain = serde_json::to_vec(&sealed).map_err(|_| AccountsError::internal())?;
        let provider = CredentialProvider::GITHUB;
        let ciphertext =
            self.ports.cipher.seal(&plain, crate::engine::credential_context(user, provider)).map_err(|e| {
                tracing::error!(kind = ?e.kind, "sealing the GitHub authorization failed");
                AccountsError::internal()
            })?;
        let now = self.ports.clock.now();
        let created_at = match created_at {
            Some(at) => at,
            None => self.ports.store.get_credential(user, provider).await?.map_or(now, |c| c.created_at),
        };
        Ok(Credential { user_id: user, provider, ciphertext, validated_at: Some(now), created_at, updated_at: now })
    }

    /// The stored authorization; `SignInRequired` when there is none or it
    /// cannot be opened.
    async fn load_github(&self, user: UserId) -> Result<(Stored, Timestamp), AccountsError> {
        let credential =
            self.ports.store.get_credential(user, CredentialProvider::GITHUB).await?.ok_or_else(sign_in_again)?;
        let plain = self
            .ports
            .cipher
            .open(&credential.ciphertext, crate::engine::credential_context(user, CredentialProvider::GITHUB))
            .map_err(|_| sign_in_again())?;
        let tokens = match serde_json::from_slice::<Sealed>(plain.expose()) {
            Ok(s) => UserTokens {
                access_token: SecretString::new(s.access),
                expires_at: from_unix(s.expires),
                refresh_token: s.refresh.map(SecretString::new),
                refresh_expires_at: from_unix(s.refresh_expires),
            },
            // Stored before tokens expired: the bare token.
            Err(_) => UserTokens::lasting(plain.into_secret_string().ok_or_else(sign_in_again)?),
        };
        Ok((Stored { tokens, ciphertext: credential.ciphertext }, credential.created_at))
    }

    /// A live access token for the user, renewed first when it is about to
    /// expire.
    pub(super) async fn github_token(&self, user: UserId) -> Result<SecretString, AccountsError> {
        let (stored, created_at) = self.load_github(user).await?;
        let now = self.ports.clock.now();
        match stored.tokens.expires_at {
            Some(expires) if expires - now <= RENEW_BEFORE => self.renew(user, stored, created_at).await,
            _ => Ok(stored.tokens.access_token),
        }
    }

    /// Trades the stored refresh token for a new pair and stores it, unless
    /// another replica did so first (then theirs is used).
    async fn renew(&self, user: UserId, stored: Stored, created_at: Timestamp) -> Result<SecretString, AccountsError> {
        let now = self.ports.clock.now();
        let refresh =
            stored.tokens.refresh_token.clone().filter(|_| stored.tokens.refresh_expires_at.is_none_or(|at| at > now));
        let Some(refresh) = refresh else { return Err(self.signed_out(user).await) };
        match self.identity.refresh(&refresh).await {
            Ok(fresh) => {
                let credential = self.seal_github(user, &fresh, Some(created_at)).await?;
                if self.ports.store.replace_credential_if(&credential, &stored.ciphertext).await? {
                    tracing::info!(user_id = %user, "GitHub authorization renewed");
                    return Ok(fresh.access_token);
                }
                // Someone renewed (or signed in) meanwhile: theirs is the
                // current pair; ours was valid too, but only one is kept.
                Ok(self.load_github(user).await?.0.tokens.access_token)
            }
            Err(e) if e.kind() == ProviderErrorKind::Unauthorized => {
                // Dead: perhaps another replica used it a moment ago and is
                // about to store the new pair.
                let deadline = tokio::time::Instant::now() + RACE_WAIT;
                loop {
                    if let Ok((current, _)) = self.load_github(user).await
                        && current.ciphertext != stored.ciphertext
                    {
                        return Ok(current.tokens.access_token);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(self.signed_out(user).await);
                    }
                    tokio::time::sleep(RACE_POLL).await;
                }
            }
            Err(e) => Err(github_error(e, "GitHub authorization")),
        }
    }

    /// The user's GitHub authorization is dead: every session depends on it,
    /// so they end (each browser lands on the sign-in page instead of
    /// failing call by call).
    async fn signed_out(&self, user: UserId) -> AccountsError {
        tracing::info!(user_id = %user, "GitHub authorization dead: the user must sign in again");
        match self.ports.store.delete_user_sessions(user).await {
            Ok(_) => sign_in_again(),
            Err(e) => e.into(),
        }
    }

    /// Runs `call` as the user on GitHub. When GitHub rejects the token,
    /// renews it (or picks up another replica's renewal) and tries once more;
    /// a rejection after that means the user must sign in again. `what`
    /// names the thing a 404 is about.
    pub(super) async fn as_github_user<T, F, Fut>(&self, user: UserId, what: &str, call: F) -> Result<T, AccountsError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let token = self.github_token(user).await?;
        let used = token.expose().to_owned();
        match call(token).await {
            Err(e) if e.kind() == ProviderErrorKind::Unauthorized => {
                let (stored, created_at) = self.load_github(user).await?;
                let token = if stored.tokens.access_token.expose() == used {
                    self.renew(user, stored, created_at).await?
                } else {
                    stored.tokens.access_token
                };
                call(token).await.map_err(|e| github_error(e, what))
            }
            other => other.map_err(|e| github_error(e, what)),
        }
    }
}
