//! `Json` and `Query` extractors whose rejections are API errors: the same
//! `{"error", "message", "field"}` body as every other error, with the field
//! named when serde names it, instead of axum's plain-text rejections.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use sam_core::domain::WorkspaceId;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub use sam_core::api::whole_number;

/// A JSON body; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// The `{id}` of a user's workspace route. A malformed id cannot name
/// anyone's workspace, so it gets the same 404 as someone else's.
#[derive(Debug, Clone, Copy)]
pub struct WorkspacePath(pub WorkspaceId);

impl<S: Send + Sync> FromRequestParts<S> for WorkspacePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let not_found = || ApiError::not_found("workspace");
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| not_found())?;
        raw.parse().map(Self).map_err(|_| not_found())
    }
}

/// A query string; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => invalid(&e.body_text()),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not valid JSON")
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the body is too large")
        }
        other => ApiError::new(other.status(), "invalid_request", "the body could not be read"),
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    invalid(&rejection.body_text())
}

/// 422 naming the field serde complained about, with serde's words. They may
/// quote a scalar the caller sent back to the caller, never anything of ours;
/// they are not logged.
fn invalid(text: &str) -> ApiError {
    let detail = text.split_once(": ").map_or(text, |(_, rest)| rest);
    let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail.to_owned());
    error.field = field_of(detail).map(Cow::Owned);
    error
}

/// `missing field `x``, `unknown field `x``, or a serde_path_to_error path
/// (`x: invalid type ...`).
fn field_of(detail: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = detail.split_once(marker).map(|(_, r)| r) {
            return rest.split_once('`').map(|(name, _)| name.to_owned());
        }
    }
    let (path, _) = detail.split_once(": ")?;
    let plausible = !path.is_empty()
        && path.len() <= 64
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    plausible.then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn fields_are_found_in_serde_messages() {
        assert_eq!(field_of("missing field `repository` at line 1 column 12").as_deref(), Some("repository"));
        assert_eq!(field_of("unknown field `nme`, expected one of `name`").as_deref(), Some("nme"));
        assert_eq!(field_of("name: invalid type: integer `1`, expected a string").as_deref(), Some("name"));
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }
}
