//! A real server on a random port with the testkit fakes behind it, and an
//! HTTP client that signs in through the real OAuth flow.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sam_core::domain::{GithubUserId, InstallationId};
use sam_core::engine::{Engine, EngineConfig, Ports, RetryPolicy};
use sam_core::ports::InstallationInfo;
use sam_core::testkit::fakes::*;
use sam_core::testkit::sample_new_user;
use sam_server::state::{AppState, HttpSettings};
use serde_json::{Value, json};

pub const HETZNER_TOKEN: &str = "hcloud-test-token";
pub const WEBHOOK_SECRET: &str = sam_providers::emulators::GITHUB_WEBHOOK_SECRET;

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub github: Arc<FakeGithub>,
    pub cloud: Arc<FakeCloud>,
    pub agent_dir: tempdir::Dir,
    pub engine: Arc<Engine>,
}

pub mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with_rate_limit(1000).await
    }

    pub async fn start_with_rate_limit(rate_limit_per_minute: u32) -> Self {
        let clock = ManualClock::at(time::OffsetDateTime::now_utc());
        let cloud = Arc::new(FakeCloud::new());
        cloud.add_token(HETZNER_TOKEN);
        let github = Arc::new(FakeGithub::new(2));
        let tokens = Arc::new(FakeTokenAuthority::new("http://sam.test", "k1"));
        let store = Arc::new(MemoryStore::new());
        let ports = Ports {
            store,
            compute: cloud.clone(),
            dns: Arc::new(FakeDnsZone::new()),
            repos: github.clone(),
            cipher: Arc::new(FakeCipher::new(1, "server key")),
            tokens: tokens.clone(),
            clock: Arc::new(clock),
        };
        let mut config = EngineConfig::new("ws.sam.test", "http://sam.test");
        config.retry = RetryPolicy::immediate(2);
        let engine = Arc::new(Engine::new(ports, config));
        let engine_handle = engine.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let agent_dir = std::env::temp_dir().join(format!("sam-agents-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&agent_dir).unwrap();
        let state = AppState {
            engine,
            identity: github.clone(),
            issuer: tokens.clone(),
            verifier: tokens,
            webhooks: Some(Arc::new(sam_providers::github::WebhookVerifier::new(
                sam_core::secret::SecretString::new(WEBHOOK_SECRET),
                Arc::new(sam_providers::github::InMemoryDeliveryLog::default()),
            ))),
            http: HttpSettings {
                public_url: base.clone(),
                secure_cookies: false,
                session_ttl: Duration::from_secs(3600),
                agent_dir: agent_dir.clone(),
                max_body_bytes: 64 * 1024,
                rate_limit_per_minute,
                trust_forwarded_for: false,
            },
        };
        let app = sam_server::api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base, client, github, cloud, agent_dir: tempdir::Dir(agent_dir), engine: engine_handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in GitHub user `github_id` through the real OAuth flow; returns the
    /// session cookie (`name=value`).
    pub async fn sign_in(&self, github_id: i64) -> String {
        let start = self.client.get(self.url("/api/auth/github")).send().await.unwrap();
        assert_eq!(start.status(), StatusCode::FOUND);
        let location = start.headers()[LOCATION].to_str().unwrap().to_owned();
        let oauth_cookie = first_cookie(&start);
        let param = |name: &str| {
            location.split(['?', '&']).find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().to_owned()
        };
        let code = self.github.approve(&param("code_challenge"), sample_new_user(github_id));
        let callback = self
            .client
            .get(self.url(&format!("/api/auth/callback/github?code={code}&state={}", param("state"))))
            .header(COOKIE, &oauth_cookie)
            .send()
            .await
            .unwrap();
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

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path)).header("origin", &self.base);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, cookie: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, Some(cookie), None).await
    }

    pub async fn post(&self, path: &str, cookie: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(cookie), Some(body)).await
    }

    /// A signed-in user with a Hetzner token and the app installed on octo-org.
    pub async fn ready_user(&self, github_id: i64) -> String {
        self.github.add_installation(
            InstallationInfo {
                id: InstallationId(github_id),
                account_login: "octo-org".into(),
                account_type: "Organization".into(),
                account_id: GithubUserId(9),
                suspended: false,
            },
            github_id,
            &["octo-org/hello-world", "octo-org/api", "other-org/tool"],
        );
        let cookie = self.sign_in(github_id).await;
        let (status, _) =
            self.post("/api/credentials", &cookie, json!({"provider": "hetzner", "token": HETZNER_TOKEN})).await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = self.get("/api/github/installations", &cookie).await;
        assert_eq!(status, StatusCode::OK);
        cookie
    }

    pub async fn wait_for(&self, cookie: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let (_, ws) = self.get(&format!("/api/workspaces/{id}"), cookie).await;
            if pred(&ws) {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("workspace {id} never matched");
    }
}

pub fn first_cookie(response: &reqwest::Response) -> String {
    response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned()
}

pub fn workspace_body(name: &str) -> Value {
    json!({"name": name, "repository": "octo-org/hello-world", "branch": "main", "vmSize": "small", "vmLocation": "fsn1"})
}

impl Server {
    /// Waits for the background drive to create the workspace's server and
    /// returns the bootstrap token its cloud-init carries.
    pub async fn bootstrap_token(&self, id: &str) -> String {
        let wid: sam_core::domain::WorkspaceId = id.parse().unwrap();
        for _ in 0..200 {
            if self.cloud.user_data_of(wid).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let data = self.cloud.user_data_of(wid).expect("the server was created");
        data.lines().find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=")).unwrap().to_owned()
    }
}
