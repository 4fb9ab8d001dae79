//! `sam-server doctor`: one line per check (`ok`, `FAIL` with what to fix, or
//! `skip` with why), non-zero exit when anything failed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use sam_core::ports::DnsProvider as _;
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns, CloudflareZones, Zone};
use sam_providers::github::{GithubApp, GithubConfig};
use sam_providers::http::HttpConfig;
use sam_providers::keys;
use sam_providers::store::admin;
use serde_json::Value;

use super::edge;
use crate::config::ServeConfig;

/// The name `doctor` points at a documentation address (TEST-NET-1) and
/// resolves, then deletes again.
pub const PROBE_LABEL: &str = "ws-test";
/// The address of the probe record.
pub const PROBE_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Options of `sam-server doctor`.
#[derive(Args, Debug, Clone)]
pub struct DoctorOptions {
    /// The deployment's settings.
    #[command(flatten)]
    pub config: ServeConfig,
    /// How to check that `ws-test.<base-domain>` resolves: `system` (this
    /// machine's resolver, what browsers see) or `cloudflare-api` (the zone's
    /// records through the API, when public DNS is out of reach).
    #[arg(long, env = "SAM_DOCTOR_RESOLVER", value_enum, default_value = "system")]
    pub resolver: Resolver,
    /// Seconds to wait for the probe name to resolve (new names can take a
    /// moment to reach resolvers).
    #[arg(long, env = "SAM_DOCTOR_DNS_WAIT_SECONDS", default_value_t = 30)]
    pub dns_wait_seconds: u64,
}

/// How a name is resolved for the DNS check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Resolver {
    /// This machine's resolver.
    System,
    /// The zone's records as the Cloudflare API lists them.
    CloudflareApi,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Failed: the deployment will not work as configured.
    Fail,
    /// Not checked (said why).
    Skip,
}

/// One check's line.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, status: Status::Ok, detail: detail.into(), fix: None }
    }
    pub(crate) fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { name, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
    pub(crate) fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, status: Status::Skip, detail: detail.into(), fix: None }
    }

    /// The printed line.
    pub fn line(&self) -> String {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        match &self.fix {
            Some(fix) => format!("{tag} {:<14} {} → fix: {fix}", self.name, self.detail),
            None => format!("{tag} {:<14} {}", self.name, self.detail),
        }
    }
}

/// Runs `doctor`: prints every check, fails when any failed.
pub async fn run(options: DoctorOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let checks =
        run_checks(&options.config, options.resolver, Duration::from_secs(options.dns_wait_seconds), true).await;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    println!("doctor: {} checks, {failed} failed ({:.1} s)", checks.len(), started.elapsed().as_secs_f64());
    anyhow::ensure!(failed == 0, "{failed} check(s) failed; fix them and run `sam-server doctor` again");
    Ok(())
}

/// Runs every check, printing each line as it completes when `print`.
pub async fn run_checks(config: &ServeConfig, resolver: Resolver, dns_wait: Duration, print: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut push = |check: Check| {
        if print {
            println!("{}", check.line());
        }
        checks.push(check);
    };

    // Everything `serve` needs, except the database (checked below without
    // applying migrations).
    let mut no_db = config.clone();
    no_db.database_url = "sqlite::memory:".into();
    let built = crate::deployment::build(&no_db).await;
    match &built {
        Ok(_) => push(Check::ok("config", "every setting serve needs is present and readable")),
        Err(problems) => push(Check::fail(
            "config",
            problems.0.join("; "),
            "set what is missing (sam-server setup writes all of it; check-config lists it)",
        )),
    }

    for check in key_checks(config).await {
        push(check);
    }
    push(database_check(&config.database_url).await);
    let (cloudflare, zone) = cloudflare_check(config).await;
    push(cloudflare);
    match &zone {
        Some((api, zone)) => {
            push(dns_check(config, resolver, dns_wait).await);
            for check in tls_edge_checks(config, api, zone).await {
                push(check);
            }
        }
        None => {
            push(Check::skip("dns", "needs a working Cloudflare token and zone"));
            push(Check::skip("tls edge", "needs a working Cloudflare token and zone"));
        }
    }
    push(github_check(config).await);
    for check in agent_checks(&crate::deployment::agent_dir(config)) {
        push(check);
    }
    push(server_check(config).await);
    checks
}

