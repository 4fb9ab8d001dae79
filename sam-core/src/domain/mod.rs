//! The domain: the things SAM talks about, each valid by construction.

mod access_token;
mod account;
mod hosts;
mod ids;
mod names;
mod vm;
mod workspace;

pub use access_token::{ACCESS_TOKEN_PREFIX, AccessToken, TokenScope};
pub use account::{Credential, CredentialProvider, GithubInstallation, NewSession, NewUser, Session, User};
pub use hosts::{HostNaming, WorkspaceHosts, preview_port_of};
pub use ids::{GithubUserId, InstallationId, ServerId, UserId, WorkspaceId};
pub use names::{BranchName, DeploymentId, LocationCode, RepoFullName, WorkspaceName};
pub use vm::{Location, LocationPrice, ServerTypeOffer, VmSize, arch, choose_server_type, choose_server_type_of};
pub use workspace::{NewWorkspace, Workspace, WorkspaceEvent, WorkspaceSpec};

/// A point in time, always UTC.
pub type Timestamp = time::OffsetDateTime;

/// A value that breaks a domain rule. `field` names the offending input the way
/// the HTTP API spells it, so a 422 can point at it.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// The field, e.g. `branch`.
    pub field: &'static str,
    /// Why it is invalid, phrased for the user.
    pub reason: &'static str,
}

impl ValidationError {
    /// A validation error for `field`.
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}
