//! The store port: everything SAM must not lose, one trait per concern.
//!
//! An embedder that needs only part of SAM (say, the workspaces and leases of
//! the engine) can implement those traits; [`Store`] is the union the server
//! and the engine take, implemented automatically for any type that
//! implements every concern. Each concern has its own conformance module in
//! `testkit::conformance::store`, run against every implementation.

mod access_tokens;
mod bootstrap;
mod changes;
mod credentials;
mod installations;
mod leases;
mod users;
mod webhooks;
mod workspaces;

pub use access_tokens::AccessTokenStore;
pub use bootstrap::{BootstrapToken, BootstrapTokenStore};
pub use changes::{CHANGE_FEED_CAPACITY, ChangeFeed, StoreChange};
pub use credentials::{CredentialRemoval, CredentialStore};
pub use installations::InstallationStore;
pub use leases::LeaseStore;
pub use users::UserStore;
pub use webhooks::WebhookDeliveryStore;
pub use workspaces::{WorkspaceLimits, WorkspaceScan, WorkspaceStore};

/// Why a store call failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The row does not exist (or belongs to someone else: callers cannot tell).
    NotFound,
    /// Optimistic concurrency: the row changed since it was read. Re-read and
    /// retry the decision.
    StaleVersion,
    /// The owner already has a workspace with this name.
    NameTaken,
    /// The owner is at the active-workspace limit.
    QuotaExceeded,
    /// The owner has no credential of the kind the workspace needs
    /// ([`WorkspaceLimits::required_credential`]).
    CredentialMissing,
    /// The database is unreachable or busy; retrying may work.
    Unavailable,
    /// A stored value could not be decoded (schema drift, manual edits).
    Corrupt,
    /// Anything else.
    Other,
}

/// A store failure. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[error("store error ({kind:?}): {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

/// Everything SAM must not lose: every concern of the store in one object.
/// Every read or write of a workspace or credential is scoped by the owner's
/// [`UserId`](crate::domain::UserId): there is no way to fetch another user's
/// row by id alone.
///
/// Implemented for every type that implements each concern, so an adapter
/// implements the concern traits and never this one.
pub trait Store:
    UserStore
    + AccessTokenStore
    + CredentialStore
    + InstallationStore
    + WorkspaceStore
    + BootstrapTokenStore
    + LeaseStore
    + WebhookDeliveryStore
    + ChangeFeed
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: UserStore
        + AccessTokenStore
        + CredentialStore
        + InstallationStore
        + WorkspaceStore
        + BootstrapTokenStore
        + LeaseStore
        + WebhookDeliveryStore
        + ChangeFeed
        + std::fmt::Debug
{
}
