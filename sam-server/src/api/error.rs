//! The API's error body: `{"error": "<code>", "message": "<human text>"}` with
//! the right status; `field` names the offending input on 422.

use std::borrow::Cow;

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sam_core::accounts::{AccountsError, AccountsErrorKind};
use sam_core::engine::{EngineError, EngineErrorKind};
use sam_core::ports::StoreError;
use serde::Serialize;

/// What a 503 asks the client to wait before retrying, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Text for the user.
    pub message: String,
    /// Offending input field (422).
    pub field: Option<Cow<'static, str>>,
    /// Seconds to wait before retrying, sent as `Retry-After` (429; a 503
    /// without one gets 5).
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_request`,
    /// `invalid_state`, `unauthenticated`, `rate_limited`.
    #[schema(example = "invalid_request")]
    error: &'a str,
    /// What went wrong, for people.
    message: &'a str,
    /// The offending input field, on 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// 429: past a budget; `wait` until it allows again (at least a second).
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        Self {
            retry_after: Some(wait.as_secs().max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// 401: no valid session or credential.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 422 naming a field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(Cow::Borrowed(field)),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
        }
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code, message: &self.message, field: self.field.as_deref() };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Something it depends on is down: a hint for clients and proxies.
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match e.kind {
            EngineErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            EngineErrorKind::InvalidState => (StatusCode::CONFLICT, "invalid_state"),
            EngineErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            EngineErrorKind::NameTaken => (StatusCode::CONFLICT, "name_taken"),
            EngineErrorKind::QuotaExceeded => (StatusCode::CONFLICT, "quota_exceeded"),
            EngineErrorKind::Precondition => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            EngineErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            EngineErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %e, "engine error");
        }
        Self { status, code, message: e.message, field: e.field.map(Cow::Borrowed), retry_after: None }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        EngineError::from(e).into()
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        let (status, code) = match e.kind {
            AccountsErrorKind::SignInFailed => (StatusCode::BAD_REQUEST, "signin_failed"),
            AccountsErrorKind::SignInRequired => (StatusCode::UNAUTHORIZED, "signin_required"),
            AccountsErrorKind::NotAllowed => (StatusCode::FORBIDDEN, "not_allowed"),
            AccountsErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            AccountsErrorKind::AppNotInstalled => (StatusCode::PRECONDITION_FAILED, "app_not_installed"),
            AccountsErrorKind::TokenRejected => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_token"),
            AccountsErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AccountsErrorKind::InUse => (StatusCode::CONFLICT, "workspaces_active"),
            AccountsErrorKind::ProviderUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable"),
            AccountsErrorKind::Provider => (StatusCode::BAD_GATEWAY, "provider_error"),
            AccountsErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self { status, code, message: e.message, field: e.field.map(Cow::Borrowed), retry_after: None }
    }
}
