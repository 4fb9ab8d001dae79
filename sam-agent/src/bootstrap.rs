//! Bootstrap: redeem the single-use token, clone the repository, start the
//! devcontainer (or, with `--host-shell`, use the host), and report each step
//! to the control plane so a failed boot shows *why* on the dashboard.
//!
//! Every step is behind a trait ([`ControlPlaneApi`], [`RepoCloner`],
//! [`DevcontainerRunner`]) so the sequence is tested without a network,
//! git or Docker.
//!
//! The clone token is passed to git only through the environment
//! (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0` setting
//! `http.extraHeader`), so it never reaches the disk or `.git/config`.
//!
//! Progress goes to `POST {control_plane}/api/workspaces/{id}/boot-progress`
//! with `{step, status: running|done|failed, message}` and the callback
//! credential as bearer token.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sam_core::domain::{UserId, WorkspaceId};
use sam_core::secret::SecretString;
use serde::Deserialize;

use crate::session::ShellCommand;
use crate::state::{AgentState, SavedGrant};
use crate::step_output::{KEPT_LINES, StepOutput, output_streamed};

/// Lines of a failing command's output in its error (the reason); the
/// failure report adds the step's last [`KEPT_LINES`] lines.
const TAIL_LINES: usize = 3;
/// How often a running step's new output is reported.
const OUTPUT_EVERY: Duration = Duration::from_secs(3);
/// Lines of a running step's output each report carries.
const LIVE_LINES: usize = 8;
/// Largest control-plane answer read.
const MAX_RESPONSE: usize = 64 * 1024;
/// Longest a bootstrap request to the control plane may take.
const CONTROL_PLANE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default image when the repository has no devcontainer configuration.
pub const DEFAULT_IMAGE: &str = "mcr.microsoft.com/devcontainers/base:bookworm";

/// Bootstrap failures; the message is what the dashboard shows.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The control plane refused or could not be reached.
    #[error("control plane: {0}")]
    ControlPlane(String),
    /// `git clone` failed.
    #[error("clone failed: {0}")]
    Clone(String),
    /// `devcontainer up` failed.
    #[error("devcontainer build failed: {0}")]
    Devcontainer(String),
    /// Local I/O.
    #[error("{0}")]
    Io(String),
}

impl BootstrapError {
    /// What went wrong, without the kind [`Display`](std::fmt::Display)
    /// puts first.
    pub fn reason(&self) -> &str {
        match self {
            Self::ControlPlane(reason) | Self::Clone(reason) | Self::Devcontainer(reason) | Self::Io(reason) => reason,
        }
    }
}

/// What redeeming the bootstrap token yields.
#[derive(Debug, Clone)]
pub struct BootstrapGrant {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its owner: the only user whose terminal tokens the agent accepts
    /// (absent from a grant saved by an older agent).
    pub owner: Option<UserId>,
    /// `owner/name`.
    pub repository: String,
    /// Branch.
    pub branch: String,
    /// Installation token for cloning.
    pub clone_token: SecretString,
    /// Callback credential for heartbeats and reports.
    pub callback_token: SecretString,
    /// Clone URL; defaults to `https://github.com/{repository}.git`.
    pub clone_url: String,
    /// The certificate (PEM) for the workspace's name, when one was asked
    /// for and the deployment has an origin CA.
    pub origin_certificate: Option<String>,
    /// The CA (PEM) of the edge's client certificates.
    pub edge_client_ca: Option<String>,
    /// The devcontainer image for a repository without a
    /// `devcontainer.json` (`None`: [`DEFAULT_IMAGE`]).
    pub default_image: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrantWire {
    workspace_id: WorkspaceId,
    #[serde(default)]
    owner: Option<UserId>,
    repository: String,
    branch: String,
    clone_token: String,
    callback_token: String,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    origin_certificate: Option<String>,
    #[serde(default)]
    edge_client_ca: Option<String>,
    #[serde(default)]
    default_image: Option<String>,
}

/// One progress report (the control plane's own type: `sam_core::wire`).
pub use sam_core::wire::{BootProgress, BootstrapRequest};

/// The control-plane calls bootstrap needs.
#[async_trait]
pub trait ControlPlaneApi: Send + Sync + std::fmt::Debug {
    /// Redeems the single-use bootstrap token, with the agent's request.
    async fn redeem(&self, token: &SecretString, request: &BootstrapRequest) -> Result<BootstrapGrant, BootstrapError>;
    /// Reports progress or failure.
    async fn report(&self, grant: &BootstrapGrant, progress: &BootProgress) -> Result<(), BootstrapError>;
}

/// Clones a repository.
#[async_trait]
pub trait RepoCloner: Send + Sync + std::fmt::Debug {
    /// Clones `url` at `branch` into `dest`, authenticating with `token`;
    /// what git prints goes to `output`.
    async fn clone_repo(
        &self,
        url: &str,
        branch: &str,
        token: &SecretString,
        dest: &Path,
        output: &StepOutput,
    ) -> Result<(), BootstrapError>;
}

/// A started devcontainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id.
    pub container_id: String,
    /// User shells run as.
    pub remote_user: String,
    /// Working directory inside the container.
    pub workspace_folder: String,
    /// What a terminal's environment adds to `docker exec`'s: the
    /// devcontainer's `remoteEnv` and the user's probed login environment
    /// (`userEnvProbe`), as `devcontainer exec` computes them.
    pub env: Vec<(String, String)>,
}

