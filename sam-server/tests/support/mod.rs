//! The real control plane on a random port, built by `deployment::build` from
//! a `ServeConfig` exactly as `sam-server serve` builds it: the real Hetzner,
//! Cloudflare and GitHub adapters against their emulators, real keys, and a
//! SQLite or PostgreSQL store. The client signs in through the real OAuth flow.
//!
//! [`api_suite!`] runs a test once per store.

#![allow(dead_code)] // each test binary uses the part it needs

pub mod contract;
#[path = "../../../sam-providers/tests/support/postgres.rs"]
pub mod postgres;

use std::time::Duration;

use clap::Parser;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use sam_providers::emulators::{self, EmulatedUser, Emulators};
use sam_server::config::ServeConfig;
use serde_json::{Value, json};

pub const HETZNER_TOKEN: &str = sam_providers::emulators::HETZNER_TOKEN;

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once on SQLite and once
/// on PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! api_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::support::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::support::Backend::Postgres).await }
            )*
        }
    };
}

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub emulators: Emulators,
    pub agent_dir: std::path::PathBuf,
    pub engine: std::sync::Arc<sam_core::engine::Engine>,
    pub store: std::sync::Arc<dyn sam_core::ports::Store>,
    /// The server's own OpenAPI document; every response through
    /// [`Server::send`] is checked against it.
    pub contract: contract::Contract,
    _dir: tempfile::TempDir,
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeConfig,
}

