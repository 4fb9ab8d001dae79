use std::time::Duration;

use crate::domain::{DeploymentId, HostNaming, WorkspaceHosts, WorkspaceId};

/// The image of new servers unless configured: Hetzner's `docker-ce` app
/// (see [`EngineConfig::server_image`]).
pub const DEFAULT_SERVER_IMAGE: &str = "docker-ce";

/// Deployment settings of the engine. [`EngineConfig::new`] gives the defaults
/// the design names; every field can be overridden.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Workspaces live at `ws-<id>.<base_domain>`.
    pub base_domain: String,
    /// How workspace names are formed under the base domain (default
    /// nested: `ws-<id>.<base_domain>`).
    pub host_naming: HostNaming,
    /// This deployment's id, carried by every server (label) and DNS record
    /// (comment) it creates; its orphan sweeps touch nothing that carries
    /// another. Default: the base domain.
    pub deployment: DeploymentId,
    /// How the browser reaches a workspace agent; `{host}` is replaced by
    /// `ws-<id>.<base_domain>`. Production: `https://{host}`.
    pub workspace_url_template: String,
    /// Public URL of the control plane (agents download themselves and call
    /// back here).
    pub control_plane_url: String,
    /// Image of new servers (a Hetzner image name or id). The default,
    /// `docker-ce`, is Hetzner's Ubuntu 24.04 app image with Docker CE
    /// installed, so a boot installs nothing but Node.js; any image with
    /// `apt-get` works, and an operator's snapshot with Node.js too
    /// installs nothing.
    pub server_image: String,
    /// Where repositories are cloned from: `<git_base_url>/<owner>/<name>.git`.
    pub git_base_url: String,
    /// Maximum active workspaces per user.
    pub max_active_per_user: u32,
    /// Idle threshold unless a workspace overrides it.
    pub idle_timeout: Duration,
    /// How long before the idle deadline the warning starts.
    pub idle_warning: Duration,
    /// The shortest idle timeout a user may choose for a workspace.
    pub idle_timeout_min: Duration,
    /// The longest idle timeout a user may choose for a workspace.
    pub idle_timeout_max: Duration,
    /// Provisioning deadline, counted from entering `creating`.
    pub provision_timeout: Duration,
    /// After this long in `stopping`, a workspace is reported as stuck (cleanup
    /// keeps being retried).
    pub stop_timeout: Duration,
    /// A running workspace without a heartbeat for this long is checked against
    /// the provider.
    pub heartbeat_timeout: Duration,
    /// A running workspace whose agent stays silent (no heartbeat, no answer
    /// to a direct health check) is marked unreachable and kept; after this
    /// long without a word, counted from the last heartbeat (or this
    /// engine's start), it is released. Well above the idle timeout: a
    /// silent agent is not evidence of an idle user.
    pub unreachable_timeout: Duration,
    /// The CA (PEM) of the client certificates the TLS edge presents to
    /// workspace agents (Cloudflare's Authenticated Origin Pulls CA, or the
    /// dev edge's): handed to agents in their grant, which then accept
    /// connections from its holders only.
    pub edge_client_ca_pem: Option<String>,
    /// The image of the devcontainer for repositories without a
    /// `devcontainer.json`, handed to agents in the grant; `None`: the
    /// agent's own default (`mcr.microsoft.com/devcontainers/base:bookworm`).
    pub default_devcontainer_image: Option<String>,
    /// Lifetime of a bootstrap token.
    pub bootstrap_token_ttl: Duration,
    /// Lifetime of a terminal token (browser → agent).
    pub terminal_token_ttl: Duration,
    /// Lifetime of the agent's callback credential.
    pub callback_token_ttl: Duration,
    /// A server or DNS record that belongs to no live workspace is deleted once
    /// it is older than this (servers) or was first seen this long ago (records).
    pub orphan_grace: Duration,
    /// Lease on one workspace while driving it.
    pub lease_ttl: Duration,
    /// Page size of the reconciler's scan.
    pub scan_page_size: u32,
    /// Retries inside one provider step.
    pub retry: RetryPolicy,
    /// SHA-256 (hex) of the agent binary per architecture, for cloud-init to
    /// verify the download. `None` skips nothing: the download is then
    /// verified against the `X-Agent-Sha256` header only.
    pub agent_sha256_amd64: Option<String>,
    /// The same for the `arm64` agent. Without it no Arm server type is
    /// chosen (there would be no agent to run on it).
    pub agent_sha256_arm64: Option<String>,
    /// Whether Arm server types may be chosen when cheaper (and an arm64
    /// agent is served): off for an x86-only server image.
    pub arm_servers: bool,
    /// The agent version this control plane serves (a server serves its own
    /// version). A heartbeat from another version is logged once and shown
    /// with the workspace ([`Engine::agent_version`](super::Engine::agent_version)).
    /// `None`: not compared.
    pub agent_version: Option<String>,
}

