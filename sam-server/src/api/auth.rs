//! GitHub sign-in (OAuth web flow with `state` and PKCE), sign-out, and the
//! current user.

use axum::Json;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sam_core::accounts::AccountsErrorKind;
use sam_core::api::Me;
use sam_core::secret::{PkcePair, constant_time_eq, random_token};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::{CurrentUser, cookie};
use crate::state::AppState;

const OAUTH_COOKIE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(to) {
        headers.insert(LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            headers.append(SET_COOKIE, v);
        }
    }
    (StatusCode::FOUND, headers).into_response()
}

/// `GET /api/auth/github`: starts sign-in.
#[utoipa::path(
    get,
    path = "/api/auth/github",
    tag = "auth",
    responses(
        (status = 302, description = "To GitHub's authorize page, with a short-lived state cookie"),
        (status = 429, description = "Too many requests from this address", body = ErrorBody)
    )
)]
pub async fn start(State(state): State<AppState>) -> Result<Response, ApiError> {
    let oauth_state = random_token().map_err(|_| ApiError::internal())?;
    let pkce = PkcePair::generate().map_err(|_| ApiError::internal())?;
    let url = state.accounts.authorize_url(oauth_state.expose(), &pkce.challenge, &state.http.oauth_redirect_uri());
    let cookie = state
        .http
        .oauth_cookie()
        .set(&format!("{}.{}", oauth_state.expose(), pkce.verifier.expose()), OAUTH_COOKIE_TTL);
    Ok(redirect(&url, &[cookie]))
}

/// Query of the OAuth callback.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/auth/callback/github`: finishes sign-in.
#[utoipa::path(
    get,
    path = "/api/auth/callback/github",
    tag = "auth",
    params(CallbackQuery),
    responses(
        (status = 302, description = "Signed in (session cookie set), to the dashboard; declined at GitHub (`/?signin=declined`) or not admitted by the deployment's sign-in policy (`/?signin=refused`), to the landing page"),
        (status = 400, description = "A code GitHub did not confirm (`signin_failed`)", body = ErrorBody),
        (status = 403, description = "Not the end of a sign-in this browser started: no or another state, or no code (`invalid_state`)", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody)
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    extract::Query(query): extract::Query<CallbackQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let clear_oauth = state.http.oauth_cookie().clear();
    if let Some(error) = query.error {
        tracing::info!(error = %error.chars().take(64).collect::<String>(), "sign-in declined at GitHub");
        return Ok(redirect("/?signin=declined", &[clear_oauth]));
    }
    // Refused, not malformed: only the browser that started the sign-in
    // (the OAuth cookie with its state) may finish it.
    let forged =
        || ApiError::new(StatusCode::FORBIDDEN, "invalid_state", "sign-in expired or was not started here; try again");
    let (code, returned_state) = match (query.code, query.state) {
        (Some(c), Some(s)) if c.len() <= 256 && s.len() <= 128 => (c, s),
        _ => return Err(forged()),
    };
    let stored = cookie(&headers, &state.http.oauth_cookie()).ok_or_else(forged)?;
    let (expected_state, verifier) = stored.split_once('.').ok_or_else(forged)?;
    if !constant_time_eq(expected_state.as_bytes(), returned_state.as_bytes()) {
        tracing::warn!("OAuth state mismatch");
        return Err(forged());
    }
    let signed_in = match state.accounts.sign_in(&code, &verifier.into(), &state.http.oauth_redirect_uri()).await {
        Ok(signed_in) => signed_in,
        // A browser navigation: the landing page says why.
        Err(e) if e.kind == AccountsErrorKind::NotAllowed => {
            return Ok(redirect("/?signin=refused", &[clear_oauth]));
        }
        Err(e) => return Err(e.into()),
    };
    let session =
        state.http.session_cookie().set(signed_in.session_secret.expose(), signed_in.session_ttl.unsigned_abs());
    Ok(redirect("/", &[session, clear_oauth]))
}

/// Query of sign-out.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutQuery {
    /// End every session of the user, not just this one.
    #[serde(default)]
    everywhere: bool,
}

/// `POST /api/auth/logout[?everywhere=true]`.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    security(("session" = [])),
    params(LogoutQuery),
    responses(
        (status = 204, description = "Signed out; the session is deleted server-side"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody)
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Query(query): extract::Query<LogoutQuery>,
) -> Result<Response, ApiError> {
    current.require_browser()?;
    state.accounts.sign_out(current.user.id, &current.session_hash, query.everywhere).await?;
    let clear = state.http.session_cookie().clear();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        headers.insert(SET_COOKIE, v);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// `GET /api/auth/me`.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = Me),
        (status = 401, description = "No valid session", body = ErrorBody)
    )
)]
pub async fn me(State(state): State<AppState>, current: CurrentUser) -> Json<Me> {
    let u = current.user;
    Json(Me {
        max_active_workspaces: state.engine.config().max_active_per_user,
        id: u.id.to_string(),
        github_id: u.github_id.0,
        login: u.login,
        name: u.name,
        email: u.email,
        avatar_url: u.avatar_url,
    })
}
