//! Hetzner Cloud API v1 emulator.
//!
//! Endpoints (all under `/v1`, `Authorization: Bearer <token>`; an unknown
//! token gets 401 `unauthorized`, a read-only token 403 `token_readonly` on
//! anything but `GET`):
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /servers` | `name`, `label_selector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = and), `status`, `page`, `per_page` (default 25, max 50); `meta.pagination` |
//! | `POST /servers` | 201 `{server, action, next_actions, root_password}`; checks name (unique → 409 `uniqueness_error`), `server_type`, `location`, `image`, `user_data` ≤ 32 KiB (400 `invalid_input`), the server limit (403 `resource_limit_exceeded`), labels by Hetzner's rules (400 `invalid_input`) |
//! | `GET /servers/{id}` | 404 `not_found` when absent |
//! | `PUT /servers/{id}` | `{server}`; `name` (unique) and/or `labels` (the whole set is replaced) |
//! | `DELETE /servers/{id}` | 200 `{action}`; 404 when absent |
//! | `POST /servers/{id}/actions/{poweron,poweroff,shutdown,reboot}` | 201 `{action}` |
//! | `GET /actions/{id}` | the action (finished: `success`, progress 100) |
//! | `GET /server_types` | a catalogue with deprecated and ARM types and prices per location; paginated |
//! | `GET /locations` | `fsn1`, `nbg1`, `hel1`, `ash` |
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

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

mod firewalls;

pub use firewalls::{EmulatedFirewall, EmulatedFirewallRule, FirewallTarget};

use super::faults::{self, FaultPlan, InjectedError};
use super::{Bucket, ServerTask, bearer, lock, rfc3339, serve, unix_now};

/// The token the default configuration accepts.
pub const HETZNER_TOKEN: &str = "hetzner-emulator-token";

/// Settings of the Hetzner emulator.
#[derive(Debug, Clone)]
pub struct HetznerEmulatorConfig {
    /// Tokens that authenticate (one project).
    pub tokens: Vec<String>,
    /// Tokens that authenticate for `GET` only (others → 403 `token_readonly`).
    pub readonly_tokens: Vec<String>,
    /// Time from `initializing` (or `starting`) to `running`.
    pub boot_delay: Duration,
    /// Most servers the project may have (`resource_limit_exceeded` beyond).
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    buckets: HashMap<String, Bucket>,
    next_id: u64,
    next_action: u64,
    next_ip: u32,
}

#[derive(Debug)]
struct Inner {
    config: Mutex<HetznerEmulatorConfig>,
    state: Mutex<HState>,
    hook: Mutex<Option<Arc<dyn ServerHook>>>,
    faults: FaultPlan,
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
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            state: Mutex::new(HState { next_id: 4_711_000, next_action: 9_000_000, ..HState::default() }),
            hook: Mutex::new(None),
            faults: FaultPlan::default(),
        });
        let api = Router::new()
            .route("/servers", get(list_servers).post(create_server))
            .route("/servers/{id}", get(get_server).put(update_server).delete(delete_server))
            .route("/servers/{id}/actions/{action}", post(server_action))
            .route("/actions/{id}", get(get_action))
            .route("/firewalls", get(firewalls::list).post(firewalls::create))
            .route("/firewalls/{id}", get(firewalls::get_one).put(firewalls::update).delete(firewalls::delete))
            .route("/firewalls/{id}/actions/{action}", post(firewalls::action))
            .route("/server_types", get(server_types))
            .route("/locations", get(locations))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
            .layer(axum::middleware::from_fn_with_state(inner.clone(), auth_and_rate_limit))
            .with_state(inner.clone());
        let router = Router::new().nest("/v1", api).layer(axum::middleware::from_fn_with_state(
            (inner.faults.clone(), render_fault as faults::Renderer),
            faults::middleware,
        ));
        let (addr, task) = serve(router).await?;
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
        let mut state = lock(&self.inner.state);
        let tokens = lock(&self.inner.config).tokens.clone();
        for token in tokens {
            state.buckets.insert(token, Bucket { remaining: 0.0, last: Instant::now() });
        }
    }

    /// Every server, with its current status.
    pub fn servers(&self) -> Vec<EmulatedServer> {
        let boot = lock(&self.inner.config).boot_delay;
        let mut state = lock(&self.inner.state);
        state.servers.values_mut().map(|r| refresh(r, boot).clone()).collect()
    }

    /// Every firewall.
    pub fn firewalls(&self) -> Vec<EmulatedFirewall> {
        lock(&self.inner.state).firewalls.values().cloned().collect()
    }

    /// The ids of the firewalls applying to server `id` (directly or through
    /// a label selector); empty for an unknown server.
    pub fn firewalls_of(&self, id: u64) -> Vec<u64> {
        let state = lock(&self.inner.state);
        state.servers.get(&id).map(|r| firewalls::firewalls_of(&state, id, &r.server.labels)).unwrap_or_default()
    }

    /// Adds a server directly (e.g. one that is not SAM's), returning its id.
    pub fn insert_server(&self, name: &str, labels: BTreeMap<String, String>) -> u64 {
        let fixed = lock(&self.inner.config).fixed_ipv4;
        let mut state = lock(&self.inner.state);
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
        };
        state.servers.insert(id, ServerRecord { server, booting_since: None });
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

