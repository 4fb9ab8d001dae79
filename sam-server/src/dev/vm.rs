//! Local "VMs": every server the emulated Hetzner creates is booted the way
//! cloud-init boots a real one — download the agent from the control plane,
//! check its SHA-256, start it with the single-use bootstrap token — except
//! that the agent runs as a process here. Its terminals run in
//! devcontainers of the developer's container runtime (`containers`), or
//! on the host when there is none.
//!
//! Each VM is supervised the way systemd runs the agent's unit
//! (`Restart=on-failure`, `RestartSec`): an agent that crashes or is killed
//! is started again from the same command line and resumes from its state
//! directory. Powering the server off stops the agent, powering it on starts
//! it again, and a reboot does both: a "VM reboot".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sam_core::secret::sha256_hex;
use sam_providers::emulators::{EmulatedServer, ServerHook};
use tokio::process::Child;
use tokio::sync::watch;

use super::containers::ContainerRuntime;
use super::proxy::Routes;

/// systemd's `RestartSec` for the agent's unit (5 s on a real VM).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Boot numbers, so that an off-then-on is always a change the supervisor
/// sees, even when both arrive before it looks.
static BOOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(2);

/// What a VM should be doing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Power {
    /// Running, in its `n`th boot.
    On(u64),
    /// Powered off.
    Off,
    /// Deleted: its containers are removed.
    Gone,
    /// Dev mode is stopping: the VM goes down as in a power cut (its
    /// containers stop) and boots again at the next start.
    Exit,
}

#[derive(Debug)]
struct Vm {
    power: watch::Sender<Power>,
    task: tokio::task::JoinHandle<()>,
}

/// What VMs behind the local TLS edge (`dev --tls`) need: the local CA the
/// control plane's certificate is from (a real VM trusts a public CA), so
/// that the agent, and git under it, can reach `https://localhost`.
#[derive(Debug, Clone)]
pub struct VmTls {
    /// The local CA's certificate (PEM file).
    pub ca_file: PathBuf,
}

/// The local VMs, by emulated server id.
#[derive(Debug)]
pub struct LocalVms {
    root: PathBuf,
    routes: Routes,
    workspace_port: u16,
    heartbeat_secs: u64,
    tls: Option<VmTls>,
    containers: Option<ContainerRuntime>,
    runtime: tokio::runtime::Handle,
    vms: Arc<Mutex<HashMap<u64, Vm>>>,
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
        tls: Option<VmTls>,
        containers: Option<ContainerRuntime>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self { root, routes, workspace_port, heartbeat_secs, tls, containers, runtime, vms: Arc::default() }
    }

    /// Stops every agent (SIGTERM, then SIGKILL after 3 s) and its
    /// containers.
    pub async fn shutdown(&self) {
        let vms: Vec<Vm> = lock(&self.vms).drain().map(|(_, vm)| vm).collect();
        for vm in vms {
            vm.power.send_replace(Power::Exit);
            let _ = vm.task.await;
        }
    }

    fn set_power(&self, server: u64, power: impl FnOnce(Power) -> Power) {
        if let Some(vm) = lock(&self.vms).get(&server) {
            vm.power.send_if_modified(|now| {
                let next = power(*now);
                let changed = next != *now;
                *now = next;
                changed
            });
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

/// The agent's unit: its command line and environment, as cloud-init wrote
/// them.
#[derive(Debug)]
struct Unit {
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
}

impl Unit {
    fn start(&self) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = tokio::process::Command::new(&self.binary);
        command.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        command.stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        command.spawn().context("starting the agent")
    }
}

/// Writes the downloaded agent (whose checksum is `sha256`) as `binary`,
/// executable. Every emulated VM gets its own file, but VMs of one data
/// directory share the bytes: one copy per distinct agent is kept in
/// `vm-agents/` beside the VMs' directory and hard-linked (a debug agent is
/// large, and a test run boots dozens of VMs).
fn install_binary(root: &Path, bytes: &[u8], sha256: &str, binary: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let cache = root.with_file_name("vm-agents");
    std::fs::create_dir_all(&cache)?;
    let shared = cache.join(format!("sam-agent-{sha256}"));
    if !shared.exists() {
        let partial = binary.with_extension("partial");
        std::fs::write(&partial, bytes)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&partial, &shared)?;
    }
    let _ = std::fs::remove_file(binary);
    if std::fs::hard_link(&shared, binary).is_ok() {
        return Ok(());
    }
    std::fs::write(binary, bytes)?;
    std::fs::set_permissions(binary, std::fs::Permissions::from_mode(0o755))
}

