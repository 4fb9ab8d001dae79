//! Terminal authentication: a short-lived `workspace-terminal` token from the
//! control plane is verified once (through any [`TokenVerifier`], in
//! production the RS256/JWKS adapter) and exchanged for an opaque, random
//! session cookie. The agent keeps only SHA-256 digests of cookie values, in
//! a bounded in-memory table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::{Audience, TokenErrorKind, TokenVerifier};
use sam_providers::cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

/// Longest token accepted on `/auth/callback`.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a terminal token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The verifier refused the token.
    #[error("token rejected: {0:?}")]
    Token(TokenErrorKind),
    /// Valid token for a different workspace.
    #[error("token is for another workspace")]
    WrongWorkspace,
    /// Valid token of a user who does not own the workspace.
    #[error("token is of another user")]
    NotOwner,
    /// The token was redeemed before: terminal tokens work once.
    #[error("token already used")]
    Replayed,
    /// Empty or oversized token.
    #[error("missing or oversized token")]
    BadRequest,
    /// No randomness available.
    #[error("could not create a session")]
    Internal,
}

/// Cookie settings.
#[derive(Clone, Debug)]
pub struct CookieConfig {
    /// Add `Secure` (and use the `__Host-` prefix). Off only for local http.
    pub secure: bool,
    /// Lifetime of a browser session.
    pub ttl: Duration,
    /// Maximum concurrent browser sessions (oldest evicted).
    pub max_sessions: usize,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self { secure: true, ttl: Duration::from_secs(12 * 3600), max_sessions: 1024 }
    }
}

/// What a browser session opens: the terminal, or the preview of one port
/// (each on its own host name, with its own cookie).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// The terminal page, its WebSocket and files.
    Terminal,
    /// The preview of this port.
    Preview(u16),
}

#[derive(Debug)]
struct BrowserSession {
    user: UserId,
    scope: Scope,
    expires: Instant,
    /// The control plane's sign-in the terminal token was issued under
    /// (`sid`); when it ends there, this session ends here.
    sign_in: Option<String>,
}

/// Sign-ins a heartbeat asks about at most (the newest first): far more
/// than the browsers one user has open on one workspace.
pub const MAX_SIGN_INS_REPORTED: usize = 32;

/// Verifies terminal tokens and tracks browser sessions.
#[derive(Debug)]
pub struct Authenticator {
    verifier: Arc<dyn TokenVerifier>,
    workspace: WorkspaceId,
    cookie: CookieConfig,
    /// The terminal cookie: Strict, since the terminal is only ever opened
    /// from the workspace's own page.
    session_cookie: Cookie,
    /// The preview cookie: Lax, since a preview is opened by following a
    /// link (from the dashboard, the terminal, a chat), and host-only, so
    /// each preview host has its own.
    preview_cookie: Cookie,
    sessions: Mutex<HashMap<[u8; 32], BrowserSession>>,
    /// The ids (`jti`) of the terminal tokens redeemed, until they expire:
    /// a token opens one session (a leaked URL cannot open another).
    redeemed: Mutex<HashMap<String, time::OffsetDateTime>>,
    owner: Option<UserId>,
    /// Bumped whenever sessions are ended from outside (a sign-out), so
    /// open connections look whether theirs is still there.
    ended: tokio::sync::watch::Sender<u64>,
}

/// Token ids remembered at most (tokens live a minute: far more than a
/// minute's worth of legitimate terminals).
const MAX_REDEEMED: usize = 4096;