async fn auth_and_rate_limit(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let token = bearer(request.headers());
    let (valid, readonly, limit, refill) = {
        let config = lock(&inner.config);
        let valid = token.as_ref().is_some_and(|t| config.tokens.iter().any(|c| c == t));
        let readonly = token.as_ref().is_some_and(|t| config.readonly_tokens.iter().any(|c| c == t));
        (valid || readonly, readonly, config.rate_limit, config.rate_refill_per_sec)
    };
    let Some(token) = token.filter(|_| valid) else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "unable to authenticate");
    };
    if readonly && request.method() != axum::http::Method::GET {
        return error(StatusCode::FORBIDDEN, "token_readonly", "The token is only allowed to perform GET requests");
    }
    let rate = {
        let mut state = lock(&inner.state);
        state.buckets.entry(token).or_insert_with(|| Bucket::new(limit)).take(limit, refill)
    };
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

// ---- catalogue ----

struct TypeDef {
    id: u64,
    name: &'static str,
    cores: u32,
    memory: f64,
    disk: u32,
    arch: &'static str,
    deprecated: bool,
    hourly: &'static str,
    monthly: &'static str,
}

const TYPES: &[TypeDef] = &[
    TypeDef {
        id: 22,
        name: "cx22",
        cores: 2,
        memory: 4.0,
        disk: 40,
        arch: "x86",
        deprecated: true,
        hourly: "0.0066",
        monthly: "4.1500",
    },
    TypeDef {
        id: 104,
        name: "cx23",
        cores: 2,
        memory: 4.0,
        disk: 40,
        arch: "x86",
        deprecated: false,
        hourly: "0.0080",
        monthly: "4.9900",
    },
    TypeDef {
        id: 105,
        name: "cx33",
        cores: 4,
        memory: 8.0,
        disk: 80,
        arch: "x86",
        deprecated: false,
        hourly: "0.0128",
        monthly: "7.9900",
    },
    TypeDef {
        id: 106,
        name: "cx43",
        cores: 8,
        memory: 16.0,
        disk: 160,
        arch: "x86",
        deprecated: false,
        hourly: "0.0208",
        monthly: "12.9900",
    },
    TypeDef {
        id: 107,
        name: "cx53",
        cores: 16,
        memory: 32.0,
        disk: 320,
        arch: "x86",
        deprecated: false,
        hourly: "0.0384",
        monthly: "23.9900",
    },
    TypeDef {
        id: 45,
        name: "cax11",
        cores: 2,
        memory: 4.0,
        disk: 40,
        arch: "arm",
        deprecated: false,
        hourly: "0.0072",
        monthly: "4.4900",
    },
    TypeDef {
        id: 96,
        name: "cpx22",
        cores: 2,
        memory: 4.0,
        disk: 80,
        arch: "x86",
        deprecated: false,
        hourly: "0.0120",
        monthly: "7.4900",
    },
];

