use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    Credential, CredentialProvider, GithubInstallation, GithubUserId, InstallationId, NewSession, NewUser, Session,
    Timestamp, User, UserId, Workspace, WorkspaceEvent, WorkspaceId,
};
use crate::lifecycle::WorkspaceStatus;

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

/// Limits checked atomically when a workspace is inserted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WorkspaceLimits {
    /// Maximum workspaces per user in an active status
    /// ([`WorkspaceStatus::is_active`]).
    pub max_active_per_user: u32,
    /// A credential the owner must hold when the workspace is inserted,
    /// checked in the same transaction as
    /// [`Store::delete_credential_unless_in_use`], so a workspace is never
    /// created on a cloud token being disconnected.
    pub required_credential: Option<CredentialProvider>,
}

impl Default for WorkspaceLimits {
    fn default() -> Self {
        Self { max_active_per_user: 10, required_credential: None }
    }
}

/// What [`Store::delete_credential_unless_in_use`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredentialRemoval {
    /// The credential is gone.
    Removed,
    /// There was none.
    NotFound,
    /// Kept: this many of the owner's workspaces are active or still hold a
    /// server or DNS record, and could not be cleaned up without it.
    InUse {
        /// How many.
        workspaces: u64,
    },
}

/// Which workspaces the reconciler wants, in id order, one page at a time.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkspaceScan {
    /// Only these statuses; empty means all.
    pub statuses: Vec<WorkspaceStatus>,
    /// Start after this id (keyset pagination).
    pub after: Option<WorkspaceId>,
    /// Page size.
    pub limit: u32,
}

/// A single-use bootstrap token as stored: only its hash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BootstrapToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Workspace the token bootstraps.
    pub workspace_id: WorkspaceId,
    /// Owner of the workspace.
    pub owner: UserId,
    /// Creation.
    pub created_at: Timestamp,
    /// After this instant it cannot be redeemed.
    pub expires_at: Timestamp,
}

