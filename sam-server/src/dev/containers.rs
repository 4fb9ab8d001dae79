//! Devcontainers for dev mode's local VMs: whether a container runtime and
//! the devcontainer CLI are here (so terminals run where a VM user's do),
//! and the containers a local VM leaves behind, which go down with it.
//!
//! On a real VM, powering off stops its containers and deleting it removes
//! them; a local VM's containers run in the developer's own runtime, so dev
//! mode does both itself. They are found by the label the devcontainer CLI
//! puts on every container it starts: `devcontainer.local_folder`, the
//! clone's path, which lies under the VM's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

/// Where dev mode's terminals run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerMode {
    /// In devcontainers when a container runtime and the devcontainer CLI
    /// answer, else on the host.
    Auto,
    /// In devcontainers; dev mode does not start without them.
    On,
    /// On the host (no container).
    Off,
}

/// A container runtime and the devcontainer CLI that drives it.
#[derive(Debug, Clone)]
pub struct ContainerRuntime {
    /// The Docker-compatible CLI (`docker`, or podman's through its API).
    pub docker: String,
    /// The devcontainer CLI.
    pub devcontainer_cli: PathBuf,
    /// What the runtime says it is (`Docker Engine 24.0.7`, `Podman Engine 4.3.1`).
    pub description: String,
}

/// What [`detect`] found: a runtime, or why terminals run on the host.
#[derive(Debug)]
pub enum Detected {
    /// Terminals run in devcontainers.
    Containers(ContainerRuntime),
    /// Terminals run on the host, for this reason.
    Host(String),
}

/// The devcontainer CLI: the one named, else `devcontainer` on `PATH`, else
/// the pinned one `scripts/test` installs in the source tree.
fn find_cli(named: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = named {
        return Some(path.to_owned());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("devcontainer"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let source_tree =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/devcontainer/node_modules/.bin/devcontainer");
        source_tree.is_file().then_some(source_tree)
    })
}

/// Runs `program args` for at most `limit`; its trimmed stdout on success.
async fn answer(program: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    match tokio::time::timeout(limit, command.output()).await {
        Err(_) => Err(format!("{} {} did not answer in {} s", program.display(), args.join(" "), limit.as_secs())),
        Ok(Err(e)) => Err(format!("{}: {e}", program.display())),
        Ok(Ok(output)) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned();
            Err(format!("{} {}: {last}", program.display(), args.join(" ")))
        }
    }
}

/// Looks for a container runtime (`docker version` reaching its server)
/// and the devcontainer CLI (`--version` runs). `On` without them is an
/// error naming what is missing; `Auto` falls back to the host.
pub async fn detect(mode: ContainerMode, docker: &str, cli: Option<&Path>) -> anyhow::Result<Detected> {
    if mode == ContainerMode::Off {
        return Ok(Detected::Host("--containers off".into()));
    }
    let found = async {
        let server =
            answer(Path::new(docker), &["version", "--format", "{{.Server.Version}}"], Duration::from_secs(10))
                .await
                .map_err(|e| format!("no container runtime answers ({e})"))?;
        let name = answer(
            Path::new(docker),
            &["version", "--format", "{{range .Server.Components}}{{.Name}} {{end}}"],
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_default();
        let name = name.split_whitespace().next().unwrap_or("container runtime").to_owned();
        let cli = find_cli(cli).ok_or_else(|| {
            "no devcontainer CLI (npm install -g @devcontainers/cli, or SAM_DEVCONTAINER_CLI)".to_owned()
        })?;
        answer(&cli, &["--version"], Duration::from_secs(20))
            .await
            .map_err(|e| format!("the devcontainer CLI does not run ({e})"))?;
        Ok::<_, String>(ContainerRuntime {
            docker: docker.to_owned(),
            devcontainer_cli: cli,
            description: format!("{name} {server}"),
        })
    }
    .await;
    match (found, mode) {
        (Ok(runtime), _) => Ok(Detected::Containers(runtime)),
        (Err(reason), ContainerMode::On) => anyhow::bail!("--containers on: {reason}"),
        (Err(reason), _) => Ok(Detected::Host(reason)),
    }
}

impl ContainerRuntime {
    /// The ids of the containers started for clones under `dir` (a VM's
    /// directory), running or not.
    pub async fn containers_under(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let output = tokio::process::Command::new(&self.docker)
            .args(["ps", "--all", "--no-trunc", "--filter", "label=devcontainer.local_folder"])
            .args(["--format", "{{.ID}}\t{{.Label \"devcontainer.local_folder\"}}"])
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {}", self.docker))?;
        anyhow::ensure!(
            output.status.success(),
            "{} ps: {}",
            self.docker,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, folder)| Path::new(folder).starts_with(dir))
            .map(|(id, _)| id.to_owned())
            .collect())
    }

    /// The images of `ids` the devcontainer CLI built (named `vsc-…`).
    async fn built_images(&self, ids: &[String]) -> Vec<String> {
        let output = tokio::process::Command::new(&self.docker)
            .args(["inspect", "--format", "{{.Config.Image}}"])
            .args(ids)
            .kill_on_drop(true)
            .output()
            .await;
        let Ok(output) = output else { return Vec::new() };
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::trim)
            .filter(|image| image.rsplit('/').next().is_some_and(|name| name.starts_with("vsc-")))
            .map(str::to_owned)
            .collect()
    }

    /// Stops (`remove: false`, a power-off) or removes (a deleted VM) the
    /// containers of the VM in `dir`. Failures are logged: a VM's end must
    /// not wait on its runtime.
    pub async fn end_containers(&self, server: u64, dir: &Path, remove: bool) {
        let ids = match self.containers_under(dir).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(server_id = server, %error, "could not list the VM's containers");
                return;
            }
        };
        if ids.is_empty() {
            return;
        }
        // The images the devcontainer CLI built for them (`vsc-…`: the
        // user's uid layered on the image) go too when they are removed:
        // on a VM they went with the disk.
        let built = if remove { self.built_images(&ids).await } else { Vec::new() };
        let args: &[&str] = if remove { &["rm", "--force", "--volumes"] } else { &["stop", "--time", "2"] };
        let ended = tokio::process::Command::new(&self.docker).args(args).args(&ids).kill_on_drop(true).output().await;
        if !built.is_empty() {
            // In use by another VM's container: kept, and that is fine.
            let _ =
                tokio::process::Command::new(&self.docker).arg("rmi").args(&built).kill_on_drop(true).output().await;
        }
        match ended {
            Ok(output) if output.status.success() => {
                tracing::info!(
                    server_id = server,
                    containers = ids.len(),
                    removed = remove,
                    "local VM: containers ended"
                );
            }
            Ok(output) => tracing::warn!(
                server_id = server,
                stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                "local VM: its containers did not end"
            ),
            Err(error) => tracing::warn!(server_id = server, %error, "local VM: its containers did not end"),
        }
    }
}