struct LocationDef {
    id: u64,
    name: &'static str,
    description: &'static str,
    country: &'static str,
    city: &'static str,
    zone: &'static str,
}

const LOCATIONS: &[LocationDef] = &[
    LocationDef {
        id: 1,
        name: "fsn1",
        description: "Falkenstein DC Park 1",
        country: "DE",
        city: "Falkenstein",
        zone: "eu-central",
    },
    LocationDef {
        id: 2,
        name: "nbg1",
        description: "Nuremberg DC Park 1",
        country: "DE",
        city: "Nuremberg",
        zone: "eu-central",
    },
    LocationDef {
        id: 3,
        name: "hel1",
        description: "Helsinki DC Park 1",
        country: "FI",
        city: "Helsinki",
        zone: "eu-central",
    },
    LocationDef { id: 4, name: "ash", description: "Ashburn, VA", country: "US", city: "Ashburn, VA", zone: "us-east" },
];

const IMAGES: &[&str] = &["ubuntu-24.04", "ubuntu-22.04", "debian-12", "debian-13"];

fn location_json(l: &LocationDef) -> Value {
    json!({"id": l.id, "name": l.name, "description": l.description, "country": l.country, "city": l.city,
           "latitude": 50.0, "longitude": 12.0, "network_zone": l.zone})
}

fn type_json(t: &TypeDef) -> Value {
    // ash offers no cx (shared Intel/AMD) types, as on the real service.
    let prices: Vec<Value> = LOCATIONS
        .iter()
        .filter(|l| l.name != "ash" || t.name.starts_with("cpx"))
        .map(|l| {
            json!({"location": l.name,
                   "price_hourly": {"net": t.hourly, "gross": t.hourly},
                   "price_monthly": {"net": t.monthly, "gross": t.monthly},
                   "included_traffic": 21_990_232_555_520_u64,
                   "price_per_tb_traffic": {"net": "1.0000", "gross": "1.1900"}})
        })
        .collect();
    let deprecation = t
        .deprecated
        .then(|| json!({"announced": "2025-10-16T06:00:00+00:00", "unavailable_after": "2026-01-16T06:00:00+00:00"}));
    json!({"id": t.id, "name": t.name, "description": t.name.to_uppercase(), "cores": t.cores, "memory": t.memory,
           "disk": t.disk, "storage_type": "local", "cpu_type": "shared", "architecture": t.arch,
           "deprecated": t.deprecated, "deprecation": deprecation, "prices": prices})
}

