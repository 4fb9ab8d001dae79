//! Request bodies are read before anything answers. An answer sent while
//! the client is still sending its body (a 401, 403, 404 or 405 decided
//! from the head alone) left that body unread, and the HTTP server then
//! dropped the kept-alive connection without saying so: the client's next
//! request on it failed with a reset. Reading the body first (it is bounded
//! anyway) keeps the connection usable; a body over the bound is answered
//! 413 with `Connection: close`, so the client knows not to reuse it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The middleware; its state is the largest body any route takes.
pub async fn read_first(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(TRANSFER_ENCODING)
        || request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => {
            let mut response =
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
                    .into_response();
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
