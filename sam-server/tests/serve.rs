//! `sam-server serve` as a process, configured only through `SAM_*`
//! variables and secret files, against the Hetzner, Cloudflare and GitHub
//! emulators: sign-in through the OAuth flow, a Hetzner token, a workspace
//! that gets a server and a DNS record, delete, and a graceful SIGTERM. Once
//! on SQLite and once on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/process.rs"]
mod process;

#[path = "../../sam-providers/tests/support/postgres.rs"]
mod postgres;

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use sam_providers::emulators::{self, Emulators};
use serde_json::{Value, json};

/// The scraper's token every test server is given (`SAM_METRICS_TOKEN_FILE`).
const METRICS_TOKEN: &str = "metrics-token-of-the-test-scraper";

struct Serve {
    child: tokio::process::Child,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Serve {
    async fn start(emulators: &Emulators, database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = sam_providers::keys::generate_key_files(&dir.path().join("keys")).unwrap();
        Self::start_with_keys(emulators, database_url, &keys, &[]).await
    }

    /// A replica using `keys` (replicas must share them), with extra settings.
    async fn start_with_keys(
        emulators: &Emulators,
        database_url: Option<String>,
        keys: &sam_providers::keys::KeyFiles,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::start_on(emulators, database_url, keys, extra, process::HandedSockets::bind(1)).await
    }

    /// A server on `sockets` (kept by the caller across restarts, as systemd
    /// keeps a socket unit's).
    async fn start_on(
        emulators: &Emulators,
        database_url: Option<String>,
        keys: &sam_providers::keys::KeyFiles,
        extra: &[(&str, &str)],
        sockets: process::HandedSockets,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let secret = |name: &str, value: &str| {
            let path = d.join(name);
            std::fs::write(&path, value).unwrap();
            path
        };
        let port = sockets.port(0);
        let base = format!("http://127.0.0.1:{port}");
        let env: Vec<(&str, String)> = vec![
            ("SAM_LISTEN", format!("127.0.0.1:{port}")),
            ("SAM_PUBLIC_URL", base.clone()),
            ("SAM_BASE_DOMAIN", emulators.cloudflare.zone_name()),
            ("SAM_DATABASE_URL", database_url.unwrap_or_else(|| format!("sqlite://{}", d.join("sam.db").display()))),
            ("SAM_JWT_PRIVATE_KEY_FILE", keys.jwt_signing_key.display().to_string()),
            ("SAM_ENCRYPTION_KEY_FILE", keys.credentials_key.display().to_string()),
            ("SAM_GITHUB_CLIENT_ID", emulators::GITHUB_CLIENT_ID.into()),
            (
                "SAM_GITHUB_CLIENT_SECRET_FILE",
                secret("gh-secret", emulators::GITHUB_CLIENT_SECRET).display().to_string(),
            ),
            ("SAM_GITHUB_APP_ID", emulators::GITHUB_APP_ID.into()),
            ("SAM_GITHUB_APP_SLUG", emulators::GITHUB_APP_SLUG.into()),
            (
                "SAM_GITHUB_APP_PRIVATE_KEY_FILE",
                secret("gh-key.pem", emulators::TEST_APP_PRIVATE_KEY_PEM).display().to_string(),
            ),
            (
                "SAM_GITHUB_WEBHOOK_SECRET_FILE",
                secret("gh-hook", emulators::GITHUB_WEBHOOK_SECRET).display().to_string(),
            ),
            ("SAM_GITHUB_WEB_URL", emulators.github.base_url().to_owned()),
            ("SAM_GITHUB_API_URL", emulators.github.base_url().to_owned()),
            ("SAM_CLOUDFLARE_API_TOKEN_FILE", secret("cf-token", &emulators.cloudflare.token()).display().to_string()),
            ("SAM_CLOUDFLARE_ZONE_ID", emulators.cloudflare.zone_id()),
            ("SAM_CLOUDFLARE_API_URL", emulators.cloudflare.base_url().to_owned()),
            ("SAM_HETZNER_API_URL", emulators.hetzner.base_url().to_owned()),
            ("SAM_AGENT_DIR", d.display().to_string()),
            ("SAM_RECONCILE_INTERVAL_SECONDS", "1".into()),
            ("SAM_METRICS_TOKEN_FILE", secret("metrics-token", METRICS_TOKEN).display().to_string()),
        ];
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sam-server"));
        command
            .arg("serve")
            .envs(env)
            .envs(extra.iter().map(|(k, v)| (*k, *v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        sockets.hand_to(&mut command);
        let child = command.spawn().unwrap();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for _ in 0..300 {
            if client.get(format!("{base}/api/health")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Self { child, base, client, _dir: dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sam-server did not become healthy");
    }

    async fn sign_in(&self, emulators: &Emulators) -> String {
        process::sign_in(&self.client, &self.base, emulators).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .header("origin", &self.base);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn terminate(self) {
        process::terminate(self.child).await;
    }
}

async fn full_flow(database_url: Option<String>) {
    let emulators = Emulators::start().await.unwrap();
    emulators.github.add_installation(5, "octo-org", &[("octo-org/hello-world", &["main", "dev"])]);
    let serve = Serve::start(&emulators, database_url).await;
    let cookie = serve.sign_in(&emulators).await;
    let (status, me) = serve.call(reqwest::Method::GET, "/api/auth/me", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["githubId"].as_i64().is_some());

    let (status, body) = serve
        .call(reqwest::Method::POST, "/api/credentials", &cookie, Some(json!({"provider": "hetzner", "token": "nope"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = serve
        .call(
            reqwest::Method::POST,
            "/api/credentials",
            &cookie,
            Some(json!({"provider": "hetzner", "token": emulators.hetzner.token()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["locations"].as_array().unwrap().iter().any(|l| l["code"] == "fsn1"));
    let (status, installs) = serve.call(reqwest::Method::GET, "/api/github/installations", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(installs[0]["accountLogin"], "octo-org");
    let (status, branches) = serve
        .call(
            reqwest::Method::GET,
            "/api/github/repositories/octo-org/hello-world/branches?installation_id=5",
            &cookie,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(branches, json!(["main", "dev"]));

    let (status, ws) = serve
        .call(
            reqwest::Method::POST,
            "/api/workspaces",
            &cookie,
            Some(json!({"name": "e2e", "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let id = ws["id"].as_str().unwrap().to_owned();
    let hostname = format!("ws-{id}.{}", emulators.cloudflare.zone_name());
    for _ in 0..200 {
        if emulators.cloudflare.records().iter().any(|r| r.name == hostname) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let servers = emulators.hetzner.servers();
    assert_eq!(servers.len(), 1, "one server at the (emulated) provider");
    assert_eq!(servers[0].labels.get("sam-workspace").map(String::as_str), Some(id.as_str()));
    assert!(servers[0].user_data.contains("SAM_AGENT_BOOTSTRAP_TOKEN="));
    assert!(emulators.cloudflare.records().iter().any(|r| r.name == hostname), "DNS record set");

    let (status, _) = serve.call(reqwest::Method::DELETE, &format!("/api/workspaces/{id}"), &cookie, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..200 {
        if serve.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), &cookie, None).await.0
            == StatusCode::NOT_FOUND
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(emulators.hetzner.servers().is_empty(), "server deleted");
    assert!(!emulators.cloudflare.records().iter().any(|r| r.name == hostname), "record deleted");

    // Prometheus metrics on the main listener: only for the scraper's token
    // (SAM_METRICS_TOKEN_FILE); anyone else sees no such route.
    let metrics = format!("{}/metrics", serve.base);
    assert_eq!(serve.client.get(&metrics).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let wrong = serve.client.get(&metrics).bearer_auth("metrics-tokem").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    let scrape = serve.client.get(&metrics).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let text = scrape.text().await.unwrap();
    for series in [
        "sam_provider_call_duration_seconds_bucket{provider=\"hetzner\",operation=\"create_server\"",
        "sam_provider_call_duration_seconds_count{provider=\"cloudflare\"",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    serve.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_with_the_emulators() {
    full_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_with_the_emulators() {
    let Some(url) = postgres::fresh_database_url().await else { return };
    full_flow(Some(url)).await;
}

/// Two `serve` processes on one PostgreSQL database behind the same clouds:
/// 50 workspaces created and stopped through both, every one ends right, and
/// the emulated Hetzner saw exactly one server creation per workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_postgres() {
    use sam_providers::emulators::{CloudflareEmulatorConfig, GithubEmulatorConfig, HetznerEmulatorConfig};
    let Some(url) = postgres::fresh_database_url().await else { return };
    let emulators = Emulators::start_with(
        HetznerEmulatorConfig {
            max_servers: 200,
            boot_delay: Duration::from_millis(10),
            ..HetznerEmulatorConfig::default()
        },
        CloudflareEmulatorConfig::default(),
        GithubEmulatorConfig::default(),
    )
    .await
    .unwrap();
    emulators.github.add_installation(5, "octo-org", &[("octo-org/hello-world", &["main"])]);
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = sam_providers::keys::generate_key_files(&keys_dir.path().join("keys")).unwrap();
    let extra = [("SAM_MAX_WORKSPACES_PER_USER", "100")];
    let a = Serve::start_with_keys(&emulators, Some(url.clone()), &keys, &extra).await;
    let b = Serve::start_with_keys(&emulators, Some(url), &keys, &extra).await;
    let cookie = a.sign_in(&emulators).await;
    let (status, _) = b.call(reqwest::Method::GET, "/api/auth/me", &cookie, None).await;
    assert_eq!(status, StatusCode::OK, "sessions live in the shared database");
    let token = json!({"provider": "hetzner", "token": emulators.hetzner.token()});
    assert_eq!(a.call(reqwest::Method::POST, "/api/credentials", &cookie, Some(token)).await.0, StatusCode::CREATED);

    let mut ids = Vec::new();
    for n in 0..50 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let body = json!({"name": format!("r{n}"), "repository": "octo-org/hello-world", "branch": "main",
                          "vmSize": "small", "vmLocation": "fsn1", "installationId": 5});
        let (status, ws) = replica.call(reqwest::Method::POST, "/api/workspaces", &cookie, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");
        ids.push(ws["id"].as_str().unwrap().to_owned());
    }
    let all_have_servers = || emulators.hetzner.servers().len() == 50;
    for _ in 0..400 {
        if all_have_servers() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all_have_servers(), "{} servers", emulators.hetzner.servers().len());
    for (n, id) in ids.iter().enumerate() {
        let replica = if n % 2 == 0 { &b } else { &a };
        let (status, _) =
            replica.call(reqwest::Method::POST, &format!("/api/workspaces/{id}/stop"), &cookie, None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let mut stopped = 0;
    for _ in 0..400 {
        let (_, list) = a.call(reqwest::Method::GET, "/api/workspaces?status=stopped", &cookie, None).await;
        stopped = list.as_array().map_or(0, Vec::len);
        if stopped == 50 && emulators.hetzner.servers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stopped, 50, "every workspace ends stopped");
    assert!(emulators.hetzner.servers().is_empty(), "no server left");
    assert!(emulators.cloudflare.records().is_empty(), "no record left");
    assert_eq!(
        emulators.hetzner.faults().count("POST", "/v1/servers"),
        50,
        "exactly one server creation per workspace"
    );
    a.terminate().await;
    b.terminate().await;
}

fn sam_server(args: &[&str], env: &[(&str, String)]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// Key rotation without losing anyone: after `keys rotate` the server runs
/// with the old keys as "previous", old sealed credentials still open, the
/// JWKS publishes both signing keys, and after `keys reseal` the old AES key
/// is no longer needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_reseal_keep_every_credential() {
    let emulators = Emulators::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let keys = sam_providers::keys::generate_key_files(&keys_dir).unwrap();
    let db = format!("sqlite://{}", dir.path().join("sam.db").display());

    let before = Serve::start_with_keys(&emulators, Some(db.clone()), &keys, &[]).await;
    let cookie = before.sign_in(&emulators).await;
    let token = json!({"provider": "hetzner", "token": emulators.hetzner.token()});
    assert_eq!(
        before.call(reqwest::Method::POST, "/api/credentials", &cookie, Some(token)).await.0,
        StatusCode::CREATED
    );
    before.terminate().await;

    let printed = sam_server(&["keys", "rotate", "--dir", keys_dir.to_str().unwrap()], &[]);
    let setting =
        |name: &str| printed.lines().find_map(|l| l.trim().strip_prefix(&format!("{name}="))).unwrap().to_owned();
    let (old_jwt, old_aes) = (setting("SAM_JWT_PREVIOUS_KEY_FILES"), setting("SAM_OLD_ENCRYPTION_KEY_FILES"));
    let overlap =
        [("SAM_JWT_PREVIOUS_KEY_FILES", old_jwt.as_str()), ("SAM_OLD_ENCRYPTION_KEY_FILES", old_aes.as_str())];
    let during = Serve::start_with_keys(&emulators, Some(db.clone()), &keys, &overlap).await;
    let (status, list) = during.call(reqwest::Method::GET, "/api/credentials", &cookie, None).await;
    assert_eq!(status, StatusCode::OK, "the session survives the rotation");
    assert!(list[0]["catalogueError"].is_null(), "the old blob opens with the old key: {list}");
    let jwks: Value =
        during.client.get(format!("{}/.well-known/jwks.json", during.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "old and new signing keys published");
    let reseal = sam_server(
        &["keys", "reseal"],
        &[
            ("SAM_DATABASE_URL", db.clone()),
            ("SAM_ENCRYPTION_KEY_FILE", keys.credentials_key.display().to_string()),
            ("SAM_OLD_ENCRYPTION_KEY_FILES", old_aes.clone()),
        ],
    );
    assert!(reseal.contains("hetzner"), "{reseal}");
    during.terminate().await;

    let after = Serve::start_with_keys(&emulators, Some(db), &keys, &[]).await;
    let (status, list) = after.call(reqwest::Method::GET, "/api/credentials", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list[0]["catalogueError"].is_null(), "re-sealed under the new key: {list}");
    after.terminate().await;
}

#[test]
fn missing_settings_are_reported_together() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
        .args(["serve", "--database-url", "sqlite::memory:"])
        .env_remove("SAM_PUBLIC_URL")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "SAM_PUBLIC_URL",
        "SAM_BASE_DOMAIN",
        "SAM_JWT_PRIVATE_KEY_FILE",
        "SAM_GITHUB_CLIENT_SECRET_FILE",
        "SAM_CLOUDFLARE_ZONE_ID",
    ] {
        assert!(stderr.contains(needle), "{needle} named in:\n{stderr}");
    }
}

/// `check-config` reports every problem in one run, never prints a password,
/// and does not create (or migrate) the database it checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_problem_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("not-created.db");
    let run = |database_url: String| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
            .arg("check-config")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SAM_DATABASE_URL", database_url)
            .env("SAM_ENCRYPTION_KEY_FILE", dir.path().join("missing.key"))
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    };
    let (ok, text) = run(format!("sqlite://{}", db.display()));
    assert!(!ok, "{text}");
    for expected in [
        "the public URL is missing (set SAM_PUBLIC_URL)",
        "the base domain is missing (set SAM_BASE_DOMAIN)",
        "the JWT signing key is missing (set SAM_JWT_PRIVATE_KEY_FILE)",
        "encryption key",
        "missing.key",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!db.exists(), "check-config created the database");

    let (ok, text) = run("postgres://sam:hunter2@127.0.0.1:1/sam".into());
    assert!(!ok);
    assert!(!text.contains("hunter2"), "a password was printed:\n{text}");
}

/// Plays one workspace's agent over HTTP: redeems the bootstrap token found
/// in its server's user data, reports ready; returns the callback credential.
async fn boot_agent(serve: &Serve, emulators: &Emulators, workspace: &str) -> String {
    let mut token = None;
    for _ in 0..200 {
        token = emulators.hetzner.servers().into_iter().find_map(|s| {
            (s.labels.get("sam-workspace").map(String::as_str) == Some(workspace)).then(|| {
                s.user_data
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=").map(str::to_owned))
                    .unwrap()
            })
        });
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let token = token.expect("a server for the workspace");
    let grant: Value =
        serve.client.post(format!("{}/api/bootstrap/{token}", serve.base)).send().await.unwrap().json().await.unwrap();
    let callback = grant["callbackToken"].as_str().unwrap().to_owned();
    let ready = serve
        .client
        .post(format!("{}/api/workspaces/{workspace}/boot-progress", serve.base))
        .bearer_auth(&callback)
        .json(&json!({"step": "ready", "status": "done"}))
        .send()
        .await
        .unwrap();
    assert!(ready.status().is_success(), "{}", ready.status());
    callback
}

async fn heartbeat(serve: &Serve, workspace: &str, callback: &str) -> StatusCode {
    serve
        .client
        .post(format!("{}/api/workspaces/{workspace}/heartbeat", serve.base))
        .bearer_auth(callback)
        .json(&json!({"idleSeconds": 0, "activeSessions": 1}))
        .send()
        .await
        .unwrap()
        .status()
}

/// Issue 16's outage test with real processes: the control plane is killed
/// with SIGKILL while 20 workspaces run, stays down for longer than the
/// (shortened) heartbeat timeout, and is started again: no workspace is
/// stopped, errored, deleted or even marked; heartbeats resume; the one agent
/// that stays silent is marked "agent unreachable" (and kept) only a full
/// heartbeat timeout after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_killed_mid_flight_destroys_nothing() {
    let emulators = Emulators::start().await.unwrap();
    emulators.github.add_installation(5, "octo-org", &[("octo-org/hello-world", &["main"])]);
    let root = tempfile::tempdir().unwrap();
    let keys = sam_providers::keys::generate_key_files(&root.path().join("keys")).unwrap();
    let database = format!("sqlite://{}", root.path().join("sam.db").display());
    let settings = [("SAM_HEARTBEAT_TIMEOUT_SECONDS", "3"), ("SAM_MAX_WORKSPACES_PER_USER", "20")];
    // One listening socket for both lives, as a systemd socket unit keeps it:
    // the control plane's URL (and so its tokens' issuer) stays the same.
    let socket = process::HandedSockets::bind(1);
    let mut serve = Serve::start_on(&emulators, Some(database.clone()), &keys, &settings, socket.try_clone()).await;
    let cookie = serve.sign_in(&emulators).await;
    let credential = json!({"provider": "hetzner", "token": emulators.hetzner.token()});
    let (status, body) = serve.call(reqwest::Method::POST, "/api/credentials", &cookie, Some(credential)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut agents = Vec::new();
    for n in 0..20 {
        let spec = json!({"name": format!("busy-{n}"), "repository": "octo-org/hello-world", "branch": "main",
                          "vmSize": "small", "vmLocation": "fsn1", "installationId": 5});
        let (status, ws) = serve.call(reqwest::Method::POST, "/api/workspaces", &cookie, Some(spec)).await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");
        let id = ws["id"].as_str().unwrap().to_owned();
        let callback = boot_agent(&serve, &emulators, &id).await;
        agents.push((id, callback));
    }
    for (id, callback) in &agents {
        assert_eq!(heartbeat(&serve, id, callback).await, StatusCode::OK);
    }

    serve.child.kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let serve = Serve::start_on(&emulators, Some(database), &keys, &settings, socket).await;
    let restarted = std::time::Instant::now();
    let (silent, talking) = agents.split_last().unwrap();
    let mut marked_after = None;
    while restarted.elapsed() < Duration::from_secs(8) {
        for (id, callback) in talking {
            assert_eq!(heartbeat(&serve, id, callback).await, StatusCode::OK);
        }
        let (_, ws) = serve.call(reqwest::Method::GET, &format!("/api/workspaces/{}", silent.0), &cookie, None).await;
        if marked_after.is_none() && ws["statusReason"] == "agent_unreachable" {
            marked_after = Some(restarted.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let marked_after = marked_after.expect("the silent agent is marked");
    eprintln!("the silent agent was judged {} ms after the restart", marked_after.as_millis());
    assert!(marked_after >= Duration::from_secs(3), "not before a full heartbeat timeout: {marked_after:?}");
    let (_, list) = serve.call(reqwest::Method::GET, "/api/workspaces", &cookie, None).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 20);
    for ws in list {
        assert_eq!(ws["status"], "running", "{ws}");
        let marked = ws["id"] == silent.0.as_str();
        assert_eq!(ws["statusReason"] == "agent_unreachable", marked, "{ws}");
    }
    assert_eq!(emulators.hetzner.servers().len(), 20, "no server deleted");
    assert_eq!(emulators.cloudflare.records().len(), 20, "no record deleted");
    serve.terminate().await;
}

/// One delivery id reaching both replicas at once (GitHub redelivers, or a
/// load balancer retries) is acknowledged once, the other copy as a
/// duplicate: the delivery log lives in the shared database (both may apply
/// it — installation changes are idempotent — since a delivery is recorded
/// only after it is applied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivery_is_applied_once_across_replicas() {
    let Some(url) = postgres::fresh_database_url().await else { return };
    let emulators = Emulators::start().await.unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = sam_providers::keys::generate_key_files(&keys_dir.path().join("keys")).unwrap();
    let a = Serve::start_with_keys(&emulators, Some(url.clone()), &keys, &[]).await;
    let b = Serve::start_with_keys(&emulators, Some(url), &keys, &[]).await;
    let github = &emulators.github;
    for n in 0..10 {
        let payload = github.installation_payload("created", 900 + n);
        let body = serde_json::to_vec(&payload).unwrap();
        let signature = github.sign(&body);
        let delivery = format!("replicated-{n}");
        let (to_a, to_b) = (format!("{}/api/github/webhook", a.base), format!("{}/api/github/webhook", b.base));
        let (x, y) = tokio::join!(
            github.send_webhook_raw(&to_a, "installation", &delivery, &body, Some(&signature)),
            github.send_webhook_raw(&to_b, "installation", &delivery, &body, Some(&signature)),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!((x.status, y.status), (200, 200));
        let mut answers = [x.body.contains("duplicate"), y.body.contains("duplicate")];
        answers.sort_unstable();
        assert_eq!(answers, [false, true], "one applied, one recognised as a duplicate: {} / {}", x.body, y.body);
    }
}

/// Eight hours after sign-in both replicas meet the expired GitHub token at
/// once: each call succeeds, GitHub sees one refresh (the other replica
/// picks up the renewed pair from the database), and the user stays signed
/// in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_renew_an_expired_github_sign_in_once() {
    let Some(url) = postgres::fresh_database_url().await else { return };
    let emulators = Emulators::start().await.unwrap();
    emulators.github.add_installation(5, "octo-org", &[("octo-org/hello-world", &["main"])]);
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = sam_providers::keys::generate_key_files(&keys_dir.path().join("keys")).unwrap();
    let a = Serve::start_with_keys(&emulators, Some(url.clone()), &keys, &[]).await;
    let b = Serve::start_with_keys(&emulators, Some(url), &keys, &[]).await;
    let cookie = a.sign_in(&emulators).await;
    for round in 1..=3 {
        emulators.github.expire_user_tokens();
        let path = "/api/github/repositories?installation_id=5";
        let (x, y) = tokio::join!(
            a.call(reqwest::Method::GET, path, &cookie, None),
            b.call(reqwest::Method::GET, path, &cookie, None)
        );
        assert_eq!((x.0, y.0), (StatusCode::OK, StatusCode::OK), "round {round}: {} / {}", x.1, y.1);
        assert_eq!(emulators.github.refreshes(), round, "one refresh per expiry");
        let (status, _) = b.call(reqwest::Method::GET, "/api/auth/me", &cookie, None).await;
        assert_eq!(status, StatusCode::OK, "still signed in");
    }
}