impl Server {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with_rate_limit(backend, 1000).await
    }

    /// `None` when the backend is PostgreSQL and skipping it was asked for.
    pub async fn start_with_rate_limit(backend: Backend, rate_limit_per_minute: u32) -> Option<Self> {
        Self::start_configured(backend, rate_limit_per_minute, &[]).await
    }

    /// A server with more settings (`--flag`, value).
    pub async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        Self::start_configured(backend, 1000, extra).await
    }

    pub async fn start_configured(
        backend: Backend,
        rate_limit_per_minute: u32,
        extra: &[(&str, &str)],
    ) -> Option<Self> {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("SAM_TEST_LOG").unwrap_or_else(|_| "off".into()))
            .try_init();
        let emulators = Emulators::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", d.join("sam.db").display()),
            Backend::Postgres => postgres::fresh_database_url().await?,
        };
        let keys = sam_providers::keys::generate_key_files(&d.join("keys")).unwrap();
        let secret = |name: &str, value: &str| {
            let path = d.join(name);
            std::fs::write(&path, value).unwrap();
            path.display().to_string()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let agent_dir = d.join("agents");
        std::fs::create_dir_all(&agent_dir).unwrap();
        let args: Vec<String> = [
            ("--public-url", base.clone()),
            ("--base-domain", emulators.cloudflare.zone_name()),
            ("--database-url", database_url),
            ("--jwt-private-key-file", keys.jwt_signing_key.display().to_string()),
            ("--encryption-key-file", keys.credentials_key.display().to_string()),
            ("--github-client-id", emulators::GITHUB_CLIENT_ID.into()),
            ("--github-client-secret-file", secret("gh-secret", emulators::GITHUB_CLIENT_SECRET)),
            ("--github-app-id", emulators::GITHUB_APP_ID.into()),
            ("--github-app-slug", emulators::GITHUB_APP_SLUG.into()),
            ("--github-app-private-key-file", secret("gh-key.pem", emulators::TEST_APP_PRIVATE_KEY_PEM)),
            ("--github-webhook-secret-file", secret("gh-hook", emulators::GITHUB_WEBHOOK_SECRET)),
            ("--github-web-url", emulators.github.base_url().to_owned()),
            ("--github-api-url", emulators.github.base_url().to_owned()),
            ("--cloudflare-api-token-file", secret("cf-token", &emulators.cloudflare.token())),
            ("--cloudflare-zone-id", emulators.cloudflare.zone_id()),
            ("--cloudflare-api-url", emulators.cloudflare.base_url().to_owned()),
            ("--hetzner-api-url", emulators.hetzner.base_url().to_owned()),
            ("--agent-dir", agent_dir.display().to_string()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(flag, value)| (*flag, (*value).to_owned())))
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect();
        let config = Cli::parse_from(std::iter::once("sam-server".to_owned()).chain(args)).serve;
        let mut deployment = sam_server::deployment::build(&config).await.unwrap_or_else(|p| panic!("{p}"));
        deployment.state.http.rate_limit_per_minute = rate_limit_per_minute;
        let engine = deployment.engine.clone();
        let store = deployment.store.clone();
        let app =
            sam_server::api::router(deployment.state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let document: Value =
            client.get(format!("{base}/api/openapi.json")).send().await.unwrap().json().await.unwrap();
        let contract = contract::Contract::new(document);
        Some(Self { base, client, emulators, agent_dir, engine, store, contract, _dir: dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Starts the OAuth flow: the emulator's authorize URL and the state
    /// cookie (`name=value`).
    pub async fn begin_sign_in(&self) -> (reqwest::Url, String) {
        let start = self.client.get(self.url("/api/auth/github")).send().await.unwrap();
        assert_eq!(start.status(), StatusCode::FOUND);
        let location = reqwest::Url::parse(start.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(self.emulators.github.base_url()), "{location}");
        let cookie = first_cookie(&start);
        self.checked("GET", "/api/auth/github", start).await;
        (location, cookie)
    }

    /// Approves the authorize URL as GitHub user `github_id` (`user<id>`);
    /// returns the code and the state.
    pub fn approve(&self, github_id: i64, authorize: &reqwest::Url) -> (String, String) {
        let param = |name: &str| authorize.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
        let user = EmulatedUser {
            id: github_id,
            login: format!("user{github_id}"),
            name: Some(format!("User {github_id}")),
            email: Some(format!("user{github_id}@example.com")),
        };
        let code = self.emulators.github.approve_as(user, &param("redirect_uri"), Some(&param("code_challenge")));
        (code, param("state"))
    }

    /// Signs in GitHub user `github_id` through the real OAuth flow; returns
    /// the session cookie (`name=value`).
    pub async fn sign_in(&self, github_id: i64) -> String {
        let callback = self.sign_in_callback(github_id).await;
        assert_eq!(callback.status(), StatusCode::FOUND, "{:?}", callback.text().await);
        let session = callback
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("sam_session="))
            .unwrap();
        assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
        session.split(';').next().unwrap().to_owned()
    }

    /// The OAuth flow up to the callback's answer, for GitHub user `github_id`.
    pub async fn sign_in_callback(&self, github_id: i64) -> reqwest::Response {
        let (authorize, oauth_cookie) = self.begin_sign_in().await;
        let (code, state) = self.approve(github_id, &authorize);
        self.client
            .get(self.url(&format!("/api/auth/callback/github?code={code}&state={state}")))
            .header(COOKIE, &oauth_cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method_name = method.to_string();
        let mut request = self.client.request(method, self.url(path)).header("origin", &self.base);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = self.checked(&method_name, path, response).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Reads a response to `method path` and checks it against the OpenAPI
    /// document.
    pub async fn checked(&self, method: &str, path: &str, response: reqwest::Response) -> String {
        let status = response.status().as_u16();
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.unwrap();
        self.contract.check(method, path, status, content_type.as_deref(), &text);
        text
    }

    pub async fn get(&self, path: &str, cookie: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, Some(cookie), None).await
    }

    pub async fn post(&self, path: &str, cookie: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(cookie), Some(body)).await
    }

    /// Installs the app (installation `id`) on `account` with `repositories`
    /// (each with `main` and `dev`), visible to GitHub user `github_id`.
    pub fn install_app(&self, id: i64, account: &str, github_id: i64, repositories: &[&str]) {
        let branches: &[&str] = &["main", "dev"];
        let repos: Vec<(&str, &[&str])> = repositories.iter().map(|r| (*r, branches)).collect();
        self.emulators.github.add_installation(id, account, &repos);
        self.emulators.github.share_installation(id, github_id);
    }

    /// A signed-in user with a Hetzner token and the app installed on octo-org
    /// (installation id = the GitHub id).
    pub async fn ready_user(&self, github_id: i64) -> String {
        self.install_app(github_id, "octo-org", github_id, &["octo-org/hello-world", "octo-org/api", "other-org/tool"]);
        let cookie = self.sign_in(github_id).await;
        let (status, body) =
            self.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, _) = self.get("/api/github/installations", &cookie).await;
        assert_eq!(status, StatusCode::OK);
        cookie
    }

    pub async fn wait_for(&self, cookie: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        // Generous: the emulators boot servers with a delay, and CI machines
        // are busy.
        for _ in 0..2000 {
            let (_, ws) = self.get(&format!("/api/workspaces/{id}"), cookie).await;
            if pred(&ws) {
                return ws;
            }
            last = ws;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("workspace {id} never matched; last seen {last}");
    }

    /// Waits for the background drive to create the workspace's server at the
    /// Hetzner emulator and returns the bootstrap token its cloud-init carries.
    pub async fn bootstrap_token(&self, id: &str) -> String {
        for _ in 0..1000 {
            let servers = self.emulators.hetzner.servers();
            if let Some(server) = servers.iter().find(|s| s.labels.get("sam-workspace").map(String::as_str) == Some(id))
                && self.server_recorded(id).await
            {
                return server
                    .user_data
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN="))
                    .unwrap()
                    .trim_matches(['"', '\''])
                    .to_owned();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no server was created for workspace {id}");
    }

    /// Whether the engine has recorded workspace `id`'s server (a real VM
    /// boots, and redeems its token, seconds after that; the emulator's
    /// server exists a moment before).
    async fn server_recorded(&self, id: &str) -> bool {
        let scan = sam_core::ports::WorkspaceScan {
            statuses: vec![sam_core::lifecycle::WorkspaceStatus::Creating],
            after: None,
            limit: 1000,
        };
        let creating = self.store.scan_workspaces(&scan).await.unwrap_or_default();
        creating.iter().any(|w| w.id.to_string() == id && w.lifecycle.server.is_some())
    }
}

pub fn first_cookie(response: &reqwest::Response) -> String {
    response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned()
}

pub fn workspace_body(name: &str) -> Value {
    json!({"name": name, "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"})
}
