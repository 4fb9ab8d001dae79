//! A local control API for running emulators, for people and programs that
//! are not Rust tests: see the state, inject faults once or until cleared,
//! slow a service down, make the next VMs never start their agent. `sam-server
//! dev` serves it on a loopback port of its own and prints the address; it
//! is never part of an emulated provider's API.
//!
//! | endpoint | does |
//! |---|---|
//! | `GET /` | the services' base URLs and test tokens, and this table's endpoints |
//! | `GET /state` | servers and firewalls (Hetzner), records, Origin CA certificates and zone settings (Cloudflare), installations (GitHub) |
//! | `POST /faults` | `{service, method?, path?, fault, times?}`: `service` `hetzner`, `cloudflare` or `github`; `method` (default `*`) and `path` as the emulator sees it, a trailing `*` for a prefix (default every path; Hetzner's start `/v1`, Cloudflare's `/client/v4`); `fault` one of `{"error": 429\|500\|503\|412\|<status>}`, `{"latency_ms": n}`, `{"drop_response_ms": n}` (the request takes effect, the answer comes too late); `times` uses, absent: until cleared |
//! | `DELETE /faults` | clears every fault (`?service=` one service's) |
//! | `POST /latency` | `{service, ms}`: every request of the service waits `ms` (until cleared) |
//! | `POST /hetzner/agentless` | `{servers: n}`: the next `n` servers boot but never start their agent |
//! | `GET /requests?service=` | the requests a service received (method, path, query) |
//! | `GET /hetzner/servers` | every server in full, user data included (what a VM runtime boots from) |
//! | `POST /github/installations` | `{id, account, repositories: {"owner/name": ["main", …]}, visible_to?: [user ids], roles?: {user id: role}, user_repositories?: {user id: ["owner/name", …]}}`: adds (or replaces) an installation; `user_repositories` limits what a user accesses |
//! | `PUT /github/app` | `{webhook_url?, setup_url?, install_repositories?, public?, user_token_ttl_seconds?, installation_token_ttl_seconds?}`: where the app's webhooks and setup redirect go, what the install page grants, whether other accounts may install it, token lifetimes |
//! | `POST /github/expire-user-tokens` | every user access token expires now (refresh tokens still work) |
//! | `POST /github/revoke-refresh-tokens` | every refresh token is dead (users must sign in again) |
//!
//! Answers are JSON; a bad request is 400 `{"error": "…"}`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Emulators, Fault, FaultPlan, InjectedError};

fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message.into()}))).into_response()
}

fn plan<'a>(emulators: &'a Emulators, service: &str) -> Result<&'a FaultPlan, Response> {
    match service {
        "hetzner" => Ok(emulators.hetzner.faults()),
        "cloudflare" => Ok(emulators.cloudflare.faults()),
        "github" => Ok(emulators.github.faults()),
        other => Err(bad(format!("unknown service {other:?}: hetzner, cloudflare or github"))),
    }
}

/// The control API over `emulators`.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use sam_providers::emulators::{Emulators, control};
/// let emulators = Emulators::start().await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// tokio::spawn(async move { axum::serve(listener, control::router(emulators)).await });
/// # Ok(()) }
/// ```
pub fn router(emulators: Emulators) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/state", get(state))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/latency", post(latency))
        .route("/hetzner/agentless", post(agentless))
        .route("/requests", get(requests))
        .route("/hetzner/servers", get(hetzner_servers))
        .route("/github/installations", post(github_installation))
        .route("/github/app", axum::routing::put(github_app))
        .route("/github/expire-user-tokens", post(github_expire_user_tokens))
        .route("/github/revoke-refresh-tokens", post(github_revoke_refresh_tokens))
        .fallback(|| async {
            (StatusCode::NOT_FOUND, Json(json!({"error": "no such control endpoint; GET / lists them"})))
        })
        .with_state(emulators)
}

async fn index(State(e): State<Emulators>) -> Response {
    Json(json!({
        "services": {
            "hetzner": {"base_url": e.hetzner.base_url(), "token": e.hetzner.token()},
            "cloudflare": {"base_url": e.cloudflare.base_url(), "token": e.cloudflare.token(),
                           "zone_id": e.cloudflare.zone_id(), "zone": e.cloudflare.zone_name()},
            "github": {"base_url": e.github.base_url()},
        },
        "endpoints": ["GET /state", "POST /faults", "DELETE /faults", "POST /latency", "POST /hetzner/agentless",
                      "GET /requests?service=", "GET /hetzner/servers", "POST /github/installations", "PUT /github/app",
                          "POST /github/expire-user-tokens", "POST /github/revoke-refresh-tokens"],
    }))
    .into_response()
}

