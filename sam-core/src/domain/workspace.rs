//! The workspace aggregate and its event history.

use serde::{Deserialize, Serialize};

use super::{
    BranchName, InstallationId, LocationCode, RepoFullName, Timestamp, UserId, VmSize, WorkspaceId, WorkspaceName,
};
use crate::lifecycle::{Effect, Event, LifecycleState, Reason, TransitionError, WorkspaceStatus, transition};

/// What the user asks for when creating a workspace; all fields validated.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Display name, unique per user.
    pub name: WorkspaceName,
    /// `owner/name` on GitHub.
    pub repository: RepoFullName,
    /// Branch to clone.
    pub branch: BranchName,
    /// Size.
    pub vm_size: VmSize,
    /// Provider location code.
    pub vm_location: LocationCode,
}

/// Everything needed to record a new workspace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewWorkspace {
    /// Owner.
    pub owner: UserId,
    /// The user's request.
    pub spec: WorkspaceSpec,
    /// GitHub App installation that grants access to the repository.
    pub installation_id: InstallationId,
    /// Per-workspace idle threshold in seconds, overriding the deployment default.
    pub idle_timeout_secs: Option<u32>,
}

/// A workspace: the user's request, its lifecycle and bookkeeping.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Id (also the DNS label and the server label).
    pub id: WorkspaceId,
    /// Owner; every store query is scoped by it.
    pub owner: UserId,
    /// The user's request.
    #[serde(flatten)]
    pub spec: WorkspaceSpec,
    /// Installation used to mint clone tokens.
    pub installation_id: InstallationId,
    /// Lifecycle state (status, reason, resources, error message).
    #[serde(flatten)]
    pub lifecycle: LifecycleState,
    /// Per-workspace idle threshold override in seconds.
    pub idle_timeout_secs: Option<u32>,
    /// Last terminal input or output the agent reported.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_activity_at: Option<Timestamp>,
    /// Last heartbeat from the agent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_heartbeat_at: Option<Timestamp>,
    /// When `status` last changed (timeouts count from here).
    #[serde(with = "time::serde::rfc3339")]
    pub status_changed_at: Timestamp,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// Last change of any field.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version: a store refuses an update whose version
    /// is not the stored one, and bumps it on success.
    pub version: u64,
}

/// A recorded transition, for the history the user sees.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceEvent {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// Status before.
    pub from: WorkspaceStatus,
    /// Status after.
    pub to: WorkspaceStatus,
    /// [`Event::name`] of what happened.
    pub event: String,
    /// Reason code.
    pub reason: Reason,
    /// Error or detail message, if any.
    pub message: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
}

impl Workspace {
    /// A new `pending` workspace (version 0, not yet stored).
    pub fn new(new: NewWorkspace, now: Timestamp) -> Self {
        Self {
            id: WorkspaceId::new(),
            owner: new.owner,
            spec: new.spec,
            installation_id: new.installation_id,
            lifecycle: LifecycleState::new(),
            idle_timeout_secs: new.idle_timeout_secs,
            last_activity_at: None,
            last_heartbeat_at: None,
            status_changed_at: now,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Current status.
    pub fn status(&self) -> WorkspaceStatus {
        self.lifecycle.status
    }

    /// The fully qualified DNS name under `base_domain` in the nested
    /// scheme ([`HostNaming::Nested`](super::HostNaming)); a deployment's
    /// names come from `EngineConfig::hostname`, which knows its scheme.
    ///
    /// ```
    /// # use sam_core::domain::*;
    /// # let spec = WorkspaceSpec {
    /// #     name: WorkspaceName::new("w").unwrap(), repository: RepoFullName::new("o/r").unwrap(),
    /// #     branch: BranchName::new("main").unwrap(), vm_size: VmSize::Small,
    /// #     vm_location: LocationCode::new("fsn1").unwrap() };
    /// # let ws = Workspace::new(NewWorkspace { owner: UserId::new(), spec, installation_id: InstallationId(1), idle_timeout_secs: None }, time::OffsetDateTime::UNIX_EPOCH);
    /// assert_eq!(ws.hostname("example.dev"), format!("ws-{}.example.dev", ws.id));
    /// ```
    pub fn hostname(&self, base_domain: &str) -> String {
        format!("{}.{}", self.id.dns_label(), base_domain)
    }

    /// Applies `event` through the state machine: on success updates the
    /// lifecycle and timestamps, and returns the history entry to record with
    /// the effects to perform. On error nothing changes.
    pub fn apply(&mut self, event: &Event, now: Timestamp) -> Result<(WorkspaceEvent, Vec<Effect>), TransitionError> {
        let t = transition(&self.lifecycle, event)?;
        let from = self.lifecycle.status;
        if t.state.status != from {
            self.status_changed_at = now;
        }
        let record = WorkspaceEvent {
            workspace_id: self.id,
            from,
            to: t.state.status,
            event: event.name().to_owned(),
            reason: t.state.reason,
            message: match event {
                Event::ProvisioningFailed { .. }
                | Event::ProvisioningTimedOut { .. }
                | Event::AgentSilent { .. }
                | Event::AgentUnreachable
                | Event::ServerGone => t.state.error_message.clone(),
                Event::CleanupBlocked { message } => Some(message.clone()),
                _ => None,
            },
            at: now,
        };
        self.lifecycle = t.state;
        self.updated_at = now;
        Ok((record, t.effects))
    }
}
