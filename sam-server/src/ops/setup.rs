//! `sam-server setup`: the first-time wizard. Interactive by default; with
//! `--yes` every answer comes from flags and the environment and a missing
//! one fails with what to pass. Safe to run again: what is configured is
//! shown and kept (keys are never regenerated, DNS records are updated in
//! place, never duplicated).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sam_core::domain::{HostNaming, WorkspaceHosts};
use sam_core::ports::{DnsProvider as _, ProviderErrorKind};
use sam_core::secret::SecretString;
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns, CloudflareZones, Zone};
use sam_providers::http::HttpConfig;

use super::doctor::{self, Status};
use super::edge;
use super::{ConfigFile, create_private_dir, write_secret_file};
use crate::config::ServeConfig;

/// Where `setup` writes when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sam/sam.env";

/// Options of `sam-server setup` (every `serve` setting can be given too;
/// given settings are written to the configuration file).
#[derive(Args, Debug, Clone)]
pub struct SetupOptions {
    /// The settings to write (flags, `SAM_*` variables, or the existing file).
    #[command(flatten)]
    pub config: ServeConfig,
    /// Ask nothing: take every answer from flags and the environment, and
    /// fail saying what to pass when one is missing.
    #[arg(long, short = 'y', visible_alias = "non-interactive")]
    pub yes: bool,
    /// IPv4 address of this control plane: the public URL's host gets an A
    /// record pointing at it (when the host is in the Cloudflare zone).
    #[arg(long, env = "SAM_SETUP_SERVER_IP")]
    pub server_ip: Option<Ipv4Addr>,
    /// The `code` GitHub added to the address it sent you to after creating
    /// the app from the manifest (the address itself is accepted too).
    #[arg(long, env = "SAM_SETUP_GITHUB_MANIFEST_CODE")]
    pub github_manifest_code: Option<String>,
    /// Create the GitHub App under this organization instead of your account.
    #[arg(long, env = "SAM_SETUP_GITHUB_ORGANIZATION")]
    pub github_organization: Option<String>,
    /// Name of the GitHub App (unique on GitHub; default `SAM <base-domain>`).
    #[arg(long, env = "SAM_SETUP_GITHUB_APP_NAME")]
    pub github_app_name: Option<String>,
    /// Set the zone's SSL mode (Full (strict)), Always Use HTTPS, WebSockets
    /// and Authenticated Origin Pulls where they differ, without asking
    /// (interactive setup asks; `--yes` without this only reports them).
    #[arg(long, env = "SAM_SETUP_CONFIGURE_ZONE")]
    pub configure_zone: bool,
    /// How the final checks resolve `ws-test.<base-domain>` (see `doctor`).
    #[arg(long, env = "SAM_DOCTOR_RESOLVER", value_enum, default_value = "system")]
    pub resolver: doctor::Resolver,
    /// Seconds the final checks wait for the probe name to resolve.
    #[arg(long, env = "SAM_DOCTOR_DNS_WAIT_SECONDS", default_value_t = 30)]
    pub dns_wait_seconds: u64,
}

const STEPS: usize = 7;

fn step(n: usize, title: &str) {
    println!("\n==> [{n}/{STEPS}] {title}");
}

fn line(tag: &str, what: &str, detail: impl std::fmt::Display) {
    println!("  {tag:<5} {what:<22} {detail}");
}

struct Wizard {
    options: SetupOptions,
    config_path: PathBuf,
    dir: PathBuf,
    file: ConfigFile,
}

impl Wizard {
    fn cfg(&self) -> &ServeConfig {
        &self.options.config
    }

    fn interactive(&self) -> bool {
        !self.options.yes
    }

    fn save(&self) -> anyhow::Result<()> {
        self.file.save(&self.config_path)
    }

    fn set(&mut self, key: &str, value: impl AsRef<str>) {
        self.file.set(key, value.as_ref());
    }

    fn set_path(&mut self, key: &str, path: &Path) {
        self.file.set(key, &path.display().to_string());
    }

