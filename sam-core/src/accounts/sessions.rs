//! Sign-in, sessions and sign-out. A session is an opaque random secret the
//! caller hands to the browser (a cookie); the store keeps only its SHA-256,
//! with a sliding expiry, and an absolute one (`session_max_age` after
//! sign-in) however often it is used.

use crate::domain::{NewSession, User, UserId};
use crate::secret::{SecretString, random_token, sha256_hex};

use super::{Accounts, AccountsError, AccountsErrorKind};

/// The longest session secret accepted: anything longer was not issued here.
const MAX_SECRET_LEN: usize = 128;

/// Refresh the sliding expiry at most this often, so reads stay reads.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(5);

/// A completed sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The user, created or refreshed from the verified profile.
    pub user: User,
    /// The new session's secret: hand it to the browser, never log it.
    pub session_secret: SecretString,
    /// How long the session lasts without use.
    pub session_ttl: time::Duration,
}

/// The user behind a live session.
#[derive(Clone, Debug)]
pub struct SessionUser {
    /// The user.
    pub user: User,
    /// SHA-256 of the session secret (to end this session).
    pub session_hash: String,
}

impl Accounts {
    /// Where to send the browser to sign in. The caller generated `state` and
    /// the PKCE pair and keeps both until the browser returns.
    pub fn authorize_url(&self, state: &str, pkce_challenge: &str, redirect_uri: &str) -> String {
        self.identity.authorize_url(state, pkce_challenge, redirect_uri)
    }

    /// Finishes sign-in: exchanges the code (once), binds the account to the
    /// provider's numeric user id, keeps the user's GitHub token sealed (to
    /// list their installations) and opens a session. The caller has already
    /// compared the returned `state` with the one it issued.
    pub async fn sign_in(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<SignedIn, AccountsError> {
        let identity = self.identity.exchange_code(code, pkce_verifier, redirect_uri).await.map_err(|e| {
            tracing::warn!(kind = e.kind().code(), "OAuth code exchange failed");
            AccountsError::new(AccountsErrorKind::SignInFailed, "GitHub did not confirm the sign-in; try again")
        })?;
        let profile = &identity.profile;
        let through_organization =
            self.admit_new(&profile.login, profile.github_id.0, &identity.tokens.access_token).await?;
        let now = self.ports.clock.now();
        let user = self.ports.store.upsert_user(&identity.profile, now).await?;
        if through_organization {
            self.admitted(user.id);
        }
        self.store_github_tokens(user.id, &identity.tokens).await?;

        let secret = random_token().map_err(|_| AccountsError::internal())?;
        let ttl = self.session_ttl().min(self.session_max_age());
        let session =
            NewSession { id_hash: sha256_hex(secret.expose().as_bytes()), user_id: user.id, expires_at: now + ttl };
        self.ports.store.create_session(&session, now).await?;
        tracing::info!(user_id = %user.id, github_id = %user.github_id, "signed in");
        Ok(SignedIn { user, session_secret: secret, session_ttl: ttl })
    }

    /// The user behind a session secret, if the session is live and the
    /// sign-in policy still admits them (else `NotAllowed`); refreshes its
    /// sliding expiry now and then.
    pub async fn session(&self, secret: &str) -> Result<Option<SessionUser>, AccountsError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(secret.as_bytes());
        let store = &self.ports.store;
        let now = self.ports.clock.now();
        let Some(session) = store.get_session(&hash, now).await? else { return Ok(None) };
        let ends = session.created_at + self.session_max_age();
        if now >= ends {
            // However active: a stolen cookie does not last forever.
            store.delete_session(&hash).await?;
            tracing::info!(user_id = %session.user_id, "session reached its maximum age");
            return Ok(None);
        }
        let Some(user) = store.get_user(session.user_id).await? else { return Ok(None) };
        if let Err(refused) = self.admit_again(&user).await {
            if refused.kind == AccountsErrorKind::NotAllowed {
                // No longer admitted: this session is over.
                store.delete_session(&hash).await?;
            }
            return Err(refused);
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            store.touch_session(&hash, now, (now + self.session_ttl()).min(ends)).await?;
        }
        Ok(Some(SessionUser { user, session_hash: hash }))
    }

    /// Whether the session with `session_hash` still exists and is within
    /// its lifetimes, without counting as use (a page left open must not
    /// keep a session alive): for long-lived connections that check now
    /// and then that their sign-in still holds.
    pub async fn session_alive(&self, session_hash: &str) -> Result<bool, AccountsError> {
        let now = self.ports.clock.now();
        let Some(session) = self.ports.store.get_session(session_hash, now).await? else {
            // A program signed in with a personal access token (its digest
            // stands for the sign-in).
            return Ok(self.ports.store.find_access_token(session_hash, now).await?.is_some());
        };
        Ok(now < session.created_at + self.session_max_age())
    }

    /// Ends the session with `session_hash` ([`SessionUser::session_hash`]),
    /// or with `everywhere` every session of `user`.
    pub async fn sign_out(&self, user: UserId, session_hash: &str, everywhere: bool) -> Result<(), AccountsError> {
        if everywhere {
            self.ports.store.delete_user_sessions(user).await?;
        } else {
            self.ports.store.delete_session(session_hash).await?;
        }
        Ok(())
    }

    pub(crate) fn session_ttl(&self) -> time::Duration {
        time::Duration::try_from(self.config.session_ttl).unwrap_or(time::Duration::days(7))
    }

    fn session_max_age(&self) -> time::Duration {
        time::Duration::try_from(self.config.session_max_age).unwrap_or(time::Duration::days(30))
    }
}
