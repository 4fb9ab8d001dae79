//! Sessions: an opaque random secret in an HttpOnly cookie; the store keeps
//! only its SHA-256, with a sliding expiry.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use sam_core::domain::{TokenScope, User};
use sam_providers::cookie::Cookie;

use super::error::ApiError;
use crate::state::AppState;

/// A signed-in user, extracted from the session cookie, or from a personal
/// access token (`Authorization: Bearer sam_pat_…`: then the cookie is not
/// looked at, and the token's scope must allow the method: `read` for GET
/// and HEAD, `write` for the rest).
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// The user.
    pub user: User,
    /// SHA-256 of the session secret (to end this session), or of the
    /// access token: what a terminal opened by this user is tied to.
    pub session_hash: String,
    /// The scope when signed in with an access token.
    pub token_scope: Option<TokenScope>,
}

impl CurrentUser {
    /// Refuses what a program with a token may not do (manage tokens, sign
    /// out): only a browser's sign-in.
    pub fn require_browser(&self) -> Result<(), ApiError> {
        match self.token_scope {
            None => Ok(()),
            Some(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "browser_session_required",
                "This needs the signed-in dashboard, not an access token.",
            )),
        }
    }
}

/// The bearer value of `Authorization`, if the request carries one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The value of `cookie` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, cookie: &Cookie) -> Option<&'a str> {
    cookie.find(headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()))
}

impl<S> FromRequestParts<S> for CurrentUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if let Some(bearer) = bearer(&parts.headers) {
            let (user, token) =
                state.accounts.access_token_user(bearer).await?.ok_or_else(ApiError::unauthenticated)?;
            let needed =
                if matches!(parts.method, Method::GET | Method::HEAD) { TokenScope::Read } else { TokenScope::Write };
            if !token.scope.allows(needed) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    "This access token may only read; create a write token for this.",
                ));
            }
            return Ok(CurrentUser { user, session_hash: token.token_hash, token_scope: Some(token.scope) });
        }
        let secret = cookie(&parts.headers, &state.http.session_cookie()).ok_or_else(ApiError::unauthenticated)?;
        let session = state.accounts.session(secret).await?.ok_or_else(ApiError::unauthenticated)?;
        Ok(CurrentUser { user: session.user, session_hash: session.session_hash, token_scope: None })
    }
}
