//! Configuration of `sam-server serve`: flags, each also read from a `SAM_*`
//! environment variable, optionally from a `KEY=VALUE` file (`--config`).
//! Secrets are only ever read from files (the way container secrets are
//! mounted), never from flags, so they stay out of process listings.

use std::path::{Path, PathBuf};

use clap::Args;

/// Settings shared by `serve`, `migrate` and `check-config`.
#[derive(Args, Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "SAM_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Public URL of this control plane (https in production; http only for loopback).
    #[arg(long, env = "SAM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Workspaces are reachable at `ws-<id>.<base-domain>`.
    #[arg(long, env = "SAM_BASE_DOMAIN")]
    pub base_domain: Option<String>,
    /// This deployment's id: every server (label sam-deployment) and DNS
    /// record (comment) it creates carries it, and its orphan sweeps and
    /// teardown touch nothing carrying another. Default: the base domain. Set
    /// it when two deployments share a base domain, or the base domain is
    /// longer than 63 characters; keep it when the base domain changes.
    #[arg(long, env = "SAM_DEPLOYMENT_ID")]
    pub deployment_id: Option<String>,
    /// How workspace names are formed: `nested` (`ws-<id>.<base-domain>`) or
    /// `flat` (`ws-<id>--<env>.<zone>` for a base domain `<env>.<zone>`: one
    /// level below the zone, which Cloudflare's free Universal SSL
    /// certificate covers; nested names below a base domain that is itself
    /// below the zone need an advanced certificate for `*.<base-domain>`).
    #[arg(long, env = "SAM_WORKSPACE_HOST_NAMING", default_value = "nested", value_parser = parse_host_naming)]
    pub workspace_host_naming: sam_core::domain::HostNaming,
    /// How the browser reaches a workspace; `{host}` becomes its host name.
    #[arg(long, env = "SAM_WORKSPACE_URL_TEMPLATE", default_value = "https://{host}")]
    pub workspace_url_template: String,
    /// `sqlite:<path>` (default) or `postgres://…` (several replicas).
    #[arg(long, env = "SAM_DATABASE_URL", default_value = "sqlite://sam.db")]
    pub database_url: String,
    /// RS256 private key (PEM) that signs terminal and agent tokens.
    #[arg(long, env = "SAM_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Earlier JWT signing keys (comma-separated PEM files), still published in
    /// the JWKS until tokens they signed have expired (`keys rotate`).
    #[arg(long, env = "SAM_JWT_PREVIOUS_KEY_FILES", value_delimiter = ',')]
    pub jwt_previous_key_files: Vec<PathBuf>,
    /// AES-256 key (base64) that seals cloud tokens.
    #[arg(long, env = "SAM_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Older AES keys still accepted for opening (comma-separated files), during rotation.
    #[arg(long, env = "SAM_OLD_ENCRYPTION_KEY_FILES", value_delimiter = ',')]
    pub old_encryption_key_files: Vec<PathBuf>,
    /// GitHub App OAuth client id.
    #[arg(long, env = "SAM_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,
    /// File holding the GitHub App OAuth client secret.
    #[arg(long, env = "SAM_GITHUB_CLIENT_SECRET_FILE")]
    pub github_client_secret_file: Option<PathBuf>,
    /// GitHub App id.
    #[arg(long, env = "SAM_GITHUB_APP_ID")]
    pub github_app_id: Option<String>,
    /// GitHub App slug (for the install URL).
    #[arg(long, env = "SAM_GITHUB_APP_SLUG")]
    pub github_app_slug: Option<String>,
    /// GitHub App private key (PEM).
    #[arg(long, env = "SAM_GITHUB_APP_PRIVATE_KEY_FILE")]
    pub github_app_private_key_file: Option<PathBuf>,
    /// File holding the webhook secret.
    #[arg(long, env = "SAM_GITHUB_WEBHOOK_SECRET_FILE")]
    pub github_webhook_secret_file: Option<PathBuf>,
    /// GitHub web URL (github.com, or an emulator's).
    #[arg(long, env = "SAM_GITHUB_WEB_URL", default_value = sam_providers::github::DEFAULT_WEB_URL)]
    pub github_web_url: String,
    /// GitHub API URL.
    #[arg(long, env = "SAM_GITHUB_API_URL", default_value = sam_providers::github::DEFAULT_API_URL)]
    pub github_api_url: String,
    /// Whether any GitHub account may install the GitHub App (`true`: what
    /// `setup` creates for a deployment others use) or only the account that
    /// owns it (`false`); users looking for how to install it are told
    /// which.
    #[arg(long, env = "SAM_GITHUB_APP_PUBLIC", default_value_t = true, action = clap::ArgAction::Set)]
    pub github_app_public: bool,
    /// GitHub users who may sign in: logins or numeric GitHub ids (which
    /// survive a rename), comma-separated. With SAM_ALLOWED_ORGANIZATIONS
    /// also empty, anyone with a GitHub account may.
    #[arg(long, env = "SAM_ALLOWED_USERS", value_delimiter = ',')]
    pub allowed_users: Vec<String>,
    /// GitHub organizations whose members may sign in, comma-separated: a
    /// member is someone who sees the app's installation on the
    /// organization. Checked at sign-in and again every 10 minutes of use.
    #[arg(long, env = "SAM_ALLOWED_ORGANIZATIONS", value_delimiter = ',')]
    pub allowed_organizations: Vec<String>,
    /// The image of workspace servers (a Hetzner image name or id): the
    /// default `docker-ce` app image has Docker, so a boot installs only
    /// Node.js; a snapshot of your own with Node.js too installs nothing.
    #[arg(long, env = "SAM_HETZNER_IMAGE", default_value = sam_core::engine::DEFAULT_SERVER_IMAGE)]
    pub hetzner_image: String,
    /// The devcontainer image for repositories without a
    /// `devcontainer.json` (default: the agent's,
    /// `mcr.microsoft.com/devcontainers/base:bookworm`).
    #[arg(long, env = "SAM_DEFAULT_DEVCONTAINER_IMAGE")]
    pub default_devcontainer_image: Option<String>,
    /// Where repositories are cloned from (`<url>/<owner>/<name>.git`).
    #[arg(long, env = "SAM_GIT_BASE_URL", default_value = "https://github.com")]
    pub git_base_url: String,
    /// File holding a Cloudflare API token with DNS edit rights on the zone.
    #[arg(long, env = "SAM_CLOUDFLARE_API_TOKEN_FILE")]
    pub cloudflare_api_token_file: Option<PathBuf>,
    /// Cloudflare zone id of the base domain.
    #[arg(long, env = "SAM_CLOUDFLARE_ZONE_ID")]
    pub cloudflare_zone_id: Option<String>,
    /// Cloudflare API URL.
    #[arg(long, env = "SAM_CLOUDFLARE_API_URL", default_value = sam_providers::cloudflare::DEFAULT_BASE_URL)]
    pub cloudflare_api_url: String,
    /// Hetzner Cloud API URL.
    #[arg(long, env = "SAM_HETZNER_API_URL", default_value = sam_providers::hetzner::DEFAULT_BASE_URL)]
    pub hetzner_api_url: String,
    /// Directory with sam-agent-amd64 / sam-agent-arm64 (default: beside this binary).
    #[arg(long, env = "SAM_AGENT_DIR")]
    pub agent_dir: Option<PathBuf>,
    /// Whether sizes may map to Arm server types (Hetzner's CAX) where they
    /// are cheaper, when an arm64 agent is beside the amd64 one (see
    /// `SAM_AGENT_DIR`). Turn off for a server image built for x86 only.
    #[arg(long, env = "SAM_ARM_SERVERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub arm_servers: bool,
    /// Active workspaces per user.
    #[arg(long, env = "SAM_MAX_WORKSPACES_PER_USER", default_value_t = 10)]
    pub max_workspaces_per_user: u32,
    /// Idle minutes before a workspace stops (a warning comes 5 minutes earlier).
    #[arg(long, env = "SAM_IDLE_TIMEOUT_MINUTES", default_value_t = 30)]
    pub idle_timeout_minutes: u64,
    /// Idle threshold in seconds, overriding the minutes (for tests and demos;
    /// the warning then comes at half the threshold when that is under 5 minutes).
    #[arg(long, env = "SAM_IDLE_TIMEOUT_SECONDS", hide = true)]
    pub idle_timeout_seconds: Option<u64>,
    /// The shortest idle timeout a user may choose for a workspace, in minutes.
    #[arg(long, env = "SAM_IDLE_TIMEOUT_MIN_MINUTES", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10080))]
    pub idle_timeout_min_minutes: u64,
    /// The longest idle timeout a user may choose for a workspace, in minutes.
    #[arg(long, env = "SAM_IDLE_TIMEOUT_MAX_MINUTES", default_value_t = 480, value_parser = clap::value_parser!(u64).range(1..=10080))]
    pub idle_timeout_max_minutes: u64,
    /// Minutes a running workspace's agent may stay silent (no heartbeat, no
    /// answer to a direct health check) before the workspace is released.
    /// Until then it is shown as "agent unreachable" and kept: a control-plane
    /// outage, a network problem or a rebooting VM destroys nothing.
    #[arg(long, env = "SAM_UNREACHABLE_TIMEOUT_MINUTES", default_value_t = 120)]
    pub unreachable_timeout_minutes: u64,
    /// The unreachable timeout in seconds, overriding the minutes (tests).
    #[arg(long, env = "SAM_UNREACHABLE_TIMEOUT_SECONDS", hide = true)]
    pub unreachable_timeout_seconds: Option<u64>,
    /// Seconds without a heartbeat before the control plane looks at an agent
    /// (default 300).
    #[arg(long, env = "SAM_HEARTBEAT_TIMEOUT_SECONDS")]
    pub heartbeat_timeout_seconds: Option<u64>,
    /// Seconds a workspace may take from `creating` to `running` before it
    /// fails with a timeout (default 600).
    #[arg(long, env = "SAM_PROVISION_TIMEOUT_SECONDS")]
    pub provision_timeout_seconds: Option<u64>,
    /// Seconds before the idle stop that the warning starts (default 300, at
    /// most half the idle threshold).
    #[arg(long, env = "SAM_IDLE_WARNING_SECONDS")]
    pub idle_warning_seconds: Option<u64>,
    /// Seconds a server or DNS record that belongs to no live workspace is
    /// kept before the reconciler deletes it (default 600).
    #[arg(long, env = "SAM_ORPHAN_GRACE_SECONDS")]
    pub orphan_grace_seconds: Option<u64>,
    /// The HTTPS path to workspaces: the CA (PEM file) of the client
    /// certificate Cloudflare's edge presents to origins (Authenticated
    /// Origin Pulls; `setup` writes Cloudflare's origin-pull CA and sets
    /// this). When set, workspace records are proxied through the edge,
    /// each agent serves TLS on port 443 with an Origin CA certificate for
    /// its own name (the Cloudflare token then needs "SSL and Certificates:
    /// Edit") and admits only clients of this CA, and every server gets a
    /// firewall that lets in only the edge's published ranges. Unset: agents
    /// serve plain HTTP behind unproxied records (dev mode only).
    #[arg(long, env = "SAM_EDGE_CLIENT_CA_FILE")]
    pub edge_client_ca_file: Option<PathBuf>,
    /// Behind a load balancer that appends the client to X-Forwarded-For:
    /// rate-limit by that address instead of the balancer's.
    #[arg(long, env = "SAM_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Behind a proxy that names the client in a header of its own —
    /// Cloudflare's `CF-Connecting-IP` when the API's host is proxied —
    /// rate-limit by that header. Set it only behind such a proxy (and with
    /// the origin reachable only through it): a client can send any header.
    #[arg(long, env = "SAM_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Seconds between reconciler passes.
    #[arg(long, env = "SAM_RECONCILE_INTERVAL_SECONDS", default_value_t = 15)]
    pub reconcile_interval_seconds: u64,
    /// Serve `GET /metrics` (Prometheus) on this separate address, e.g.
    /// `127.0.0.1:9090` (no token asked there: keep it private).
    #[arg(long, env = "SAM_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// File holding a scraper's token: `GET /metrics` on the main listener
    /// answers only `Authorization: Bearer <token>` (404 otherwise). With
    /// neither this nor `SAM_METRICS_ADDR`, metrics are not served.
    #[arg(long, env = "SAM_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
}

