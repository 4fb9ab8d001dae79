//! CSRF defence: a state-changing request must come from our own origin
//! (`Origin`, or `Sec-Fetch-Site: same-origin` when a browser sends no
//! Origin). Attached to the browser routes only (see `api::router`): agent
//! and GitHub endpoints authenticate otherwise.

use axum::extract::{Request, State};
use axum::http::header::ORIGIN;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::state::AppState;

/// The middleware.
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe {
        return next.run(request).await;
    }
    let headers = request.headers();
    // A program with an access token: browsers never add one by
    // themselves, and with one the cookie is not looked at.
    if super::session::bearer(headers).is_some() {
        return next.run(request).await;
    }
    let allowed = match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin == state.http.public_url,
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin"),
    };
    if allowed {
        next.run(request).await
    } else {
        tracing::warn!(path = %super::loggable_path(request.uri().path()), "cross-origin state-changing request refused");
        ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", "cross-origin requests are not allowed")
            .into_response()
    }
}
