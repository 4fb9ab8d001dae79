//! Hetzner Cloud API v1 emulator.
//!
//! Endpoints (all under `/v1`, `Authorization: Bearer <token>`; an unknown
//! token gets 401 `unauthorized`, a read-only token 403 `token_readonly` on
//! anything but `GET`):
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /servers` | `name`, `label_selector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = and), `status` (repeatable; an unknown one → 400 `invalid_input`), `sort` (`id`, `name`, `created`, `:asc`/`:desc`, repeatable), `page`, `per_page` (default 25, max 50); `meta.pagination` |
//! | `POST /servers` | 201 `{server, action, next_actions, root_password}`; checks name (unique → 409 `uniqueness_error`), `server_type`, `location`, `image`, `user_data` ≤ 32 KiB (400 `invalid_input`), the server limit (403 `resource_limit_exceeded`), labels by Hetzner's rules (400 `invalid_input`) |
//! | `GET /servers/{id}` | the server with `location`, `datacenter`, `server_type`, `image`, `protection`; 404 `not_found` when absent |
//! | `PUT /servers/{id}` | `{server}`; `name` (unique) and/or `labels` (the whole set is replaced) |
//! | `DELETE /servers/{id}` | 200 `{action}`; 404 when absent; 403 `protected` with delete protection |
//! | `POST /servers/{id}/actions/{poweron,poweroff,shutdown,reboot,reset}` | 201 `{action}` |
//! | `POST /servers/{id}/actions/change_protection` | `{delete, rebuild}` (equal, as the reference requires) → 201 `{action}` |
//! | `GET /servers/{id}/actions` | the server's actions: `status` (repeatable), `sort`, pages |
//! | `GET /actions/{id}` | the action (finished: `success`, progress 100) |
//! | `GET /server_types`, `GET /server_types/{id}` | a catalogue with deprecated and ARM types, prices and `locations` per location; `name`, `sort`, pages |
//! | `GET /locations`, `GET /locations/{id}` | `fsn1`, `nbg1`, `hel1`, `ash`; `name`, `sort`, pages |
//! | `GET /datacenters`, `GET /datacenters/{id}` | one per location (`<location>-dc14`) with the types it supports; `recommendation` |
//! | `GET /images`, `GET /images/{id}` | system images (Ubuntu 24.04/22.04, Debian 12/13; x86 and ARM) and the `docker-ce` app (`type: app`); `name`, `type`, `architecture`, `sort`, pages |
//! | `/firewalls`, `/firewalls/{id}`, `/firewalls/{id}/actions/{action}` | create, list, set rules, apply to servers or label selectors, delete, with the reference's errors (the `firewalls` module) |
//!
//! Servers start `initializing` with a public IPv4 and become `running` after
//! [`HetznerEmulatorConfig::boot_delay`]; `poweron` goes through `starting`.
//! Every authenticated response carries `RateLimit-Limit`, `RateLimit-Remaining`
//! and `RateLimit-Reset` (Unix time when the bucket is full again); an empty
//! bucket answers 429 `rate_limit_exceeded`. Errors use Hetzner's body
//! `{"error": {"code", "message", "details"}}`. Injected faults render as
//! 429 `rate_limit_exceeded`, 500 `server_error`, 503 `unavailable`,
//! 412 `resource_unavailable`.
//!
//! A [`ServerHook`] sees every created, deleted and powered server (the dev
//! mode starts a local agent per "VM" from it).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

mod catalogue;
mod firewalls;

pub use firewalls::{EmulatedFirewall, EmulatedFirewallRule, FirewallTarget};

use super::faults::{self, FaultPlan, InjectedError};
use super::{Bucket, ServerTask, bearer, lock, rfc3339, unix_now};

/// The token the default configuration accepts.
pub const HETZNER_TOKEN: &str = "hetzner-emulator-token";

/// Settings of the Hetzner emulator.
#[derive(Debug, Clone)]
pub struct HetznerEmulatorConfig {
    /// Tokens that authenticate for the first project.
    pub tokens: Vec<String>,
    /// Tokens of further projects, one list per project: each project sees
    /// only its own servers, firewalls and actions, as on Hetzner.
    pub other_projects: Vec<Vec<String>>,
    /// Tokens of the first project that authenticate for `GET` only
    /// (others → 403 `token_readonly`).
    pub readonly_tokens: Vec<String>,
    /// Time from `initializing` (or `starting`) to `running`.
    pub boot_delay: Duration,
    /// Most servers a project may have (`resource_limit_exceeded` beyond).
    pub max_servers: usize,
    /// Size of the rate-limit bucket per token (Hetzner: 3600).
    pub rate_limit: u32,
    /// Refill of the bucket per second (Hetzner: 1).
    pub rate_refill_per_sec: f64,
    /// Give every server this IPv4 (the dev mode uses 127.0.0.1); otherwise
    /// addresses come from 203.0.113.0/24 and 198.51.100.0/24.
    pub fixed_ipv4: Option<Ipv4Addr>,
}

impl Default for HetznerEmulatorConfig {
    fn default() -> Self {
        Self {
            tokens: vec![HETZNER_TOKEN.to_owned()],
            other_projects: Vec::new(),
            readonly_tokens: Vec::new(),
            boot_delay: Duration::from_millis(200),
            max_servers: 25,
            rate_limit: 3600,
            rate_refill_per_sec: 1.0,
            fixed_ipv4: None,
        }
    }
}