/// Variables a terminal gets otherwise (`docker exec`, the shell itself,
/// the agent), never taken from the probed environment.
const NOT_FORWARDED: &[&str] =
    &["HOSTNAME", "HOME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "COLORTERM", "SAM_SHELL_ID", "container"];

/// `env --null` output as variables a terminal should get: names of
/// letters, digits and `_`, values without line breaks (an env file has
/// one variable a line), minus the names a terminal gets otherwise (`HOME`,
/// `TERM`, `SAM_SHELL_ID`, …).
pub fn parse_env(output: &[u8]) -> Vec<(String, String)> {
    output
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            let (name, value) = entry.split_once('=')?;
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            (valid && !NOT_FORWARDED.contains(&name) && !value.contains(['\n', '\r']))
                .then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The `postAttachCommand`s of `devcontainer read-configuration
/// --include-merged-configuration` output as one `sh` script (`None`: there
/// are none). A string is a shell command; an array is a command and its
/// arguments, quoted here; an object's values run one after the other.
pub fn post_attach_script(read_configuration: &[u8]) -> Option<String> {
    fn quote(word: &str) -> String {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
    fn command(value: &serde_json::Value) -> Vec<String> {
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => vec![s.clone()],
            serde_json::Value::Array(words) => {
                let words: Vec<String> = words.iter().filter_map(|w| w.as_str()).map(quote).collect();
                if words.is_empty() { Vec::new() } else { vec![words.join(" ")] }
            }
            serde_json::Value::Object(named) => named.values().flat_map(command).collect(),
            _ => Vec::new(),
        }
    }
    let parsed: serde_json::Value = serde_json::from_slice(read_configuration).ok()?;
    let merged = parsed.pointer("/mergedConfiguration/postAttachCommands").and_then(|v| v.as_array());
    let commands: Vec<String> = match merged {
        Some(all) => all.iter().flat_map(command).collect(),
        None => parsed.pointer("/configuration/postAttachCommand").map(command).unwrap_or_default(),
    };
    (!commands.is_empty()).then(|| commands.join("\n") + "\n")
}

/// Writes `env` as an env file (`KEY=VALUE` lines, mode 0600: it may hold
/// what the user keeps in their environment).
pub fn write_env_file(path: &Path, env: &[(String, String)]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    for (name, value) in env {
        writeln!(file, "{name}={value}")?;
    }
    Ok(())
}

/// Starts the devcontainer of a checked-out repository.
#[async_trait]
pub trait DevcontainerRunner: Send + Sync + std::fmt::Debug {
    /// `devcontainer up` for `dir`; what it prints goes to `output`.
    async fn up(&self, dir: &Path, output: &StepOutput) -> Result<ContainerInfo, BootstrapError>;

    /// The Docker-compatible CLI terminals enter the container with.
    fn docker_cli(&self) -> &str {
        "docker"
    }
}

/// The progress step that says where terminals run (its message: `in the
/// devcontainer <id> as <user>` or `on the host (no container)`), for the
/// dashboard.
pub const SHELL_STEP: &str = "shell";

/// Bootstrap options.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Where the repository is cloned.
    pub workdir: PathBuf,
    /// Run shells on the host instead of in a devcontainer.
    pub host_shell: bool,
    /// Login shell inside the container.
    pub container_shell: String,
    /// Where the grant is kept for a restart (`None`: not kept).
    pub state: Option<AgentState>,
}

/// Where a bootstrap starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From a grant just redeemed.
    Fresh,
    /// From a grant saved before a restart: a finished clone is left
    /// untouched, an unfinished one is done again; only failures and "ready"
    /// are reported (the workspace may be running already).
    Resumed {
        /// The clone had finished.
        cloned: bool,
    },
}

/// The result of a successful bootstrap.
#[derive(Debug)]
pub struct BootOutcome {
    /// What the token granted.
    pub grant: BootstrapGrant,
    /// Where the repository was cloned.
    pub repository_dir: PathBuf,
    /// The shell terminals run.
    pub shell: ShellCommand,
    /// The devcontainer, if any.
    pub container: Option<String>,
}

/// Runs one boot step: reports it running, its new output every
/// [`OUTPUT_EVERY`] while it runs, then done — or failed, with the reason
/// and the step's last [`KEPT_LINES`] lines of output. `quiet` (a resumed
/// boot) reports failures only.
async fn step<T>(
    cp: &dyn ControlPlaneApi,
    grant: &BootstrapGrant,
    name: &str,
    quiet: bool,
    output: &StepOutput,
    work: impl std::future::Future<Output = Result<T, BootstrapError>>,
) -> Result<T, BootstrapError> {
    let report = |status: &str, message: String| BootProgress { step: name.into(), status: status.into(), message };
    if !quiet && let Err(error) = cp.report(grant, &report("running", String::new())).await {
        tracing::warn!(%error, step = name, "progress report failed");
    }
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + OUTPUT_EVERY, OUTPUT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = ticks.tick() => {
                let changes = output.changes();
                if quiet || changes == reported {
                    continue;
                }
                reported = changes;
                // Bounded: the step's commands keep running (their pipes
                // are read by the work itself only while this waits).
                let live = report("output", output.tail(LIVE_LINES));
                match tokio::time::timeout(Duration::from_secs(5), cp.report(grant, &live)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, step = name, "output report failed"),
                    Err(_) => tracing::debug!(step = name, "output report timed out"),
                }
            }
        }
    };
    match result {
        Ok(value) => {
            if !quiet && let Err(error) = cp.report(grant, &report("done", String::new())).await {
                tracing::warn!(%error, step = name, "progress report failed");
            }
            Ok(value)
        }
        Err(failure) => {
            tracing::error!(workspace = %grant.workspace_id, step = name, error = %failure, "bootstrap step failed");
            // The control plane says which step failed.
            let mut message = failure.reason().to_owned();
            if !output.is_empty() {
                message = format!("{message}\n{}", output.tail(KEPT_LINES));
            }
            if let Err(error) = cp.report(grant, &report("failed", message)).await {
                tracing::warn!(%error, step = name, "failure report failed");
            }
            Err(failure)
        }
    }
}

