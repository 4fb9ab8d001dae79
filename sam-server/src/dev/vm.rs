//! Local "VMs": every server the emulated Hetzner creates is booted the way
//! cloud-init boots a real one — download the agent from the control plane,
//! check its SHA-256, start it with the single-use bootstrap token — except
//! that the agent runs as a process here, with host shells.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sam_core::secret::sha256_hex;
use sam_providers::emulators::{EmulatedServer, ServerHook};
use tokio::process::Child;

use super::proxy::Routes;

/// The agents of the local VMs, by emulated server id.
#[derive(Debug)]
pub struct LocalVms {
    root: PathBuf,
    routes: Routes,
    workspace_port: u16,
    heartbeat_secs: u64,
    runtime: tokio::runtime::Handle,
    agents: Arc<Mutex<HashMap<u64, (Child, String)>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The value of `KEY=` in cloud-init's agent environment file.
fn env_value<'a>(user_data: &'a str, key: &str) -> Option<&'a str> {
    user_data.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
}

impl LocalVms {
    /// VMs under `root`, reachable through `routes` on `workspace_port`.
    pub fn new(
        root: PathBuf,
        routes: Routes,
        workspace_port: u16,
        heartbeat_secs: u64,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self { root, routes, workspace_port, heartbeat_secs, runtime, agents: Arc::default() }
    }

    /// Stops every agent (SIGTERM, then SIGKILL after 3 s).
    pub async fn shutdown(&self) {
        let agents: Vec<(Child, String)> = lock(&self.agents).drain().map(|(_, a)| a).collect();
        for (mut child, host) in agents {
            self.routes.remove(&host);
            stop(&mut child).await;
        }
    }
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(3), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn boot(
    server: EmulatedServer,
    root: PathBuf,
    routes: Routes,
    workspace_port: u16,
    heartbeat_secs: u64,
    agents: Arc<Mutex<HashMap<u64, (Child, String)>>>,
) -> anyhow::Result<()> {
    let control_plane =
        env_value(&server.user_data, "SAM_AGENT_CONTROL_PLANE").context("no control plane in user data")?;
    let token = env_value(&server.user_data, "SAM_AGENT_BOOTSTRAP_TOKEN").context("no bootstrap token in user data")?;
    let workspace = server.labels.get("sam-workspace").context("server without a workspace label")?;
    let dir = root.join(server.id.to_string());
    std::fs::create_dir_all(dir.join("work"))?;

    // Like cloud-init: fetch the agent of the server's version and check it.
    let response = reqwest::get(format!("{control_plane}/api/agent/download?arch=amd64")).await?.error_for_status()?;
    let expected = response.headers().get("x-agent-sha256").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await?;
    anyhow::ensure!(expected.as_deref() == Some(sha256_hex(&bytes).as_str()), "agent checksum mismatch");
    let binary = dir.join("sam-agent");
    std::fs::write(&binary, &bytes)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let host = format!("ws-{workspace}.localhost");
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let child = tokio::process::Command::new(&binary)
        .env("SAM_AGENT_CONTROL_PLANE", control_plane)
        .env("SAM_AGENT_BOOTSTRAP_TOKEN", token)
        .env("SAM_AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SAM_AGENT_HOST_SHELL", "true")
        .env("SAM_AGENT_SECURE_COOKIE", "false")
        .env("SAM_AGENT_WORKDIR", dir.join("work"))
        .env("SAM_AGENT_PUBLIC_URL", format!("http://{host}:{workspace_port}"))
        .env("SAM_AGENT_HEARTBEAT_SECS", heartbeat_secs.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the agent")?;
    routes.insert(host.clone(), port);
    tracing::info!(server_id = server.id, workspace_id = %workspace, port, "local VM booted");
    lock(&agents).insert(server.id, (child, host));
    Ok(())
}

impl ServerHook for LocalVms {
    fn server_created(&self, server: &EmulatedServer) {
        let (server, root, routes, port, heartbeat, agents) = (
            server.clone(),
            self.root.clone(),
            self.routes.clone(),
            self.workspace_port,
            self.heartbeat_secs,
            self.agents.clone(),
        );
        self.runtime.spawn(async move {
            let id = server.id;
            if let Err(e) = boot(server, root, routes, port, heartbeat, agents).await {
                tracing::warn!(server_id = id, error = %e, "local VM did not boot");
            }
        });
    }

    fn server_deleted(&self, server: &EmulatedServer) {
        if let Some((mut child, host)) = lock(&self.agents).remove(&server.id) {
            self.routes.remove(&host);
            self.runtime.spawn(async move { stop(&mut child).await });
            tracing::info!(server_id = server.id, "local VM stopped");
        }
    }
}