    fn ask(&self, question: &str, default: Option<&str>, missing: &str) -> anyhow::Result<String> {
        if self.interactive() {
            let answer = super::prompt(question, default)?;
            anyhow::ensure!(!answer.is_empty(), "{missing}");
            Ok(answer)
        } else {
            default.map(str::to_owned).filter(|d| !d.is_empty()).ok_or_else(|| anyhow::anyhow!("{missing}"))
        }
    }
}

/// Runs the wizard, writing to `config_path` (default [`DEFAULT_CONFIG_PATH`]).
pub async fn run(options: SetupOptions, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config_path = std::path::absolute(config_path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)))
        .context("the configuration path")?;
    let dir = config_path.parent().map(Path::to_path_buf).context("the configuration file needs a directory")?;
    let file = ConfigFile::load(&config_path)?;
    let existed = config_path.exists();
    let mut w = Wizard { options, config_path, dir, file };
    println!("SAM setup: configuration in {}", w.config_path.display());
    if existed {
        println!("  (it exists: what is configured is shown and kept)");
    }
    create_private_dir(&w.dir)?;

    deployment_step(&mut w)?;
    w.save()?;
    keys_step(&mut w).await?;
    w.save()?;
    cloudflare_step(&mut w).await?;
    w.save()?;
    github_step(&mut w).await?;
    w.save()?;

    step(5, "Configuration file");
    line("ok", "written", w.config_path.display());
    line("ok", "secrets", format!("{} (files, mode 0600)", w.dir.join("secrets").display()));

    step(6, "Database");
    let url = w.cfg().database_url.clone();
    let t = std::time::Instant::now();
    crate::deployment::open_store(&url).await.map_err(|e| anyhow::anyhow!("{e}: check SAM_DATABASE_URL"))?;
    line("ok", "migrations", format!("applied to {} ({} ms)", super::redact_url(&url), t.elapsed().as_millis()));

    step(7, "Checks (sam-server doctor)");
    let checks =
        doctor::run_checks(w.cfg(), w.options.resolver, Duration::from_secs(w.options.dns_wait_seconds), true).await;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    anyhow::ensure!(
        failed == 0,
        "setup wrote {} but {failed} check(s) failed: fix them and run setup again (it keeps what is done)",
        w.config_path.display()
    );
    println!("\nSetup complete in {:.1} s. Start the control plane:", started.elapsed().as_secs_f64());
    println!("  sam-server serve --config {}", w.config_path.display());
    println!("Back it up regularly: sam-server backup --config {} --out <dir>", w.config_path.display());
    Ok(())
}