async fn key_checks(config: &ServeConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let signing = match &config.jwt_private_key_file {
        None => {
            checks.push(Check::fail("jwt key", "SAM_JWT_PRIVATE_KEY_FILE is not set", "run sam-server keys generate"));
            None
        }
        Some(path) => match keys::read_rsa_key(path) {
            Err(e) => {
                checks.push(Check::fail("jwt key", e.to_string(), "point SAM_JWT_PRIVATE_KEY_FILE at a PEM RSA key"));
                None
            }
            Ok(key) => {
                let public = path.with_file_name(keys::JWT_PUBLIC_KEY_FILE);
                match std::fs::read_to_string(&public) {
                    Ok(pem) if pem.trim() != key.public_pem().trim() => checks.push(Check::fail(
                        "jwt key",
                        format!("{} is not the public half of {}", public.display(), path.display()),
                        "replace the .pub.pem file with the key's public half (or delete it)",
                    )),
                    _ => checks.push(Check::ok(
                        "jwt key",
                        format!("RSA {} bits, kid {} (public half matches)", key.bits(), key.kid()),
                    )),
                }
                Some(key)
            }
        },
    };
    match &config.encryption_key_file {
        None => checks.push(Check::fail(
            "encryption key",
            "SAM_ENCRYPTION_KEY_FILE is not set",
            "run sam-server keys generate",
        )),
        Some(path) => match keys::read_aes_key(path) {
            Ok(key) => checks.push(Check::ok("encryption key", format!("AES-256, key id {:08x}", key.id()))),
            Err(e) => checks.push(Check::fail(
                "encryption key",
                e.to_string(),
                "point SAM_ENCRYPTION_KEY_FILE at the base64 AES key (restore it from a backup if lost)",
            )),
        },
    }
    // The JWKS the running server publishes must hold the signing key.
    if let (Some(key), Some(url)) = (signing, &config.public_url) {
        let jwks_url = format!("{}/.well-known/jwks.json", url.trim_end_matches('/'));
        let fetched = match super::http_client() {
            Ok(http) => http.get(&jwks_url).timeout(Duration::from_secs(5)).send().await.ok(),
            Err(_) => None,
        };
        match fetched {
            None => checks.push(Check::skip("jwks", format!("server not reachable at {url} (start it with serve)"))),
            Some(r) => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let kids: Vec<&str> = body
                    .get("keys")
                    .and_then(Value::as_array)
                    .map(|ks| ks.iter().filter_map(|k| k.get("kid").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                if kids.contains(&key.kid()) {
                    checks.push(Check::ok("jwks", format!("{jwks_url} serves the signing key ({} keys)", kids.len())));
                } else {
                    checks.push(Check::fail(
                        "jwks",
                        format!("{jwks_url} does not serve kid {}", key.kid()),
                        "restart every replica with the same SAM_JWT_PRIVATE_KEY_FILE",
                    ));
                }
            }
        }
    }
    checks
}

/// Applied migrations, without applying any.
pub async fn database_check(url: &str) -> Check {
    match admin::migration_status(url).await {
        Ok(status) if status.failed > 0 => Check::fail(
            "database",
            format!("{} reachable but a migration failed", super::redact_url(url)),
            "restore the last backup, or repair the failed migration by hand",
        ),
        Ok(status) if status.applied == 0 => Check::fail(
            "database",
            format!("{} reachable, no migrations applied", super::redact_url(url)),
            "run sam-server migrate",
        ),
        Ok(status) => match status.expected {
            expected if status.latest < expected => Check::fail(
                "database",
                format!("migrations applied up to {}, this version needs {expected}", status.latest),
                "run sam-server migrate",
            ),
            _ => Check::ok(
                "database",
                format!(
                    "{} reachable, {} migration(s) applied (latest {})",
                    super::redact_url(url),
                    status.applied,
                    status.latest
                ),
            ),
        },
        Err(e) => Check::fail(
            "database",
            format!("{}: {e:#}", super::redact_url(url)),
            "check SAM_DATABASE_URL and that the database is up, then run sam-server migrate",
        ),
    }
}

fn cloudflare_api(config: &ServeConfig) -> anyhow::Result<CloudflareZones> {
    let path = config
        .cloudflare_api_token_file
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("SAM_CLOUDFLARE_API_TOKEN_FILE is not set"))?;
    Ok(CloudflareZones::new(&config.cloudflare_api_url, super::read_secret_file(path)?, HttpConfig::default())?)
}