impl EngineConfig {
    /// The architectures a new server may have: Arm too when allowed and an
    /// arm64 agent is served.
    pub fn server_architectures(&self) -> &'static [&'static str] {
        if self.arm_servers && self.agent_sha256_arm64.is_some() {
            crate::domain::arch::ANY
        } else {
            crate::domain::arch::X86_ONLY
        }
    }

    /// The idle timeouts a user may choose, widened to take in the
    /// deployment's default (an operator's short default for demos is still
    /// a valid choice).
    pub fn idle_timeout_bounds(&self) -> (Duration, Duration) {
        (self.idle_timeout_min.min(self.idle_timeout), self.idle_timeout_max.max(self.idle_timeout))
    }

    /// Defaults: idle 30 min with a 5 min warning (users may choose 10 min
    /// to 8 h per workspace), provisioning 10 min,
    /// heartbeats overdue after 5 min, a silent agent released after 2 h,
    /// quota 10.
    ///
    /// The deployment id is the base domain (or `sam` for a base domain that
    /// is not a valid id, such as one longer than 63 characters: set
    /// [`EngineConfig::deployment`] then).
    pub fn new(base_domain: impl Into<String>, control_plane_url: impl Into<String>) -> Self {
        let base_domain = base_domain.into();
        Self {
            deployment: DeploymentId::from_base_domain(&base_domain).unwrap_or_else(|_| DeploymentId::fallback()),
            base_domain,
            host_naming: HostNaming::Nested,
            workspace_url_template: "https://{host}".into(),
            control_plane_url: control_plane_url.into(),
            server_image: DEFAULT_SERVER_IMAGE.into(),
            git_base_url: "https://github.com".into(),
            max_active_per_user: 10,
            idle_timeout: Duration::from_secs(30 * 60),
            idle_warning: Duration::from_secs(5 * 60),
            idle_timeout_min: Duration::from_secs(10 * 60),
            idle_timeout_max: Duration::from_secs(8 * 3600),
            provision_timeout: Duration::from_secs(10 * 60),
            stop_timeout: Duration::from_secs(5 * 60),
            heartbeat_timeout: Duration::from_secs(5 * 60),
            unreachable_timeout: Duration::from_secs(2 * 3600),
            edge_client_ca_pem: None,
            default_devcontainer_image: None,
            bootstrap_token_ttl: Duration::from_secs(15 * 60),
            terminal_token_ttl: Duration::from_secs(60),
            callback_token_ttl: Duration::from_secs(30 * 24 * 3600),
            orphan_grace: Duration::from_secs(10 * 60),
            lease_ttl: Duration::from_secs(120),
            scan_page_size: 1000,
            retry: RetryPolicy::default(),
            agent_sha256_amd64: None,
            agent_sha256_arm64: None,
            arm_servers: true,
            agent_version: None,
        }
    }
}

impl EngineConfig {
    /// The deployment's workspace names. A base domain the scheme cannot use
    /// (flat naming on a single label) falls back to nested names; a
    /// deployment checks [`WorkspaceHosts::new`] when it starts.
    pub fn hosts(&self) -> WorkspaceHosts {
        WorkspaceHosts::new(&self.base_domain, self.host_naming)
            .or_else(|_| WorkspaceHosts::new(&self.base_domain, HostNaming::Nested))
            .unwrap_or_else(|_| {
                WorkspaceHosts::new("invalid", HostNaming::Nested).unwrap_or_else(|_| unreachable!("a valid base"))
            })
    }

    /// The host name of workspace `id`.
    pub fn hostname(&self, id: &WorkspaceId) -> String {
        self.hosts().host(id)
    }
}

/// Exponential backoff with full jitter for retryable provider errors, inside
/// one step. What is still failing afterwards is left for the reconciler's
/// next pass.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts including the first.
    pub max_attempts: u32,
    /// First delay.
    pub initial_delay: Duration,
    /// Longest delay (also caps a provider's `Retry-After`).
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No waiting between attempts (tests).
    pub const fn immediate(max_attempts: u32) -> Self {
        Self { max_attempts, initial_delay: Duration::ZERO, max_delay: Duration::ZERO }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, initial_delay: Duration::from_millis(500), max_delay: Duration::from_secs(10) }
    }
}