fn parse_host_naming(s: &str) -> Result<sam_core::domain::HostNaming, String> {
    s.parse().map_err(|_| "nested or flat".to_owned())
}

impl ServeConfig {
    /// The workspace names under the base domain, in the configured scheme.
    pub fn workspace_hosts(&self) -> Result<sam_core::domain::WorkspaceHosts, String> {
        let base = self.base_domain.as_deref().ok_or("SAM_BASE_DOMAIN is not set: which deployment is this?")?;
        sam_core::domain::WorkspaceHosts::new(base, self.workspace_host_naming)
            .map_err(|e| format!("SAM_WORKSPACE_HOST_NAMING={}: {}", self.workspace_host_naming, e.reason))
    }

    /// The deployment id: `SAM_DEPLOYMENT_ID`, else the base domain.
    pub fn deployment_id(&self) -> Result<sam_core::domain::DeploymentId, String> {
        use sam_core::domain::DeploymentId;
        match (&self.deployment_id, &self.base_domain) {
            (Some(id), _) => DeploymentId::new(id.trim()).map_err(|e| format!("SAM_DEPLOYMENT_ID: {}", e.reason)),
            (None, Some(base)) => DeploymentId::from_base_domain(base).map_err(|e| {
                format!("the base domain is not a valid deployment id ({}): set SAM_DEPLOYMENT_ID", e.reason)
            }),
            (None, None) => Err("SAM_BASE_DOMAIN is not set: which deployment is this?".to_owned()),
        }
    }
}

