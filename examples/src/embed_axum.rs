//! SAM inside an existing axum application.
//!
//! The host application has its own routes (`/` and `/internal/status`) and
//! hands every other request to SAM's API router from the `sam-server`
//! library, with [`Router::fallback_service`]: the host's routes win, and SAM
//! keeps the paths its web pages, OAuth callback and agents expect (`/api/…`,
//! `/.well-known/jwks.json`). Both sides share one [`Engine`]: the host's status
//! page reads the same workspaces SAM's API serves.
//!
//! (Nesting SAM under a prefix, `Router::nest("/sam", …)`, also routes, but the
//! web UI and the OAuth redirect URI assume SAM is at the root of its origin.)
//!
//! `cargo run -p sam-examples --example embed_axum`

use std::io::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, response::Html};
use sam_core::accounts::{Accounts, AccountsConfig};
use sam_core::engine::{Engine, EngineConfig, Ports};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{Store, SystemClock, WorkspaceScan};
use sam_core::testkit::fakes::{FakeCipher, FakeCloud, FakeDnsZone, FakeGithub, FakeTokenAuthority, MemoryStore};
use sam_server::state::{AppState, HttpSettings};
use serde_json::{Value, json};

use crate::{Error, demo};

/// The host application's own state.
#[derive(Clone)]
struct Host {
    /// The store the host gave SAM's engine, read directly.
    store: Arc<dyn Store>,
}

/// `GET /`: the host's home page.
async fn home() -> Html<&'static str> {
    Html("<h1>Acme internal tools</h1><p>Workspaces are served by SAM under /api.</p>")
}

/// `GET /internal/status`: the host's status, reading SAM's store directly.
async fn status(State(host): State<Host>) -> Json<Value> {
    let scan = WorkspaceScan { statuses: WorkspaceStatus::ALL.to_vec(), after: None, limit: 1000 };
    match host.store.scan_workspaces(&scan).await {
        Ok(workspaces) => {
            let running = workspaces.iter().filter(|w| w.status() == WorkspaceStatus::Running).count();
            Json(json!({"status": "ok", "workspaces": workspaces.len(), "running": running}))
        }
        Err(e) => Json(json!({"status": "degraded", "error": e.to_string()})),
    }
}

/// The host's routes, with SAM's API answering everything else.
pub fn app(store: Arc<dyn Store>, sam_api: Router) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/internal/status", get(status))
        .with_state(Host { store })
        .fallback_service(sam_api)
}

/// What the example saw, for the tests.
#[derive(Debug)]
pub struct Responses {
    /// `GET /` (host): status and body.
    pub home: (u16, String),
    /// `GET /internal/status` (host).
    pub internal_status: (u16, Value),
    /// `GET /api/health` (SAM).
    pub sam_health: (u16, Value),
    /// `GET /api/workspaces` without a session (SAM refuses).
    pub sam_workspaces_anonymous: (u16, Value),
    /// `POST /api/bootstrap/{token}` of the workspace the host created (SAM).
    pub sam_bootstrap: (u16, Value),
}

/// Runs the example: serves the combined application on a random loopback
/// port, sends a request to each side, and stops.
pub async fn run(out: &mut dyn Write) -> Result<Responses, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);

    // The engine and the ports (fakes here; `sam-providers` adapters in a
    // real deployment).
    let cloud = Arc::new(FakeCloud::new());
    let cloud_token = cloud.add_token("cloud-token");
    let github = Arc::new(FakeGithub::new(30));
    let tokens = Arc::new(FakeTokenAuthority::new(&base, "k1"));
    let ports = Ports {
        store: Arc::new(MemoryStore::new()),
        compute: cloud.clone(),
        dns: Arc::new(FakeDnsZone::new()),
        repos: github.clone(),
        cipher: Arc::new(FakeCipher::new(1, "example key")),
        tokens: tokens.clone(),
        clock: Arc::new(SystemClock),
    };
    let engine = Arc::new(Engine::new(ports.clone(), EngineConfig::new("ws.example.dev", base.clone())));

    // SAM's API router over the same engine.
    let state = AppState {
        engine: engine.clone(),
        accounts: Arc::new(Accounts::new(ports.clone(), github.clone(), AccountsConfig::default())),
        issuer: tokens.clone(),
        verifier: tokens,
        webhooks: None,
        http: HttpSettings::new(base.clone(), std::env::temp_dir().join("sam-agents")),
    };
    let app = app(ports.store.clone(), sam_server::api::router(state));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    writeln!(out, "serving the host application with SAM inside at {base}")?;

    // The host provisions a workspace through the shared engine.
    let user = demo::sign_up(&ports, &github, cloud_token.expose()).await?;
    let ws = engine.create(user, demo::spec("embedded", "fsn1")?, demo::INSTALLATION).await?;
    engine.drive(user, ws.id).await?;
    let bootstrap = cloud
        .user_data_of(ws.id)
        .and_then(|data| demo::bootstrap_token(&data))
        .ok_or("the workspace's server carries no bootstrap token")?;

    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let response = get("/").await?;
    let home = (response.status().as_u16(), response.text().await?);
    let response = get("/internal/status").await?;
    let internal_status = (response.status().as_u16(), response.json().await?);
    let response = get("/api/health").await?;
    let sam_health = (response.status().as_u16(), response.json().await?);
    let response = get("/api/workspaces").await?;
    let sam_workspaces_anonymous = (response.status().as_u16(), response.json().await?);
    // What the agent on the new server does first, through SAM's API.
    let response = client.post(format!("{base}/api/bootstrap/{bootstrap}")).send().await?;
    let sam_bootstrap: (u16, Value) = (response.status().as_u16(), response.json().await?);

    writeln!(out, "host  GET /                     → {} {}", home.0, home.1)?;
    writeln!(out, "host  GET /internal/status      → {} {}", internal_status.0, internal_status.1)?;
    writeln!(out, "SAM   GET /api/health           → {} {}", sam_health.0, sam_health.1)?;
    writeln!(out, "SAM   GET /api/workspaces       → {} {}", sam_workspaces_anonymous.0, sam_workspaces_anonymous.1)?;
    writeln!(
        out,
        "SAM   POST /api/bootstrap/…     → {} workspace {}",
        sam_bootstrap.0,
        sam_bootstrap.1["workspaceId"].as_str().unwrap_or("-")
    )?;

    let _ = stop.send(());
    server.await??;
    Ok(Responses { home, internal_status, sam_health, sam_workspaces_anonymous, sam_bootstrap })
}