fn server_json(state: &HState, s: &EmulatedServer) -> Value {
    let firewalls: Vec<Value> = firewalls::firewalls_of(state, s.id, &s.labels)
        .into_iter()
        .map(|id| json!({"id": id, "status": "applied"}))
        .collect();
    let t = TYPES.iter().find(|t| t.name == s.server_type).map_or(Value::Null, type_json);
    let l = LOCATIONS.iter().find(|l| l.name == s.location).map_or(Value::Null, location_json);
    json!({
        "id": s.id, "name": s.name, "status": s.status, "created": rfc3339(s.created),
        "public_net": {
            "ipv4": {"id": s.id + 100_000, "ip": s.ipv4.to_string(), "blocked": false, "dns_ptr": format!("static.{}.clients.your-server.de", s.ipv4)},
            "ipv6": {"id": s.id + 200_000, "ip": "2001:db8::/64", "blocked": false, "dns_ptr": []},
            "floating_ips": [], "firewalls": firewalls
        },
        "private_net": [],
        "server_type": t,
        "datacenter": {"id": 1, "name": format!("{}-dc14", s.location), "description": "emulated", "location": l},
        "image": {"id": 161_547_269, "type": "system", "status": "available", "name": s.image, "os_flavor": "ubuntu"},
        "iso": null, "rescue_enabled": false, "locked": false, "backup_window": null,
        "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21_990_232_555_520_u64,
        "protection": {"delete": false, "rebuild": false},
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

async fn server_types(Query(q): Query<PageQuery>) -> Response {
    let all: Vec<Value> = TYPES.iter().map(type_json).collect();
    match paginate(&all, &q, 25, 50) {
        Ok((items, meta)) => Json(json!({"server_types": items, "meta": meta})).into_response(),
        Err((field, message)) => invalid_field(field, message),
    }
}

async fn locations(Query(q): Query<PageQuery>) -> Response {
    let all: Vec<Value> = LOCATIONS.iter().map(location_json).collect();
    match paginate(&all, &q, 25, 50) {
        Ok((items, meta)) => Json(json!({"locations": items, "meta": meta})).into_response(),
        Err((field, message)) => invalid_field(field, message),
    }
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

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
    label_selector: Option<String>,
    status: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn list_servers(State(inner): State<Arc<Inner>>, Query(q): Query<ListQuery>) -> Response {
    let terms = match q.label_selector.as_deref().map(parse_selector).transpose() {
        Ok(t) => t.unwrap_or_default(),
        Err(message) => return invalid_field("label_selector", &message),
    };
    let boot = lock(&inner.config).boot_delay;
    let matching: Vec<Value> = {
        let mut state = lock(&inner.state);
        let servers: Vec<EmulatedServer> = state
            .servers
            .values_mut()
            .map(|r| refresh(r, boot).clone())
            .filter(|s| q.name.as_ref().is_none_or(|n| &s.name == n))
            .filter(|s| q.status.as_ref().is_none_or(|st| &s.status == st))
            .filter(|s| selector_matches(&terms, &s.labels))
            .collect();
        servers.iter().map(|s| server_json(&state, s)).collect()
    };
    match paginate(&matching, &q.page, 25, 50) {
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
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(_) => return error(StatusCode::BAD_REQUEST, "json_error", "invalid JSON in request body"),
    };
    let Some(name) = body.name.filter(|n| valid_hostname(n)) else {
        return invalid_field("name", "must be a valid hostname");
    };
    let Some(server_type) = body.server_type.filter(|t| TYPES.iter().any(|d| d.name == t)) else {
        return invalid_field("server_type", "server type not found");
    };
    let location = match (body.location, body.datacenter) {
        (Some(l), _) => l,
        (None, Some(dc)) => dc.split('-').next().unwrap_or_default().to_owned(),
        (None, None) => "fsn1".to_owned(),
    };
    if !LOCATIONS.iter().any(|l| l.name == location) {
        return invalid_field("location", "location not found");
    }
    let Some(image) = body.image.filter(|i| IMAGES.contains(&i.as_str())) else {
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
        let mut state = lock(&inner.state);
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
        };
        state.servers.insert(id, ServerRecord { server: server.clone(), booting_since: start.then(Instant::now) });
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
    let mut state = lock(&inner.state);
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

async fn get_server(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let boot = lock(&inner.config).boot_delay;
    let mut state = lock(&inner.state);
    match parse_id(&id).and_then(|id| state.servers.get_mut(&id)).map(|record| refresh(record, boot).clone()) {
        Some(server) => Json(json!({"server": server_json(&state, &server)})).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("server with ID '{id}' not found")),
    }
}

async fn delete_server(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let (server, action) = {
        let mut state = lock(&inner.state);
        let Some(record) = parse_id(&id).and_then(|id| state.servers.remove(&id)) else {
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

async fn server_action(State(inner): State<Arc<Inner>>, Path((id, action)): Path<(String, String)>) -> Response {
    let (command, on) = match action.as_str() {
        "poweron" => ("start_server", true),
        "poweroff" => ("stop_server", false),
        "shutdown" => ("shutdown_server", false),
        "reboot" => ("reboot_server", true),
        _ => return error(StatusCode::NOT_FOUND, "not_found", "no such action"),
    };
    let (server, record) = {
        let mut state = lock(&inner.state);
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
        if command == "reboot_server" {
            // A reboot takes the machine down before it comes back.
            hook.server_powered(&server, false);
        }
        hook.server_powered(&server, on);
    }
    (StatusCode::CREATED, Json(json!({"action": action_json(&record)}))).into_response()
}

async fn get_action(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let state = lock(&inner.state);
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