/// A server as the emulator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedServer {
    /// Id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Hetzner status (`initializing`, `starting`, `running`, `off`, ...).
    pub status: String,
    /// Server type name.
    pub server_type: String,
    /// Location code.
    pub location: String,
    /// Image name.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// cloud-init user data as sent.
    pub user_data: String,
    /// Public IPv4.
    pub ipv4: Ipv4Addr,
    /// Creation time.
    pub created: time::OffsetDateTime,
    /// The project it is in (0: the first; [`HetznerEmulatorConfig::other_projects`]).
    #[serde(default)]
    pub project: u32,
    /// Whether the "VM" starts what its user data says (false: it boots but
    /// its agent never starts; [`HetznerEmulator::fail_agent_starts`]).
    pub starts_agent: bool,
}

/// What happened to a server, for [`ServerHook`] implementations that forward
/// events through a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Created (the request was accepted).
    Created(EmulatedServer),
    /// Deleted.
    Deleted(EmulatedServer),
    /// Powered on.
    PoweredOn(EmulatedServer),
    /// Powered off.
    PoweredOff(EmulatedServer),
}

/// Called for every server change. Runs inside the request: implementations
/// must not block (spawn work or send it to a channel). All methods default to
/// doing nothing.
pub trait ServerHook: Send + Sync + std::fmt::Debug + 'static {
    /// A server was created.
    fn server_created(&self, _server: &EmulatedServer) {}
    /// A server was deleted.
    fn server_deleted(&self, _server: &EmulatedServer) {}
    /// A server was powered on (`true`) or off (`false`); a reboot is off,
    /// then on.
    fn server_powered(&self, _server: &EmulatedServer, _on: bool) {}
}

/// Forwards every change as a [`ServerEvent`].
impl ServerHook for tokio::sync::mpsc::UnboundedSender<ServerEvent> {
    fn server_created(&self, server: &EmulatedServer) {
        let _ = self.send(ServerEvent::Created(server.clone()));
    }
    fn server_deleted(&self, server: &EmulatedServer) {
        let _ = self.send(ServerEvent::Deleted(server.clone()));
    }
    fn server_powered(&self, server: &EmulatedServer, on: bool) {
        let event = if on { ServerEvent::PoweredOn(server.clone()) } else { ServerEvent::PoweredOff(server.clone()) };
        let _ = self.send(event);
    }
}

#[derive(Debug, Clone)]
struct ServerRecord {
    server: EmulatedServer,
    /// When the current `initializing`/`starting` phase began.
    booting_since: Option<Instant>,
    /// `change_protection`: (delete, rebuild).
    protection: (bool, bool),
}

#[derive(Debug, Clone)]
struct ActionRecord {
    id: u64,
    command: String,
    /// (id, type) of every resource the action touches.
    resources: Vec<(u64, &'static str)>,
    started: time::OffsetDateTime,
}

#[derive(Debug, Default)]
struct HState {
    servers: BTreeMap<u64, ServerRecord>,
    actions: BTreeMap<u64, ActionRecord>,
    firewalls: BTreeMap<u64, EmulatedFirewall>,
    project: u32,
    next_id: u64,
    next_action: u64,
    next_ip: u32,
}

/// What survives a restart of one project ([`HetznerEmulator::snapshot`]):
/// servers, firewalls and the id counters. Actions are not kept (they are
/// finished by then).
#[derive(Debug, serde::Serialize, Deserialize)]
struct SavedProject {
    project: u32,
    servers: Vec<(EmulatedServer, (bool, bool))>,
    firewalls: Vec<EmulatedFirewall>,
    next_id: u64,
    next_action: u64,
    next_ip: u32,
}

/// One project's state, shared by the requests made with its tokens (the
/// authentication middleware puts it in the request's extensions).
#[derive(Debug, Clone)]
struct Project(Arc<Mutex<HState>>);

#[derive(Debug)]
struct Inner {
    config: Mutex<HetznerEmulatorConfig>,
    projects: Mutex<BTreeMap<u32, Arc<Mutex<HState>>>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Servers still to be created whose agent will never start.
    agentless: Mutex<u32>,
    hook: Mutex<Option<Arc<dyn ServerHook>>>,
    faults: FaultPlan,
}

impl Inner {
    /// Project `n`'s state, made on first use (ids never collide across
    /// projects: each counts from its own million).
    fn project(&self, n: u32) -> Arc<Mutex<HState>> {
        lock(&self.projects)
            .entry(n)
            .or_insert_with(|| {
                let base = 4_711_000 + u64::from(n) * 1_000_000;
                Arc::new(Mutex::new(HState {
                    project: n,
                    next_id: base,
                    next_action: 9_000_000 + u64::from(n) * 1_000_000,
                    next_ip: n * 40,
                    ..HState::default()
                }))
            })
            .clone()
    }