fn deployment_step(w: &mut Wizard) -> anyhow::Result<()> {
    step(1, "Deployment");
    let base = match w.cfg().base_domain.clone() {
        Some(b) => {
            line("ok", "base domain", &b);
            b
        }
        None => {
            let b = w.ask(
                "Base domain (workspaces get ws-<id>.<domain>)",
                None,
                "the base domain is missing: pass --base-domain or set SAM_BASE_DOMAIN",
            )?;
            line("new", "base domain", &b);
            b
        }
    }
    .trim()
    .trim_end_matches('.')
    .to_ascii_lowercase();
    anyhow::ensure!(
        base.contains('.') && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
        "{base} is not a domain name"
    );
    w.options.config.base_domain = Some(base.clone());
    w.set("SAM_BASE_DOMAIN", &base);

    let public = match w.cfg().public_url.clone() {
        Some(u) => {
            line("ok", "public URL", &u);
            u
        }
        None => {
            let default = format!("https://sam.{base}");
            let u =
                if w.interactive() { w.ask("Public URL of the control plane", Some(&default), "")? } else { default };
            line("new", "public URL", &u);
            u
        }
    };
    let public = public.trim_end_matches('/').to_owned();
    anyhow::ensure!(reqwest::Url::parse(&public).is_ok(), "{public} is not a URL");
    w.options.config.public_url = Some(public.clone());
    w.set("SAM_PUBLIC_URL", &public);

    if w.file.get("SAM_LISTEN").is_none() {
        let listen = w.cfg().listen.clone();
        w.set("SAM_LISTEN", listen);
    }
    // The default database lives beside the configuration.
    if w.file.get("SAM_DATABASE_URL").is_none()
        && std::env::var_os("SAM_DATABASE_URL").is_none()
        && w.cfg().database_url == "sqlite://sam.db"
    {
        w.options.config.database_url = format!("sqlite://{}", w.dir.join("sam.db").display());
    }
    let url = w.cfg().database_url.clone();
    super::DatabaseKind::of(&url)?;
    w.set("SAM_DATABASE_URL", &url);
    line("ok", "database", super::redact_url(&url));
    let defaults = [
        ("SAM_GITHUB_WEB_URL", w.cfg().github_web_url.clone(), sam_providers::github::DEFAULT_WEB_URL),
        ("SAM_GITHUB_API_URL", w.cfg().github_api_url.clone(), sam_providers::github::DEFAULT_API_URL),
        ("SAM_CLOUDFLARE_API_URL", w.cfg().cloudflare_api_url.clone(), sam_providers::cloudflare::DEFAULT_BASE_URL),
        ("SAM_HETZNER_API_URL", w.cfg().hetzner_api_url.clone(), sam_providers::hetzner::DEFAULT_BASE_URL),
        ("SAM_GIT_BASE_URL", w.cfg().git_base_url.clone(), "https://github.com"),
    ];
    for (key, value, default) in defaults {
        if value != default {
            w.set(key, &value);
            line("ok", &key.trim_start_matches("SAM_").to_ascii_lowercase(), &value);
        }
    }
    if let Some(agents) = w.cfg().agent_dir.clone() {
        w.set_path("SAM_AGENT_DIR", &agents);
    }
    line("ok", "agent directory", crate::deployment::agent_dir(w.cfg()).display());
    Ok(())
}

async fn keys_step(w: &mut Wizard) -> anyhow::Result<()> {
    step(2, "Keys");
    let configured = [&w.cfg().jwt_private_key_file, &w.cfg().encryption_key_file];
    if configured.iter().all(|p| p.as_ref().is_some_and(|p| p.exists())) {
        let (jwt, aes) = (w.cfg().jwt_private_key_file.clone(), w.cfg().encryption_key_file.clone());
        if let (Some(jwt), Some(aes)) = (jwt, aes) {
            sam_providers::keys::read_rsa_key(&jwt).context("the configured JWT signing key")?;
            sam_providers::keys::read_aes_key(&aes).context("the configured encryption key")?;
            line("kept", "JWT signing key", jwt.display());
            line("kept", "encryption key", aes.display());
            w.set_path("SAM_JWT_PRIVATE_KEY_FILE", &jwt);
            w.set_path("SAM_ENCRYPTION_KEY_FILE", &aes);
        }
        return Ok(());
    }
    anyhow::ensure!(
        configured.iter().all(|p| p.is_none()),
        "only one of SAM_JWT_PRIVATE_KEY_FILE / SAM_ENCRYPTION_KEY_FILE points at an existing file: \
         restore the missing key from a backup (sam-server restore) rather than generating a new one"
    );
    let dir = w.dir.join("keys");
    let files = sam_providers::keys::KeyFiles::in_dir(&dir);
    if files.jwt_signing_key.exists() && files.credentials_key.exists() {
        line("kept", "keys", format!("found in {}", dir.display()));
    } else {
        let t = std::time::Instant::now();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || sam_providers::keys::generate_key_files(&target))
            .await
            .context("key generation")?
            .with_context(|| format!("writing keys to {}", dir.display()))?;
        line("new", "keys", format!("RSA-3072 + AES-256 in {} ({} ms)", dir.display(), t.elapsed().as_millis()));
    }
    w.options.config.jwt_private_key_file = Some(files.jwt_signing_key.clone());
    w.options.config.encryption_key_file = Some(files.credentials_key.clone());
    w.set_path("SAM_JWT_PRIVATE_KEY_FILE", &files.jwt_signing_key);
    w.set_path("SAM_ENCRYPTION_KEY_FILE", &files.credentials_key);
    Ok(())
}

