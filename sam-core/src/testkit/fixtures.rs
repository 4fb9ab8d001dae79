use std::net::Ipv4Addr;

use crate::domain::{
    BranchName, GithubUserId, InstallationId, LocationCode, NewUser, NewWorkspace, RepoFullName, ServerId, Timestamp,
    UserId, VmSize, Workspace, WorkspaceName, WorkspaceSpec,
};
use crate::lifecycle::{Event, LifecycleState, ServerRef, WorkspaceStatus};

/// A valid workspace request named `name`.
pub fn sample_spec(name: &str) -> WorkspaceSpec {
    WorkspaceSpec {
        name: WorkspaceName::new(name).expect("fixture name must be valid"),
        repository: RepoFullName::new("octo-org/hello-world").expect("valid"),
        branch: BranchName::new("main").expect("valid"),
        vm_size: VmSize::Small,
        vm_location: LocationCode::new("fsn1").expect("valid"),
    }
}

/// A pending workspace of `owner` named `name`.
pub fn sample_workspace(owner: UserId, name: &str, now: Timestamp) -> Workspace {
    Workspace::new(
        NewWorkspace { owner, spec: sample_spec(name), installation_id: InstallationId(1), idle_timeout_secs: None },
        now,
    )
}

/// A GitHub profile with the given numeric id.
pub fn sample_new_user(github_id: i64) -> NewUser {
    NewUser {
        github_id: GithubUserId(github_id),
        login: format!("user{github_id}"),
        name: Some(format!("User {github_id}")),
        email: Some(format!("user{github_id}@example.com")),
        avatar_url: None,
    }
}

/// A representative state for each status, holding the resources that status
/// normally holds.
pub fn typical_lifecycle(status: WorkspaceStatus) -> LifecycleState {
    use WorkspaceStatus as S;
    let mut s = LifecycleState::new();
    s.status = status;
    match status {
        S::Pending | S::Stopped => {}
        S::Creating => s.server = Some(typical_server()),
        S::Running | S::Stopping | S::Deleting => {
            s.server = Some(typical_server());
            s.dns_record = Some("rec".into());
            s.agent_ready = status == S::Running;
        }
        S::Error => s.error_message = Some("boom".into()),
    }
    s
}

/// The server [`typical_lifecycle`] records.
pub fn typical_server() -> ServerRef {
    ServerRef { id: ServerId("1".into()), ipv4: Ipv4Addr::new(192, 0, 2, 10) }
}

/// One event of every kind, in lifecycle order; `ServerCreated` carries
/// [`typical_server`] so it is legal for [`typical_lifecycle`]`(Creating)`.
pub fn every_event() -> Vec<Event> {
    vec![
        Event::CreateRequested,
        Event::ServerCreated(typical_server()),
        Event::DnsRecordSet { record_id: "rec".into() },
        Event::AgentReady,
        Event::ProvisioningFailed { message: "no capacity".into() },
        Event::ProvisioningTimedOut { message: "stuck at agent".into() },
        Event::StopRequested,
        Event::IdleTimeout,
        Event::AgentUnreachable,
        Event::ServerGone,
        Event::StopFinished,
        Event::RestartRequested,
        Event::DeleteRequested,
        Event::CleanupFinished,
    ]
}