    /// Every project's state, first project first.
    fn all_projects(&self) -> Vec<Arc<Mutex<HState>>> {
        let _ = self.project(0);
        lock(&self.projects).values().cloned().collect()
    }
}

/// Handle to a running Hetzner emulator: its URL, its state, its fault plan.
#[derive(Debug, Clone)]
pub struct HetznerEmulator {
    inner: Arc<Inner>,
    base_url: String,
    _task: Arc<ServerTask>,
}

impl HetznerEmulator {
    /// Starts an emulator on a random loopback port.
    pub async fn start(config: HetznerEmulatorConfig) -> std::io::Result<Self> {
        Self::start_from(config, None, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Every project's servers and firewalls, as JSON, for
    /// [`HetznerEmulator::start_from`].
    pub fn snapshot(&self) -> Value {
        let boot = lock(&self.inner.config).boot_delay;
        let projects: Vec<SavedProject> = self
            .inner
            .all_projects()
            .iter()
            .map(|p| {
                let mut state = lock(p);
                let servers = state.servers.values_mut().map(|r| (refresh(r, boot).clone(), r.protection)).collect();
                SavedProject {
                    project: state.project,
                    servers,
                    firewalls: state.firewalls.values().cloned().collect(),
                    next_id: state.next_id,
                    next_action: state.next_action,
                    next_ip: state.next_ip,
                }
            })
            .collect();
        serde_json::to_value(projects).unwrap_or(Value::Null)
    }

    /// Starts an emulator on `addr` (port 0: any free one) with the state of
    /// a [`HetznerEmulator::snapshot`], if given.
    pub async fn start_from(
        config: HetznerEmulatorConfig,
        snapshot: Option<Value>,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        let emulator = Self::launch(config, addr).await?;
        if let Some(snapshot) = snapshot {
            let projects: Vec<SavedProject> = serde_json::from_value(snapshot).map_err(std::io::Error::other)?;
            for saved in projects {
                let project = emulator.inner.project(saved.project);
                let mut state = lock(&project);
                state.servers = saved
                    .servers
                    .into_iter()
                    .map(|(server, protection)| (server.id, ServerRecord { server, booting_since: None, protection }))
                    .collect();
                state.firewalls = saved.firewalls.into_iter().map(|f| (f.id, f)).collect();
                (state.next_id, state.next_action, state.next_ip) = (saved.next_id, saved.next_action, saved.next_ip);
            }
        }
        Ok(emulator)
    }

    async fn launch(config: HetznerEmulatorConfig, addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            projects: Mutex::default(),
            buckets: Mutex::default(),
            agentless: Mutex::new(0),
            hook: Mutex::new(None),
            faults: FaultPlan::default(),
        });
        let api = Router::new()
            .route("/servers", get(list_servers).post(create_server))
            .route("/servers/{id}", get(get_server).put(update_server).delete(delete_server))
            .route("/servers/{id}/actions", get(server_actions))
            .route("/servers/{id}/actions/change_protection", post(change_protection))
            .route("/servers/{id}/actions/{action}", post(server_action))
            .route("/actions/{id}", get(get_action))
            .route("/firewalls", get(firewalls::list).post(firewalls::create))
            .route("/firewalls/{id}", get(firewalls::get_one).put(firewalls::update).delete(firewalls::delete))
            .route("/firewalls/{id}/actions/{action}", post(firewalls::action))
            .route("/server_types", get(catalogue::server_types))
            .route("/server_types/{id}", get(catalogue::server_type))
            .route("/locations", get(catalogue::locations))
            .route("/locations/{id}", get(catalogue::location))
            .route("/datacenters", get(catalogue::datacenters))
            .route("/datacenters/{id}", get(catalogue::datacenter))
            .route("/images", get(catalogue::images))
            .route("/images/{id}", get(catalogue::image))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
            .layer(axum::middleware::from_fn_with_state(render_error as super::ErrorRenderer, super::provider_errors))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), auth_and_rate_limit))
            .with_state(inner.clone());
        let router = Router::new().nest("/v1", api).layer(axum::middleware::from_fn_with_state(
            (inner.faults.clone(), render_fault as faults::Renderer),
            faults::middleware,
        ));
        let (addr, task) = super::serve_on(router, addr).await?;
        Ok(Self { inner, base_url: format!("http://{addr}/v1"), _task: Arc::new(task) })
    }

    /// The API base URL, including `/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first accepted token.
    pub fn token(&self) -> String {
        lock(&self.inner.config).tokens.first().cloned().unwrap_or_default()
    }

    /// The fault plan (paths start with `/v1`).
    pub fn faults(&self) -> &FaultPlan {
        &self.inner.faults
    }

    /// Sets the hook that sees every server change.
    pub fn set_hook(&self, hook: Arc<dyn ServerHook>) {
        *lock(&self.inner.hook) = Some(hook);
    }

    /// Changes the configuration (boot delay, limits, tokens) from now on.
    pub fn configure(&self, change: impl FnOnce(&mut HetznerEmulatorConfig)) {
        change(&mut lock(&self.inner.config));
    }

    /// Empties every token's rate-limit bucket.
    pub fn exhaust_rate_limit(&self) {
        let tokens = lock(&self.inner.config).tokens.clone();
        let mut buckets = lock(&self.inner.buckets);
        for token in tokens {
            buckets.insert(token, Bucket { remaining: 0.0, last: Instant::now() });
        }
    }

    /// Every server of every project, with its current status.
    pub fn servers(&self) -> Vec<EmulatedServer> {
        let boot = lock(&self.inner.config).boot_delay;
        let mut all = Vec::new();
        for project in self.inner.all_projects() {
            let mut state = lock(&project);
            all.extend(state.servers.values_mut().map(|r| refresh(r, boot).clone()));
        }
        all
    }

    /// The next `servers` servers created boot, but never start their agent
    /// (a broken image, a cloud-init that fails): for rehearsing provisioning
    /// timeouts. A [`ServerHook`] reads [`EmulatedServer::starts_agent`].
    /// (Kept across a restart from a snapshot: the servers' own flags are.)
    pub fn fail_agent_starts(&self, servers: u32) {
        *lock(&self.inner.agentless) = servers;
    }

    /// Every firewall of every project.
    pub fn firewalls(&self) -> Vec<EmulatedFirewall> {
        self.inner.all_projects().iter().flat_map(|p| lock(p).firewalls.values().cloned().collect::<Vec<_>>()).collect()
    }

    /// The ids of the firewalls applying to server `id` (directly or through
    /// a label selector, in its project); empty for an unknown server.
    pub fn firewalls_of(&self, id: u64) -> Vec<u64> {
        for project in self.inner.all_projects() {
            let state = lock(&project);
            if let Some(r) = state.servers.get(&id) {
                return firewalls::firewalls_of(&state, id, &r.server.labels);
            }
        }
        Vec::new()
    }

    /// Adds a server to the first project directly (e.g. one that is not
    /// SAM's), returning its id.
    pub fn insert_server(&self, name: &str, labels: BTreeMap<String, String>) -> u64 {
        let fixed = lock(&self.inner.config).fixed_ipv4;
        let project = self.inner.project(0);
        let mut state = lock(&project);
        let id = next_id(&mut state);
        let ipv4 = fixed.unwrap_or_else(|| next_ip(&mut state));
        let server = EmulatedServer {
            id,
            name: name.to_owned(),
            status: "running".into(),
            server_type: "cx23".into(),
            location: "fsn1".into(),
            image: "ubuntu-24.04".into(),
            labels,
            user_data: String::new(),
            ipv4,
            created: time::OffsetDateTime::now_utc(),
            project: 0,
            starts_agent: true,
        };
        state.servers.insert(id, ServerRecord { server, booting_since: None, protection: (false, false) });
        id
    }
}