/// Stops what is left of an earlier boot of the VM in `dir`: agents of a
/// dev mode that was killed outlive it (as agents outlive a crashed control
/// plane), but their "VM" went down with it, so a new boot starts clean.
fn stop_leftovers(dir: &Path) {
    let binary = dir.join("sam-agent");
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if Path::new(&*String::from_utf8_lossy(program)) == binary {
            tracing::info!(pid, vm = %dir.display(), "stopping an agent left from an earlier boot");
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// The HTTP client of a local VM: trusting the local CA behind the TLS edge.
fn vm_client(tls: Option<&VmTls>) -> anyhow::Result<reqwest::Client> {
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(tls) = tls {
        let pem = std::fs::read(&tls.ca_file).with_context(|| format!("reading {}", tls.ca_file.display()))?;
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(http.build()?)
}

/// The boot script's reports (`POST /api/bootstrap/{token}/progress`): a
/// local VM says how far its "cloud-init" got, as a real one does.
struct BootReports {
    http: reqwest::Client,
    control_plane: String,
    token: String,
}

impl BootReports {
    /// Best effort, like the script's.
    async fn send(&self, step: &str, status: &str) {
        let url = format!("{}/api/bootstrap/{}/progress", self.control_plane, self.token);
        let body = serde_json::json!({"step": step, "status": status, "message": ""});
        if let Err(error) = self.http.post(url).json(&body).send().await.and_then(reqwest::Response::error_for_status) {
            tracing::debug!(%error, step, "boot report not recorded");
        }
    }

    /// Of a VM's user data.
    fn of(server: &EmulatedServer, tls: Option<&VmTls>) -> anyhow::Result<Self> {
        let control_plane =
            env_value(&server.user_data, "SAM_AGENT_CONTROL_PLANE").context("no control plane in user data")?;
        let token =
            env_value(&server.user_data, "SAM_AGENT_BOOTSTRAP_TOKEN").context("no bootstrap token in user data")?;
        Ok(Self { http: vm_client(tls)?, control_plane: control_plane.to_owned(), token: token.to_owned() })
    }
}

/// Like cloud-init: fetch the agent of the server's version, check it, and
/// write the unit.
async fn install(
    server: &EmulatedServer,
    root: PathBuf,
    workspace_port: u16,
    heartbeat_secs: u64,
    tls: Option<VmTls>,
    containers: Option<&ContainerRuntime>,
) -> anyhow::Result<Booted> {
    let boot = BootReports::of(server, tls.as_ref())?;
    let (control_plane, token) = (boot.control_plane.as_str(), boot.token.as_str());
    let workspace = server.labels.get("sam-workspace").context("server without a workspace label")?;
    let dir = root.join(server.id.to_string());
    stop_leftovers(&dir);
    if let Some(runtime) = containers {
        // They went down with the earlier boot's "VM".
        runtime.end_containers(server.id, &dir, false).await;
    }
    std::fs::create_dir_all(dir.join("work"))?;
    std::fs::create_dir_all(dir.join("home"))?;
    // Where cloud-init keeps it on a real VM (/var/lib/cloud/instance/user-data.txt).
    crate::ops::write_secret_file(&dir.join("user-data.txt"), &server.user_data)?;
    boot.send("agent-download", "running").await;
    let response =
        boot.http.get(format!("{control_plane}/api/agent/download?arch=amd64")).send().await?.error_for_status()?;
    let expected = response.headers().get("x-agent-sha256").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await?;
    let sha256 = sha256_hex(&bytes);
    anyhow::ensure!(expected.as_deref() == Some(sha256.as_str()), "agent checksum mismatch");
    let binary = dir.join("sam-agent");
    install_binary(&root, &bytes, &sha256, &binary)?;
    boot.send("agent-download", "done").await;
    // The last report with the bootstrap token, as the boot script's.
    boot.send("agent-start", "running").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let host = format!("ws-{workspace}.localhost");
    // Cloud-init asks for TLS when the deployment has the edge (the agent
    // then listens on 443; here on the port the edge knows).
    let agent_tls = env_value(&server.user_data, "SAM_AGENT_TLS") == Some("true");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut env = vec![
        ("SAM_AGENT_CONTROL_PLANE", control_plane.to_owned()),
        ("SAM_AGENT_BOOTSTRAP_TOKEN", token.to_owned()),
        ("SAM_AGENT_LISTEN", format!("127.0.0.1:{port}")),
        ("SAM_AGENT_SECURE_COOKIE", tls.is_some().to_string()),
        ("SAM_AGENT_WORKDIR", dir.join("work").display().to_string()),
        ("SAM_AGENT_STATE_DIR", dir.join("state").display().to_string()),
        // A fresh VM's home: the shells do not run the developer's shell
        // start-up files (which may wait on locks of their own tools).
        ("HOME", dir.join("home").display().to_string()),
        ("SAM_AGENT_PUBLIC_URL", format!("{scheme}://{host}:{workspace_port}")),
        ("SAM_AGENT_HEARTBEAT_SECS", heartbeat_secs.to_string()),
    ];
    if agent_tls {
        env.push(("SAM_AGENT_TLS", "true".to_owned()));
    }
    match containers {
        Some(runtime) => {
            env.push(("SAM_AGENT_DEVCONTAINER_CLI", runtime.devcontainer_cli.display().to_string()));
            env.push(("SAM_AGENT_DOCKER", runtime.docker.clone()));
            // The emulated GitHub (pushes from the terminal) is on this
            // machine's loopback.
            env.push(("SAM_AGENT_DEFAULT_CONTAINER_NETWORK", "host".to_owned()));
        }
        None => env.push(("SAM_AGENT_HOST_SHELL", "true".to_owned())),
    }
    if let Some(tls) = &tls {
        // The agent's HTTP client (rustls-native-certs) and git both read these.
        env.push(("SSL_CERT_FILE", tls.ca_file.display().to_string()));
        env.push(("GIT_SSL_CAINFO", tls.ca_file.display().to_string()));
    }
    Ok(Booted { unit: Unit { binary, env, log: dir.join("agent.log") }, dir, host, port })
}

/// A booted VM: its agent's unit, its directory, and where its terminals
/// are reached.
#[derive(Debug)]
struct Booted {
    unit: Unit,
    dir: PathBuf,
    host: String,
    port: u16,
}

/// Runs the unit while the VM is on, restarting it when it fails; its
/// containers stop when it goes down and are removed when it is deleted.
async fn supervise(
    server: u64,
    booted: Booted,
    routes: Routes,
    containers: Option<ContainerRuntime>,
    mut power: watch::Receiver<Power>,
) {
    let Booted { unit, dir, host, port } = booted;
    let end_containers = async |power: Power| {
        if let Some(runtime) = &containers {
            runtime.end_containers(server, &dir, power == Power::Gone).await;
        }
    };
    loop {
        let boot = *power.borrow_and_update();
        match boot {
            Power::Gone | Power::Exit => {
                end_containers(boot).await;
                break;
            }
            Power::Off => {
                if power.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Power::On(_) => {}
        }
        let mut child = match unit.start() {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(server_id = server, error = %e, "the agent did not start");
                tokio::select! {
                    () = tokio::time::sleep(RESTART_DELAY) => continue,
                    changed = power.changed() => if changed.is_err() { break } else { continue },
                }
            }
        };
        routes.insert(host.clone(), port);
        tracing::info!(server_id = server, port, ?boot, "local VM: agent started");
        tokio::select! {
            status = child.wait() => {
                let failed = !status.as_ref().is_ok_and(std::process::ExitStatus::success);
                tracing::warn!(server_id = server, ?status, "local VM: the agent exited");
                // Restart=on-failure: a clean exit stays down until the VM
                // is powered on (or rebooted) again.
                let restart = if failed {
                    tokio::select! {
                        () = tokio::time::sleep(RESTART_DELAY) => true,
                        changed = power.changed() => changed.is_ok(),
                    }
                } else {
                    power.changed().await.is_ok()
                };
                if !restart {
                    break;
                }
            }
            _ = power.changed() => {
                // Off, deleted or rebooted: the agent goes down with the VM,
                // and so do its containers.
                stop(&mut child).await;
                let now = *power.borrow();
                tracing::info!(server_id = server, power = ?now, "local VM: agent stopped");
                if now != Power::Gone && now != Power::Exit {
                    end_containers(now).await;
                }
            }
        }
    }
    routes.remove(&host);
}

impl ServerHook for LocalVms {
    fn server_created(&self, server: &EmulatedServer) {
        let (power, receiver) = watch::channel(Power::On(1));
        let (server, root, routes, port, heartbeat, tls, containers) = (
            server.clone(),
            self.root.clone(),
            self.routes.clone(),
            self.workspace_port,
            self.heartbeat_secs,
            self.tls.clone(),
            self.containers.clone(),
        );
        let id = server.id;
        let task = self.runtime.spawn(async move {
            if !server.starts_agent {
                // A VM whose agent never starts (the emulator's control API
                // asked for it): it boots as far as starting the agent, says
                // so, and then nothing answers.
                tracing::warn!(server_id = id, "local VM booted without its agent, as asked");
                match BootReports::of(&server, tls.as_ref()) {
                    Ok(boot) => {
                        for (step, status) in
                            [("agent-download", "running"), ("agent-download", "done"), ("agent-start", "running")]
                        {
                            boot.send(step, status).await;
                        }
                    }
                    Err(error) => tracing::warn!(server_id = id, %error, "local VM without boot reports"),
                }
                let mut receiver = receiver;
                while receiver.changed().await.is_ok() && !matches!(*receiver.borrow(), Power::Gone | Power::Exit) {}
                return;
            }
            match install(&server, root, port, heartbeat, tls, containers.as_ref()).await {
                Ok(booted) => {
                    tracing::info!(server_id = id, port = booted.port, "local VM booted");
                    supervise(id, booted, routes, containers, receiver).await;
                }
                Err(e) => tracing::warn!(server_id = id, error = %e, "local VM did not boot"),
            }
        });
        lock(&self.vms).insert(id, Vm { power, task });
    }

    fn server_deleted(&self, server: &EmulatedServer) {
        if let Some(vm) = lock(&self.vms).remove(&server.id) {
            vm.power.send_replace(Power::Gone);
            tracing::info!(server_id = server.id, "local VM deleted");
        }
    }

    fn server_powered(&self, server: &EmulatedServer, on: bool) {
        // A reboot arrives as off, then on: the agent goes down and comes
        // back from its unit's command line, in a new boot.
        self.set_power(server.id, |now| match (now, on) {
            (Power::Gone | Power::Exit, _) => now,
            (_, false) => Power::Off,
            (Power::On(n), true) => Power::On(n),
            (Power::Off, true) => Power::On(BOOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        });
    }
}
