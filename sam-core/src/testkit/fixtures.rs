use crate::domain::{
    BranchName, GithubUserId, InstallationId, LocationCode, NewUser, NewWorkspace, RepoFullName, Timestamp, UserId,
    VmSize, Workspace, WorkspaceName, WorkspaceSpec,
};

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
