use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a workspace is in its life.
///
/// `deleting` is SAM's addition to the six states the API started with: a
/// workspace whose deletion was asked for keeps its row (and is listed) until its
/// server and DNS record are confirmed gone, so a failed cleanup stays visible
/// and is retried instead of leaking silently.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    /// Recorded, provisioning not started.
    Pending,
    /// Server being created, DNS being set, agent bootstrapping.
    Creating,
    /// Agent reported ready; the terminal can be opened.
    Running,
    /// Server and DNS record being removed.
    Stopping,
    /// No server, no DNS record; can be restarted.
    Stopped,
    /// Something failed; `errorMessage` says what. Cleanup of any remaining
    /// resources continues in the background.
    Error,
    /// Being deleted; the row goes once cleanup has finished.
    Deleting,
}

impl WorkspaceStatus {
    /// Every status.
    pub const ALL: [WorkspaceStatus; 7] = [
        WorkspaceStatus::Pending,
        WorkspaceStatus::Creating,
        WorkspaceStatus::Running,
        WorkspaceStatus::Stopping,
        WorkspaceStatus::Stopped,
        WorkspaceStatus::Error,
        WorkspaceStatus::Deleting,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Pending => "pending",
            WorkspaceStatus::Creating => "creating",
            WorkspaceStatus::Running => "running",
            WorkspaceStatus::Stopping => "stopping",
            WorkspaceStatus::Stopped => "stopped",
            WorkspaceStatus::Error => "error",
            WorkspaceStatus::Deleting => "deleting",
        }
    }

    /// Whether the workspace may hold (or be acquiring) a server: these count
    /// towards a user's quota.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            WorkspaceStatus::Pending | WorkspaceStatus::Creating | WorkspaceStatus::Running | WorkspaceStatus::Stopping
        )
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WorkspaceStatus {
    type Err = crate::domain::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkspaceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(crate::domain::ValidationError::new("status", "is not a workspace status"))
    }
}

/// Why a workspace is in its current state; shown to the user next to the status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The owner asked (create, stop, restart, delete).
    User,
    /// A provisioning step completed.
    Provisioning,
    /// A cloud provider rejected or failed a request; `errorMessage` says which.
    ProviderError,
    /// Provisioning did not finish in time.
    ProvisionTimeout,
    /// Nobody typed and nothing was printed for the idle threshold.
    IdleTimeout,
    /// The agent went silent: on a `running` workspace, marked and kept
    /// (`errorMessage` says since when and until when); on an `error` one,
    /// released after the unreachable timeout.
    AgentUnreachable,
    /// The server disappeared at the provider (deleted outside SAM).
    ServerGone,
}

impl Reason {
    /// The wire code, e.g. `idle_timeout`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::User => "user",
            Reason::Provisioning => "provisioning",
            Reason::ProviderError => "provider_error",
            Reason::ProvisionTimeout => "provision_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::AgentUnreachable => "agent_unreachable",
            Reason::ServerGone => "server_gone",
        }
    }

    /// Every reason.
    pub const ALL: [Reason; 7] = [
        Reason::User,
        Reason::Provisioning,
        Reason::ProviderError,
        Reason::ProvisionTimeout,
        Reason::IdleTimeout,
        Reason::AgentUnreachable,
        Reason::ServerGone,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reason {
    type Err = crate::domain::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or(crate::domain::ValidationError::new("reason", "is not a status reason"))
    }
}
