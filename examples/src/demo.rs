//! What the examples share: a signed-up user (as the server's sign-in and
//! settings pages would leave one) and the simulated agent of a new server.
//!
//! The ports the examples do not focus on use `sam-core`'s in-memory fakes
//! (feature `testkit`); a real deployment takes the SQLite or PostgreSQL store,
//! the AES-GCM cipher, the RS256 issuer and the GitHub adapter from
//! `sam-providers` instead, with no change to the code that uses the engine.

use std::sync::Arc;

use sam_core::accounts::{Accounts, AccountsConfig};
use sam_core::domain::{
    BranchName, GithubInstallation, GithubUserId, InstallationId, LocationCode, NewUser, RepoFullName, UserId, VmSize,
    Workspace, WorkspaceName, WorkspaceSpec,
};
use sam_core::engine::{AgentReport, Engine, HeartbeatAnswer, HeartbeatReport, Ports};
use sam_core::ports::InstallationInfo;
use sam_core::testkit::fakes::FakeGithub;

use crate::Error;

/// The GitHub App installation the demo user's repositories come from.
pub const INSTALLATION: InstallationId = InstallationId(1);
/// The demo user's repository.
pub const REPOSITORY: &str = "octo-org/hello-world";

/// Records a user with a GitHub App installation, as signing in and
/// installing the app would, and connects their cloud token the way the
/// Settings page does (checked with the cloud, then sealed).
pub async fn sign_up(ports: &Ports, github: &Arc<FakeGithub>, cloud_token: &str) -> Result<UserId, Error> {
    let store = ports.store.as_ref();
    let now = ports.clock.now();
    let github_id = 4242;
    let user = store
        .upsert_user(
            &NewUser {
                github_id: GithubUserId(github_id),
                login: "octocat".into(),
                name: Some("Mona Octocat".into()),
                email: Some("mona@example.com".into()),
                avatar_url: None,
            },
            now,
        )
        .await?;
    let accounts = Accounts::new(ports.clone(), github.clone(), AccountsConfig::default());
    accounts.connect_cloud(user.id, ports.compute.credential_kind(), cloud_token).await?;
    let account = ("octo-org", "Organization", GithubUserId(99));
    store
        .upsert_installation(&GithubInstallation {
            id: INSTALLATION,
            account_login: account.0.into(),
            account_type: account.1.into(),
            account_id: account.2,
            suspended: false,
            removed_at: None,
            updated_at: now,
        })
        .await?;
    github.add_installation(
        InstallationInfo {
            id: INSTALLATION,
            account_login: account.0.into(),
            account_type: account.1.into(),
            account_id: account.2,
            suspended: false,
        },
        github_id,
        &[REPOSITORY],
    );
    Ok(user.id)
}

/// A small workspace named `name` on the demo repository in `location`.
pub fn spec(name: &str, location: &str) -> Result<WorkspaceSpec, Error> {
    Ok(WorkspaceSpec {
        name: WorkspaceName::new(name)?,
        repository: RepoFullName::new(REPOSITORY)?,
        branch: BranchName::new("main")?,
        vm_size: VmSize::Small,
        vm_location: LocationCode::new(location)?,
    })
}

/// The bootstrap token in a server's cloud-init user data.
pub fn bootstrap_token(user_data: &str) -> Option<String> {
    user_data.lines().find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=").map(str::to_owned))
}

/// Plays the agent on a new server the way the engine expects: redeem the
/// bootstrap token from its cloud-init, report ready, send a heartbeat.
pub async fn boot_agent(
    engine: &Arc<Engine>,
    owner: UserId,
    user_data: &str,
) -> Result<(Workspace, HeartbeatAnswer), Error> {
    let token = bootstrap_token(user_data).ok_or("the server's user data carries no bootstrap token")?;
    let grant = engine.redeem_bootstrap(&token).await?;
    let ws = engine.report_agent(owner, grant.workspace_id, &AgentReport::Ready).await?;
    let answer = engine.record_heartbeat(owner, grant.workspace_id, HeartbeatReport::new(0, 1)).await?;
    Ok((ws, answer))
}

/// One line describing a workspace's state.
pub fn describe(ws: &Workspace) -> String {
    let lc = &ws.lifecycle;
    let server = lc.server.as_ref().map_or("no server".to_owned(), |s| format!("server {} at {}", s.id, s.ipv4));
    let dns = if lc.dns_record.is_some() { "DNS set" } else { "no DNS" };
    format!("{} ({}; {server}, {dns})", ws.status(), lc.reason)
}