fn next_id(state: &mut HState) -> u64 {
    state.next_id += 1;
    state.next_id
}

fn next_ip(state: &mut HState) -> Ipv4Addr {
    state.next_ip += 1;
    let n = state.next_ip;
    let (net, host) = if n < 250 { ([203, 0, 113], n) } else { ([198, 51, 100], (n - 250) % 250) };
    Ipv4Addr::new(net[0], net[1], net[2], u8::try_from(host + 2).unwrap_or(254))
}

fn refresh(record: &mut ServerRecord, boot: Duration) -> &EmulatedServer {
    if let Some(since) = record.booting_since
        && since.elapsed() >= boot
    {
        record.server.status = "running".into();
        record.booting_since = None;
    }
    &record.server
}

/// Hetzner's error body for a status the handlers did not answer
/// themselves (a malformed path, a method the route does not take).
fn render_error(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_client_error() => "invalid_input",
        _ => "server_error",
    };
    error(status, code, message)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message, "details": {}}}))).into_response()
}

fn invalid_field(field: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {
            "code": "invalid_input",
            "message": format!("invalid input in field '{field}'"),
            "details": {"fields": [{"name": field, "messages": [message]}]}
        }})),
    )
        .into_response()
}

fn render_fault(fault: InjectedError) -> Response {
    match fault {
        InjectedError::TooManyRequests => {
            let mut response =
                error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "limit of 3600 requests per hour reached");
            let headers = response.headers_mut();
            headers.insert("ratelimit-limit", HeaderValue::from_static("3600"));
            headers.insert("ratelimit-remaining", HeaderValue::from_static("0"));
            if let Ok(v) = HeaderValue::from_str(&unix_now().to_string()) {
                headers.insert("ratelimit-reset", v);
            }
            response
        }
        InjectedError::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal server error"),
        InjectedError::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "service unavailable"),
        InjectedError::ResourceUnavailable => error(
            StatusCode::PRECONDITION_FAILED,
            "resource_unavailable",
            "the requested resource is currently unavailable",
        ),
        InjectedError::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, "server_error", "injected error")
        }
    }
}

