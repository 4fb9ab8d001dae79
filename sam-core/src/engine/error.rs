use crate::domain::ValidationError;
use crate::lifecycle::TransitionError;
use crate::ports::{ProviderError, StoreError, StoreErrorKind, TokenError};

/// What went wrong, for a caller to map onto a response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// No such workspace for this user (also for someone else's: never leak
    /// existence). HTTP 404.
    NotFound,
    /// The action is not legal in the workspace's state. HTTP 409.
    InvalidState,
    /// Input breaks a rule; `field` names it. HTTP 422.
    Invalid,
    /// The user has a workspace with this name. HTTP 409.
    NameTaken,
    /// The user is at the active-workspace limit. HTTP 409.
    QuotaExceeded,
    /// Something must be set up first (cloud token, GitHub App). HTTP 412/409.
    Precondition,
    /// A token (bootstrap, callback) was not accepted. HTTP 401.
    Unauthorized,
    /// A dependency is down; retry later. HTTP 503.
    Unavailable,
    /// A bug or corrupted data. HTTP 500.
    Internal,
}

/// An engine error. The message is written for the user and never contains a
/// secret or a raw upstream body.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// Kind.
    pub kind: EngineErrorKind,
    /// User-facing message.
    pub message: String,
    /// The offending input field, for [`EngineErrorKind::Invalid`].
    pub field: Option<&'static str>,
}

impl EngineError {
    /// An error of `kind`.
    pub fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), field: None }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(EngineErrorKind::NotFound, "workspace not found")
    }
}

impl From<ValidationError> for EngineError {
    fn from(e: ValidationError) -> Self {
        Self { kind: EngineErrorKind::Invalid, message: e.to_string(), field: Some(e.field) }
    }
}

impl From<TransitionError> for EngineError {
    fn from(e: TransitionError) -> Self {
        Self::new(EngineErrorKind::InvalidState, e.why)
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        let kind = match e.kind() {
            StoreErrorKind::NotFound => EngineErrorKind::NotFound,
            StoreErrorKind::StaleVersion => EngineErrorKind::InvalidState,
            StoreErrorKind::NameTaken => EngineErrorKind::NameTaken,
            StoreErrorKind::QuotaExceeded => EngineErrorKind::QuotaExceeded,
            StoreErrorKind::Unavailable => EngineErrorKind::Unavailable,
            _ => EngineErrorKind::Internal,
        };
        let message = match kind {
            EngineErrorKind::NotFound => "workspace not found".to_owned(),
            EngineErrorKind::InvalidState => "the workspace changed at the same time; try again".to_owned(),
            EngineErrorKind::NameTaken => "you already have a workspace with this name".to_owned(),
            EngineErrorKind::QuotaExceeded => {
                "you are at your limit of active workspaces; stop or delete one first".to_owned()
            }
            EngineErrorKind::Unavailable => "the database is unavailable; try again shortly".to_owned(),
            _ => "internal error".to_owned(),
        };
        Self::new(kind, message)
    }
}

impl From<TokenError> for EngineError {
    fn from(e: TokenError) -> Self {
        Self::new(EngineErrorKind::Internal, format!("could not sign a token: {:?}", e.kind))
    }
}

impl From<ProviderError> for EngineError {
    fn from(e: ProviderError) -> Self {
        if e.is_retryable() {
            Self::new(
                EngineErrorKind::Unavailable,
                format!("the provider is unavailable ({}); try again", e.kind().code()),
            )
        } else {
            Self::new(EngineErrorKind::Precondition, super::messages::provider_failure(&e, None))
        }
    }
}
