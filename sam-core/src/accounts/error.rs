use crate::ports::{ProviderError, ProviderErrorKind, StoreError, StoreErrorKind};

/// What went wrong in an account operation, for a caller to map onto a
/// response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum AccountsErrorKind {
    /// The identity provider did not confirm a sign-in. HTTP 400.
    SignInFailed,
    /// The user's GitHub authorization is missing or unreadable; they must
    /// sign in again. HTTP 401.
    SignInRequired,
    /// The deployment's sign-in policy does not admit the user. HTTP 403.
    NotAllowed,
    /// Input breaks a rule; `field` names it. HTTP 422.
    Invalid,
    /// The GitHub App is not installed where it is needed. HTTP 412.
    AppNotInstalled,
    /// The cloud provider rejected the token. HTTP 422.
    TokenRejected,
    /// No such credential or installation for this user. HTTP 404.
    NotFound,
    /// The credential still serves workspaces. HTTP 409.
    InUse,
    /// A provider could not be reached; nothing was changed. HTTP 503.
    ProviderUnavailable,
    /// A provider refused the request for a reason retrying will not fix.
    /// HTTP 502.
    Provider,
    /// The database is unavailable; retry. HTTP 503.
    Unavailable,
    /// A bug or corrupted data. HTTP 500.
    Internal,
}

/// An account error. The message is written for the user and never contains
/// a secret.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{message}")]
pub struct AccountsError {
    /// Kind.
    pub kind: AccountsErrorKind,
    /// User-facing message.
    pub message: String,
    /// The offending input field, for [`AccountsErrorKind::Invalid`] and
    /// [`AccountsErrorKind::TokenRejected`].
    pub field: Option<&'static str>,
}

impl AccountsError {
    /// An error of `kind`.
    pub fn new(kind: AccountsErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), field: None }
    }

    /// An [`AccountsErrorKind::Invalid`] error naming `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self { field: Some(field), ..Self::new(AccountsErrorKind::Invalid, message) }
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(AccountsErrorKind::NotFound, format!("{what} not found"))
    }

    pub(crate) fn internal() -> Self {
        Self::new(AccountsErrorKind::Internal, "internal error")
    }
}

impl From<StoreError> for AccountsError {
    fn from(e: StoreError) -> Self {
        if e.kind() == StoreErrorKind::Unavailable {
            Self::new(AccountsErrorKind::Unavailable, "the database is unavailable; try again shortly")
        } else {
            tracing::error!(error = %e, "store error in an account operation");
            Self::internal()
        }
    }
}

impl From<ProviderError> for AccountsError {
    fn from(e: ProviderError) -> Self {
        tracing::warn!(kind = e.kind().code(), error = %e, "provider call failed");
        let kind = match e.kind() {
            kind if kind.is_retryable() => AccountsErrorKind::ProviderUnavailable,
            ProviderErrorKind::NotFound => AccountsErrorKind::NotFound,
            ProviderErrorKind::Unauthorized | ProviderErrorKind::Forbidden | ProviderErrorKind::QuotaExceeded => {
                AccountsErrorKind::NotAllowed
            }
            ProviderErrorKind::InvalidConfig => AccountsErrorKind::Internal,
            _ => AccountsErrorKind::Provider,
        };
        Self::new(kind, e.public_message())
    }
}