impl Authenticator {
    /// An authenticator for `workspace`.
    pub fn new(verifier: Arc<dyn TokenVerifier>, workspace: WorkspaceId, cookie: CookieConfig) -> Self {
        let session_cookie = Cookie::new("sam_session", cookie.secure, SameSite::Strict);
        let preview_cookie = Cookie::new("sam_preview", cookie.secure, SameSite::Lax);
        Self {
            verifier,
            workspace,
            cookie,
            session_cookie,
            preview_cookie,
            sessions: Mutex::new(HashMap::new()),
            redeemed: Mutex::new(HashMap::new()),
            owner: None,
            ended: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Accepts only tokens of `owner` (when known): the control plane
    /// issues them only to the owner, and the agent checks it again.
    #[must_use]
    pub fn owned_by(mut self, owner: Option<UserId>) -> Self {
        self.owner = owner;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], BrowserSession>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cookie name (`__Host-sam_session` when secure).
    pub fn cookie_name(&self) -> &str {
        self.session_cookie.name()
    }

    /// The preview cookie's name (`__Host-sam_preview` when secure).
    pub fn preview_cookie_name(&self) -> &str {
        self.preview_cookie.name()
    }

    /// Verifies a terminal `token` and returns a new cookie value.
    pub async fn redeem(&self, token: &str) -> Result<String, AuthError> {
        self.redeem_for(token, Scope::Terminal).await
    }

    /// Verifies a `workspace-preview` token and returns the value of a new
    /// cookie for the preview of `port` (and nothing else).
    pub async fn redeem_preview(&self, token: &str, port: u16) -> Result<String, AuthError> {
        self.redeem_for(token, Scope::Preview(port)).await
    }

    async fn redeem_for(&self, token: &str, scope: Scope) -> Result<String, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::BadRequest);
        }
        let now = time::OffsetDateTime::now_utc();
        let audience = match scope {
            Scope::Terminal => Audience::WorkspaceTerminal,
            Scope::Preview(_) => Audience::WorkspacePreview,
        };
        let verified = self.verifier.verify(token, audience, now).await.map_err(|e| AuthError::Token(e.kind))?;
        if verified.workspace != self.workspace {
            return Err(AuthError::WrongWorkspace);
        }
        if self.owner.is_some_and(|owner| owner != verified.subject) {
            tracing::warn!(workspace = %self.workspace, user = %verified.subject, "a terminal token of another user");
            return Err(AuthError::NotOwner);
        }
        {
            let mut redeemed = self.redeemed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            redeemed.retain(|_, expires| *expires > now);
            if redeemed.contains_key(&verified.id) {
                tracing::warn!(workspace = %self.workspace, "a terminal token was presented again");
                return Err(AuthError::Replayed);
            }
            if redeemed.len() >= MAX_REDEEMED {
                // Refusing is safe (the user asks for a new token); forgetting
                // ids would let a token work twice.
                return Err(AuthError::Internal);
            }
            redeemed.insert(verified.id.clone(), verified.expires_at);
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|_| AuthError::Internal)?;
        let value = URL_SAFE_NO_PAD.encode(raw);
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= self.cookie.max_sessions
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(&value),
            BrowserSession { user: verified.subject, scope, expires: now + self.cookie.ttl, sign_in: verified.session },
        );
        tracing::info!(user = %verified.subject, workspace = %self.workspace, ?scope, "browser session opened");
        Ok(value)
    }

    /// Whether `headers` carry a `workspace-probe` token of this workspace
    /// (and its owner): the control plane asking for the health details.
    pub async fn probe_allowed(&self, authorization: &str) -> bool {
        let Some(token) = authorization.strip_prefix("Bearer ") else { return false };
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return false;
        }
        let now = time::OffsetDateTime::now_utc();
        match self.verifier.verify(token, Audience::WorkspaceProbe, now).await {
            Ok(verified) => {
                verified.workspace == self.workspace && self.owner.is_none_or(|owner| owner == verified.subject)
            }
            Err(e) => {
                tracing::debug!(workspace = %self.workspace, kind = ?e.kind, "a health probe's token was refused");
                false
            }
        }
    }

    /// The `Set-Cookie` value for a new session.
    pub fn set_cookie(&self, value: &str) -> String {
        self.session_cookie.set(value, self.cookie.ttl)
    }

    /// The `Set-Cookie` value for a new preview session.
    pub fn set_preview_cookie(&self, value: &str) -> String {
        self.preview_cookie.set(value, self.cookie.ttl)
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> String {
        self.session_cookie.clear()
    }

    /// The user of a valid terminal session cookie in `headers`.
    pub fn check(&self, headers: &HeaderMap) -> Option<UserId> {
        let value = cookie_value(headers, &self.session_cookie)?;
        self.user_of(value, Scope::Terminal)
    }

    /// The user of a valid preview cookie for `port` in `headers`.
    pub fn check_preview(&self, headers: &HeaderMap, port: u16) -> Option<UserId> {
        let value = cookie_value(headers, &self.preview_cookie)?;
        self.user_of(value, Scope::Preview(port))
    }

    fn user_of(&self, value: &str, scope: Scope) -> Option<UserId> {
        let sessions = self.lock();
        let session = sessions.get(&digest(value))?;
        (session.expires > Instant::now() && session.scope == scope).then_some(session.user)
    }

    /// The key of the valid terminal session cookie in `headers`, which a
    /// connection keeps to ask [`still_signed_in`](Self::still_signed_in).
    pub fn session_key(&self, headers: &HeaderMap) -> Option<[u8; 32]> {
        let key = digest(cookie_value(headers, &self.session_cookie)?);
        let sessions = self.lock();
        sessions.get(&key).is_some_and(|s| s.expires > Instant::now() && s.scope == Scope::Terminal).then_some(key)
    }

    /// The key of the valid preview cookie for `port` in `headers` (for a
    /// proxied WebSocket to watch, like a terminal's).
    pub fn preview_session_key(&self, headers: &HeaderMap, port: u16) -> Option<[u8; 32]> {
        let key = digest(cookie_value(headers, &self.preview_cookie)?);
        let sessions = self.lock();
        sessions.get(&key).is_some_and(|s| s.expires > Instant::now() && s.scope == Scope::Preview(port)).then_some(key)
    }

    /// `Cookie` header values without the preview cookie: what a previewed
    /// server receives (our session is none of its business).
    pub fn cookies_without_preview(&self, headers: &HeaderMap) -> Option<String> {
        let kept: Vec<&str> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                !pair.is_empty()
                    && pair.split_once('=').is_none_or(|(name, _)| name.trim() != self.preview_cookie.name())
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    /// Whether the session with `key` still exists.
    pub fn still_signed_in(&self, key: &[u8; 32]) -> bool {
        self.lock().get(key).is_some_and(|s| s.expires > Instant::now())
    }

    /// Changes whenever sessions were ended by [`end_sign_ins`](Self::end_sign_ins).
    pub fn watch_ended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ended.subscribe()
    }

    /// The control plane's sign-ins the live sessions were opened under,
    /// for the heartbeat to ask about (at most [`MAX_SIGN_INS_REPORTED`]).
    pub fn sign_ins(&self) -> Vec<String> {
        let now = Instant::now();
        let sessions = self.lock();
        let mut live: Vec<(&Instant, &String)> = sessions
            .values()
            .filter(|s| s.expires > now)
            .filter_map(|s| s.sign_in.as_ref().map(|id| (&s.expires, id)))
            .collect();
        live.sort_by(|a, b| b.0.cmp(a.0));
        let mut out: Vec<String> = Vec::new();
        for (_, id) in live {
            if !out.contains(id) && out.len() < MAX_SIGN_INS_REPORTED {
                out.push(id.clone());
            }
        }
        out
    }

    /// Ends every session opened under one of `sign_ins` (signed out at the
    /// control plane); their connections close. Returns how many ended.
    pub fn end_sign_ins(&self, sign_ins: &[String]) -> usize {
        let ended = {
            let mut sessions = self.lock();
            let before = sessions.len();
            sessions.retain(|_, s| !s.sign_in.as_ref().is_some_and(|id| sign_ins.contains(id)));
            before - sessions.len()
        };
        if ended > 0 {
            tracing::info!(workspace = %self.workspace, ended, "terminal sessions ended: their sign-in ended");
            self.ended.send_modify(|n| *n = n.wrapping_add(1));
        }
        ended
    }

    /// Ends the session of the cookie in `headers`.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(value) = cookie_value(headers, &self.session_cookie) {
            self.lock().remove(&digest(value));
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The value of `cookie` in the `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, cookie: &Cookie) -> Option<&'a str> {
    cookie.find(headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()))
}

/// Checks the `Origin` header: it must equal one of `allowed`, or, when
/// `allowed` is empty, `http(s)://<Host>`. A missing Origin is refused.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else { return false };
    origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) == Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn parses_cookies() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; sam_session=xyz; b=2"));
        assert_eq!(cookie_value(&h, &Cookie::new("sam_session", false, SameSite::Strict)), Some("xyz"));
        assert_eq!(cookie_value(&h, &Cookie::new("c", false, SameSite::Strict)), None);
        assert_eq!(cookie_value(&h, &Cookie::new("sam_session", true, SameSite::Strict)), None, "secure: prefixed");
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!origin_allowed(&h, &[]));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(origin_allowed(&h, &[]));
        assert!(!origin_allowed(&h, &["https://ws-1.example.com".into()]));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!origin_allowed(&h, &[]));
        h.insert(ORIGIN, HeaderValue::from_static("https://ws-1.example.com"));
        assert!(origin_allowed(&h, &["https://ws-1.example.com/".into()]));
    }
}
