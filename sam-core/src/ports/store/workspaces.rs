//! Workspaces and their history.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{CredentialProvider, Timestamp, UserId, Workspace, WorkspaceEvent, WorkspaceId};
use crate::lifecycle::WorkspaceStatus;

/// Limits checked atomically when a workspace is inserted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WorkspaceLimits {
    /// Maximum workspaces per user in an active status
    /// ([`WorkspaceStatus::is_active`]).
    pub max_active_per_user: u32,
    /// A credential the owner must hold when the workspace is inserted,
    /// checked in the same transaction as
    /// [`CredentialStore::delete_credential_unless_in_use`](super::CredentialStore::delete_credential_unless_in_use), so a workspace is never
    /// created on a cloud token being disconnected.
    pub required_credential: Option<CredentialProvider>,
}

impl Default for WorkspaceLimits {
    fn default() -> Self {
        Self { max_active_per_user: 10, required_credential: None }
    }
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

/// Workspaces and their event history. Every read or write is scoped by the
/// owner's [`UserId`], except the reconciler's [`WorkspaceStore::scan_workspaces`]
/// and the metrics aggregate.
///
/// Contract (checked by `testkit::conformance::store`): versions start at 1
/// and grow by one per update; an update with a stale version fails with
/// [`StoreErrorKind::StaleVersion`](super::StoreErrorKind::StaleVersion); the name, quota and credential checks of
/// [`WorkspaceStore::insert_workspace`] are atomic; heartbeats never bump the
/// version.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Inserts a new workspace with version 1, atomically refusing a name the
    /// owner already uses ([`StoreErrorKind::NameTaken`](super::StoreErrorKind::NameTaken)), a quota overrun
    /// ([`StoreErrorKind::QuotaExceeded`](super::StoreErrorKind::QuotaExceeded)) or a missing required credential
    /// ([`StoreErrorKind::CredentialMissing`](super::StoreErrorKind::CredentialMissing)). `event` is appended with it.
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
    /// stored: only [`WorkspaceStore::record_heartbeat`] writes them.
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
}