/// The token and the zone; both, when they work.
async fn cloudflare_check(config: &ServeConfig) -> (Check, Option<(CloudflareZones, Zone)>) {
    let fix_token = "create a token with Zone → DNS → Edit on the zone (dash.cloudflare.com/profile/api-tokens) and write it to SAM_CLOUDFLARE_API_TOKEN_FILE";
    let api = match cloudflare_api(config) {
        Ok(api) => api,
        Err(e) => return (Check::fail("cloudflare", format!("{e:#}"), fix_token), None),
    };
    match api.token_status().await {
        Ok(status) if status == "active" => {}
        Ok(status) => return (Check::fail("cloudflare", format!("the token is {status}"), fix_token), None),
        Err(e) => return (Check::fail("cloudflare", format!("{e:#}"), fix_token), None),
    }
    let Some(zone_id) = &config.cloudflare_zone_id else {
        return (
            Check::fail("cloudflare", "SAM_CLOUDFLARE_ZONE_ID is not set", "run sam-server setup, or set the id"),
            None,
        );
    };
    let zone = match api.zone(zone_id).await {
        Ok(zone) => zone,
        Err(e) => {
            return (
                Check::fail(
                    "cloudflare",
                    format!("zone {zone_id}: {e:#}"),
                    "set SAM_CLOUDFLARE_ZONE_ID to the zone of the base domain, and give the token access to it",
                ),
                None,
            );
        }
    };
    let base = config.base_domain.clone().unwrap_or_default().to_ascii_lowercase();
    if base != zone.name && !base.ends_with(&format!(".{}", zone.name)) {
        return (
            Check::fail(
                "cloudflare",
                format!("zone {} does not hold the base domain {base}", zone.name),
                "set SAM_CLOUDFLARE_ZONE_ID to the zone the base domain is in",
            ),
            None,
        );
    }
    (Check::ok("cloudflare", format!("token active, zone {} ({})", zone.name, zone.status)), Some((api, zone)))
}

/// The browser → edge → agent path: the client CA agents require, the
/// zone's settings, the edge certificate for the workspace names and the
/// Origin CA permission.
async fn tls_edge_checks(config: &ServeConfig, api: &CloudflareZones, zone: &Zone) -> Vec<Check> {
    let mut checks = vec![match &config.edge_client_ca_file {
        None => Check::fail(
            "tls edge",
            "SAM_EDGE_CLIENT_CA_FILE is not set: workspace records are not proxied and agents serve plain HTTP, \
             so browsers cannot open workspaces over HTTPS",
            "run sam-server setup (it writes Cloudflare's origin-pull CA and sets it), or set SAM_EDGE_CLIENT_CA_FILE",
        ),
        Some(path) => edge_ca_check(path),
    }];
    checks.extend(edge::setting_checks(api, zone).await);
    checks.push(match config.workspace_hosts() {
        Ok(hosts) => edge::certificate_check(api, zone, &hosts).await,
        Err(why) => Check::fail("edge cert", why, "set SAM_WORKSPACE_HOST_NAMING=nested"),
    });
    checks.push(edge::origin_ca_check(api, zone).await);
    checks
}

fn edge_ca_check(path: &Path) -> Check {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let fix = "point SAM_EDGE_CLIENT_CA_FILE at Cloudflare's origin-pull CA (sam-server setup writes it)";
    let pem = match std::fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) => return Check::fail("tls edge", format!("{}: {e}", path.display()), fix),
    };
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).count();
    if certificates == 0 {
        return Check::fail("tls edge", format!("{} holds no PEM certificate", path.display()), fix);
    }
    let which = if pem.trim() == sam_providers::cloudflare::ORIGIN_PULL_CA_PEM.trim() {
        "Cloudflare's origin-pull CA"
    } else {
        "a custom CA (not Cloudflare's origin-pull CA)"
    };
    Check::ok(
        "tls edge",
        format!("agents serve TLS behind proxied records and admit clients of {which} ({})", path.display()),
    )
}

