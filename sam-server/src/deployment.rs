//! Turns a [`ServeConfig`] into a running control plane: reads keys and
//! secrets, opens the store, builds the adapters and the engine. Every problem
//! is collected and reported at once, before anything listens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sam_core::accounts::{Accounts, AccountsConfig, SignInPolicy};
use sam_core::engine::{Engine, EngineConfig, Ports, WorkspaceFirewall};
use sam_core::ports::{Store, SystemClock};
use sam_core::secret::{SecretString, sha256_hex};
use sam_providers::cipher::{AesGcmCipher, AesKey};
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns, CloudflareEdge, CloudflareOriginCa};
use sam_providers::github::{GithubApp, GithubConfig, StoreDeliveryLog, WebhookVerifier};
use sam_providers::hetzner::{HetznerConfig, HetznerProvider};
use sam_providers::jwt::{JwtIssuer, RsaSigningKey};
use sam_providers::keys;
use sam_providers::store::{PostgresStore, SqliteStore};

use crate::config::ServeConfig;
use crate::state::{AppState, HttpSettings};

/// Problems found in the configuration, one line each.
#[derive(Debug, Default)]
pub struct ConfigProblems(pub Vec<String>);

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

fn require<'a, T>(problems: &mut Vec<String>, value: &'a Option<T>, what: &str, env: &str) -> Option<&'a T> {
    if value.is_none() {
        problems.push(format!("{what} is missing (set {env})"));
    }
    value.as_ref()
}

fn secret_file(problems: &mut Vec<String>, path: &Option<PathBuf>, what: &str, env: &str) -> Option<SecretString> {
    let path = require(problems, path, what, env)?;
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Some(SecretString::new(text.trim())),
        Ok(_) => {
            problems.push(format!("{what}: {} is empty", path.display()));
            None
        }
        Err(e) => {
            problems.push(format!("{what}: cannot read {}: {e}", path.display()));
            None
        }
    }
}

/// Opens the store named by a database URL (migrations are applied).
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        PostgresStore::connect(url).await.map(|s| Arc::new(s) as Arc<dyn Store>).map_err(|e| format!("database: {e}"))
    } else if url.starts_with("sqlite:") {
        SqliteStore::connect(url).await.map(|s| Arc::new(s) as Arc<dyn Store>).map_err(|e| format!("database: {e}"))
    } else {
        Err("database URL must start with sqlite: or postgres://".into())
    }
}