/// Everything SAM must not lose. Every read or write of a workspace or
/// credential is scoped by the owner's [`UserId`]: there is no way to fetch
/// another user's row by id alone.
///
/// Contract (checked by `testkit::conformance::store`, run against every
/// implementation): workspace versions start at 1 and grow by one per update;
/// an update with a stale version fails with [`StoreErrorKind::StaleVersion`];
/// the quota and name checks of [`Store::insert_workspace`] are atomic; a
/// bootstrap token is redeemed at most once and never after expiry; a lease has
/// at most one holder at any instant.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    // ----- users and sessions -----

    /// Creates the user bound to `profile.github_id`, or refreshes its profile.
    async fn upsert_user(&self, profile: &NewUser, now: Timestamp) -> Result<User, StoreError>;
    /// One user.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The user bound to a GitHub id.
    async fn get_user_by_github_id(&self, github_id: GithubUserId) -> Result<Option<User>, StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: &NewSession, now: Timestamp) -> Result<Session, StoreError>;
    /// A session that has not expired at `now`.
    async fn get_session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError>;
    /// Sliding expiry: records use at `now` and moves expiry to `expires_at`.
    /// `false` when the session no longer exists.
    async fn touch_session(&self, id_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError>;
    /// Ends one session (absent is fine).
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a user ("sign out everywhere"); returns how many.
    async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    // ----- credentials -----

    /// Adds or replaces the user's credential for its provider.
    async fn put_credential(&self, credential: &Credential) -> Result<(), StoreError>;
    /// The user's credential for a provider.
    async fn get_credential(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<Option<Credential>, StoreError>;
    /// All credentials of a user.
    async fn list_credentials(&self, owner: UserId) -> Result<Vec<Credential>, StoreError>;
    /// Removes a credential unconditionally; `false` when there was none.
    /// Users disconnect through [`Store::delete_credential_unless_in_use`].
    async fn delete_credential(&self, owner: UserId, provider: CredentialProvider) -> Result<bool, StoreError>;
    /// Removes a credential unless one of the owner's workspaces is active
    /// or still holds a server or DNS record, atomically with respect to
    /// [`Store::insert_workspace`] (which takes the same per-owner lock).
    async fn delete_credential_unless_in_use(
        &self,
        owner: UserId,
        provider: CredentialProvider,
    ) -> Result<CredentialRemoval, StoreError>;
    /// Every credential of a provider, across users: for key rotation and the
    /// orphan sweep (which must look in every connected account).
    async fn list_all_credentials(&self, provider: CredentialProvider) -> Result<Vec<Credential>, StoreError>;

    // ----- GitHub installations -----

    /// Records an installation (from a webhook or a listing).
    async fn upsert_installation(&self, installation: &GithubInstallation) -> Result<(), StoreError>;
    /// One installation.
    async fn get_installation(&self, id: InstallationId) -> Result<Option<GithubInstallation>, StoreError>;
    /// Marks an installation removed; `false` when unknown.
    async fn mark_installation_removed(&self, id: InstallationId, at: Timestamp) -> Result<bool, StoreError>;

    // ----- workspaces -----

    /// Inserts a new workspace with version 1, atomically refusing a name the
    /// owner already uses ([`StoreErrorKind::NameTaken`]), a quota overrun
    /// ([`StoreErrorKind::QuotaExceeded`]) or a missing required credential
    /// ([`StoreErrorKind::CredentialMissing`]). `event` is appended with it.
    async fn insert_workspace(
        &self,
        workspace: &Workspace,
        event: Option<&WorkspaceEvent>,
        limits: WorkspaceLimits,
    ) -> Result<Workspace, StoreError>;
    /// One of the owner's workspaces.
    async fn get_workspace(&self, owner: UserId, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;
    /// The owner's workspaces, newest first, optionally of one status.
    async fn list_workspaces(
        &self,
        owner: UserId,
        status: Option<WorkspaceStatus>,
    ) -> Result<Vec<Workspace>, StoreError>;
    /// Writes `workspace` if its `version` is the stored one, appending `events`
    /// in the same transaction; returns it with the bumped version. The
    /// heartbeat fields (`last_activity_at`, `last_heartbeat_at`) are left as
    /// stored: only [`Store::record_heartbeat`] writes them.
    async fn update_workspace(&self, workspace: &Workspace, events: &[WorkspaceEvent])
    -> Result<Workspace, StoreError>;
    /// Records a heartbeat without bumping the version (activity is not
    /// lifecycle, so heartbeats never make a transition stale). `false` when the
    /// workspace does not exist.
    async fn record_heartbeat(
        &self,
        owner: UserId,
        id: WorkspaceId,
        at: Timestamp,
        last_activity_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Removes a workspace (and its history and bootstrap tokens) if its version
    /// is `expected_version`.
    async fn delete_workspace(&self, owner: UserId, id: WorkspaceId, expected_version: u64) -> Result<(), StoreError>;
    /// The workspace's history, oldest first.
    async fn list_workspace_events(&self, owner: UserId, id: WorkspaceId) -> Result<Vec<WorkspaceEvent>, StoreError>;
    /// A page of workspaces of every user, for the reconciler.
    async fn scan_workspaces(&self, scan: &WorkspaceScan) -> Result<Vec<Workspace>, StoreError>;
    /// How many workspaces of every user are in each status (statuses with
    /// none may be absent), for metrics: one aggregate, not a scan.
    async fn count_workspaces_by_status(&self) -> Result<Vec<(WorkspaceStatus, u64)>, StoreError>;

    // ----- bootstrap tokens -----

    /// Stores a bootstrap token (hash only).
    async fn create_bootstrap_token(&self, token: &BootstrapToken) -> Result<(), StoreError>;
    /// Atomically consumes the token with this hash if it exists, is unused and
    /// has not expired at `now`. `None` otherwise, including on every later call.
    async fn redeem_bootstrap_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<BootstrapToken>, StoreError>;

    // ----- leases -----

    /// Takes or renews the lease on `key` for `holder` until `now + ttl`.
    /// Succeeds when the lease is free, expired, or already held by `holder`.
    async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Gives a lease up, if `holder` has it.
    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError>;

    // ----- webhook deliveries -----

    /// Records a webhook delivery id received at `now`; `true` the first time
    /// the id is seen. Ids received before `forget_before` are forgotten
    /// (and may be pruned in the same call), which keeps the log bounded.
    ///
    /// Kept in the store rather than in memory so that every replica behind a
    /// load balancer agrees on what was already handled.
    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError>;
}
