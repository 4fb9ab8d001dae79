//! `POST /api/github/webhook`: the raw body is verified (HMAC-SHA256, constant
//! time) before it is parsed; deliveries are de-duplicated by id. Installation
//! changes update the store: an uninstalled or suspended installation refuses
//! new workspaces, running ones keep working.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sam_core::ports::{WebhookHeaders, WebhookRejection};

use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// How a delivery was taken.
#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    /// `ok`, or `duplicate` for a delivery id already handled.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The handler.
#[utoipa::path(
    post,
    path = "/api/github/webhook",
    tag = "github",
    request_body(content = Object, description = "A GitHub webhook payload, verified against X-Hub-Signature-256 before it is parsed"),
    params(
        ("X-GitHub-Event" = String, Header, description = "Event name"),
        ("X-GitHub-Delivery" = String, Header, description = "Delivery id (de-duplicated)"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` HMAC of the raw body"),
    ),
    responses(
        (status = 200, description = "Handled, or a duplicate delivery ignored", body = WebhookAck),
        (status = 400, description = "Verified but not a payload we understand", body = ErrorBody),
        (status = 401, description = "Missing, malformed or wrong X-Hub-Signature-256", body = ErrorBody),
        (status = 404, description = "Webhooks are not configured", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "The delivery log is unavailable; GitHub will retry", body = ErrorBody)
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAck>), ApiError> {
    let Some(source) = &state.webhooks else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "webhooks are not configured"));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let headers = WebhookHeaders {
        event: header("x-github-event"),
        delivery: header("x-github-delivery"),
        signature: header("x-hub-signature-256"),
    };
    let delivery = match source.receive(headers, &body).await {
        Ok(delivery) => delivery,
        Err(WebhookRejection::Duplicate) => {
            tracing::info!(delivery = ?headers.delivery, "duplicate webhook delivery ignored");
            return Ok((StatusCode::OK, Json(WebhookAck { status: "duplicate" })));
        }
        Err(e @ WebhookRejection::Unauthenticated(_)) => {
            tracing::warn!(error = %e, "webhook refused");
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()));
        }
        Err(WebhookRejection::TooLarge) => {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "body too large"));
        }
        Err(e @ WebhookRejection::Unavailable(_)) => {
            tracing::error!(error = %e, "webhook delivery log failed");
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again"));
        }
        Err(e @ WebhookRejection::Invalid(_)) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()));
        }
    };
    if let Some((installation, change)) = &delivery.change {
        state.accounts.apply_installation_change(installation, *change).await?;
    }
    // Only now: a delivery whose change was not applied stays new.
    match source.handled(&delivery.delivery_id).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery = %delivery.delivery_id, "a concurrent copy of this delivery was handled first");
            return Ok((StatusCode::OK, Json(WebhookAck { status: "duplicate" })));
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery log failed after applying");
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again"));
        }
    }
    tracing::info!(delivery = %delivery.delivery_id, event = %delivery.event, "webhook handled");
    Ok((StatusCode::OK, Json(WebhookAck { status: "ok" })))
}