async fn state(State(e): State<Emulators>) -> Response {
    let servers: Vec<Value> = e
        .hetzner
        .servers()
        .iter()
        .map(|s| {
            json!({"id": s.id, "name": s.name, "status": s.status, "server_type": s.server_type,
                   "location": s.location, "labels": s.labels, "ipv4": s.ipv4.to_string(),
                   "starts_agent": s.starts_agent, "firewalls": e.hetzner.firewalls_of(s.id)})
        })
        .collect();
    let firewalls: Vec<Value> =
        e.hetzner.firewalls().iter().map(|f| json!({"id": f.id, "name": f.name, "labels": f.labels})).collect();
    let records: Vec<Value> = e
        .cloudflare
        .records()
        .iter()
        .map(|r| {
            json!({"id": r.id, "name": r.name, "type": r.record_type, "content": r.content,
                        "proxied": r.proxied, "comment": r.comment})
        })
        .collect();
    let certificates: Vec<Value> = e
        .cloudflare
        .origin_certificates()
        .into_iter()
        .map(|(id, hostnames)| json!({"id": id, "hostnames": hostnames}))
        .collect();
    let settings: Value = ["ssl", "always_use_https", "websockets", "tls_client_auth", "min_tls_version"]
        .iter()
        .map(|id| ((*id).to_owned(), json!(e.cloudflare.zone_setting(id))))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    let installations: Vec<Value> = e
        .github
        .installations()
        .iter()
        .map(|i| {
            json!({"id": i.id, "account": i.account_login, "type": i.account_type, "suspended": i.suspended,
                        "repositories": i.repositories})
        })
        .collect();
    Json(json!({
        "hetzner": {"servers": servers, "firewalls": firewalls},
        "cloudflare": {"records": records, "origin_certificates": certificates, "zone_settings": settings},
        "github": {"installations": installations},
    }))
    .into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    service: String,
    method: Option<String>,
    path: Option<String>,
    fault: FaultSpec,
    times: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FaultSpec {
    Error { error: Value },
    Latency { latency_ms: u64 },
    Drop { drop_response_ms: u64 },
}

fn fault_of(spec: &FaultSpec) -> Result<Fault, Response> {
    Ok(match spec {
        FaultSpec::Latency { latency_ms } => Fault::Latency(Duration::from_millis(*latency_ms)),
        FaultSpec::Drop { drop_response_ms } => Fault::DropResponse(Duration::from_millis(*drop_response_ms)),
        FaultSpec::Error { error } => Fault::Error(match error {
            Value::Number(n) => match n.as_u64() {
                Some(429) => InjectedError::TooManyRequests,
                Some(500) => InjectedError::Internal,
                Some(503) => InjectedError::Unavailable,
                Some(412) => InjectedError::ResourceUnavailable,
                Some(code @ 400..=599) => InjectedError::Status(u16::try_from(code).unwrap_or(500)),
                _ => return Err(bad("error must be an HTTP error status (400..=599)")),
            },
            Value::String(name) => match name.as_str() {
                "rate_limited" => InjectedError::TooManyRequests,
                "internal" => InjectedError::Internal,
                "unavailable" => InjectedError::Unavailable,
                "resource_unavailable" => InjectedError::ResourceUnavailable,
                _ => return Err(bad("error names: rate_limited, internal, unavailable, resource_unavailable")),
            },
            _ => return Err(bad("error must be a status or a name")),
        }),
    })
}

async fn add_fault(
    State(e): State<Emulators>,
    body: Result<Json<FaultRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return bad("expected {service, method?, path?, fault: {error|latency_ms|drop_response_ms}, times?}");
    };
    let plan = match plan(&e, &request.service) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let fault = match fault_of(&request.fault) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let method = request.method.unwrap_or_else(|| "*".into());
    let path = request.path.unwrap_or_else(|| "*".into());
    match request.times {
        Some(0) => return bad("times must be at least 1 (leave it out for until cleared)"),
        Some(times) => plan.inject(&method, &path, fault, times),
        None => plan.always(&method, &path, fault),
    }
    (
        StatusCode::CREATED,
        Json(json!({"service": request.service, "method": method, "path": path,
                                       "times": request.times})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

async fn clear_faults(State(e): State<Emulators>, Query(q): Query<ServiceQuery>) -> Response {
    let services = match &q.service {
        Some(s) => vec![s.as_str()],
        None => vec!["hetzner", "cloudflare", "github"],
    };
    for service in services {
        match plan(&e, service) {
            Ok(p) => p.clear(),
            Err(r) => return r,
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct LatencyRequest {
    service: String,
    ms: u64,
}

async fn latency(
    State(e): State<Emulators>,
    body: Result<Json<LatencyRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else { return bad("expected {service, ms}") };
    match plan(&e, &request.service) {
        Ok(p) => {
            p.latency("*", "*", Duration::from_millis(request.ms));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct AgentlessRequest {
    servers: u32,
}

async fn agentless(
    State(e): State<Emulators>,
    body: Result<Json<AgentlessRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else { return bad("expected {servers: n}") };
    e.hetzner.fail_agent_starts(request.servers);
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(e): State<Emulators>, Query(q): Query<ServiceQuery>) -> Response {
    let Some(service) = q.service else { return bad("service is required") };
    match plan(&e, &service) {
        Ok(p) => {
            let list: Vec<Value> =
                p.requests().iter().map(|r| json!({"method": r.method, "path": r.path, "query": r.query})).collect();
            Json(json!(list)).into_response()
        }
        Err(r) => r,
    }
}

async fn hetzner_servers(State(e): State<Emulators>) -> Response {
    Json(json!(e.hetzner.servers())).into_response()
}

#[derive(Deserialize)]
struct InstallationRequest {
    id: i64,
    account: String,
    repositories: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    visible_to: Vec<i64>,
    /// User id → role (`admin`, `maintain`, `write`, `triage`, `read`).
    #[serde(default)]
    roles: std::collections::BTreeMap<i64, String>,
    /// User id → the repositories that user accesses.
    #[serde(default)]
    user_repositories: std::collections::BTreeMap<i64, Vec<String>>,
}

async fn github_installation(
    State(e): State<Emulators>,
    body: Result<Json<InstallationRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return bad("expected {id, account, repositories: {name: [branches]}, visible_to?}");
    };
    let repositories: Vec<(&str, Vec<&str>)> = request
        .repositories
        .iter()
        .map(|(name, branches)| (name.as_str(), branches.iter().map(String::as_str).collect()))
        .collect();
    let refs: Vec<(&str, &[&str])> = repositories.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    e.github.add_installation(request.id, &request.account, &refs);
    for user in request.visible_to {
        e.github.share_installation(request.id, user);
    }
    for (user, role) in request.roles {
        e.github.set_role(request.id, user, &role);
    }
    for (user, repositories) in request.user_repositories {
        let names: Vec<&str> = repositories.iter().map(String::as_str).collect();
        e.github.restrict_user(request.id, user, &names);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct AppRequest {
    webhook_url: Option<String>,
    setup_url: Option<String>,
    install_repositories: Option<std::collections::BTreeMap<String, Vec<String>>>,
    public: Option<bool>,
    user_token_ttl_seconds: Option<u64>,
    installation_token_ttl_seconds: Option<u64>,
}

async fn github_app(
    State(e): State<Emulators>,
    body: Result<Json<AppRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else { return bad("expected {webhook_url?, setup_url?, install_repositories?}") };
    e.github.configure(|c| {
        if let Some(url) = request.webhook_url {
            c.webhook_url = Some(url);
        }
        if let Some(url) = request.setup_url {
            c.setup_url = Some(url);
        }
        if let Some(repositories) = request.install_repositories {
            c.install_repositories = repositories.into_iter().collect();
        }
        if let Some(public) = request.public {
            c.app_public = public;
        }
        if let Some(seconds) = request.user_token_ttl_seconds {
            c.user_token_ttl = Some(Duration::from_secs(seconds));
        }
        if let Some(seconds) = request.installation_token_ttl_seconds {
            c.installation_token_ttl = Duration::from_secs(seconds);
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn github_expire_user_tokens(State(e): State<Emulators>) -> Response {
    e.github.expire_user_tokens();
    StatusCode::NO_CONTENT.into_response()
}

async fn github_revoke_refresh_tokens(State(e): State<Emulators>) -> Response {
    e.github.revoke_refresh_tokens();
    StatusCode::NO_CONTENT.into_response()
}
