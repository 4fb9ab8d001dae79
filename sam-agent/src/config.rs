//! Command-line configuration; every flag can also be set from a
//! `SAM_AGENT_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sam_core::domain::WorkspaceId;
use sam_core::secret::SecretString;

use crate::agent::AgentConfig;
use crate::auth::CookieConfig;
use crate::session::{SessionConfig, ShellCommand};

/// The SAM VM agent.
#[derive(Debug, Clone, Parser)]
#[command(name = "sam-agent", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SAM_AGENT_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Control-plane base URL (heartbeats, bootstrap).
    #[arg(long, env = "SAM_AGENT_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    /// Expected `iss` of terminal tokens (default: the control-plane URL).
    #[arg(long, env = "SAM_AGENT_TOKEN_ISSUER")]
    pub token_issuer: Option<String>,
    /// Workspace id (given by bootstrap when a bootstrap token is used).
    #[arg(long, env = "SAM_AGENT_WORKSPACE_ID")]
    pub workspace_id: Option<WorkspaceId>,
    /// Single-use bootstrap token; redeemed at start.
    #[arg(long, env = "SAM_AGENT_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<SecretString>,
    /// Callback credential for heartbeats when not bootstrapping.
    #[arg(long, env = "SAM_AGENT_CALLBACK_TOKEN", hide_env_values = true)]
    pub callback_token: Option<SecretString>,
    /// Public origin of the terminal (e.g. `https://ws-<id>.example.com`);
    /// the only `Origin` accepted. Default: same origin as the `Host` header.
    #[arg(long, env = "SAM_AGENT_PUBLIC_URL", value_delimiter = ',')]
    pub public_url: Vec<String>,
    /// Mark the session cookie `Secure` (turn off only for local http).
    #[arg(long, env = "SAM_AGENT_SECURE_COOKIE", default_value_t = true, action = clap::ArgAction::Set)]
    pub secure_cookie: bool,
    /// Run shells on the host (no devcontainer). Explicit by design.
    #[arg(long, env = "SAM_AGENT_HOST_SHELL")]
    pub host_shell: bool,
    /// Shell program for host shells (default: `$SHELL -l`).
    #[arg(long, env = "SAM_AGENT_SHELL")]
    pub shell: Option<String>,
    /// The devcontainer CLI.
    #[arg(long, env = "SAM_AGENT_DEVCONTAINER_CLI", default_value = "devcontainer")]
    pub devcontainer_cli: String,
    /// The Docker-compatible CLI: terminals enter containers with it, and
    /// the devcontainer CLI drives it.
    #[arg(long, env = "SAM_AGENT_DOCKER", default_value = "docker")]
    pub docker: String,
    /// Network of the default devcontainer (a repository without
    /// `devcontainer.json`), e.g. `host` where the git server is on this
    /// machine's loopback (dev mode). Default: the runtime's.
    #[arg(long, env = "SAM_AGENT_DEFAULT_CONTAINER_NETWORK")]
    pub default_container_network: Option<String>,
    /// Run shells in this existing container (skips `devcontainer up`).
    #[arg(long, env = "SAM_AGENT_CONTAINER")]
    pub container: Option<String>,
    /// User inside the container.
    #[arg(long, env = "SAM_AGENT_CONTAINER_USER", default_value = "root")]
    pub container_user: String,
    /// Working directory inside the container.
    #[arg(long, env = "SAM_AGENT_CONTAINER_WORKDIR", default_value = "/workspaces")]
    pub container_workdir: String,
    /// Login shell inside the container.
    #[arg(long, env = "SAM_AGENT_CONTAINER_SHELL", default_value = "/bin/bash")]
    pub container_shell: String,
    /// Serve HTTPS: a key made here, its certificate signed at bootstrap by
    /// the deployment's origin CA, connections only from holders of the
    /// edge's client certificate (when the grant names its CA).
    #[arg(long, env = "SAM_AGENT_TLS")]
    pub tls: bool,
    /// Where the agent keeps its grant (callback credential, workspace) to
    /// resume after a restart or a reboot; root-only.
    #[arg(long, env = "SAM_AGENT_STATE_DIR", default_value = "/var/lib/sam-agent")]
    pub state_dir: PathBuf,
    /// Directory repositories are cloned into.
    #[arg(long, env = "SAM_AGENT_WORKDIR", default_value = "/workspace")]
    pub workdir: PathBuf,
    /// Seconds a detached shell is kept for reattach.
    #[arg(long, env = "SAM_AGENT_GRACE_SECS", default_value_t = 300)]
    pub grace_secs: u64,
    /// Seconds a spare shell, started after a tab opens so the next tab
    /// shows its prompt at once, waits for that tab (0: no spare shells).
    #[arg(long, env = "SAM_AGENT_SPARE_SHELL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub spare_shell_secs: u64,
    /// Output kept per session for reattach, in KiB.
    #[arg(long, env = "SAM_AGENT_RING_KIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(32..=65536))]
    pub ring_kib: u64,
    /// Maximum concurrent sessions.
    #[arg(long, env = "SAM_AGENT_MAX_SESSIONS", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_sessions: u64,
    /// Largest inbound WebSocket frame/message in KiB.
    #[arg(long, env = "SAM_AGENT_MAX_FRAME_KIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub max_frame_kib: u64,
    /// The largest file a browser may upload into the workspace, in MiB.
    #[arg(long, env = "SAM_AGENT_MAX_UPLOAD_MIB", default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub max_upload_mib: u64,
    /// Seconds between heartbeats.
    #[arg(long, env = "SAM_AGENT_HEARTBEAT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_secs: u64,
    /// Log format.
    #[arg(long, env = "SAM_AGENT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Config {
    /// The agent configuration for `workspace`.
    pub fn agent_config(&self, workspace: WorkspaceId) -> AgentConfig {
        let mut cfg = AgentConfig::new(workspace);
        cfg.allowed_origins = self.public_url.iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        cfg.max_frame_in = usize::try_from(self.max_frame_kib * 1024).unwrap_or(64 * 1024);
        cfg.cookie = CookieConfig { secure: self.secure_cookie, ..CookieConfig::default() };
        cfg.max_upload = self.max_upload_mib * 1024 * 1024;
        cfg.control_plane = self.control_plane.as_ref().map(|u| u.trim_end_matches('/').to_owned());
        cfg.sessions = SessionConfig {
            ring_capacity: usize::try_from(self.ring_kib * 1024).unwrap_or(256 * 1024),
            grace: Duration::from_secs(self.grace_secs),
            max_sessions: usize::try_from(self.max_sessions).unwrap_or(32),
            spare_for: Duration::from_secs(self.spare_shell_secs),
            ..SessionConfig::default()
        };
        cfg
    }

    /// The shell when it is known without bootstrap.
    pub fn static_shell(&self) -> Option<ShellCommand> {
        if let Some(container) = &self.container {
            return Some(ShellCommand::docker_exec_via(
                &self.docker,
                container,
                &self.container_user,
                &self.container_workdir,
                &self.container_shell,
            ));
        }
        if self.host_shell && self.bootstrap_token.is_none() {
            return Some(match &self.shell {
                Some(program) => ShellCommand::new(program.clone(), &["-l"]),
                None => ShellCommand::host_login(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable the control plane's cloud-init sets is one this binary
    /// reads, so a rename on either side fails here rather than on a VM.
    #[test]
    fn reads_every_variable_cloud_init_sets() {
        use clap::CommandFactory as _;
        let known: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        let user_data = sam_core::cloud_init::render(&sam_core::cloud_init::CloudInitParams {
            control_plane_url: "https://sam.example.dev",
            bootstrap_token: "abc",
            agent_sha256: None,
            agent_sha256_arm64: None,
            agent_tls: true,
        })
        .unwrap();
        let set: Vec<&str> = user_data
            .lines()
            .filter_map(|l| l.trim().split_once('=').map(|(k, _)| k))
            .filter(|k| k.starts_with("SAM_AGENT_"))
            .collect();
        assert!(set.len() >= 2, "{user_data}");
        for key in set {
            assert!(known.iter().any(|k| k == key), "cloud-init sets {key}, which sam-agent does not read");
        }
    }

    #[test]
    fn parses_flags() {
        let id = WorkspaceId::new();
        let cfg = Config::try_parse_from([
            "sam-agent",
            "--workspace-id",
            &id.to_string(),
            "--host-shell",
            "--secure-cookie",
            "false",
            "--grace-secs",
            "5",
        ])
        .unwrap();
        assert!(cfg.host_shell && !cfg.secure_cookie);
        // Tokens are secrets: never in a `Debug` print of the configuration.
        let secret = Config::try_parse_from(["sam-agent", "--bootstrap-token", "boot-secret-123"]).unwrap();
        assert!(!format!("{secret:?}").contains("boot-secret-123"));
        let agent = cfg.agent_config(id);
        assert_eq!(agent.sessions.grace, Duration::from_secs(5));
        assert!(cfg.static_shell().is_some());
        assert!(Config::try_parse_from(["sam-agent", "--ring-kib", "1"]).is_err());
    }
}