async fn auth_and_rate_limit(State(inner): State<Arc<Inner>>, mut request: Request, next: Next) -> Response {
    let token = bearer(request.headers());
    let (project, readonly, limit, refill) = {
        let config = lock(&inner.config);
        let project = token.as_ref().and_then(|t| {
            if config.tokens.iter().any(|c| c == t) {
                return Some(0);
            }
            config.other_projects.iter().position(|p| p.iter().any(|c| c == t)).and_then(|i| u32::try_from(i + 1).ok())
        });
        let readonly = token.as_ref().is_some_and(|t| config.readonly_tokens.iter().any(|c| c == t));
        (project.or(readonly.then_some(0)), readonly, config.rate_limit, config.rate_refill_per_sec)
    };
    let (Some(token), Some(project)) = (token, project) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "unable to authenticate");
    };
    request.extensions_mut().insert(Project(inner.project(project)));
    if readonly && request.method() != axum::http::Method::GET {
        return error(StatusCode::FORBIDDEN, "token_readonly", "The token is only allowed to perform GET requests");
    }
    let rate = lock(&inner.buckets).entry(token).or_insert_with(|| Bucket::new(limit)).take(limit, refill);
    let mut response = if rate.allowed {
        next.run(request).await
    } else {
        error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "rate limit exceeded")
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", rate.limit.to_string()),
        ("ratelimit-remaining", rate.remaining.to_string()),
        ("ratelimit-reset", (unix_now() + rate.reset_in).to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

fn server_json(state: &HState, s: &EmulatedServer) -> Value {
    let firewalls: Vec<Value> = firewalls::firewalls_of(state, s.id, &s.labels)
        .into_iter()
        .map(|id| json!({"id": id, "status": "applied"}))
        .collect();
    let server_type = catalogue::TYPES.iter().find(|t| t.name == s.server_type);
    let arch = server_type.map_or("x86", |t| t.arch);
    let t = server_type.map_or(Value::Null, catalogue::type_json);
    let location = catalogue::LOCATIONS.iter().find(|l| l.name == s.location);
    let image = catalogue::find_image(&s.image, arch).map_or(Value::Null, catalogue::image_json);
    let (delete, rebuild) = state.servers.get(&s.id).map_or((false, false), |r| r.protection);
    json!({
        "id": s.id, "name": s.name, "status": s.status, "created": rfc3339(s.created),
        "public_net": {
            "ipv4": {"id": s.id + 100_000, "ip": s.ipv4.to_string(), "blocked": false, "dns_ptr": format!("static.{}.clients.your-server.de", s.ipv4)},
            "ipv6": {"id": s.id + 200_000, "ip": "2001:db8::/64", "blocked": false, "dns_ptr": []},
            "floating_ips": [], "firewalls": firewalls
        },
        "private_net": [],
        "server_type": t,
        "location": location.map_or(Value::Null, catalogue::location_json),
        "datacenter": location.map_or(Value::Null, catalogue::datacenter_json),
        "image": image,
        "iso": null, "rescue_enabled": false, "locked": false, "backup_window": null,
        "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21_990_232_555_520_u64,
        "protection": {"delete": delete, "rebuild": rebuild},
        "labels": s.labels, "volumes": [], "load_balancers": [], "primary_disk_size": 40, "placement_group": null
    })
}

fn action_json(a: &ActionRecord) -> Value {
    let resources: Vec<Value> = a.resources.iter().map(|(id, kind)| json!({"id": id, "type": kind})).collect();
    json!({"id": a.id, "command": a.command, "status": "success", "progress": 100,
           "started": rfc3339(a.started), "finished": rfc3339(a.started), "error": null,
           "resources": resources})
}

fn new_action(state: &mut HState, command: &str, server: u64) -> ActionRecord {
    new_action_on(state, command, vec![(server, "server")])
}

fn new_action_on(state: &mut HState, command: &str, resources: Vec<(u64, &'static str)>) -> ActionRecord {
    state.next_action += 1;
    let action = ActionRecord {
        id: state.next_action,
        command: command.to_owned(),
        resources,
        started: time::OffsetDateTime::now_utc(),
    };
    state.actions.insert(action.id, action.clone());
    action
}

#[derive(Deserialize, Default)]
struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// A query string's pairs, decoded, repeated keys kept (`status=a&status=b`).
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    reqwest::Url::parse(&format!("http://q/?{raw}"))
        .map(|url| url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default()
}

/// Every value of `key`, commas splitting values too (both forms are used).
fn values_of(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs.iter().filter(|(k, _)| k == key).flat_map(|(_, v)| v.split(',').map(str::to_owned)).collect()
}

/// The one value of `key`, if given.
fn value_of(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Sorts by `field[:asc|:desc]` terms (the reference's `sort` parameter),
/// the first term first; a field outside `allowed` is `invalid_input`.
fn sort_values(items: &mut [Value], sort: &[String], allowed: &[&str]) -> Result<(), Response> {
    let mut keys = Vec::new();
    for term in sort.iter().filter(|t| !t.is_empty()) {
        let (field, direction) = term.split_once(':').unwrap_or((term.as_str(), "asc"));
        if !allowed.contains(&field) || !["asc", "desc"].contains(&direction) {
            return Err(invalid_field("sort", &format!("invalid sort {term:?}; allowed: {}", allowed.join(", "))));
        }
        keys.push((field.to_owned(), direction == "desc"));
    }
    items.sort_by(|a, b| {
        for (field, descending) in &keys {
            let ordering = match (&a[field], &b[field]) {
                (Value::Number(x), Value::Number(y)) => {
                    x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
                }
                (x, y) => x.as_str().unwrap_or_default().cmp(y.as_str().unwrap_or_default()),
            };
            let ordering = if *descending { ordering.reverse() } else { ordering };
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// The page parameters of a query.
fn page_of(pairs: &[(String, String)]) -> PageQuery {
    PageQuery { page: value_of(pairs, "page"), per_page: value_of(pairs, "per_page") }
}

fn paginate<T: Clone>(
    items: &[T],
    query: &PageQuery,
    default: usize,
    max: usize,
) -> Result<(Vec<T>, Value), (&'static str, &'static str)> {
    let page: usize = match &query.page {
        None => 1,
        Some(p) => p.parse().ok().filter(|p| *p >= 1).ok_or(("page", "must be a positive integer"))?,
    };
    let per_page: usize = match &query.per_page {
        None => default,
        Some(p) => p.parse().ok().filter(|p| *p >= 1).ok_or(("per_page", "must be a positive integer"))?,
    }
    .min(max);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<T> = items.iter().skip((page - 1).saturating_mul(per_page)).take(per_page).cloned().collect();
    let meta = json!({"pagination": {
        "page": page, "per_page": per_page,
        "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
        "next_page": if page < last { json!(page + 1) } else { Value::Null },
        "last_page": last, "total_entries": total
    }});
    Ok((slice, meta))
}

/// One term of a label selector.
#[derive(Debug, PartialEq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn parse_selector(selector: &str) -> Result<Vec<Term>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or("expected (a,b)")?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some((k, rest)) = p.split_once(" notin ") {
                Ok(Term::NotIn(k.trim().to_owned(), set(rest)?))
            } else if let Some((k, rest)) = p.split_once(" in ") {
                Ok(Term::In(k.trim().to_owned(), set(rest)?))
            } else if let Some((k, v)) = p.split_once("!=") {
                Ok(Term::Ne(k.trim().to_owned(), v.trim().to_owned()))
            } else if let Some((k, v)) = p.split_once("==") {
                Ok(Term::Eq(k.trim().to_owned(), v.trim().to_owned()))
            } else if let Some((k, v)) = p.split_once('=') {
                Ok(Term::Eq(k.trim().to_owned(), v.trim().to_owned()))
            } else if let Some(k) = p.strip_prefix('!') {
                Ok(Term::Absent(k.trim().to_owned()))
            } else if p.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Ok(Term::Exists(p.to_owned()))
            } else {
                Err(format!("invalid label selector term {p:?}"))
            }
        })
        .collect()
}

fn selector_matches(terms: &[Term], labels: &BTreeMap<String, String>) -> bool {
    terms.iter().all(|t| match t {
        Term::Eq(k, v) => labels.get(k) == Some(v),
        Term::Ne(k, v) => labels.get(k) != Some(v),
        Term::Exists(k) => labels.contains_key(k),
        Term::Absent(k) => !labels.contains_key(k),
        Term::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
        Term::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
    })
}

/// The statuses a server can have (the reference's enumeration).
const STATUSES: [&str; 9] =
    ["initializing", "starting", "running", "stopping", "off", "deleting", "migrating", "rebuilding", "unknown"];

async fn list_servers(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let terms = match value_of(&pairs, "label_selector").as_deref().map(parse_selector).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(message) => return invalid_field("label_selector", &message),
    };
    let statuses = values_of(&pairs, "status");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        return invalid_field("status", &format!("unknown status {bad:?}"));
    }
    let name = value_of(&pairs, "name");
    let boot = lock(&inner.config).boot_delay;
    let mut matching: Vec<Value> = {
        let mut state = lock(&project);
        let servers: Vec<EmulatedServer> = state
            .servers
            .values_mut()
            .map(|r| refresh(r, boot).clone())
            .filter(|s| name.as_ref().is_none_or(|n| &s.name == n))
            .filter(|s| statuses.is_empty() || statuses.contains(&s.status))
            .filter(|s| selector_matches(&terms, &s.labels))
            .collect();
        servers.iter().map(|s| server_json(&state, s)).collect()
    };
    if let Err(response) = sort_values(&mut matching, &values_of(&pairs, "sort"), &["id", "name", "created"]) {
        return response;
    }
    match paginate(&matching, &page_of(&pairs), 25, 50) {
        Ok((items, meta)) => Json(json!({"servers": items, "meta": meta})).into_response(),
        Err((field, message)) => invalid_field(field, message),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    server_type: Option<String>,
    location: Option<String>,
    datacenter: Option<String>,
    image: Option<String>,
    user_data: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    start_after_create: Option<bool>,
    #[serde(default)]
    firewalls: Vec<FirewallRef>,
}

#[derive(Deserialize)]
struct FirewallRef {
    firewall: u64,
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

async fn create_server(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(_) => return error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body"),
    };
    let Some(name) = body.name.filter(|n| valid_hostname(n)) else {
        return invalid_field("name", "must be a valid hostname");
    };
    let Some(server_type) = body.server_type.filter(|t| catalogue::TYPES.iter().any(|d| d.name == t)) else {
        return invalid_field("server_type", "server type not found");
    };
    let location = match (body.location, body.datacenter) {
        (Some(l), _) => l,
        (None, Some(dc)) => dc.split('-').next().unwrap_or_default().to_owned(),
        (None, None) => "fsn1".to_owned(),
    };
    if !catalogue::LOCATIONS.iter().any(|l| l.name == location) {
        return invalid_field("location", "location not found");
    }
    let Some(image) =
        body.image.filter(|i| catalogue::IMAGES.iter().any(|c| c.1 == i.as_str() || c.0.to_string() == *i))
    else {
        return invalid_field("image", "image not found");
    };
    let user_data = body.user_data.unwrap_or_default();
    if user_data.len() > sam_core::cloud_init::MAX_USER_DATA {
        return invalid_field("user_data", "user_data must not exceed 32 KiB");
    }
    if let Err(response) = check_labels(&body.labels) {
        return response;
    }
    let (fixed, max_servers) = {
        let c = lock(&inner.config);
        (c.fixed_ipv4, c.max_servers)
    };
    let (server, action, server_value) = {
        let mut state = lock(&project);
        if state.servers.values().any(|r| r.server.name == name) {
            return error(StatusCode::CONFLICT, "uniqueness_error", "server name is already used");
        }
        if state.servers.len() >= max_servers {
            return error(StatusCode::FORBIDDEN, "resource_limit_exceeded", "server limit exceeded");
        }
        if let Some(missing) = body.firewalls.iter().find(|f| !state.firewalls.contains_key(&f.firewall)) {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("firewall with ID '{}' not found", missing.firewall),
            );
        }
        let id = next_id(&mut state);
        let ipv4 = fixed.unwrap_or_else(|| next_ip(&mut state));
        let start = body.start_after_create.unwrap_or(true);
        let server = EmulatedServer {
            id,
            name,
            status: if start { "initializing".into() } else { "off".into() },
            server_type,
            location,
            image,
            labels: body.labels,
            user_data,
            ipv4,
            created: time::OffsetDateTime::now_utc(),
            project: state.project,
            starts_agent: {
                let mut agentless = lock(&inner.agentless);
                let starts = *agentless == 0;
                *agentless = agentless.saturating_sub(1);
                starts
            },
        };
        state.servers.insert(
            id,
            ServerRecord {
                server: server.clone(),
                booting_since: start.then(Instant::now),
                protection: (false, false),
            },
        );
        for f in &body.firewalls {
            if let Some(firewall) = state.firewalls.get_mut(&f.firewall)
                && !firewall.applied_to.contains(&FirewallTarget::Server(id))
            {
                firewall.applied_to.push(FirewallTarget::Server(id));
            }
        }
        let action = new_action(&mut state, "create_server", id);
        let value = server_json(&state, &server);
        (server, action, value)
    };
    let hook = lock(&inner.hook).clone();
    if let Some(hook) = hook {
        hook.server_created(&server);
    }
    let mut action_value = action_json(&action);
    action_value["status"] = json!("running");
    action_value["progress"] = json!(0);
    action_value["finished"] = Value::Null;
    (
        StatusCode::CREATED,
        Json(json!({"server": server_value, "action": action_value, "next_actions": [], "root_password": null})),
    )
        .into_response()
}

/// Hetzner's label rules: a key is an optional DNS-subdomain prefix and `/`,
/// then a name; names and values are at most 63 characters of letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit (a
/// value may be empty).
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Response> {
    fn segment(s: &str, may_be_empty: bool) -> bool {
        if s.is_empty() {
            return may_be_empty;
        }
        let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        s.len() <= 63
            && edge(s.chars().next())
            && edge(s.chars().last())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    }
    for (key, value) in labels {
        let (prefix, name) = key.rsplit_once('/').map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(|l| segment(l, false)));
        if !prefix_ok || !segment(name, false) || !segment(value, true) {
            return Err(invalid_field("labels", &format!("label {key:?}={value:?} is invalid")));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

/// `PUT /servers/{id}`: a new name and/or a new label set (replacing the
/// whole set, as Hetzner does).
async fn update_server(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(_) => return error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body"),
    };
    if body.name.as_ref().is_some_and(|n| !valid_hostname(n)) {
        return invalid_field("name", "must be a valid hostname");
    }
    if let Some(labels) = &body.labels
        && let Err(response) = check_labels(labels)
    {
        return response;
    }
    let boot = lock(&inner.config).boot_delay;
    let mut state = lock(&project);
    let Some(numeric) = parse_id(&id).filter(|n| state.servers.contains_key(n)) else {
        return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
    };
    if let Some(name) = &body.name
        && state.servers.values().any(|r| r.server.name == *name && r.server.id != numeric)
    {
        return error(StatusCode::CONFLICT, "uniqueness_error", "server name is already used");
    }
    let Some(record) = state.servers.get_mut(&numeric) else {
        return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
    };
    if let Some(name) = body.name {
        record.server.name = name;
    }
    if let Some(labels) = body.labels {
        record.server.labels = labels;
    }
    let server = refresh(record, boot).clone();
    Json(json!({"server": server_json(&state, &server)})).into_response()
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

async fn get_server(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
) -> Response {
    let boot = lock(&inner.config).boot_delay;
    let mut state = lock(&project);
    match parse_id(&id).and_then(|id| state.servers.get_mut(&id)).map(|record| refresh(record, boot).clone()) {
        Some(server) => Json(json!({"server": server_json(&state, &server)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found")),
    }
}

async fn delete_server(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
) -> Response {
    let (server, action) = {
        let mut state = lock(&project);
        let numeric = parse_id(&id).filter(|n| state.servers.contains_key(n));
        if numeric.and_then(|n| state.servers.get(&n)).is_some_and(|r| r.protection.0) {
            return error(StatusCode::FORBIDDEN, "protected", "server is protected against deletion");
        }
        let Some(record) = numeric.and_then(|id| state.servers.remove(&id)) else {
            return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
        };
        let action = new_action(&mut state, "delete_server", record.server.id);
        let gone = FirewallTarget::Server(record.server.id);
        for firewall in state.firewalls.values_mut() {
            firewall.applied_to.retain(|t| *t != gone);
        }
        (record.server, action)
    };
    let hook = lock(&inner.hook).clone();
    if let Some(hook) = hook {
        hook.server_deleted(&server);
    }
    Json(json!({"action": action_json(&action)})).into_response()
}

async fn server_action(
    State(inner): State<Arc<Inner>>,
    Extension(Project(project)): Extension<Project>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let (command, on) = match action.as_str() {
        "poweron" => ("start_server", true),
        "poweroff" => ("stop_server", false),
        "shutdown" => ("shutdown_server", false),
        "reboot" => ("reboot_server", true),
        "reset" => ("reset_server", true),
        _ => return error(StatusCode::NOT_FOUND, "not_found", "no such action"),
    };
    let (server, record) = {
        let mut state = lock(&project);
        let Some(record) = parse_id(&id).and_then(|id| state.servers.get_mut(&id)) else {
            return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
        };
        if on {
            if record.server.status != "running" {
                record.server.status = "starting".into();
                record.booting_since = Some(Instant::now());
            }
        } else {
            record.server.status = "off".into();
            record.booting_since = None;
        }
        let server = record.server.clone();
        let action = new_action(&mut state, command, server.id);
        (server, action)
    };
    let hook = lock(&inner.hook).clone();
    if let Some(hook) = hook {
        if command == "reboot_server" || command == "reset_server" {
            // A reboot takes the machine down before it comes back.
            hook.server_powered(&server, false);
        }
        hook.server_powered(&server, on);
    }
    (StatusCode::CREATED, Json(json!({"action": action_json(&record)}))).into_response()
}

#[derive(Deserialize)]
struct ProtectionBody {
    delete: Option<bool>,
    rebuild: Option<bool>,
}

/// `POST /servers/{id}/actions/change_protection` with `{delete, rebuild}`.
async fn change_protection(
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
    body: Result<Json<ProtectionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body");
    };
    if body.delete.is_none() && body.rebuild.is_none() {
        return invalid_field("delete", "delete or rebuild is required");
    }
    let mut state = lock(&project);
    let Some(record) = parse_id(&id).and_then(|n| state.servers.get_mut(&n)) else {
        return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
    };
    // The reference: rebuild protection needs delete protection with it.
    let delete = body.delete.unwrap_or(record.protection.0);
    let rebuild = body.rebuild.unwrap_or(record.protection.1);
    if rebuild != delete {
        return invalid_field("rebuild", "delete and rebuild protection must be set to the same value");
    }
    record.protection = (delete, rebuild);
    let server = record.server.id;
    let action = new_action(&mut state, "change_protection", server);
    (StatusCode::CREATED, Json(json!({"action": action_json(&action)}))).into_response()
}

/// `GET /servers/{id}/actions`: the server's actions (`status`, `sort`, pages).
async fn server_actions(
    Extension(Project(project)): Extension<Project>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let statuses = values_of(&pairs, "status");
    if let Some(bad) = statuses.iter().find(|s| !["running", "success", "error"].contains(&s.as_str())) {
        return invalid_field("status", &format!("unknown status {bad:?}"));
    }
    let mut actions: Vec<Value> = {
        let state = lock(&project);
        let Some(server) = parse_id(&id).filter(|n| state.servers.contains_key(n)) else {
            return error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found"));
        };
        state
            .actions
            .values()
            .filter(|a| a.resources.iter().any(|(rid, kind)| *rid == server && *kind == "server"))
            .map(action_json)
            .filter(|a| statuses.is_empty() || statuses.iter().any(|s| a["status"] == s.as_str()))
            .collect()
    };
    let sort = values_of(&pairs, "sort");
    let allowed = ["id", "command", "status", "started", "finished"];
    if let Err(response) = sort_values(&mut actions, &sort, &allowed) {
        return response;
    }
    match paginate(&actions, &page_of(&pairs), 25, 50) {
        Ok((items, meta)) => Json(json!({"actions": items, "meta": meta})).into_response(),
        Err((field, message)) => invalid_field(field, message),
    }
}

async fn get_action(Extension(Project(project)): Extension<Project>, Path(id): Path<String>) -> Response {
    let state = lock(&project);
    match parse_id(&id).and_then(|id| state.actions.get(&id)) {
        Some(action) => Json(json!({"action": action_json(action)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("action with ID '{id}' not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_match() {
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x".to_owned())]);
        let m = |s: &str| selector_matches(&parse_selector(s).unwrap(), &labels);
        assert!(m("a=1"));
        assert!(m("a==1,b"));
        assert!(!m("a!=1"));
        assert!(m("!c"));
        assert!(m("b in (x,y)"));
        assert!(!m("b notin (x,y)"));
        assert!(!m("c"));
    }
}
