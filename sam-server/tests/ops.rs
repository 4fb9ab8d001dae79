//! The operator commands as processes against the emulators: the README
//! path from nothing to a running control plane with `setup --yes` (the
//! GitHub App made through the manifest flow), `doctor`, and teardown →
//! redeploy → restore, on SQLite and on PostgreSQL (with `pg_dump`). Each
//! command's wall-clock time is printed (`TIMING …`, see with --no-capture).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/process.rs"]
mod process;

#[path = "../../sam-providers/tests/support/postgres.rs"]
mod postgres;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use sam_providers::emulators::{self, Emulators};
use sam_providers::http::HttpConfig;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Fake agent binaries: just the ELF header of each architecture.
fn fake_agents(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (arch, machine) in [("amd64", 62u16), ("arm64", 183u16)] {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18..20].copy_from_slice(&machine.to_le_bytes());
        std::fs::write(dir.join(format!("sam-agent-{arch}")), elf).unwrap();
    }
}

/// `sam-server <args>` with `env`; returns the output and how long it took.
fn sam(args: &[&str], env: &[(&str, String)]) -> (Output, Duration) {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (output, started.elapsed())
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn ok(what: &str, (output, took): (Output, Duration)) -> String {
    let all = text(&output);
    assert!(output.status.success(), "{what} failed:\n{all}");
    println!("TIMING {what}: {:.2} s", took.as_secs_f64());
    all
}

/// The URLs of the emulators, as setup flags.
fn emulator_flags(emulators: &Emulators) -> Vec<String> {
    vec![
        format!("--cloudflare-api-url={}", emulators.cloudflare.base_url()),
        format!("--github-web-url={}", emulators.github.base_url()),
        format!("--github-api-url={}", emulators.github.base_url()),
        format!("--hetzner-api-url={}", emulators.hetzner.base_url()),
        "--resolver=cloudflare-api".into(),
        "--dns-wait-seconds=5".into(),
    ]
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn setting(config: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(config).unwrap().lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

struct Serve {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Serve {
    /// `serve --config <config>`; with `public_url_from_env`, listening on a
    /// free port given through the environment (which wins over the file),
    /// else exactly as configured.
    async fn start(config: &Path, public_url_from_env: bool) -> Self {
        Self::start_binary(Path::new(env!("CARGO_BIN_EXE_sam-server")), config, public_url_from_env).await
    }

    /// Like [`Serve::start`], running `binary`.
    async fn start_binary(binary: &Path, config: &Path, public_url_from_env: bool) -> Self {
        let mut command = tokio::process::Command::new(binary);
        let base = if public_url_from_env {
            let sockets = process::HandedSockets::bind(1);
            let port = sockets.port(0);
            sockets.hand_to(&mut command);
            command.env("SAM_LISTEN", format!("127.0.0.1:{port}"));
            format!("http://127.0.0.1:{port}")
        } else {
            setting(config, "SAM_PUBLIC_URL").unwrap()
        };
        command
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("SAM_RECONCILE_INTERVAL_SECONDS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if public_url_from_env {
            command.env("SAM_PUBLIC_URL", &base);
        }
        let child = command.spawn().unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for _ in 0..300 {
            if client.get(format!("{base}/api/health")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, base, client };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sam-server did not become healthy");
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            request = request.header(COOKIE, c);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, cookie: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .header("origin", &self.base)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn sign_in(&self, emulators: &Emulators) -> String {
        process::sign_in(&self.client, &self.base, emulators).await
    }

    async fn terminate(self) {
        process::terminate(self.child).await;
    }
}

/// What the operator's browser does with the page setup wrote: posts the
/// manifest to GitHub's new-app page, presses "Create", and follows the
/// redirect to the manifest's `redirect_url`; returns that address.
async fn create_app_in_browser(emulators: &Emulators, manifest: &Value) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client
        .post(format!("{}/settings/apps/new?state=s1", emulators.github.base_url()))
        .form(&[("manifest", manifest.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"create\""), "{html}");
    let created = client
        .post(format!("{}/settings/apps/new/confirm", emulators.github.base_url()))
        .form(&[("manifest", manifest.to_string()), ("state", "s1".into())])
        .send()
        .await
        .unwrap();
    assert!(created.status().is_redirection(), "{}", created.status());
    created.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The README, followed by a script: `setup --yes` against the emulated
/// Cloudflare and GitHub (first run stops at the GitHub App and says how to
/// make it; the manifest flow gives the code; the second run completes), a
/// third run changes nothing, `serve --config`, `/api/health`, `/api/ready`,
/// and `doctor` against the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_setup_then_serve() {
    let emulators = Emulators::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc").join("sam.env");
    let agents = dir.path().join("agents");
    fake_agents(&agents);
    // Chosen before `setup` writes it into the configuration, so it cannot
    // be handed over: the one port still picked and released.
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "setup".into(),
        "--yes".into(),
        format!("--config={}", config.display()),
        "--base-domain=sam.test".into(),
        format!("--public-url={public}"),
        format!("--listen=127.0.0.1:{port}"),
        format!("--agent-dir={}", agents.display()),
    ];
    args.extend(emulator_flags(&emulators));
    let env = vec![("CLOUDFLARE_API_TOKEN", emulators.cloudflare.token())];
    let argv = |extra: &[String]| -> Vec<String> { args.iter().chain(extra).cloned().collect() };

    // First run: everything but the GitHub App, which needs the browser.
    let first = argv(&[]);
    let (output, took) = sam(&first.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let printed = text(&output);
    assert!(!output.status.success(), "stops at the GitHub App:\n{printed}");
    assert!(printed.contains("--github-manifest-code"), "says how to go on:\n{printed}");
    assert!(!printed.contains(&emulators.cloudflare.token()), "the token is never printed");
    println!("TIMING setup --yes (until the GitHub App): {:.2} s", took.as_secs_f64());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("etc/github-app-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["default_permissions"], json!({"contents": "write", "metadata": "read"}), "push needs write");
    assert_eq!(manifest["public"], true, "--yes: any account may install it");
    assert_eq!(manifest["hook_attributes"]["url"], format!("{public}/api/github/webhook"));
    assert_eq!(manifest["callback_urls"][0], format!("{public}/api/auth/callback/github"));
    assert_eq!(setting(&config, "SAM_CLOUDFLARE_ZONE_ID"), Some(emulators.cloudflare.zone_id()), "zone found by name");
    assert!(emulators.cloudflare.records().is_empty(), "the DNS edit probe was deleted");

    // The operator creates the app; GitHub sends the browser back with a code.
    let back = create_app_in_browser(&emulators, &manifest).await;
    assert!(back.starts_with(&format!("{public}/setup/github-app?code=")), "{back}");
    assert_eq!(emulators.cloudflare.zone_setting("ssl").as_deref(), Some("flexible"), "not changed without consent");
    let second = argv(&[format!("--github-manifest-code={back}"), "--configure-zone".into()]);
    let printed =
        ok("setup --yes (with the manifest code)", sam(&second.iter().map(String::as_str).collect::<Vec<_>>(), &env));
    assert!(printed.contains("Setup complete"), "{printed}");
    assert!(!printed.contains(emulators::GITHUB_CLIENT_SECRET), "secrets are never printed");
    assert_eq!(emulators.github.created_apps().len(), 1);
    for (id, wanted) in [("ssl", "strict"), ("always_use_https", "on"), ("websockets", "on"), ("tls_client_auth", "on")]
    {
        assert_eq!(emulators.cloudflare.zone_setting(id).as_deref(), Some(wanted), "{id} set by setup");
    }
    let edge_ca = setting(&config, "SAM_EDGE_CLIENT_CA_FILE").expect("the edge client CA is configured");
    assert_eq!(std::fs::read_to_string(edge_ca).unwrap(), sam_providers::cloudflare::ORIGIN_PULL_CA_PEM);
    assert_eq!(setting(&config, "SAM_GITHUB_APP_ID").as_deref(), Some(emulators::GITHUB_APP_ID));
    assert_eq!(setting(&config, "SAM_GITHUB_APP_PUBLIC").as_deref(), Some("true"));
    assert!(emulators.github.config().app_public, "GitHub created a public app from the manifest");
    for secret in ["github-client-secret", "github-app.pem", "github-webhook-secret", "cloudflare-api-token"] {
        assert_eq!(mode(&dir.path().join("etc/secrets").join(secret)), 0o600, "{secret}");
    }
    assert_eq!(mode(&dir.path().join("etc/keys/credentials-key.b64")), 0o600);
    assert_eq!(mode(&config), 0o600);
    let key_before = std::fs::read(dir.path().join("etc/keys/jwt-signing-key.pem")).unwrap();
    let config_before = std::fs::read_to_string(&config).unwrap();

    // Again, from the file alone: everything is kept.
    let (output, took) = sam(
        &["setup", "--yes", "--config", config.to_str().unwrap(), "--resolver=cloudflare-api", "--dns-wait-seconds=5"],
        &[],
    );
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    println!("TIMING setup --yes (re-run, all configured): {:.2} s", took.as_secs_f64());
    assert!(printed.contains("kept"), "{printed}");
    assert!(!printed.contains("new "), "nothing new on a re-run:\n{printed}");
    assert_eq!(std::fs::read(dir.path().join("etc/keys/jwt-signing-key.pem")).unwrap(), key_before, "keys kept");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), config_before, "same configuration");
    assert_eq!(emulators.github.created_apps().len(), 1, "no second app");
    assert!(emulators.cloudflare.records().is_empty(), "no records left or duplicated");

    let serve = Serve::start(&config, false).await;
    assert_eq!(serve.base, public);
    assert_eq!(serve.get("/api/health", None).await.0, StatusCode::OK);
    assert_eq!(serve.get("/api/ready", None).await.0, StatusCode::OK);
    let printed = ok(
        "doctor (server running)",
        sam(
            &["doctor", "--config", config.to_str().unwrap(), "--resolver=cloudflare-api", "--dns-wait-seconds=5"],
            &[],
        ),
    );
    for check in [
        "config",
        "jwt key",
        "encryption key",
        "jwks",
        "database",
        "cloudflare",
        "dns",
        "github app",
        "agent amd64",
        "agent arm64",
        "server",
        "tls edge",
        "ssl mode",
        "https only",
        "websockets",
        "origin pulls",
        "edge cert",
        "origin ca",
    ] {
        assert!(printed.lines().any(|l| l.starts_with("ok") && l.contains(check)), "{check} ok in:\n{printed}");
    }
    assert!(printed.contains("contents write: workspaces can push"), "{printed}");
    assert!(emulators.cloudflare.records().is_empty(), "the ws-test probe was deleted");
    serve.terminate().await;

    // Doctor names what is broken and exits non-zero.
    emulators.cloudflare.configure(|c| c.zone_settings.retain(|(k, _)| k != "ssl"));
    emulators.cloudflare.configure(|c| c.zone_settings.push(("ssl".into(), "flexible".into())));
    let (output, _) = sam(&["doctor", "--config", config.to_str().unwrap(), "--resolver=cloudflare-api"], &[]);
    let printed = text(&output);
    assert!(!output.status.success());
    let line = printed.lines().find(|l| l.contains("ssl mode")).unwrap_or_default();
    assert!(line.starts_with("FAIL") && line.contains("flexible") && line.contains("Full (strict)"), "{printed}");
    std::fs::remove_file(agents.join("sam-agent-arm64")).unwrap();
    emulators.cloudflare.configure(|c| c.tokens.clear());
    let (output, _) = sam(&["doctor", "--config", config.to_str().unwrap(), "--resolver=cloudflare-api"], &[]);
    let printed = text(&output);
    assert!(!output.status.success());
    assert!(
        printed.lines().any(|l| l.starts_with("FAIL") && l.contains("agent arm64") && l.contains("fix:")),
        "{printed}"
    );
    assert!(
        printed.lines().any(|l| l.starts_with("FAIL") && l.contains("cloudflare") && l.contains("fix:")),
        "{printed}"
    );
}

/// A Cloudflare token that can read but not edit DNS: setup stops and says
/// which permission is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_names_a_missing_dns_permission() {
    let emulators = Emulators::start().await.unwrap();
    emulators.cloudflare.configure(|c| c.read_only_tokens.push("read-only".into()));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sam.env");
    let mut args = vec![
        "setup".to_owned(),
        "--yes".into(),
        format!("--config={}", config.display()),
        "--base-domain=ws.sam.test".into(),
    ];
    args.extend(emulator_flags(&emulators));
    let (output, _) =
        sam(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[("CLOUDFLARE_API_TOKEN", "read-only".into())]);
    let printed = text(&output);
    assert!(!output.status.success());
    assert!(printed.contains("found by name"), "the parent zone of ws.sam.test is found:\n{printed}");
    assert!(printed.contains("DNS → Edit"), "{printed}");
    let (output, _) = sam(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(text(&output).contains("CLOUDFLARE_API_TOKEN"), "a missing token is named");
}

/// Behind a proxy every request comes from the proxy: setup finds the one in
/// front and tells the rate limits where the client's address is —
/// `CF-Connecting-IP` when Cloudflare proxies the API host, the right-most
/// `X-Forwarded-For` entry when the server listens on loopback behind an
/// https URL (a local TLS proxy), the peer's address otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_finds_the_proxy_in_front_for_the_rate_limits() {
    let emulators = Emulators::start().await.unwrap();
    let cloudflare = &emulators.cloudflare;
    let created = reqwest::Client::new()
        .post(format!("{}/zones/{}/dns_records", cloudflare.base_url(), cloudflare.zone_id()))
        .bearer_auth(cloudflare.token())
        .json(&json!({"type": "A", "name": "sam.sam.test", "content": "203.0.113.10", "proxied": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, public: &str, listen: &str| {
        let config = dir.path().join(name);
        let mut args = vec![
            "setup".to_owned(),
            "--yes".into(),
            format!("--config={}", config.display()),
            "--base-domain=sam.test".into(),
            format!("--public-url={public}"),
            format!("--listen={listen}"),
        ];
        args.extend(emulator_flags(&emulators));
        let (output, _) =
            sam(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[("CLOUDFLARE_API_TOKEN", cloudflare.token())]);
        let printed = text(&output);
        assert!(printed.contains("client address"), "{printed}");
        (setting(&config, "SAM_CLIENT_IP_HEADER"), setting(&config, "SAM_TRUST_FORWARDED_FOR"))
    };
    let proxied = run("proxied.env", "https://sam.sam.test", "0.0.0.0:8080");
    assert_eq!(proxied, (Some("CF-Connecting-IP".into()), None), "Cloudflare proxies sam.sam.test");
    let local_proxy = run("local.env", "https://api.sam.test", "127.0.0.1:8080");
    assert_eq!(local_proxy, (None, Some("true".into())), "a TLS proxy on this machine");
    let direct = run("direct.env", "https://api.sam.test", "0.0.0.0:8443");
    assert_eq!(direct, (None, None), "no proxy found");
    // What the operator set is kept.
    let again = run("local.env", "https://sam.sam.test", "127.0.0.1:8080");
    assert_eq!(again, (None, Some("true".into())));
}

/// Universal SSL covers the zone apex and one level below it: nested names
/// under a base domain below the zone need an advanced certificate, flat
/// names do not. Doctor's check says which, and what to do.
#[tokio::test]
async fn edge_certificates_cover_the_workspace_names_of_either_scheme() {
    use sam_core::domain::{HostNaming, WorkspaceHosts};
    use sam_providers::cloudflare::CloudflareZones;
    use sam_server::ops::doctor::Status;
    use sam_server::ops::edge;
    let emulators = Emulators::start().await.unwrap();
    let api = CloudflareZones::new(
        emulators.cloudflare.base_url(),
        emulators.cloudflare.token().into(),
        HttpConfig::default(),
    )
    .unwrap();
    let zone = api.zone(&emulators.cloudflare.zone_id()).await.unwrap();
    let nested = WorkspaceHosts::new("staging.sam.test", HostNaming::Nested).unwrap();
    let flat = WorkspaceHosts::new("staging.sam.test", HostNaming::Flat).unwrap();
    let apex = WorkspaceHosts::new("sam.test", HostNaming::Nested).unwrap();

    let check = edge::certificate_check(&api, &zone, &nested).await;
    assert_eq!(check.status, Status::Fail, "{check:?}");
    let fix = check.fix.unwrap();
    assert!(fix.contains("*.staging.sam.test") && fix.contains("SAM_WORKSPACE_HOST_NAMING=flat"), "{fix}");
    for hosts in [&flat, &apex] {
        let check = edge::certificate_check(&api, &zone, hosts).await;
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.detail.contains("universal"), "{check:?}");
    }
    emulators.cloudflare.configure(|c| c.advanced_certificates.push(vec!["*.staging.sam.test".into()]));
    let check = edge::certificate_check(&api, &zone, &nested).await;
    assert_eq!(check.status, Status::Ok, "{check:?}");
    assert!(check.detail.contains("advanced"), "{check:?}");
    emulators.cloudflare.configure(|c| {
        c.universal_ssl = false;
        c.advanced_certificates.clear();
    });
    assert_eq!(edge::certificate_check(&api, &zone, &apex).await.status, Status::Fail);

    // Settings: a value read back, a wrong one named, a change applied, an
    // unknown value refused as the API refuses it.
    let ssl = &edge::REQUIRED[0];
    assert_eq!(edge::current(&api, &zone, ssl).await.unwrap(), "flexible");
    assert_eq!(edge::setting_checks(&api, &zone).await[0].status, Status::Fail);
    edge::apply(&api, &zone, ssl).await.unwrap();
    assert_eq!(edge::setting_checks(&api, &zone).await[0].status, Status::Ok);
    let err = api.set_setting(&zone.id, "ssl", "very-strict").await.unwrap_err();
    assert!(err.to_string().contains("1007"), "{err}");
    let err = api.setting(&zone.id, "no_such_setting").await.unwrap_err();
    assert!(err.to_string().contains("1006"), "{err}");
    // A token without the permissions: the checks name the one to add.
    let stranger =
        CloudflareZones::new(emulators.cloudflare.base_url(), "no-access".into(), HttpConfig::default()).unwrap();
    let checks = edge::setting_checks(&stranger, &zone).await;
    assert!(checks[0].fix.as_deref().is_some_and(|f| f.contains("Zone Settings")), "{checks:?}");
    let check = edge::origin_ca_check(&stranger, &zone).await;
    assert!(check.fix.as_deref().is_some_and(|f| f.contains("SSL and Certificates")), "{check:?}");
    assert_eq!(edge::origin_ca_check(&api, &zone).await.status, Status::Ok);
}

/// docs/configuration.md is what `config-reference` prints.
#[test]
fn configuration_reference_is_up_to_date() {
    let (output, _) = sam(&["config-reference"], &[]);
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == committed,
        "docs/configuration.md is out of date: run `cargo run -p sam-server -- config-reference > docs/configuration.md`"
    );
    for setting in ["SAM_DATABASE_URL", "SAM_CLOUDFLARE_API_TOKEN_FILE", "sam-server setup", "sam-server teardown"] {
        assert!(generated.contains(setting), "{setting}");
    }
}

/// Sets up a deployment with an existing GitHub App (all values given, no
/// browser), at `config`, on `database_url` (or SQLite beside the config).
fn scripted_setup(emulators: &Emulators, config: &Path, database_url: Option<&str>, what: &str) {
    let dir = config.parent().unwrap();
    std::fs::create_dir_all(dir.join("given")).unwrap();
    let given = |name: &str, value: &str| {
        let path = dir.join("given").join(name);
        std::fs::write(&path, value).unwrap();
        path.display().to_string()
    };
    let agents = dir.join("agents");
    fake_agents(&agents);
    let mut args = vec![
        "setup".to_owned(),
        "--yes".into(),
        format!("--config={}", config.display()),
        "--base-domain=sam.test".into(),
        "--public-url=https://sam.sam.test".into(),
        "--server-ip=203.0.113.10".into(),
        "--configure-zone".into(),
        format!("--agent-dir={}", agents.display()),
    ];
    if let Some(url) = database_url {
        args.push(format!("--database-url={url}"));
    }
    args.extend(emulator_flags(emulators));
    let env = vec![
        ("CLOUDFLARE_API_TOKEN", emulators.cloudflare.token()),
        ("SAM_GITHUB_CLIENT_ID", emulators::GITHUB_CLIENT_ID.to_owned()),
        ("SAM_GITHUB_APP_ID", emulators::GITHUB_APP_ID.to_owned()),
        ("SAM_GITHUB_APP_SLUG", emulators::GITHUB_APP_SLUG.to_owned()),
        ("SAM_GITHUB_CLIENT_SECRET_FILE", given("client-secret", emulators::GITHUB_CLIENT_SECRET)),
        ("SAM_GITHUB_APP_PRIVATE_KEY_FILE", given("app.pem", emulators::TEST_APP_PRIVATE_KEY_PEM)),
        ("SAM_GITHUB_WEBHOOK_SECRET_FILE", given("webhook", emulators::GITHUB_WEBHOOK_SECRET)),
    ];
    ok(what, sam(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env));
}

async fn teardown_and_restore(database: Option<(String, String)>) {
    let emulators = Emulators::start().await.unwrap();
    emulators.github.add_installation(5, "octo-org", &[("octo-org/hello-world", &["main"])]);
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("first/sam.env");
    let (first_db, second_db) = database.clone().unzip();
    scripted_setup(&emulators, &config, first_db.as_deref(), "setup --yes (scripted, existing app)");
    let api_host = emulators.cloudflare.records();
    assert_eq!(api_host.len(), 1, "{api_host:?}");
    assert_eq!((api_host[0].name.as_str(), api_host[0].content.as_str()), ("sam.sam.test", "203.0.113.10"));

    // Use it: a user, a Hetzner token, a workspace (a server and a record).
    let serve = Serve::start(&config, true).await;
    let cookie = serve.sign_in(&emulators).await;
    let (status, body) = serve
        .post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": emulators.hetzner.token()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, ws) = serve
        .post(
            "/api/workspaces",
            &cookie,
            json!({"name": "keep", "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "fsn1", "installationId": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    for _ in 0..200 {
        if emulators.cloudflare.records().len() == 2 && emulators.hetzner.servers().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(emulators.hetzner.servers().len(), 1);
    assert_eq!(emulators.cloudflare.records().len(), 2, "API host and workspace records");
    serve.terminate().await;
    // A SAM-labelled server whose workspace this database does not know (it
    // may be another deployment's): teardown lists it and leaves it alone.
    emulators.hetzner.insert_server(
        "sam-other",
        [("sam-managed".to_owned(), "true".to_owned()), ("sam-workspace".to_owned(), "ws-elsewhere".to_owned())]
            .into_iter()
            .collect(),
    );
    // A workspace record under a sub-domain of the base (another deployment
    // at staging.sam.test): not this deployment's.
    let zone = setting(&config, "SAM_CLOUDFLARE_ZONE_ID").unwrap();
    let cloudflare = sam_providers::cloudflare::CloudflareDns::new(sam_providers::cloudflare::CloudflareConfig {
        base_url: emulators.cloudflare.base_url().to_owned(),
        ..sam_providers::cloudflare::CloudflareConfig::new(emulators.cloudflare.token().into(), zone)
    })
    .unwrap();
    sam_core::ports::DnsProvider::upsert_a_record(
        &cloudflare,
        "ws-x.staging.sam.test",
        "198.51.100.7".parse().unwrap(),
        None,
    )
    .await
    .unwrap();
    // Another deployment's workspace record right under the same base domain
    // (two deployments sharing one): marked with its id, so left alone.
    let theirs = format!("{}.sam.test", sam_core::domain::WorkspaceId::new().dns_label());
    let other_deployment = sam_core::domain::DeploymentId::new("other-deployment").unwrap();
    sam_core::ports::DnsProvider::upsert_a_record(
        &cloudflare,
        &theirs,
        "198.51.100.8".parse().unwrap(),
        Some(&other_deployment),
    )
    .await
    .unwrap();
    let survivors = || emulators.cloudflare.records().into_iter().map(|r| r.name).collect::<Vec<_>>();
    let other_servers = || emulators.hetzner.servers().into_iter().map(|s| s.name).collect::<Vec<_>>();

    let backup = root.path().join("backup");
    let cfg = config.to_str().unwrap();
    ok("backup", sam(&["backup", "--config", cfg, "--out", backup.to_str().unwrap()], &[]));
    assert_eq!(mode(&backup.join("keys/credentials-key.b64")), 0o600);

    let (output, _) = sam(&["teardown", "--config", cfg, "--confirm", "not-it"], &[]);
    assert!(!output.status.success());
    assert!(text(&output).contains("nothing was deleted"));
    assert_eq!(emulators.hetzner.servers().len(), 2, "a wrong name deletes nothing");
    let printed = ok("teardown", sam(&["teardown", "--config", cfg, "--confirm", "sam.test"], &[]));
    assert!(printed.contains("servers (1)"), "{printed}");
    assert!(printed.contains("DNS records (2)"), "{printed}");
    assert!(printed.contains("Left alone: 1 other") && printed.contains("sam-other"), "{printed}");
    assert!(printed.contains(&format!("{theirs} (other-deployment)")), "{printed}");
    assert_eq!(other_servers(), ["sam-other"], "only the other deployment's server is left");
    let left = [String::from("ws-x.staging.sam.test"), theirs.clone()];
    assert_eq!(survivors(), left, "only the sub-domain's and the other deployment's records are left");
    match &first_db {
        None => assert!(!root.path().join("first/sam.db").exists(), "database deleted"),
        Some(url) => {
            let (output, _) =
                sam(&["doctor", "--config", cfg, "--resolver=cloudflare-api"], &[("SAM_DATABASE_URL", url.clone())]);
            assert!(text(&output).contains("no migrations applied"), "{}", text(&output));
        }
    }

    // Redeploy from nothing: new configuration, new keys, empty database.
    let config2 = root.path().join("second/sam.env");
    scripted_setup(&emulators, &config2, second_db.as_deref(), "setup --yes (redeploy)");
    let cfg2 = config2.to_str().unwrap();
    assert_ne!(
        std::fs::read(root.path().join("second/keys/credentials-key.b64")).unwrap(),
        std::fs::read(backup.join("keys/credentials-key.b64")).unwrap(),
        "the redeploy made new keys"
    );
    let printed = ok("restore", sam(&["restore", "--config", cfg2, "--from", backup.to_str().unwrap()], &[]));
    assert!(printed.contains("1 users") && printed.contains("credentials decrypt, 0 do not"), "{printed}");
    let (output, _) = sam(&["restore", "--config", cfg2, "--from", backup.to_str().unwrap()], &[]);
    assert!(!output.status.success() && text(&output).contains("--force"), "{}", text(&output));
    let printed =
        ok("restore --force", sam(&["restore", "--config", cfg2, "--from", backup.to_str().unwrap(), "--force"], &[]));
    if second_db.is_none() {
        assert!(printed.contains("the database that was there is kept as"), "{printed}");
        let kept = std::fs::read_dir(root.path().join("second"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sam.db.replaced-") && !n.ends_with("-wal") && !n.ends_with("-shm"))
            .count();
        assert_eq!(kept, 2, "both replaced databases are kept");
    }
    ok("migrate", sam(&["migrate", "--config", cfg2], &[]));

    // The same session, user and credential, on the new deployment.
    let serve = Serve::start(&config2, true).await;
    let (status, me) = serve.get("/api/auth/me", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "the user and their session came back");
    assert_eq!(me["login"], "octocat");
    let (status, list) = serve.get("/api/credentials", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["provider"], "hetzner");
    assert!(list[0]["catalogueError"].is_null(), "the credential decrypts with the restored key: {list}");
    serve.terminate().await;
    ok("teardown (second deployment)", sam(&["teardown", "--config", cfg2, "--confirm", "sam.test"], &[]));
    assert_eq!(other_servers(), ["sam-other"]);
    assert_eq!(survivors(), left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_redeploy_restore_on_sqlite() {
    teardown_and_restore(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_redeploy_restore_on_postgres() {
    if sam_providers::store::admin::pg_tool("pg_dump").is_none()
        || sam_providers::store::admin::pg_tool("pg_restore").is_none()
    {
        if std::env::var("SAM_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("SAM_SKIP_POSTGRES=1: skipping a PostgreSQL test (pg_dump/pg_restore not found)");
            return;
        }
        panic!(
            "pg_dump/pg_restore not found (on PATH or under /usr/lib/postgresql/*/bin): install the PostgreSQL \
             client (scripts/test.d/10-postgres.sh does), or set SAM_SKIP_POSTGRES=1 to skip explicitly"
        );
    }
    let Some(first) = postgres::fresh_database_url().await else { return };
    let Some(second) = postgres::fresh_database_url().await else { return };
    teardown_and_restore(Some((first, second))).await;
}

/// `deploy/install.sh --no-systemd` into a prefix: a first install (setup,
/// migrations, the version directory and the `current` switch), the server
/// started from `current` serving its own agents, then an upgrade to a
/// second version that keeps the configuration and the previous version,
/// and serves the new agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_and_upgrade_with_the_install_script() {
    use std::os::unix::fs::PermissionsExt as _;
    let emulators = Emulators::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/install.sh");
    let dist = |name: &str, version: Option<&str>, agent: &[u8]| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let server = dir.join("sam-server");
        match version {
            None => {
                std::fs::copy(env!("CARGO_BIN_EXE_sam-server"), &server).unwrap();
            }
            // A next release: the same program under another version number,
            // serving the agents beside it as a real binary would (its own
            // directory is the default agent directory).
            Some(v) => {
                std::fs::write(
                    &server,
                    format!(
                        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"sam-server {v}\"; exit 0; fi\n\
                         SAM_AGENT_DIR=$(dirname \"$0\") exec {} \"$@\"\n",
                        env!("CARGO_BIN_EXE_sam-server")
                    ),
                )
                .unwrap();
                std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // Stand-ins with the right ELF machine (what doctor checks), distinct
        // per release.
        fake_agents(&dir);
        for arch in ["amd64", "arm64"] {
            let path = dir.join(format!("sam-agent-{arch}"));
            let mut elf = std::fs::read(&path).unwrap();
            elf.extend_from_slice(agent);
            std::fs::write(path, elf).unwrap();
        }
        dir
    };
    let install = |from: &Path| {
        let started = Instant::now();
        let mut args = vec![
            script.display().to_string(),
            "--no-systemd".into(),
            format!("--from={}", from.display()),
            "--yes".into(),
            "--base-domain=sam.test".into(),
            "--public-url=https://sam.sam.test".into(),
            "--server-ip=203.0.113.10".into(),
            "--configure-zone".into(),
        ];
        args.extend(emulator_flags(&emulators));
        let output = std::process::Command::new("bash")
            .args(&args)
            .env("SAM_INSTALL_ROOT", &root)
            .env("CLOUDFLARE_API_TOKEN", emulators.cloudflare.token())
            .env("SAM_GITHUB_CLIENT_ID", emulators::GITHUB_CLIENT_ID)
            .env("SAM_GITHUB_APP_ID", emulators::GITHUB_APP_ID)
            .env("SAM_GITHUB_APP_SLUG", emulators::GITHUB_APP_SLUG)
            .env("SAM_GITHUB_CLIENT_SECRET_FILE", secret(work.path(), "client-secret", emulators::GITHUB_CLIENT_SECRET))
            .env("SAM_GITHUB_APP_PRIVATE_KEY_FILE", secret(work.path(), "app.pem", emulators::TEST_APP_PRIVATE_KEY_PEM))
            .env("SAM_GITHUB_WEBHOOK_SECRET_FILE", secret(work.path(), "webhook", emulators::GITHUB_WEBHOOK_SECRET))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let all = text(&output);
        assert!(output.status.success(), "install.sh failed:\n{all}");
        (all, started.elapsed())
    };
    let opt = root.join("opt/sam");
    let config = root.join("etc/sam/sam.env");
    let version = env!("CARGO_PKG_VERSION");

    let (out, took) = install(&dist("dist-1", None, b"agent one"));
    println!("TIMING install.sh (first install, --no-systemd): {:.2} s", took.as_secs_f64());
    assert!(out.contains(&format!("installing SAM {version}")), "{out}");
    assert_eq!(std::fs::read_link(opt.join("current")).unwrap(), opt.join(version));
    assert!(root.join("usr/local/bin/sam-server").is_symlink());
    assert_eq!(mode(&config) & 0o777, 0o600);
    let settings = std::fs::read_to_string(&config).unwrap();
    assert!(settings.contains(&format!("sqlite://{}", root.join("var/lib/sam/sam.db").display())), "{settings}");

    let check_agent = |serve: &Serve, expected: Vec<u8>| {
        let client = serve.client.clone();
        let url = format!("{}/api/agent/download?arch=amd64", serve.base);
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let sha = response.headers()["x-agent-sha256"].to_str().unwrap().to_owned();
            let body = response.bytes().await.unwrap();
            assert_eq!(body.as_ref(), expected.as_slice(), "the running version's own agent");
            assert_eq!(sha, sam_core::secret::sha256_hex(&expected));
        }
    };
    let serve = Serve::start_binary(&opt.join("current/sam-server"), &config, true).await;
    check_agent(&serve, std::fs::read(opt.join(version).join("sam-agent-amd64")).unwrap()).await;
    drop(serve);

    let (out, took) = install(&dist("dist-2", Some("9.9.9"), b"agent two"));
    println!("TIMING install.sh (upgrade, --no-systemd): {:.2} s", took.as_secs_f64());
    assert!(out.contains("installing SAM 9.9.9"), "{out}");
    assert_eq!(std::fs::read_link(opt.join("current")).unwrap(), opt.join("9.9.9"));
    assert!(opt.join(version).join("sam-agent-amd64").exists(), "the previous version is kept for a rollback");
    // Setup records the SAM_AGENT_DIR the stand-in's wrapper exports (a real
    // release needs none); everything else is kept as it was.
    let kept: String = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("SAM_AGENT_DIR="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept, settings, "the configuration is kept");
    let serve = Serve::start_binary(&opt.join("current/sam-server"), &config, true).await;
    check_agent(&serve, std::fs::read(opt.join("9.9.9/sam-agent-amd64")).unwrap()).await;
}

fn secret(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    path.display().to_string()
}