async fn cloudflare_step(w: &mut Wizard) -> anyhow::Result<()> {
    step(3, "Cloudflare DNS");
    let fix_token = "create an API token at dash.cloudflare.com/profile/api-tokens with the template \
                     \"Edit zone DNS\" (Zone → DNS → Edit) for the zone of the base domain";
    let token = match w.cfg().cloudflare_api_token_file.clone() {
        Some(path) => {
            let token = super::read_secret_file(&path)?;
            line("kept", "API token", format!("{} (contents hidden)", path.display()));
            w.set_path("SAM_CLOUDFLARE_API_TOKEN_FILE", &path);
            token
        }
        None => {
            let from_env = std::env::var("SAM_SETUP_CLOUDFLARE_API_TOKEN")
                .or_else(|_| std::env::var("CLOUDFLARE_API_TOKEN"))
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(SecretString::new);
            let token = match from_env {
                Some(t) => t,
                None if w.interactive() => {
                    println!("  SAM needs a Cloudflare API token: {fix_token}.");
                    super::prompt_secret("Cloudflare API token")?
                }
                None => anyhow::bail!(
                    "no Cloudflare API token: set CLOUDFLARE_API_TOKEN (or SAM_CLOUDFLARE_API_TOKEN_FILE); {fix_token}"
                ),
            };
            anyhow::ensure!(!token.is_empty(), "the Cloudflare API token is empty");
            let path = w.dir.join("secrets").join("cloudflare-api-token");
            write_secret_file(&path, token.expose())?;
            line("new", "API token", format!("{} (mode 0600)", path.display()));
            w.options.config.cloudflare_api_token_file = Some(path.clone());
            w.set_path("SAM_CLOUDFLARE_API_TOKEN_FILE", &path);
            token
        }
    };
    let api = CloudflareZones::new(&w.cfg().cloudflare_api_url, token.clone(), HttpConfig::default())?;
    let status = api.token_status().await.with_context(|| format!("the token is not accepted: {fix_token}"))?;
    anyhow::ensure!(status == "active", "the Cloudflare token is {status}: {fix_token}");
    line("ok", "token", "active (GET /user/tokens/verify)");

    let base = w.cfg().base_domain.clone().unwrap_or_default();
    let zone = match w.cfg().cloudflare_zone_id.clone() {
        Some(id) => {
            let zone = api.zone(&id).await.with_context(|| {
                format!("zone {id} is not reachable with this token: fix SAM_CLOUDFLARE_ZONE_ID or the token's zone")
            })?;
            line("kept", "zone", format!("{} ({})", zone.name, zone.id));
            zone
        }
        None => {
            let zone = api.find_zone(&base).await?.with_context(|| {
                format!("no Cloudflare zone holds {base}: add the domain to Cloudflare, or give the token access to its zone")
            })?;
            line("new", "zone", format!("{} ({}) found by name", zone.name, zone.id));
            zone
        }
    };
    anyhow::ensure!(
        base == zone.name || base.ends_with(&format!(".{}", zone.name)),
        "zone {} does not hold the base domain {base}",
        zone.name
    );
    if zone.status != "active" {
        line("warn", "zone status", format!("{}: point the registrar's name servers at Cloudflare", zone.status));
    }
    w.options.config.cloudflare_zone_id = Some(zone.id.clone());
    w.set("SAM_CLOUDFLARE_ZONE_ID", &zone.id);

    // DNS edit permission: create and delete a probe record.
    let probe = format!("_sam-setup-probe.{base}");
    for old in api.records_named(&zone.id, &probe).await.unwrap_or_default() {
        let _ = api.delete_record(&zone.id, &old.id).await;
    }
    let created = api
        .create_record(&zone.id, "TXT", &probe, "\"sam-server setup probe\"", "sam-server setup")
        .await
        .with_context(|| {
            "the token can read the zone but not edit its DNS records: give it Zone → DNS → Edit".to_owned()
        })?;
    api.delete_record(&zone.id, &created.id).await.context("deleting the probe record")?;
    line("ok", "DNS edit", format!("created and deleted {probe}"));
    tls_edge(w, &api, &zone).await?;

    // The API host.
    let public = w.cfg().public_url.clone().unwrap_or_default();
    let Some(host) = super::url_host(&public) else { return Ok(()) };
    if host != zone.name && !host.ends_with(&format!(".{}", zone.name)) {
        line("note", "API host", format!("{host} is not in zone {}: point it at this machine yourself", zone.name));
        client_address(w, &host, false);
        return Ok(());
    }
    let proxied = api.records_named(&zone.id, &host).await.unwrap_or_default().iter().any(|r| r.proxied);
    client_address(w, &host, proxied);
    let dns = CloudflareDns::new(CloudflareConfig {
        base_url: w.cfg().cloudflare_api_url.clone(),
        ..CloudflareConfig::new(token, zone.id.clone())
    })
    .context("Cloudflare adapter")?;
    let existing = dns.list_records(&host).await.unwrap_or_default();
    let existing = existing.iter().find(|r| r.name.eq_ignore_ascii_case(&host));
    let ip = match w.options.server_ip {
        Some(ip) => Some(ip),
        None if existing.is_some() => None,
        None if w.interactive() => {
            let answer = super::prompt(&format!("IPv4 address of this machine for {host} (empty: skip)"), None)?;
            if answer.is_empty() { None } else { Some(answer.parse().context("not an IPv4 address")?) }
        }
        None => None,
    };
    match (ip, existing) {
        (Some(ip), Some(r)) if r.ipv4 == ip => line("kept", "API host", format!("{host} → {ip}")),
        (Some(ip), _) => {
            dns.upsert_a_record(&host, ip, None).await.with_context(|| format!("creating the A record {host}"))?;
            line("new", "API host", format!("{host} → {ip} (A record)"));
        }
        (None, Some(r)) => line("kept", "API host", format!("{host} → {}", r.ipv4)),
        (None, None) => line(
            "note",
            "API host",
            format!("no record for {host}: pass --server-ip <IPv4>, or create an A record for it"),
        ),
    }
    Ok(())
}

