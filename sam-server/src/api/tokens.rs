//! Personal access tokens: listed, created (shown once) and revoked from the
//! settings page; a program then calls the API with
//! `Authorization: Bearer sam_pat_…`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sam_core::accounts::{AccountsErrorKind, NewAccessToken};
use sam_core::domain::{AccessToken, TokenScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::CurrentUser;
use crate::state::AppState;

/// A token as listed (never the token itself).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    id: String,
    name: String,
    /// `read` or `write`.
    #[schema(value_type = String, example = "write")]
    scope: TokenScope,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: time::OffsetDateTime,
    /// When it stops working; `null`: when revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<time::OffsetDateTime>,
}

impl From<AccessToken> for TokenView {
    fn from(t: AccessToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token: shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The token (`sam_pat_…`). Not stored: copy it now.
    token: String,
    #[serde(flatten)]
    view: TokenView,
}

/// Body of `POST /api/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// 1–64 characters, no control characters, not starting or ending with
    /// white space.
    #[schema(
        min_length = 1,
        max_length = 64,
        example = "laptop CLI",
        pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]([^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f])?$"
    )]
    name: String,
    /// `read` or `write`.
    #[schema(pattern = "^(read|write)$", example = "write")]
    scope: String,
    /// 1–366 days; absent: until revoked.
    #[schema(minimum = 1, maximum = 366)]
    #[serde(default, deserialize_with = "extract::whole_number")]
    expires_in_days: Option<u32>,
}

/// `GET /api/tokens`.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, description = "The user's tokens, newest first", body = [TokenView]),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Called with an access token (only the dashboard manages tokens)", body = ErrorBody)
    )
)]
pub async fn list(State(state): State<AppState>, current: CurrentUser) -> Result<Json<Vec<TokenView>>, ApiError> {
    current.require_browser()?;
    let tokens = state.accounts.access_tokens(current.user.id).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// `POST /api/tokens`.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "auth",
    security(("session" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the token is in the answer and nowhere else", body = CreatedToken),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin, or called with an access token", body = ErrorBody),
        (status = 409, description = "The most tokens a user may hold (20)", body = ErrorBody),
        (status = 422, description = "Invalid name, scope or expiry; `field` names it", body = ErrorBody)
    )
)]
pub async fn create(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Json(body): extract::Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    current.require_browser()?;
    let scope = body.scope.parse::<TokenScope>().map_err(|e| ApiError::invalid(e.field, e.to_string()))?;
    let new = NewAccessToken { name: body.name, scope, expires_in_days: body.expires_in_days };
    let (stored, token) = state.accounts.create_access_token(current.user.id, new).await.map_err(|e| {
        if e.kind == AccountsErrorKind::InUse {
            ApiError::new(StatusCode::CONFLICT, "token_limit", e.message)
        } else {
            e.into()
        }
    })?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token: token.expose().to_owned(), view: stored.into() })))
}

/// `DELETE /api/tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "auth",
    security(("session" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Revoked: it stops working at once"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin, or called with an access token", body = ErrorBody),
        (status = 404, description = "No such token of yours", body = ErrorBody)
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    current.require_browser()?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such token."));
    }
    state.accounts.revoke_access_token(current.user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
