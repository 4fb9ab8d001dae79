//! Health, readiness, JWKS and the terminal token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sam_core::domain::UserId;
use sam_core::ports::JwkSet;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::session::CurrentUser;
use crate::state::AppState;

/// `GET /api/health`: liveness.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /api/ready`: the store answers.
pub async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match state.engine.ports().store.get_user(UserId::from_uuid(uuid::Uuid::nil())).await {
        Ok(_) => Ok(Json(serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the database is unavailable"))
        }
    }
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.issuer.jwks())
}

/// Body of `POST /api/terminal/token`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminalTokenRequest {
    workspace_id: String,
}

/// Answer of `POST /api/terminal/token`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalTokenResponse {
    token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
    url: String,
}

/// `POST /api/terminal/token`: 409 "start it first" unless running.
pub async fn terminal_token(
    State(state): State<AppState>,
    current: CurrentUser,
    Json(body): Json<TerminalTokenRequest>,
) -> Result<Json<TerminalTokenResponse>, ApiError> {
    let id = body.workspace_id.parse().map_err(|_| ApiError::not_found("workspace"))?;
    let access = state.engine.issue_terminal_token(current.user.id, id).await?;
    Ok(Json(TerminalTokenResponse {
        token: access.token.expose().to_owned(),
        expires_at: access.expires_at,
        url: access.url,
    }))
}