/// Where the rate limits find the client's address. Behind a proxy every
/// request comes from the proxy, so keyed by the peer all clients would share
/// one budget (one loop of requests would lock everybody out): a proxied API
/// host (Cloudflare's edge) names the client in `CF-Connecting-IP`; a control
/// plane listening on loopback behind an https public URL has a local TLS
/// proxy in front, which appends it to `X-Forwarded-For`.
fn client_address(w: &mut Wizard, host: &str, proxied: bool) {
    if let Some(header) = w.cfg().client_ip_header.clone() {
        line("kept", "client address", format!("from {header}"));
        w.set("SAM_CLIENT_IP_HEADER", header);
        return;
    }
    if w.cfg().trust_forwarded_for {
        line("kept", "client address", "the right-most X-Forwarded-For entry");
        w.set("SAM_TRUST_FORWARDED_FOR", "true");
        return;
    }
    let behind_local_proxy = w.cfg().public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
        && w.cfg().listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
    if proxied {
        w.options.config.client_ip_header = Some("CF-Connecting-IP".into());
        w.set("SAM_CLIENT_IP_HEADER", "CF-Connecting-IP");
        line(
            "new",
            "client address",
            format!("from CF-Connecting-IP ({host} is proxied by Cloudflare: let only Cloudflare reach the origin)"),
        );
    } else if behind_local_proxy {
        w.options.config.trust_forwarded_for = true;
        w.set("SAM_TRUST_FORWARDED_FOR", "true");
        line(
            "new",
            "client address",
            "the right-most X-Forwarded-For entry (listening on loopback behind https: the proxy must append it)",
        );
    } else {
        line("note", "client address", "the peer's (no proxy in front found)");
    }
}