/// The agent directory: configured, or the directory of this executable.
pub fn agent_dir(config: &ServeConfig) -> PathBuf {
    config.agent_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// Everything `serve` runs.
#[derive(Debug)]
pub struct Deployment {
    /// The HTTP state.
    pub state: AppState,
    /// The engine (for the reconciler).
    pub engine: Arc<Engine>,
    /// The store the engine and accounts work on.
    pub store: Arc<dyn Store>,
}

/// The public side of the deployment: where browsers and agents reach it.
struct PublicSection {
    public_url: String,
    base_domain: String,
    deployment: sam_core::domain::DeploymentId,
}

impl PublicSection {
    fn read(config: &ServeConfig, problems: &mut Vec<String>) -> Option<Self> {
        let public_url = require(problems, &config.public_url, "the public URL", "SAM_PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            let loopback = url.starts_with("http://localhost")
                || url.starts_with("http://127.0.0.1")
                || url.starts_with("http://[::1]");
            if !url.starts_with("https://") && !loopback {
                problems.push(format!("the public URL {url} must be https (plain http only for loopback)"));
            }
        }
        let base_domain = require(problems, &config.base_domain, "the base domain", "SAM_BASE_DOMAIN").cloned();
        if base_domain.is_some()
            && let Err(why) = config.workspace_hosts()
        {
            problems.push(why);
        }
        if !config.workspace_url_template.contains("{host}") {
            problems.push("SAM_WORKSPACE_URL_TEMPLATE must contain {host}".into());
        }
        let deployment = match config.deployment_id() {
            Ok(id) => Some(id),
            Err(why) => {
                if base_domain.is_some() {
                    problems.push(why);
                }
                None
            }
        };
        Some(Self { public_url: public_url?, base_domain: base_domain?, deployment: deployment? })
    }
}

/// The deployment's own keys: token signing (current and earlier) and the
/// credential encryption key ring.
struct KeySection {
    jwt_key: RsaSigningKey,
    previous_jwt: Vec<RsaSigningKey>,
    aes_key: AesKey,
    old_aes_keys: Vec<AesKey>,
}

impl KeySection {
    fn read(config: &ServeConfig, problems: &mut Vec<String>) -> Option<Self> {
        let jwt_key =
            require(problems, &config.jwt_private_key_file, "the JWT signing key", "SAM_JWT_PRIVATE_KEY_FILE")
                .and_then(|p| keys::read_rsa_key(p).map_err(|e| problems.push(format!("JWT signing key: {e}"))).ok());
        let aes_key = require(problems, &config.encryption_key_file, "the encryption key", "SAM_ENCRYPTION_KEY_FILE")
            .and_then(|p| keys::read_aes_key(p).map_err(|e| problems.push(format!("encryption key: {e}"))).ok());
        let mut previous_jwt = Vec::new();
        for path in &config.jwt_previous_key_files {
            match keys::read_rsa_key(path) {
                Ok(k) => previous_jwt.push(k),
                Err(e) => problems.push(format!("previous JWT key {}: {e}", path.display())),
            }
        }
        let mut old_aes_keys = Vec::new();
        for path in &config.old_encryption_key_files {
            match keys::read_aes_key(path) {
                Ok(k) => old_aes_keys.push(k),
                Err(e) => problems.push(format!("old encryption key {}: {e}", path.display())),
            }
        }
        Some(Self { jwt_key: jwt_key?, previous_jwt, aes_key: aes_key?, old_aes_keys })
    }
}

/// The GitHub App: sign-in, installations, webhooks.
struct GithubSection {
    client_id: String,
    client_secret: SecretString,
    app_id: String,
    app_slug: String,
    app_key: SecretString,
    webhook_secret: SecretString,
}

impl GithubSection {
    fn read(config: &ServeConfig, problems: &mut Vec<String>) -> Option<Self> {
        let client_id =
            require(problems, &config.github_client_id, "the GitHub client id", "SAM_GITHUB_CLIENT_ID").cloned();
        let client_secret = secret_file(
            problems,
            &config.github_client_secret_file,
            "the GitHub client secret",
            "SAM_GITHUB_CLIENT_SECRET_FILE",
        );
        let app_id = require(problems, &config.github_app_id, "the GitHub App id", "SAM_GITHUB_APP_ID").cloned();
        let app_slug =
            require(problems, &config.github_app_slug, "the GitHub App slug", "SAM_GITHUB_APP_SLUG").cloned();
        let app_key = secret_file(
            problems,
            &config.github_app_private_key_file,
            "the GitHub App private key",
            "SAM_GITHUB_APP_PRIVATE_KEY_FILE",
        );
        let webhook_secret = secret_file(
            problems,
            &config.github_webhook_secret_file,
            "the GitHub webhook secret",
            "SAM_GITHUB_WEBHOOK_SECRET_FILE",
        );
        Some(Self {
            client_id: client_id?,
            client_secret: client_secret?,
            app_id: app_id?,
            app_slug: app_slug?,
            app_key: app_key?,
            webhook_secret: webhook_secret?,
        })
    }
}

/// The operator's Cloudflare zone.
struct CloudflareSection {
    token: SecretString,
    zone: String,
}

impl CloudflareSection {
    fn read(config: &ServeConfig, problems: &mut Vec<String>) -> Option<Self> {
        let token = secret_file(
            problems,
            &config.cloudflare_api_token_file,
            "the Cloudflare API token",
            "SAM_CLOUDFLARE_API_TOKEN_FILE",
        );
        let zone =
            require(problems, &config.cloudflare_zone_id, "the Cloudflare zone id", "SAM_CLOUDFLARE_ZONE_ID").cloned();
        Some(Self { token: token?, zone: zone? })
    }
}

/// Builds the deployment, or reports every configuration problem. Each
/// section reads and checks its own settings; nothing is built until all are
/// complete.
pub async fn build(config: &ServeConfig) -> Result<Deployment, ConfigProblems> {
    let mut problems = Vec::new();
    let public = PublicSection::read(config, &mut problems);
    let keys = KeySection::read(config, &mut problems);
    let github = GithubSection::read(config, &mut problems);
    let cloudflare = CloudflareSection::read(config, &mut problems);
    let store = open_store(&config.database_url).await.map_err(|e| problems.push(e)).ok();
    let hetzner =
        HetznerProvider::new(HetznerConfig { base_url: config.hetzner_api_url.clone(), ..HetznerConfig::default() })
            .map_err(|e| problems.push(format!("Hetzner: {e}")))
            .ok();
    let (Some(public), Some(keys), Some(github), Some(cloudflare), Some(store), Some(hetzner)) =
        (public, keys, github, cloudflare, store, hetzner)
    else {
        return Err(ConfigProblems(problems));
    };
    let PublicSection { public_url, base_domain, deployment } = public;
    let KeySection { jwt_key, previous_jwt, aes_key, old_aes_keys: old_keys } = keys;
    let GithubSection { client_id, client_secret, app_id, app_slug, app_key, webhook_secret } = github;
    let CloudflareSection { token: cf_token, zone } = cloudflare;

    let cipher =
        AesGcmCipher::new(aes_key, old_keys).map_err(|e| ConfigProblems(vec![format!("encryption keys: {e}")]))?;
    let mut github_config = GithubConfig::new(client_id, client_secret, app_id, app_slug, app_key);
    github_config.web_base_url = config.github_web_url.clone();
    github_config.api_base_url = config.github_api_url.clone();
    let github = Arc::new(GithubApp::new(github_config).map_err(|e| ConfigProblems(vec![format!("GitHub: {e}")]))?);
    let (cf_token_for_ca, zone_for_ca) = (cf_token.clone(), zone.clone());
    let edge_client_ca = match &config.edge_client_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| ConfigProblems(vec![format!("SAM_EDGE_CLIENT_CA_FILE {}: {e}", path.display())]))?,
        ),
        None => None,
    };
    // With the TLS edge configured, workspace records go through it.
    let dns = CloudflareDns::new(CloudflareConfig {
        base_url: config.cloudflare_api_url.clone(),
        proxied: edge_client_ca.is_some(),
        ..CloudflareConfig::new(cf_token, zone)
    })
    .map_err(|e| ConfigProblems(vec![format!("Cloudflare: {e}")]))?;
    let agents = agent_dir(config);

    let mut engine_config = EngineConfig::new(base_domain, public_url.clone());
    engine_config.deployment = deployment;
    engine_config.host_naming = config.workspace_host_naming;
    engine_config.workspace_url_template = config.workspace_url_template.clone();
    engine_config.git_base_url = config.git_base_url.clone();
    engine_config.max_active_per_user = config.max_workspaces_per_user;
    engine_config.idle_timeout = match config.idle_timeout_seconds {
        Some(secs) => Duration::from_secs(secs.max(2)),
        None => Duration::from_secs(config.idle_timeout_minutes.max(6) * 60),
    };
    engine_config.idle_timeout_min = Duration::from_secs(config.idle_timeout_min_minutes * 60);
    engine_config.idle_timeout_max =
        Duration::from_secs(config.idle_timeout_max_minutes.max(config.idle_timeout_min_minutes) * 60);
    if let Some(secs) = config.idle_warning_seconds {
        engine_config.idle_warning = Duration::from_secs(secs.max(1));
    }
    engine_config.idle_warning = engine_config.idle_warning.min(engine_config.idle_timeout / 2);
    if let Some(secs) = config.provision_timeout_seconds {
        engine_config.provision_timeout = Duration::from_secs(secs.max(5));
    }
    if let Some(secs) = config.orphan_grace_seconds {
        engine_config.orphan_grace = Duration::from_secs(secs.max(1));
    }
    engine_config.unreachable_timeout = match config.unreachable_timeout_seconds {
        Some(secs) => Duration::from_secs(secs.max(2)),
        None => Duration::from_secs(config.unreachable_timeout_minutes.max(10) * 60),
    };
    if let Some(secs) = config.heartbeat_timeout_seconds {
        engine_config.heartbeat_timeout = Duration::from_secs(secs.max(2));
    }
    engine_config.agent_version = Some(env!("CARGO_PKG_VERSION").to_owned());
    engine_config.edge_client_ca_pem = edge_client_ca.clone();
    engine_config.default_devcontainer_image = config.default_devcontainer_image.clone();
    engine_config.server_image = config.hetzner_image.clone();
    engine_config.agent_sha256_amd64 =
        std::fs::read(crate::api::agent_path(&agents, "amd64")).ok().map(|b| sha256_hex(&b));
    engine_config.agent_sha256_arm64 =
        std::fs::read(crate::api::agent_path(&agents, "arm64")).ok().map(|b| sha256_hex(&b));
    engine_config.arm_servers = config.arm_servers;
    // Earlier keys stay published until every token they may have signed has
    // expired; the longest-lived tokens are the agents' callback credentials.
    let issuer = match previous_jwt.split_first() {
        None => JwtIssuer::new(public_url.clone(), jwt_key),
        Some((first, rest)) => {
            let overlap_until = time::OffsetDateTime::now_utc() + engine_config.callback_token_ttl;
            let issuer = JwtIssuer::new(public_url.clone(), first.clone());
            for key in rest {
                issuer.rotate(key.clone(), overlap_until);
            }
            issuer.rotate(jwt_key, overlap_until);
            issuer
        }
    };
    let issuer = Arc::new(issuer);
    let ports = Ports {
        store,
        compute: Arc::new(hetzner),
        dns: Arc::new(dns),
        repos: github.clone(),
        cipher: Arc::new(cipher),
        tokens: issuer.clone(),
        clock: Arc::new(SystemClock),
    };
    let probe = sam_providers::agent_probe::HttpAgentProbe::new()
        .map_err(|e| ConfigProblems(vec![format!("agent probe: {e}")]))?;
    let mut engine = Engine::new(ports.clone(), engine_config).with_agent_probe(Arc::new(probe));
    if edge_client_ca.is_some() {
        let origin_ca = CloudflareOriginCa::new(CloudflareConfig {
            base_url: config.cloudflare_api_url.clone(),
            ..CloudflareConfig::new(cf_token_for_ca, zone_for_ca)
        })
        .map_err(|e| ConfigProblems(vec![format!("Cloudflare Origin CA: {e}")]))?;
        engine = engine.with_origin_ca(Arc::new(origin_ca));
        // Behind the edge, the agent's port needs to admit the edge only.
        let edge = CloudflareEdge::new(&config.cloudflare_api_url, Default::default())
            .map_err(|e| ConfigProblems(vec![format!("Cloudflare edge ranges: {e}")]))?;
        engine = engine.with_firewall(WorkspaceFirewall::new(Arc::new(edge)));
    }
    let engine = Arc::new(engine);
    let webhooks = WebhookVerifier::new(
        webhook_secret,
        Arc::new(StoreDeliveryLog::new(ports.store.clone(), ports.clock.clone(), StoreDeliveryLog::DEFAULT_RETENTION)),
    );
    let state = AppState {
        engine: engine.clone(),
        accounts: Arc::new(Accounts::new(
            ports.clone(),
            github,
            AccountsConfig::default()
                .with_sign_in_policy(SignInPolicy::new(&config.allowed_users, &config.allowed_organizations))
                .with_server_architectures(engine.config().server_architectures()),
        )),
        issuer: issuer.clone(),
        verifier: issuer,
        webhooks: Some(Arc::new(webhooks)),
        http: HttpSettings {
            trust_forwarded_for: config.trust_forwarded_for,
            client_ip_header: config.client_ip_header.clone(),
            avatar_origin: avatar_origin(&config.github_api_url),
            github_app_public: config.github_app_public,
            ..HttpSettings::new(public_url, agents)
        },
    };
    Ok(Deployment { state, engine, store: ports.store })
}

/// Where avatars come from when GitHub is not github.com: GitHub Enterprise
/// (and the emulators) serve them from the API host's origin.
fn avatar_origin(github_api_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(github_api_url).ok()?;
    let origin = url.origin().ascii_serialization();
    (url.host_str() != Some("api.github.com") && origin != "null").then_some(origin)
}