/// Makes the settings of a `KEY=VALUE` file (comments with `#`) the defaults
/// of the arguments whose environment variable they name, in `command` and
/// every subcommand. Flags win over the environment, the environment over
/// the file, the file over built-in defaults, and the command line itself is
/// parsed untouched. A key that is not a `SAM_*` setting of this version is
/// an error naming its line.
pub fn with_file_defaults(command: clap::Command, path: &Path) -> Result<clap::Command, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut command = command;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("config file {} line {}", path.display(), n + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}: expected KEY=VALUE", at()));
        };
        let key = key.trim();
        if !key.starts_with("SAM_") {
            return Err(format!("{}: {key} is not a SAM_* setting", at()));
        }
        let mut found = false;
        command = set_default(command, key, value.trim().trim_matches('"'), &mut found);
        if !found {
            return Err(format!("{}: {key} is not a setting of this version", at()));
        }
    }
    Ok(command)
}

fn set_default(mut command: clap::Command, env: &str, value: &str, found: &mut bool) -> clap::Command {
    let ids: Vec<clap::Id> = command
        .get_arguments()
        .filter(|a| a.get_env() == Some(std::ffi::OsStr::new(env)))
        .map(|a| a.get_id().clone())
        .collect();
    for id in ids {
        *found = true;
        command = command.mut_arg(id, |arg| arg.default_value(value.to_owned()));
    }
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| set_default(sub, env, value, found));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_yield_to_flags_and_environment() {
        use clap::{Args as _, FromArgMatches as _};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sam.env");
        std::fs::write(
            &file,
            "# comment\nSAM_BASE_DOMAIN=ws.example.dev\nSAM_LISTEN = \"0.0.0.0:9\"\nSAM_PUBLIC_URL=https://x\n\
             SAM_TRUST_FORWARDED_FOR=true\nSAM_JWT_PREVIOUS_KEY_FILES=/k/a.pem,/k/b.pem\n",
        )
        .unwrap();
        let cli = clap::Command::new("sam").subcommand(ServeConfig::augment_args(clap::Command::new("serve")));
        let cli = with_file_defaults(cli, &file).unwrap();
        let matches = cli.get_matches_from(["sam", "serve", "--public-url=https://flag"]);
        let config = ServeConfig::from_arg_matches(matches.subcommand_matches("serve").unwrap()).unwrap();
        assert_eq!(config.base_domain.as_deref(), Some("ws.example.dev"));
        assert_eq!(config.listen, "0.0.0.0:9");
        assert_eq!(config.public_url.as_deref(), Some("https://flag"), "the flag wins");
        assert!(config.trust_forwarded_for, "a boolean from the file");
        assert_eq!(config.jwt_previous_key_files, vec![PathBuf::from("/k/a.pem"), PathBuf::from("/k/b.pem")]);

        let serve = || clap::Command::new("sam").subcommand(ServeConfig::augment_args(clap::Command::new("serve")));
        std::fs::write(&file, "PATH=/evil\n").unwrap();
        assert!(with_file_defaults(serve(), &file).is_err());
        std::fs::write(&file, "SAM_NO_SUCH_SETTING=1\n").unwrap();
        assert!(with_file_defaults(serve(), &file).unwrap_err().contains("not a setting"));
        std::fs::write(&file, "no equals sign\n").unwrap();
        assert!(with_file_defaults(serve(), &file).is_err());
    }
}