/// The zone's side of the HTTPS path: names the edge certificate covers,
/// the settings, the client CA agents require, the Origin CA permission.
async fn tls_edge(w: &mut Wizard, api: &CloudflareZones, zone: &Zone) -> anyhow::Result<()> {
    let mut hosts = w.cfg().workspace_hosts().map_err(anyhow::Error::msg)?;
    let mut coverage = edge::certificate_check(api, zone, &hosts).await;
    if coverage.status == Status::Fail && hosts.naming() == HostNaming::Nested {
        let flat = w.cfg().base_domain.as_deref().and_then(|b| WorkspaceHosts::new(b, HostNaming::Flat).ok());
        if let Some(flat) = flat {
            let flat_coverage = edge::certificate_check(api, zone, &flat).await;
            let sample = flat.host_for_label("ws-<id>");
            if flat_coverage.status == Status::Ok
                && w.interactive()
                && super::confirm(&format!("{}. Name workspaces {sample} instead?", coverage.detail), true)?
            {
                (hosts, coverage) = (flat, flat_coverage);
                w.options.config.workspace_host_naming = HostNaming::Flat;
            }
        }
    }
    if hosts.naming() != HostNaming::Nested {
        w.set("SAM_WORKSPACE_HOST_NAMING", hosts.naming().to_string());
    }
    let names = hosts.host_for_label("ws-<id>");
    match coverage.status {
        Status::Ok => line("ok", "workspace names", format!("{names}, {}", coverage.detail)),
        _ => line(
            "warn",
            "workspace names",
            format!("{names}: {} → fix: {}", coverage.detail, coverage.fix.unwrap_or_default()),
        ),
    }

    let mut wrong = Vec::new();
    for required in &edge::REQUIRED {
        match edge::current(api, zone, required).await {
            Ok(value) if value == required.wanted => line("ok", required.check, format!("{} is {value}", required.id)),
            Ok(value) => wrong.push((required, value)),
            Err(check) => {
                line("warn", required.check, format!("{} → fix: {}", check.detail, check.fix.unwrap_or_default()))
            }
        }
    }
    if !wrong.is_empty() {
        let list: Vec<String> = wrong.iter().map(|(r, v)| format!("{} {v} → {}", r.id, r.wanted)).collect();
        let consent = w.options.configure_zone
            || (w.interactive()
                && super::confirm(&format!("Change the zone's settings ({})?", list.join(", ")), true)?);
        for (required, value) in wrong {
            if consent {
                edge::apply(api, zone, required).await?;
                line("new", required.check, format!("{} {value} → {}", required.id, required.wanted));
            } else {
                let check = edge::setting_check(required, &value);
                line("warn", required.check, format!("{} → fix: {}", check.detail, check.fix.unwrap_or_default()));
            }
        }
    }

    // The client CA agents admit: Cloudflare's origin-pull CA.
    match w.cfg().edge_client_ca_file.clone() {
        Some(path) => {
            line("kept", "edge client CA", path.display());
            w.set_path("SAM_EDGE_CLIENT_CA_FILE", &path);
        }
        None => {
            let path = w.dir.join("cloudflare-origin-pull-ca.pem");
            std::fs::write(&path, sam_providers::cloudflare::ORIGIN_PULL_CA_PEM)
                .with_context(|| format!("writing {}", path.display()))?;
            line("new", "edge client CA", format!("{} (Cloudflare's origin-pull CA)", path.display()));
            w.options.config.edge_client_ca_file = Some(path.clone());
            w.set_path("SAM_EDGE_CLIENT_CA_FILE", &path);
        }
    }
    let origin_ca = edge::origin_ca_check(api, zone).await;
    match origin_ca.status {
        Status::Ok => line("ok", "origin ca", origin_ca.detail),
        _ => line("warn", "origin ca", format!("{} → fix: {}", origin_ca.detail, origin_ca.fix.unwrap_or_default())),
    }
    Ok(())
}