/// Runs the whole bootstrap: [`ControlPlaneApi::redeem`], then [`provision`].
pub async fn run(
    cp: &dyn ControlPlaneApi,
    cloner: &dyn RepoCloner,
    devcontainer: &dyn DevcontainerRunner,
    token: &SecretString,
    options: &BootstrapOptions,
) -> Result<BootOutcome, BootstrapError> {
    let (grant, _) = redeem(cp, token, options.state.as_ref(), false).await?;
    let outcome = provision(cp, cloner, devcontainer, grant, options, Start::Fresh).await?;
    report_ready(cp, &outcome.grant).await;
    Ok(outcome)
}

/// Redeems the bootstrap token — with `tls`, sending a certificate request
/// for a key made here — and saves the grant (and that key) in `state`
/// before anything else, so that a restart from here on resumes instead of
/// presenting a spent token. Returns the grant and the key.
pub async fn redeem(
    cp: &dyn ControlPlaneApi,
    token: &SecretString,
    state: Option<&AgentState>,
    tls: bool,
) -> Result<(BootstrapGrant, Option<SecretString>), BootstrapError> {
    let (tls_key, request) = if tls {
        let (key, csr) = crate::tls::certificate_request().map_err(|e| BootstrapError::Io(e.to_string()))?;
        (Some(key), BootstrapRequest { csr: Some(csr) })
    } else {
        (None, BootstrapRequest::default())
    };
    let grant = cp.redeem(token, &request).await?;
    if let Some(state) = state {
        let bootstrap_sha256 = Some(sam_core::secret::sha256_hex(token.expose().as_bytes()));
        let saved = SavedGrant { grant: grant.clone(), cloned: false, bootstrap_sha256, tls_key: tls_key.clone() };
        if let Err(error) = state.save(&saved).await {
            tracing::warn!(%error, "the grant could not be saved; a restarted agent will not resume");
        }
    }
    Ok((grant, tls_key))
}

/// Clones the repository and starts the devcontainer (or prepares a host
/// shell), reporting every step; [`report_ready`] comes after, once the
/// shell is served.
pub async fn provision(
    cp: &dyn ControlPlaneApi,
    cloner: &dyn RepoCloner,
    devcontainer: &dyn DevcontainerRunner,
    grant: BootstrapGrant,
    options: &BootstrapOptions,
    start: Start,
) -> Result<BootOutcome, BootstrapError> {
    tracing::info!(workspace = %grant.workspace_id, repository = %grant.repository, branch = %grant.branch, ?start, "bootstrapping");
    let dest = options.workdir.join(repo_dir_name(&grant.repository));
    let quiet = start != Start::Fresh;
    if start == (Start::Resumed { cloned: true }) {
        tracing::info!(dest = %dest.display(), "repository cloned before the restart; left untouched");
    } else {
        if quiet && dest.exists() {
            // A clone the restart interrupted: start it over.
            let partial = dest.clone();
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(partial))
                .await
                .map_err(|e| BootstrapError::Io(e.to_string()))?
                .map_err(|e| BootstrapError::Io(format!("removing an unfinished clone: {e}")))?;
        }
        let output = StepOutput::default();
        let clone = cloner.clone_repo(&grant.clone_url, &grant.branch, &grant.clone_token, &dest, &output);
        step(cp, &grant, "clone", quiet, &output, clone).await?;
        if let Some(state) = &options.state {
            let previous = state.load(None).await.ok().flatten();
            let (bootstrap_sha256, tls_key) = previous.map_or((None, None), |p| (p.bootstrap_sha256, p.tls_key));
            let saved = SavedGrant { grant: grant.clone(), cloned: true, bootstrap_sha256, tls_key };
            if let Err(error) = state.save(&saved).await {
                tracing::warn!(%error, "could not record the finished clone");
            }
        }
    }
    let (shell, container) = if options.host_shell {
        let mut shell = ShellCommand::host_login();
        shell.cwd = Some(dest.to_string_lossy().into_owned());
        (shell, None)
    } else {
        let output = StepOutput::default();
        let info = step(cp, &grant, "devcontainer", quiet, &output, devcontainer.up(&dest, &output)).await?;
        let mut shell = ShellCommand::docker_exec_via(
            devcontainer.docker_cli(),
            &info.container_id,
            &info.remote_user,
            &info.workspace_folder,
            &options.container_shell,
        );
        let env_file = options.workdir.join(".sam-terminal.env");
        match write_env_file(&env_file, &info.env) {
            Ok(()) => shell = shell.with_env_file(&env_file),
            Err(error) => tracing::warn!(%error, "terminals will lack the devcontainer's remoteEnv"),
        }
        (shell, Some(info.container_id))
    };
    if !quiet {
        let message = match &container {
            Some(id) => format!(
                "in the devcontainer {} as {}",
                id.get(..12).unwrap_or(id),
                shell.container.as_ref().map_or("root", |c| c.user.as_str())
            ),
            None => "on the host (no container)".to_owned(),
        };
        let report = BootProgress { step: SHELL_STEP.into(), status: "done".into(), message };
        if let Err(error) = cp.report(&grant, &report).await {
            tracing::warn!(%error, "shell report failed");
        }
    }
    Ok(BootOutcome { grant, shell, container, repository_dir: dest })
}

