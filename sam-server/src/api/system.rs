//! Health, readiness, JWKS and the terminal token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sam_core::api::{TerminalTokenRequest, TerminalTokenResponse};
use sam_core::ports::JwkSet;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::CurrentUser;
use crate::state::AppState;

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
    /// This server's version (also the agent version it serves).
    version: &'static str,
}

/// Readiness.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
}

/// `GET /api/health`: liveness.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "system",
    responses(
        (status = 200, description = "The process is up", body = Health)
    )
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// `GET /api/ready`: the store answers.
#[utoipa::path(
    get,
    path = "/api/ready",
    tag = "system",
    responses(
        (status = 200, description = "The store answers", body = Readiness),
        (status = 503, description = "The store does not answer", body = ErrorBody)
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    match state.engine.check_store().await {
        Ok(_) => Ok(Json(Readiness { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the database is unavailable"))
        }
    }
}

/// `GET /.well-known/jwks.json`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "system",
    responses(
        (status = 200, description = "The keys that verify terminal and agent tokens", body = JwkSet)
    )
)]
pub async fn jwks(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.issuer.jwks())
}

/// `POST /api/terminal/token`: 409 "start it first" unless running.
#[utoipa::path(
    post,
    path = "/api/terminal/token",
    tag = "workspaces",
    security(("session" = [])),
    request_body = TerminalTokenRequest,
    responses(
        (status = 200, description = "A short-lived terminal token and the URL to open", body = TerminalTokenResponse),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such workspace of yours", body = ErrorBody),
        (status = 409, description = "The workspace is not running: start it first", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody)
    )
)]
pub async fn terminal_token(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Json(body): extract::Json<TerminalTokenRequest>,
) -> Result<Json<TerminalTokenResponse>, ApiError> {
    let id = body.workspace_id.parse().map_err(|_| ApiError::not_found("workspace"))?;
    let access = state.engine.issue_terminal_token(current.user.id, id, Some(&current.session_hash)).await?;
    Ok(Json(TerminalTokenResponse {
        token: access.token.expose().to_owned(),
        expires_at: access.expires_at,
        url: access.url,
    }))
}
