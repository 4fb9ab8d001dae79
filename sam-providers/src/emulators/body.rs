//! Request bodies read before anything answers, for every HTTP server here
//! (the emulators, and the control plane, which uses this too). An answer
//! sent while the client is still sending its body (a 401, 403, 404 or 405
//! decided from the head alone) left that body unread, and the HTTP server
//! then dropped the kept-alive connection without saying so: the client's
//! next request on it failed with a reset (real providers do not do that,
//! so an emulator must not either). Reading the body first — it is bounded —
//! keeps the connection usable; a body over the bound gets the server's own
//! 413 with `Connection: close`, so the client knows not to reuse it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::Response;

/// The middleware's state: the largest body any route takes, and the
/// server's answer to a larger one.
#[derive(Clone, Copy, Debug)]
pub struct BodyFirst {
    /// Bytes read at most.
    pub limit: usize,
    /// The 413 in the server's own error format.
    pub too_large: fn() -> Response,
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn read_first(State(first): State<BodyFirst>, request: Request, next: Next) -> Response {
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
    match axum::body::to_bytes(body, first.limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(_) => {
            let mut response = (first.too_large)();
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