/// Tells the control plane the workspace is ready: call it once terminals
/// are served, since the dashboard offers "Open" from that moment.
pub async fn report_ready(cp: &dyn ControlPlaneApi, grant: &BootstrapGrant) {
    let ready = BootProgress { step: "ready".into(), status: "done".into(), message: String::new() };
    if let Err(error) = cp.report(grant, &ready).await {
        tracing::warn!(%error, "ready report failed");
    }
}

fn repo_dir_name(repository: &str) -> String {
    let name = repository.rsplit('/').next().unwrap_or("workspace");
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if clean.is_empty() || clean.starts_with('.') { "workspace".into() } else { clean }
}

/// A failed command's reason: its output joins the step's (for the failure
/// report), its last lines are the error.
fn failure_reason(stderr: &[u8], output: &StepOutput) -> String {
    for line in String::from_utf8_lossy(stderr).lines() {
        output.push_line(line);
    }
    tail(stderr)
}

fn tail(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// The HTTP control plane.
#[derive(Debug, Clone)]
pub struct HttpControlPlane {
    http: reqwest::Client,
    base: String,
}

impl HttpControlPlane {
    /// A client for `base` (e.g. `https://sam.example.com`) sending
    /// through `http` (the agent's one client, [`crate::http::client`]).
    pub fn new(base: &str, http: reqwest::Client) -> Self {
        Self { http, base: base.trim_end_matches('/').to_owned() }
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, BootstrapError> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| BootstrapError::ControlPlane(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(BootstrapError::ControlPlane("answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[async_trait]
impl ControlPlaneApi for HttpControlPlane {
    async fn redeem(&self, token: &SecretString, request: &BootstrapRequest) -> Result<BootstrapGrant, BootstrapError> {
        // The token is a path segment; refuse anything that is not URL-safe.
        if token.is_empty() || !token.expose().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(BootstrapError::ControlPlane("malformed bootstrap token".into()));
        }
        let response = self
            .http
            .post(format!("{}/api/bootstrap/{}", self.base, token.expose()))
            .timeout(CONTROL_PLANE_TIMEOUT)
            .json(request)
            .send()
            .await
            .map_err(|e| BootstrapError::ControlPlane(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(BootstrapError::ControlPlane(format!("bootstrap token refused ({})", response.status())));
        }
        let wire: GrantWire = serde_json::from_slice(&read_limited(response).await?)
            .map_err(|_| BootstrapError::ControlPlane("malformed bootstrap answer".into()))?;
        let clone_url = wire.clone_url.unwrap_or_else(|| format!("https://github.com/{}.git", wire.repository));
        Ok(BootstrapGrant {
            workspace_id: wire.workspace_id,
            owner: wire.owner,
            repository: wire.repository,
            branch: wire.branch,
            clone_token: SecretString::new(wire.clone_token),
            callback_token: SecretString::new(wire.callback_token),
            clone_url,
            origin_certificate: wire.origin_certificate,
            edge_client_ca: wire.edge_client_ca,
            default_image: wire.default_image,
        })
    }

    async fn report(&self, grant: &BootstrapGrant, progress: &BootProgress) -> Result<(), BootstrapError> {
        let response = self
            .http
            .post(format!("{}/api/workspaces/{}/boot-progress", self.base, grant.workspace_id))
            .timeout(CONTROL_PLANE_TIMEOUT)
            .bearer_auth(grant.callback_token.expose())
            .json(progress)
            .send()
            .await
            .map_err(|e| BootstrapError::ControlPlane(e.without_url().to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(BootstrapError::ControlPlane(format!("progress refused ({})", response.status())))
        }
    }
}

/// `git clone` with the token in an environment-only `http.extraHeader`.
#[derive(Debug, Clone, Default)]
pub struct GitCloner;

impl GitCloner {
    /// The command that clones `url` into `dest` (exposed for tests).
    pub fn command(url: &str, branch: &str, token: &SecretString, dest: &Path) -> tokio::process::Command {
        let basic = STANDARD.encode(format!("x-access-token:{}", token.expose()));
        let mut cmd = tokio::process::Command::new("git");
        // Progress meters even without a terminal: the dashboard shows them
        // while a large clone runs.
        cmd.arg("clone").arg("--single-branch").arg("--progress");
        if !branch.is_empty() {
            cmd.arg("--branch").arg(branch);
        }
        cmd.arg("--").arg(url).arg(dest);
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

#[async_trait]
impl RepoCloner for GitCloner {
    async fn clone_repo(
        &self,
        url: &str,
        branch: &str,
        token: &SecretString,
        dest: &Path,
        output: &StepOutput,
    ) -> Result<(), BootstrapError> {
        if dest.join(".git").exists() {
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BootstrapError::Io(e.to_string()))?;
        }
        let output = output_streamed(&mut Self::command(url, branch, token, dest), output)
            .await
            .map_err(|e| BootstrapError::Clone(format!("could not run git: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            let mut reason = tail(&output.stderr);
            // Git never prints the header, but be sure no token reaches a report.
            if token.len() >= 8 {
                reason = reason.replace(token.expose(), "***");
            }
            Err(BootstrapError::Clone(reason))
        }
    }
}

/// The `devcontainer` CLI.
#[derive(Debug, Clone)]
pub struct DevcontainerCli {
    /// Path of the CLI.
    pub program: String,
    /// Host paths bind-mounted into the container at the same path (the
    /// agent binary and the git credential socket's directory, so the
    /// clone's credential helper works inside as outside).
    pub same_path_mounts: Vec<PathBuf>,
    /// The container CLI the devcontainer CLI drives (`--docker-path`);
    /// `None`: its default, `docker`.
    pub docker_path: Option<String>,
    /// The image for a repository without a `devcontainer.json`.
    pub default_image: String,
    /// The network (`docker run --network`) of that default container:
    /// `host` where the git server is on the machine's loopback (dev mode).
    /// `None`: the runtime's default.
    pub default_network: Option<String>,
}

impl Default for DevcontainerCli {
    fn default() -> Self {
        Self {
            program: "devcontainer".into(),
            same_path_mounts: Vec::new(),
            docker_path: None,
            default_image: DEFAULT_IMAGE.into(),
            default_network: None,
        }
    }
}

impl DevcontainerCli {
    /// The `--mount` arguments for [`DevcontainerCli::same_path_mounts`].
    pub fn mount_args(&self) -> Vec<String> {
        self.same_path_mounts
            .iter()
            .flat_map(|p| ["--mount".to_owned(), format!("type=bind,source={0},target={0}", p.display())])
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpResult {
    outcome: String,
    container_id: Option<String>,
    remote_user: Option<String>,
    remote_workspace_folder: Option<String>,
    message: Option<String>,
    description: Option<String>,
}

/// The last JSON line `devcontainer up` printed, if any.
fn up_result(stdout: &[u8]) -> Option<UpResult> {
    String::from_utf8_lossy(stdout).lines().rev().find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// Parses the last JSON line `devcontainer up` prints.
pub fn parse_up_output(stdout: &[u8]) -> Result<ContainerInfo, BootstrapError> {
    let result =
        up_result(stdout).ok_or_else(|| BootstrapError::Devcontainer("no result from devcontainer up".into()))?;
    if result.outcome != "success" {
        // "The postCreateCommand in the devcontainer.json failed." and the
        // command's error, or whichever of them there is.
        let reason = match (result.description, result.message) {
            (Some(description), Some(message)) => format!("{description} {message}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => result.outcome,
        };
        return Err(BootstrapError::Devcontainer(reason));
    }
    Ok(ContainerInfo {
        container_id: result.container_id.ok_or_else(|| BootstrapError::Devcontainer("no container id".into()))?,
        remote_user: result.remote_user.unwrap_or_else(|| "root".into()),
        workspace_folder: result.remote_workspace_folder.unwrap_or_else(|| "/workspaces".into()),
        env: Vec::new(),
    })
}

#[async_trait]
impl DevcontainerRunner for DevcontainerCli {
    async fn up(&self, dir: &Path, output: &StepOutput) -> Result<ContainerInfo, BootstrapError> {
        let has_config = dir.join(".devcontainer").exists() || dir.join(".devcontainer.json").exists();
        let default_config = dir.with_extension("sam-default-devcontainer.json");
        if !has_config {
            let mut config = serde_json::json!({ "image": self.default_image });
            if let Some(network) = &self.default_network {
                config["runArgs"] = serde_json::json!([format!("--network={network}")]);
            }
            let config = config.to_string();
            std::fs::write(&default_config, config).map_err(|e| BootstrapError::Io(e.to_string()))?;
        }
        let override_config = (!has_config).then_some(default_config.as_path());
        let mut cmd = self.command("up", dir, override_config);
        // postAttachCommand runs for each terminal (the shell wrapper), not
        // once here.
        cmd.arg("--skip-post-attach").args(self.mount_args());
        let up = output_streamed(&mut cmd, output)
            .await
            .map_err(|e| BootstrapError::Devcontainer(format!("could not run devcontainer: {e}")))?;
        let info = match parse_up_output(&up.stdout) {
            Ok(info) => info,
            Err(error) if up.status.success() || up_result(&up.stdout).is_some() => return Err(error),
            Err(_) => return Err(BootstrapError::Devcontainer(tail(&up.stderr))),
        };
        self.hand_over(&info, output).await?;
        let env = self.terminal_env(dir, override_config).await;
        self.install_post_attach(dir, override_config, &info, output).await?;
        Ok(ContainerInfo { env, ..info })
    }

    fn docker_cli(&self) -> &str {
        self.docker_path.as_deref().unwrap_or("docker")
    }
}

impl DevcontainerCli {
    /// The environment a terminal needs besides `docker exec`'s, as
    /// `devcontainer exec` computes it (`remoteEnv`, `userEnvProbe`). Empty,
    /// with a warning, when it cannot be had in a minute (a user's broken
    /// shell start-up file must not fail the workspace: the terminal shows
    /// it).
    async fn terminal_env(&self, dir: &Path, override_config: Option<&Path>) -> Vec<(String, String)> {
        let mut cmd = self.command("exec", dir, override_config);
        cmd.args(["env", "--null"]);
        let ran = tokio::time::timeout(Duration::from_secs(60), crate::reaper::output_tracked(&mut cmd)).await;
        match ran {
            Ok(Ok(output)) if output.status.success() => parse_env(&output.stdout),
            Ok(Ok(output)) => {
                tracing::warn!(stderr = %tail(&output.stderr), "devcontainer exec env failed: terminals lack remoteEnv");
                Vec::new()
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not run devcontainer exec: terminals lack remoteEnv");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("devcontainer exec env took over a minute: terminals lack remoteEnv");
                Vec::new()
            }
        }
    }

    /// `devcontainer <subcommand> --workspace-folder <dir>`, with the
    /// override configuration (a repository without its own) and the
    /// container CLI, as every subcommand must see the same container.
    fn command(&self, subcommand: &str, dir: &Path, override_config: Option<&Path>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.arg(subcommand).arg("--workspace-folder").arg(dir).kill_on_drop(true);
        if let Some(config) = override_config {
            cmd.arg("--override-config").arg(config);
        }
        if let Some(docker) = &self.docker_path {
            cmd.arg("--docker-path").arg(docker);
        }
        cmd
    }

    /// Puts the devcontainer's `postAttachCommand` (from the configuration
    /// `up` merged: the file's, the image's and its features') where every
    /// terminal's wrapper runs it, or removes a stale one.
    async fn install_post_attach(
        &self,
        dir: &Path,
        override_config: Option<&Path>,
        info: &ContainerInfo,
        step_output: &StepOutput,
    ) -> Result<(), BootstrapError> {
        let mut cmd = self.command("read-configuration", dir, override_config);
        cmd.arg("--include-merged-configuration");
        let output = crate::reaper::output_tracked(&mut cmd)
            .await
            .map_err(|e| BootstrapError::Devcontainer(format!("could not run devcontainer: {e}")))?;
        if !output.status.success() {
            let reason = failure_reason(&output.stderr, step_output);
            return Err(BootstrapError::Devcontainer(format!("reading the configuration: {reason}")));
        }
        let script = post_attach_script(&output.stdout);
        let mut cmd = tokio::process::Command::new(self.docker_cli());
        cmd.args(["exec", "-i", "-u", "root", &info.container_id, "/bin/sh", "-c"])
            .arg(r#"if [ -n "$2" ]; then cat > "$1" && chmod 0644 "$1"; else rm -f "$1"; fi"#)
            .args(["sam-post-attach", crate::session::POST_ATTACH_SCRIPT, if script.is_some() { "1" } else { "" }])
            .kill_on_drop(true);
        let input = script.unwrap_or_default();
        match crate::reaper::output_tracked_with_input(&mut cmd, input.as_bytes()).await {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(BootstrapError::Devcontainer(format!(
                "postAttachCommand: {}",
                failure_reason(&out.stderr, step_output)
            ))),
            Err(e) => Err(BootstrapError::Devcontainer(format!("postAttachCommand: {e}"))),
        }
    }

    /// Gives the workspace folder to the container's user: the agent cloned
    /// it as root, and a `remoteUser` such as `vscode` could not write to it
    /// (or run git in it) otherwise. The folder is the clone, bind-mounted:
    /// its owner changes on the host too.
    async fn hand_over(&self, info: &ContainerInfo, step_output: &StepOutput) -> Result<(), BootstrapError> {
        if info.remote_user == "root" || info.remote_user == "0" {
            return Ok(());
        }
        let docker = self.docker_cli();
        let mut cmd = tokio::process::Command::new(docker);
        // The user and the folder reach the script as arguments, never as
        // code: they come from the repository's devcontainer.json.
        cmd.args(["exec", "-u", "root", &info.container_id, "/bin/sh", "-c"])
            .arg(r#"chown -R -- "$(id -u -- "$1"):$(id -g -- "$1")" "$2""#)
            .args(["sam-hand-over", &info.remote_user, &info.workspace_folder])
            .kill_on_drop(true);
        let output = crate::reaper::output_tracked(&mut cmd)
            .await
            .map_err(|e| BootstrapError::Devcontainer(format!("could not run {docker}: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(BootstrapError::Devcontainer(format!(
                "giving {} to {}: {}",
                info.workspace_folder,
                info.remote_user,
                failure_reason(&output.stderr, step_output)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct FakeCp {
        reports: Mutex<Vec<BootProgress>>,
    }

    #[async_trait]
    impl ControlPlaneApi for FakeCp {
        async fn redeem(&self, token: &SecretString, _: &BootstrapRequest) -> Result<BootstrapGrant, BootstrapError> {
            if token.expose() != "good" {
                return Err(BootstrapError::ControlPlane("bootstrap token refused (410)".into()));
            }
            Ok(BootstrapGrant {
                workspace_id: WorkspaceId::new(),
                owner: Some(UserId::new()),
                repository: "octo/hello".into(),
                branch: "main".into(),
                clone_token: SecretString::new("ghs_secret"),
                callback_token: SecretString::new("cb"),
                clone_url: "https://github.com/octo/hello.git".into(),
                origin_certificate: None,
                edge_client_ca: None,
                default_image: None,
            })
        }
        async fn report(&self, _: &BootstrapGrant, progress: &BootProgress) -> Result<(), BootstrapError> {
            self.reports.lock().unwrap().push(progress.clone());
            Ok(())
        }
    }

    #[derive(Debug)]
    struct FakeClone(bool);
    #[async_trait]
    impl RepoCloner for FakeClone {
        async fn clone_repo(
            &self,
            _: &str,
            _: &str,
            _: &SecretString,
            _: &Path,
            _: &StepOutput,
        ) -> Result<(), BootstrapError> {
            if self.0 { Ok(()) } else { Err(BootstrapError::Clone("remote: Repository not found".into())) }
        }
    }

    #[derive(Debug)]
    struct FakeDevc(bool);
    #[async_trait]
    impl DevcontainerRunner for FakeDevc {
        async fn up(&self, _: &Path, output: &StepOutput) -> Result<ContainerInfo, BootstrapError> {
            if self.0 {
                Ok(ContainerInfo {
                    container_id: "abc123".into(),
                    remote_user: "vscode".into(),
                    workspace_folder: "/workspaces/hello".into(),
                    env: vec![("SAM_TEST".into(), "yes".into())],
                })
            } else {
                // A build that prints for a while, then fails.
                for i in 0..60 {
                    output.push_line(&format!("build line {i}"));
                }
                tokio::time::sleep(Duration::from_secs(4)).await;
                Err(BootstrapError::Devcontainer("Step 3/7: apt-get failed".into()))
            }
        }
    }

    fn options(host_shell: bool) -> BootstrapOptions {
        BootstrapOptions { workdir: "/tmp/ws".into(), host_shell, container_shell: "/bin/bash".into(), state: None }
    }

    #[tokio::test]
    async fn runs_steps_and_builds_docker_exec_shell() {
        let cp = FakeCp::default();
        let out = run(&cp, &FakeClone(true), &FakeDevc(true), &"good".into(), &options(false)).await.unwrap();
        assert_eq!(out.container.as_deref(), Some("abc123"));
        assert_eq!(out.shell.program, "docker");
        assert!(out.shell.args.windows(2).any(|w| w == ["-u", "vscode"]));
        assert!(out.shell.args.windows(2).any(|w| w == ["-w", "/workspaces/hello"]));
        let steps: Vec<String> =
            cp.reports.lock().unwrap().iter().map(|r| format!("{}:{}", r.step, r.status)).collect();
        assert_eq!(
            steps,
            ["clone:running", "clone:done", "devcontainer:running", "devcontainer:done", "shell:done", "ready:done"]
        );
        let shell = cp.reports.lock().unwrap().iter().find(|r| r.step == SHELL_STEP).map(|r| r.message.clone());
        assert_eq!(shell.as_deref(), Some("in the devcontainer abc123 as vscode"));
    }

    #[tokio::test]
    async fn host_shell_skips_devcontainer() {
        let cp = FakeCp::default();
        let out = run(&cp, &FakeClone(true), &FakeDevc(false), &"good".into(), &options(true)).await.unwrap();
        assert!(out.container.is_none());
        assert_eq!(out.shell.cwd.as_deref(), Some("/tmp/ws/hello"));
    }

    /// A running step's output is reported as it comes; a failure carries
    /// the reason and the step's last 50 lines.
    #[tokio::test(start_paused = true)]
    async fn failures_are_reported_with_reason_and_output() {
        let cp = FakeCp::default();
        let err = run(&cp, &FakeClone(true), &FakeDevc(false), &"good".into(), &options(false)).await.unwrap_err();
        assert!(err.to_string().starts_with("devcontainer build failed: Step 3/7"));
        let reports = cp.reports.lock().unwrap().clone();
        let live: Vec<&BootProgress> = reports.iter().filter(|r| r.status == "output").collect();
        assert_eq!(live.len(), 1, "{reports:?}");
        assert_eq!(live[0].step, "devcontainer");
        assert_eq!(
            live[0].message.lines().collect::<Vec<_>>(),
            (52..60).map(|i| format!("build line {i}")).collect::<Vec<_>>()
        );
        let last = reports.last().cloned().unwrap();
        assert_eq!((last.step.as_str(), last.status.as_str()), ("devcontainer", "failed"));
        let mut lines = last.message.lines();
        assert_eq!(lines.next(), Some("Step 3/7: apt-get failed"));
        assert_eq!(lines.collect::<Vec<_>>(), (10..60).map(|i| format!("build line {i}")).collect::<Vec<_>>());
        assert!(run(&cp, &FakeClone(true), &FakeDevc(true), &"bad".into(), &options(false)).await.is_err());
    }

    #[tokio::test]
    async fn clone_token_never_reaches_git_config() {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin");
        let sh = |args: &[&str], cwd: &Path| {
            let ok = std::process::Command::new("git").args(args).current_dir(cwd).output().unwrap().status.success();
            assert!(ok, "git {args:?}");
        };
        std::fs::create_dir_all(&origin).unwrap();
        sh(&["init", "-q", "-b", "main"], &origin);
        std::fs::write(origin.join("README"), "hi").unwrap();
        sh(&["add", "."], &origin);
        sh(&["-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "init"], &origin);
        let dest = dir.path().join("clone");
        let token = SecretString::new("ghs_supersecret_token");
        GitCloner.clone_repo(origin.to_str().unwrap(), "main", &token, &dest, &StepOutput::default()).await.unwrap();
        assert!(dest.join("README").exists());
        let config = std::fs::read_to_string(dest.join(".git/config")).unwrap();
        assert!(!config.contains("ghs_supersecret_token") && !config.contains("extraHeader"));
        let cmd = GitCloner::command("https://x", "main", &token, &dest);
        let args: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.iter().all(|a| !a.contains("supersecret")), "token must not be on the command line");
    }

    #[test]
    fn post_attach_commands_become_one_script() {
        let merged = serde_json::json!({"mergedConfiguration": {"postAttachCommands": [
            "echo one",
            ["printf", "%s\\n", "it's"],
            {"a": "echo a", "b": ["echo", "b"]},
            "",
        ]}});
        let script = post_attach_script(merged.to_string().as_bytes()).unwrap();
        assert_eq!(script, "echo one\n'printf' '%s\\n' 'it'\\''s'\necho a\n'echo' 'b'\n");
        let none = serde_json::json!({"mergedConfiguration": {"postAttachCommands": []}});
        assert_eq!(post_attach_script(none.to_string().as_bytes()), None);
        let plain = serde_json::json!({"configuration": {"postAttachCommand": "date"}});
        assert_eq!(post_attach_script(plain.to_string().as_bytes()).as_deref(), Some("date\n"));
        assert_eq!(post_attach_script(b"not json"), None);
    }

    #[test]
    fn the_probed_environment_keeps_what_terminals_need_and_nothing_unsafe() {
        let probed = b"PATH=/usr/bin:/opt/x\0HOME=/home/vscode\0SAM_REMOTE=a b=c\0MULTI=one\ntwo\0bad name=1\0\0_=/usr/bin/env\0";
        assert_eq!(
            parse_env(probed),
            [("PATH".to_owned(), "/usr/bin:/opt/x".to_owned()), ("SAM_REMOTE".to_owned(), "a b=c".to_owned())]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        write_env_file(&file, &parse_env(probed)).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "PATH=/usr/bin:/opt/x\nSAM_REMOTE=a b=c\n");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_credential_helper_is_mounted_at_the_same_path_in_the_devcontainer() {
        let cli = DevcontainerCli {
            same_path_mounts: vec![PathBuf::from("/usr/local/bin/sam-agent"), PathBuf::from("/var/lib/sam-agent/git")],
            ..DevcontainerCli::default()
        };
        assert_eq!(
            cli.mount_args(),
            [
                "--mount",
                "type=bind,source=/usr/local/bin/sam-agent,target=/usr/local/bin/sam-agent",
                "--mount",
                "type=bind,source=/var/lib/sam-agent/git,target=/var/lib/sam-agent/git"
            ]
        );
    }

    #[test]
    fn parses_devcontainer_up() {
        let out = b"log line\n{\"outcome\":\"success\",\"containerId\":\"c1\",\"remoteUser\":\"vscode\",\"remoteWorkspaceFolder\":\"/workspaces/x\"}\n";
        assert_eq!(parse_up_output(out).unwrap().container_id, "c1");
        let bad = b"{\"outcome\":\"error\",\"message\":\"build failed\"}";
        assert!(parse_up_output(bad).unwrap_err().to_string().contains("build failed"));
    }

    #[test]
    fn repo_dir_names() {
        assert_eq!(repo_dir_name("octo/hello-world"), "hello-world");
        assert_eq!(repo_dir_name("octo/.."), "workspace");
    }
}
