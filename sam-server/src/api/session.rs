//! Sessions: an opaque random secret in an HttpOnly cookie; the store keeps
//! only its SHA-256, with a sliding expiry.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use sam_core::domain::User;
use sam_providers::cookie::Cookie;

use super::error::ApiError;
use crate::state::AppState;

/// A signed-in user, extracted from the session cookie.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// The user.
    pub user: User,
    /// SHA-256 of the session secret (to end this session).
    pub session_hash: String,
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
        let secret = cookie(&parts.headers, &state.http.session_cookie()).ok_or_else(ApiError::unauthenticated)?;
        let session = state.accounts.session(secret).await?.ok_or_else(ApiError::unauthenticated)?;
        Ok(CurrentUser { user: session.user, session_hash: session.session_hash })
    }
}
