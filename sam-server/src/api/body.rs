//! Request bodies are read before anything answers (see
//! `sam_providers::emulators::body`, which every server here shares): an
//! early 401/403/404/405 then keeps the kept-alive connection usable.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sam_providers::emulators::body::BodyFirst;

use super::error::ApiError;

/// The control plane's setting: bodies up to `limit` bytes are read; a
/// larger one is its `payload_too_large` error.
pub fn body_first(limit: usize) -> BodyFirst {
    fn too_large() -> Response {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            .into_response()
    }
    BodyFirst { limit, too_large }
}