fn github_configured(c: &ServeConfig) -> bool {
    c.github_client_id.is_some()
        && c.github_app_id.is_some()
        && c.github_app_slug.is_some()
        && [&c.github_client_secret_file, &c.github_app_private_key_file, &c.github_webhook_secret_file]
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.exists()))
}

async fn github_step(w: &mut Wizard) -> anyhow::Result<()> {
    step(4, "GitHub App (sign-in and repository access)");
    if github_configured(w.cfg()) {
        let c = w.cfg().clone();
        line(
            "kept",
            "app",
            format!(
                "{} (id {})",
                c.github_app_slug.clone().unwrap_or_default(),
                c.github_app_id.clone().unwrap_or_default()
            ),
        );
        w.set("SAM_GITHUB_CLIENT_ID", c.github_client_id.unwrap_or_default());
        w.set("SAM_GITHUB_APP_ID", c.github_app_id.unwrap_or_default());
        w.set("SAM_GITHUB_APP_SLUG", c.github_app_slug.unwrap_or_default());
        for (key, path) in [
            ("SAM_GITHUB_CLIENT_SECRET_FILE", c.github_client_secret_file),
            ("SAM_GITHUB_APP_PRIVATE_KEY_FILE", c.github_app_private_key_file),
            ("SAM_GITHUB_WEBHOOK_SECRET_FILE", c.github_webhook_secret_file),
        ] {
            if let Some(path) = path {
                w.set_path(key, &path);
            }
        }
        return Ok(());
    }
    let public = w.cfg().public_url.clone().unwrap_or_default();
    let base = w.cfg().base_domain.clone().unwrap_or_default();
    let name = w.options.github_app_name.clone().unwrap_or_else(|| format!("SAM {base}"));
    // Who may install it: anyone (a deployment others use), or only the
    // account that creates it. Asked unless the setting was given.
    let given = w.file.get("SAM_GITHUB_APP_PUBLIC").is_some()
        || std::env::var_os("SAM_GITHUB_APP_PUBLIC").is_some()
        || std::env::args().any(|a| a.starts_with("--github-app-public"));
    let app_public = if w.interactive() && !given {
        let answer = w.ask(
            "May any GitHub account or organization install the app (public), or only yours? [public/private]",
            Some("public"),
            "",
        )?;
        !answer.trim().eq_ignore_ascii_case("private")
    } else {
        w.cfg().github_app_public
    };
    w.options.config.github_app_public = app_public;
    w.set("SAM_GITHUB_APP_PUBLIC", app_public.to_string());
    line(
        "ok",
        "app visibility",
        if app_public {
            "public: any account may install it"
        } else {
            "private: only the owning account may install it"
        },
    );
    let manifest = sam_providers::github::app_manifest(&public, &name, app_public);
    let mut state_bytes = [0u8; 12];
    sam_core::secret::fill_random(&mut state_bytes).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let state: String = state_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let action = super::github::new_app_url(&w.cfg().github_web_url, w.options.github_organization.as_deref(), &state);
    let json_path = w.dir.join("github-app-manifest.json");
    let html_path = w.dir.join("github-app-manifest.html");
    std::fs::write(&json_path, serde_json::to_string_pretty(&manifest)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&html_path, super::github::manifest_page(&action, &manifest))
        .with_context(|| format!("writing {}", html_path.display()))?;
    line("new", "manifest", json_path.display());

    let code = match w.options.github_manifest_code.clone() {
        Some(code) => code,
        None => {
            println!(
                "  Create the app from its manifest (permissions: contents read and write (pushing from a workspace), \
                 metadata read):"
            );
            println!("    1. open {} in a browser signed in to GitHub", html_path.display());
            println!("       (copy it to your laptop if this is a server) and press the button;");
            println!(
                "    2. GitHub creates the app and sends you to {public}{}?code=…",
                sam_providers::github::MANIFEST_REDIRECT_PATH
            );
            println!("       (the page may not load: only the address matters).");
            print_manual_values(&public);
            if !w.interactive() {
                anyhow::bail!(
                    "the GitHub App is not configured: create it as above, then run setup again with \
                     --github-manifest-code <code> (or set SAM_GITHUB_APP_ID, SAM_GITHUB_APP_SLUG, SAM_GITHUB_CLIENT_ID \
                     and the SAM_GITHUB_*_FILE secrets of an existing app)"
                );
            }
            super::prompt("Paste the address GitHub sent you to (or its code)", None)?
        }
    };
    let code = super::github::code_from_paste(&code).context("that is neither an address with ?code= nor a code")?;
    let app = sam_providers::github::convert_manifest(&w.cfg().github_api_url, &code, HttpConfig::default())
        .await
        .map_err(|e| match e.kind() {
            ProviderErrorKind::NotFound => anyhow::anyhow!(
                "GitHub does not know this manifest code (codes are single-use and expire after an hour): create the app again"
            ),
            _ => anyhow::anyhow!("GitHub manifest conversion: {e}"),
        })?;
    let secrets = w.dir.join("secrets");
    let client_secret = secrets.join("github-client-secret");
    let app_key = secrets.join("github-app.pem");
    let webhook = secrets.join("github-webhook-secret");
    write_secret_file(&client_secret, app.client_secret.expose())?;
    write_secret_file(&app_key, app.private_key_pem.expose())?;
    let webhook_secret = match app.webhook_secret {
        Some(secret) => secret,
        None => sam_core::secret::random_token().map_err(|e| anyhow::anyhow!("randomness: {e}"))?,
    };
    write_secret_file(&webhook, webhook_secret.expose())?;
    let c = &mut w.options.config;
    c.github_client_id = Some(app.client_id.clone());
    c.github_app_id = Some(app.id.to_string());
    c.github_app_slug = Some(app.slug.clone());
    c.github_client_secret_file = Some(client_secret.clone());
    c.github_app_private_key_file = Some(app_key.clone());
    c.github_webhook_secret_file = Some(webhook.clone());
    w.set("SAM_GITHUB_CLIENT_ID", &app.client_id);
    w.set("SAM_GITHUB_APP_ID", app.id.to_string());
    w.set("SAM_GITHUB_APP_SLUG", &app.slug);
    w.set_path("SAM_GITHUB_CLIENT_SECRET_FILE", &client_secret);
    w.set_path("SAM_GITHUB_APP_PRIVATE_KEY_FILE", &app_key);
    w.set_path("SAM_GITHUB_WEBHOOK_SECRET_FILE", &webhook);
    line("new", "app", format!("{} (id {}) {}", app.slug, app.id, app.html_url));
    line(
        "new",
        "credentials",
        format!("client secret, private key, webhook secret in {} (mode 0600)", secrets.display()),
    );
    Ok(())
}

/// The values to type into GitHub's form when the manifest flow is not an
/// option (e.g. GitHub Enterprise without it).
fn print_manual_values(public: &str) {
    println!("  Or create it by hand at https://github.com/settings/apps/new with:");
    println!("    Homepage URL:        {public}");
    println!("    Callback URL:        {public}/api/auth/callback/github");
    println!("    Setup URL:           {public}/settings   (Redirect on update: on)");
    println!("    Webhook URL:         {public}/api/github/webhook   (Active; generate a secret)");
    println!("    Permissions:         Repository → Contents: Read and write, Metadata: Read-only");
    println!(
        "    Where can it be installed: Any account (or Only on this account, then set SAM_GITHUB_APP_PUBLIC=false)"
    );
    println!("    Request user authorization (OAuth) during installation: off");
    println!("  then set SAM_GITHUB_APP_ID, SAM_GITHUB_APP_SLUG, SAM_GITHUB_CLIENT_ID and write the client secret,");
    println!("  the private key (PEM) and the webhook secret to files named by SAM_GITHUB_CLIENT_SECRET_FILE,");
    println!("  SAM_GITHUB_APP_PRIVATE_KEY_FILE and SAM_GITHUB_WEBHOOK_SECRET_FILE.");
}