/// Points `ws-test.<base>` at [`PROBE_ADDRESS`], resolves it, deletes it.
async fn dns_check(config: &ServeConfig, resolver: Resolver, wait: Duration) -> Check {
    let (Some(base), Some(zone), Some(token_file)) =
        (&config.base_domain, &config.cloudflare_zone_id, &config.cloudflare_api_token_file)
    else {
        return Check::skip("dns", "base domain, zone or token missing");
    };
    let name = match config.workspace_hosts() {
        Ok(hosts) => hosts.host_for_label(PROBE_LABEL),
        Err(why) => return Check::fail("dns", why, "set SAM_WORKSPACE_HOST_NAMING=nested"),
    };
    let token = match super::read_secret_file(token_file) {
        Ok(t) => t,
        Err(e) => return Check::fail("dns", format!("{e:#}"), "fix SAM_CLOUDFLARE_API_TOKEN_FILE"),
    };
    let dns = match CloudflareDns::new(CloudflareConfig {
        base_url: config.cloudflare_api_url.clone(),
        ..CloudflareConfig::new(token, zone.clone())
    }) {
        Ok(d) => d,
        Err(e) => return Check::fail("dns", e.to_string(), "fix SAM_CLOUDFLARE_API_URL"),
    };
    if let Err(e) = dns.upsert_a_record(&name, PROBE_ADDRESS, None).await {
        return Check::fail(
            "dns",
            format!("cannot create {name}: {e}"),
            "give the Cloudflare token Zone → DNS → Edit (it can read but not write)",
        );
    }
    let outcome = resolve_until(&dns, &name, resolver, wait).await;
    let cleanup = dns.delete_records(&name).await;
    let mut check = match outcome {
        Ok(how) => Check::ok("dns", format!("{name} resolves to {PROBE_ADDRESS} ({how})")),
        Err(detail) => Check::fail(
            "dns",
            format!("{name}: {detail}"),
            format!(
                "make Cloudflare authoritative for {base}: the registrar's name servers must be the zone's (dig NS {base})"
            ),
        ),
    };
    if let Err(e) = cleanup {
        check = Check::fail("dns", format!("probe record {name} left behind: {e}"), "delete it in the dashboard");
    }
    check
}

async fn resolve_until(dns: &CloudflareDns, name: &str, resolver: Resolver, wait: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last;
    loop {
        match resolver {
            Resolver::CloudflareApi => match dns.list_records(name).await {
                Ok(records) if records.iter().any(|r| r.name.eq_ignore_ascii_case(name) && r.ipv4 == PROBE_ADDRESS) => {
                    return Ok("through the Cloudflare API records list; public DNS not checked".into());
                }
                Ok(_) => last = "the Cloudflare API does not list it".into(),
                Err(e) => last = e.to_string(),
            },
            Resolver::System => match tokio::net::lookup_host((name, 443)).await {
                Ok(addrs) => {
                    let addrs: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    if addrs.contains(&IpAddr::V4(PROBE_ADDRESS)) {
                        return Ok("through this machine's resolver".into());
                    }
                    last = format!("resolves to {addrs:?}, not {PROBE_ADDRESS}");
                }
                Err(e) => last = format!("does not resolve here ({e})"),
            },
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{last} after {} s", wait.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn github_check(config: &ServeConfig) -> Check {
    let fix = "run sam-server setup to create the GitHub App, or set SAM_GITHUB_APP_ID and SAM_GITHUB_APP_PRIVATE_KEY_FILE to an existing app's";
    let (Some(app_id), Some(key_file)) = (&config.github_app_id, &config.github_app_private_key_file) else {
        return Check::fail("github app", "app id or private key not set", fix);
    };
    let key = match super::read_secret_file(key_file) {
        Ok(k) => k,
        Err(e) => return Check::fail("github app", format!("{e:#}"), fix),
    };
    let mut github_config = GithubConfig::new(
        config.github_client_id.clone().unwrap_or_default(),
        sam_core::secret::SecretString::new(""),
        app_id.clone(),
        config.github_app_slug.clone().unwrap_or_default(),
        key,
    );
    github_config.api_base_url = config.github_api_url.clone();
    github_config.web_base_url = config.github_web_url.clone();
    let app = match GithubApp::new(github_config) {
        Ok(app) => app,
        Err(e) => {
            return Check::fail("github app", e.to_string(), "SAM_GITHUB_APP_PRIVATE_KEY_FILE must be the app's PEM");
        }
    };
    match app.authenticated_app().await {
        Ok(known) => {
            let slug = known.slug.as_str();
            let client_id = known.client_id.as_str();
            if config.github_app_slug.as_deref().is_some_and(|s| s != slug) {
                return Check::fail(
                    "github app",
                    format!("GitHub knows app {app_id} as {slug}, configured slug differs"),
                    format!("set SAM_GITHUB_APP_SLUG={slug}"),
                );
            }
            if !client_id.is_empty() && config.github_client_id.as_deref().is_some_and(|c| c != client_id) {
                return Check::fail(
                    "github app",
                    "the configured client id is not the app's",
                    format!("set SAM_GITHUB_CLIENT_ID={client_id}"),
                );
            }
            let contents = match known.permissions.get("contents").map(String::as_str) {
                Some("write") => "contents write: workspaces can push".to_owned(),
                Some(other) => format!(
                    "contents {other}: pushing from workspaces is off (give the app Contents: Read and write on GitHub)"
                ),
                None => "no contents permission: workspaces cannot clone".to_owned(),
            };
            Check::ok("github app", format!("app {app_id} ({slug}) accepts its JWT; {contents}"))
        }
        Err(e) => Check::fail("github app", format!("{e:#}"), fix),
    }
}

/// The ELF machine of each architecture the control plane serves.
const ARCHES: [(&str, u16, &str); 2] = [("amd64", 62, "x86_64"), ("arm64", 183, "aarch64")];

fn agent_checks(dir: &Path) -> Vec<Check> {
    ARCHES
        .iter()
        .map(|(arch, machine, triple)| {
            let path = crate::api::agent_path(dir, arch);
            let fix = format!(
                "build sam-agent for {triple} (target {triple}-unknown-linux-musl) and copy it to {}",
                path.display()
            );
            let name = if *arch == "amd64" { "agent amd64" } else { "agent arm64" };
            match std::fs::read(&path) {
                Err(e) => Check::fail(name, format!("{}: {e}", path.display()), fix),
                Ok(bytes) if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" => {
                    Check::fail(name, format!("{} is not an ELF executable", path.display()), fix)
                }
                Ok(bytes) => {
                    let found = u16::from_le_bytes([bytes[18], bytes[19]]);
                    if found == *machine {
                        Check::ok(name, format!("{} ({triple}, {} bytes)", path.display(), bytes.len()))
                    } else {
                        Check::fail(
                            name,
                            format!("{} is not a {triple} binary (ELF machine {found})", path.display()),
                            fix,
                        )
                    }
                }
            }
        })
        .collect()
}

async fn server_check(config: &ServeConfig) -> Check {
    let Some(url) = &config.public_url else {
        return Check::skip("server", "no public URL");
    };
    let Ok(http) = super::http_client() else {
        return Check::skip("server", "no HTTP client");
    };
    let url = url.trim_end_matches('/');
    match http.get(format!("{url}/api/ready")).timeout(Duration::from_secs(5)).send().await {
        Ok(r) if r.status().is_success() => Check::ok("server", format!("{url}/api/ready answers {}", r.status())),
        Ok(r) => Check::fail(
            "server",
            format!("{url}/api/ready answers {}", r.status()),
            "read the server's log (journalctl -u sam-server)",
        ),
        Err(_) => Check::skip("server", format!("not reachable at {url} (not started yet?)")),
    }
}
