//! Cloudflare API v4 DNS emulator: one zone and its records.
//!
//! Endpoints (under `/client/v4`, `Authorization: Bearer <token>`):
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /ips` | the edge's ranges `{ipv4_cidrs, ipv6_cidrs, etag}` ([`CloudflareEmulatorConfig::edge_ipv4`]); no token needed |
//! | `GET /user/tokens/verify` | `{result: {id, status: "active"}}`; unknown token → 401, code 1000 `Invalid API Token` |
//! | `GET /zones` | the zone: filters `name`, `status`, `match`; `order`, `direction`; `page`, `per_page` (5..=50, default 20) |
//! | `GET /zones/{zone_id}` | the zone; another well-formed id → 403 code 9109; a malformed id → 400 code 7003 |
//! | `GET /zones/{zone_id}/dns_records` | filters `type`, `name` / `name.exact`, `name.startswith`, `name.endswith`, `name.contains`, `content` / `content.exact`, `content.contains`, `content.startswith`, `content.endswith`, `comment.exact`, `comment.startswith`; `order` (`type`, `name`, `content`, `ttl`, `proxied`) and `direction`; `page`, `per_page` (default 100, 5..=5000); `result_info` |
//! | `POST /zones/{zone_id}/dns_records` | types A, AAAA, CNAME, TXT, MX (with `priority`), NS, CAA; creates; **a second record with the same name is accepted** (as on the real service), an identical one (same type, name, content) → 400 code 81058; keeps the record's `comment` (over 100 characters → 400); `proxied` only for A, AAAA and CNAME (else 400 code 9004), with the TTL then automatic (1) |
//! | `POST /certificates`, `GET /certificates?zone_id=` (`page`, `per_page` 5..=50, default 20) | the Origin CA: signs a CSR for `hostnames` in the zone (else 400 code 1010) with the emulator's own CA ([`CloudflareEmulator::origin_ca_pem`]); `request_type` `origin-ecc` (ECDSA key) or `origin-rsa` (RSA key), `requested_validity` 7, 30, 90, 365, 730, 1095 or 5475 (default) days; `expires_on` in Go's format |
//! | `GET`, `DELETE /certificates/{id}` | one certificate; revoke (`{id, revoked_at}`), 404 code 1003 when unknown or revoked |
//! | `GET`, `PATCH /zones/{zone_id}/settings/{setting_id}` | `ssl` (`off`, `flexible`, `full`, `strict`), `always_use_https`, `websockets`, `tls_client_auth` (`on`, `off`), `min_tls_version`; `{id, value, editable, modified_on}`; unknown setting → 400 code 1006, a value it does not take → 400 code 1007 ([`CloudflareEmulatorConfig::zone_settings`]) |
//! | `GET /zones/{zone_id}/ssl/certificate_packs` | the edge certificates: Universal SSL's pack (`zone`, `*.zone`) when [`CloudflareEmulatorConfig::universal_ssl`], plus [`CloudflareEmulatorConfig::advanced_certificates`] |
//! | `GET`, `PATCH`, `PUT`, `DELETE /zones/{zone_id}/dns_records/{id}` | unknown id → 404 code 81044 `Record does not exist.`; `DELETE` answers `{result: {id}}` |
//!
//! Every response is the envelope `{success, errors: [{code, message}],
//! messages, result, result_info?}`. Any other endpoint with a bad token → 403
//! code 10000 `Authentication error`; so does a change (`POST`, `PATCH`,
//! `PUT`, `DELETE`) with one of [`CloudflareEmulatorConfig::read_only_tokens`]
//! (a token with "DNS Read" but not "DNS Edit"), which otherwise verify and
//! read. Names are stored fully qualified and
//! lower-case (a relative name gets the zone appended). A token bucket per
//! token (default 1200 requests per 5 minutes) answers 429 with `Retry-After`
//! and code 971 when empty. Injected faults render as 429 (971), 500 and 503
//! (and `ResourceUnavailable` as 503) in the same envelope.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::{self, FaultPlan, InjectedError};
use super::{Bucket, ServerTask, bearer, lock, rfc3339};

mod origin_ca;
mod settings;
mod zones;

/// The token the default configuration accepts.
pub const CLOUDFLARE_TOKEN: &str = "cloudflare-emulator-token";

/// Settings of the Cloudflare emulator.
#[derive(Debug, Clone)]
pub struct CloudflareEmulatorConfig {
    /// Tokens that authenticate and may edit the zone.
    pub tokens: Vec<String>,
    /// Tokens that authenticate and may read the zone and its records but
    /// not change them.
    pub read_only_tokens: Vec<String>,
    /// Zone name, e.g. `sam.test`.
    pub zone_name: String,
    /// Zone id (32 hex characters).
    pub zone_id: String,
    /// Size of the rate-limit bucket per token (Cloudflare: 1200).
    pub rate_limit: u32,
    /// Refill of the bucket per second (Cloudflare: 1200 per 300 s = 4).
    pub rate_refill_per_sec: f64,
    /// The edge's IPv4 networks `GET /ips` publishes (default: Cloudflare's
    /// published list; the dev mode's local edge is on loopback).
    pub edge_ipv4: Vec<String>,
    /// The edge's IPv6 networks `GET /ips` publishes.
    pub edge_ipv6: Vec<String>,
    /// The zone's settings, `(id, value)` (default: a new zone's, SSL mode
    /// `flexible`); `PATCH` changes them.
    pub zone_settings: Vec<(String, String)>,
    /// Universal SSL is on: an edge certificate for the apex and one level
    /// below it.
    pub universal_ssl: bool,
    /// Advanced edge certificates, each its list of hosts (e.g.
    /// `["*.staging.sam.test"]`).
    pub advanced_certificates: Vec<Vec<String>>,
}

/// Cloudflare's published IPv4 ranges (<https://www.cloudflare.com/ips-v4>).
pub const CLOUDFLARE_IPV4: &[&str] = &[
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
];

/// Cloudflare's published IPv6 ranges (<https://www.cloudflare.com/ips-v6>).
pub const CLOUDFLARE_IPV6: &[&str] = &[
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

impl Default for CloudflareEmulatorConfig {
    fn default() -> Self {
        Self {
            tokens: vec![CLOUDFLARE_TOKEN.to_owned()],
            read_only_tokens: Vec::new(),
            zone_name: "sam.test".to_owned(),
            zone_id: "5a3f1b2c4d5e6f708192a3b4c5d6e7f8".to_owned(),
            rate_limit: 1200,
            rate_refill_per_sec: 4.0,
            edge_ipv4: CLOUDFLARE_IPV4.iter().map(|s| (*s).to_owned()).collect(),
            edge_ipv6: CLOUDFLARE_IPV6.iter().map(|s| (*s).to_owned()).collect(),
            zone_settings: settings::defaults(),
            universal_ssl: true,
            advanced_certificates: Vec::new(),
        }
    }
}

/// A DNS record as the emulator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedRecord {
    /// Record id (32 hex characters).
    pub id: String,
    /// Fully qualified, lower-case name.
    pub name: String,
    /// Type (`A`, ...).
    pub record_type: String,
    /// Content (the address of an A record).
    pub content: String,
    /// TTL (1 = automatic).
    pub ttl: u32,
    /// Proxied through Cloudflare.
    pub proxied: bool,
    /// Free-text comment (at most 100 characters, as on the Free plan).
    pub comment: Option<String>,
    /// MX priority.
    #[serde(default)]
    pub priority: Option<u16>,
    /// Creation time.
    pub created_on: time::OffsetDateTime,
    /// Last change.
    pub modified_on: time::OffsetDateTime,
}

#[derive(Debug, Default)]
struct CState {
    records: Vec<EmulatedRecord>,
    certificates: Vec<origin_ca::Issued>,
    buckets: HashMap<String, Bucket>,
    settings_modified: HashMap<String, time::OffsetDateTime>,
    next: u64,
}

#[derive(Debug)]
struct Inner {
    config: Mutex<CloudflareEmulatorConfig>,
    state: Mutex<CState>,
    faults: FaultPlan,
    origin_ca: origin_ca::OriginCa,
}

/// Handle to a running Cloudflare emulator.
#[derive(Debug, Clone)]
pub struct CloudflareEmulator {
    inner: Arc<Inner>,
    base_url: String,
    _task: Arc<ServerTask>,
}

impl CloudflareEmulator {
    /// Starts an emulator on a random loopback port.
    pub async fn start(config: CloudflareEmulatorConfig) -> std::io::Result<Self> {
        Self::start_from(config, None, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The zone's records and settings, the Origin CA (its key too) and the
    /// certificates it issued, as JSON, for [`CloudflareEmulator::start_from`].
    pub fn snapshot(&self) -> Value {
        let state = lock(&self.inner.state);
        let settings = lock(&self.inner.config).zone_settings.clone();
        json!({"records": state.records, "certificates": state.certificates, "next": state.next,
               "zone_settings": settings, "origin_ca": {"root": self.inner.origin_ca.root_pem(),
               "key": self.inner.origin_ca.key_pem()}})
    }

    /// Starts an emulator on `addr` (port 0: any free one) with the state of
    /// a [`CloudflareEmulator::snapshot`], if given: the same records,
    /// settings and Origin CA, so certificates issued before still verify.
    pub async fn start_from(
        mut config: CloudflareEmulatorConfig,
        snapshot: Option<Value>,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        let mut state = CState::default();
        let origin_ca = match &snapshot {
            Some(saved) => {
                let (root, key) = (saved["origin_ca"]["root"].as_str(), saved["origin_ca"]["key"].as_str());
                let (Some(root), Some(key)) = (root, key) else {
                    return Err(std::io::Error::other("the snapshot has no Origin CA"));
                };
                state.records = serde_json::from_value(saved["records"].clone()).map_err(std::io::Error::other)?;
                state.certificates =
                    serde_json::from_value(saved["certificates"].clone()).map_err(std::io::Error::other)?;
                state.next = saved["next"].as_u64().unwrap_or_default();
                if let Ok(settings) = serde_json::from_value(saved["zone_settings"].clone()) {
                    config.zone_settings = settings;
                }
                origin_ca::OriginCa::restore(root, key).map_err(std::io::Error::other)?
            }
            None => origin_ca::OriginCa::generate().map_err(std::io::Error::other)?,
        };
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            state: Mutex::new(state),
            faults: FaultPlan::default(),
            origin_ca,
        });
        let api = Router::new()
            .route("/user/tokens/verify", get(verify))
            .route("/ips", get(ips))
            .route("/certificates", get(origin_ca::list).post(origin_ca::create))
            .route("/certificates/{id}", get(origin_ca::get).delete(origin_ca::revoke))
            .route("/zones", get(zones::list))
            .route("/zones/{zone}", get(zones::get))
            .route("/zones/{zone}/settings/{setting}", get(settings::get).patch(settings::patch))
            .route("/zones/{zone}/ssl/certificate_packs", get(settings::certificate_packs))
            .route("/zones/{zone}/dns_records", get(list_records).post(create_record))
            .route(
                "/zones/{zone}/dns_records/{id}",
                get(get_record).patch(patch_record).put(put_record).delete(delete_record),
            )
            .fallback(|| async { envelope_error(StatusCode::BAD_REQUEST, 7000, "No route for that URI") })
            .layer(axum::middleware::from_fn_with_state(render_error as super::ErrorRenderer, super::provider_errors))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), auth_and_rate_limit))
            .with_state(inner.clone());
        let router = Router::new().nest("/client/v4", api).layer(axum::middleware::from_fn_with_state(
            (inner.faults.clone(), render_fault as faults::Renderer),
            faults::middleware,
        ));
        let (addr, task) = super::serve_on(router, addr).await?;
        Ok(Self { inner, base_url: format!("http://{addr}/client/v4"), _task: Arc::new(task) })
    }

    /// The API base URL, including `/client/v4`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first accepted token.
    pub fn token(&self) -> String {
        lock(&self.inner.config).tokens.first().cloned().unwrap_or_default()
    }

    /// The zone id.
    pub fn zone_id(&self) -> String {
        lock(&self.inner.config).zone_id.clone()
    }

    /// The zone name.
    pub fn zone_name(&self) -> String {
        lock(&self.inner.config).zone_name.clone()
    }

    /// The root certificate (PEM) of the emulator's Origin CA, which every
    /// certificate from `POST /certificates` chains to (Cloudflare's edge
    /// trusts Cloudflare's real Origin CA the same way).
    pub fn origin_ca_pem(&self) -> String {
        self.inner.origin_ca.root_pem()
    }

    /// Origin CA certificates issued and not revoked: `(id, hostnames)`.
    pub fn origin_certificates(&self) -> Vec<(String, Vec<String>)> {
        lock(&self.inner.state)
            .certificates
            .iter()
            .filter(|c| !c.revoked)
            .map(|c| (c.id.clone(), c.hostnames.clone()))
            .collect()
    }

    /// The fault plan (paths start with `/client/v4`).
    pub fn faults(&self) -> &FaultPlan {
        &self.inner.faults
    }

    /// Changes the configuration from now on.
    pub fn configure(&self, change: impl FnOnce(&mut CloudflareEmulatorConfig)) {
        change(&mut lock(&self.inner.config));
    }

    /// The zone's current value of `setting` (`ssl`, `websockets`, …).
    pub fn zone_setting(&self, setting: &str) -> Option<String> {
        lock(&self.inner.config).zone_settings.iter().find(|(k, _)| k == setting).map(|(_, v)| v.clone())
    }

    /// Every record, oldest first.
    pub fn records(&self) -> Vec<EmulatedRecord> {
        lock(&self.inner.state).records.clone()
    }

    /// Creates an A record without any check (a careless client's duplicate);
    /// returns its id.
    pub fn create_raw(&self, name: &str, ipv4: Ipv4Addr) -> String {
        let zone = self.zone_name();
        let mut state = lock(&self.inner.state);
        let record = new_record(&mut state, fqdn(name, &zone), "A".into(), ipv4.to_string(), 1, false, None);
        let id = record.id.clone();
        state.records.push(record);
        id
    }

    /// Empties every token's rate-limit bucket.
    pub fn exhaust_rate_limit(&self) {
        let tokens = lock(&self.inner.config).tokens.clone();
        let mut state = lock(&self.inner.state);
        for token in tokens {
            state.buckets.insert(token, Bucket { remaining: 0.0, last: Instant::now() });
        }
    }
}

fn new_record(
    state: &mut CState,
    name: String,
    record_type: String,
    content: String,
    ttl: u32,
    proxied: bool,
    comment: Option<String>,
) -> EmulatedRecord {
    state.next += 1;
    let now = time::OffsetDateTime::now_utc();
    EmulatedRecord {
        id: format!("{:032x}", 0x0c1f_0000_0000_0000_0000_0000_0000_0000_u128 + u128::from(state.next)),
        name,
        record_type,
        content,
        ttl,
        proxied,
        comment,
        priority: None,
        created_on: now,
        modified_on: now,
    }
}

fn fqdn(name: &str, zone: &str) -> String {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if name == "@" || name == zone {
        zone.to_owned()
    } else if name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

fn envelope_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})),
    )
        .into_response()
}

/// Cloudflare's envelope for a status the handlers did not answer
/// themselves: 7001 for a method the route does not take, 7003 for a path
/// that does not parse, as the API answers them.
fn render_error(status: StatusCode, message: &str) -> Response {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => envelope_error(status, 7001, "Method not allowed for this route"),
        StatusCode::BAD_REQUEST => envelope_error(status, 7003, &format!("Could not route: {message}")),
        _ => envelope_error(status, 10000, message),
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"success": true, "errors": [], "messages": [], "result": result})).into_response()
}

fn too_many(retry_after: u64) -> Response {
    let mut response =
        envelope_error(StatusCode::TOO_MANY_REQUESTS, 971, "Please wait and consider throttling your request speed");
    if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

fn render_fault(fault: InjectedError) -> Response {
    match fault {
        InjectedError::TooManyRequests => too_many(1),
        InjectedError::Internal => {
            envelope_error(StatusCode::INTERNAL_SERVER_ERROR, 10100, "An internal error occurred.")
        }
        InjectedError::Unavailable | InjectedError::ResourceUnavailable => {
            envelope_error(StatusCode::SERVICE_UNAVAILABLE, 10100, "Service temporarily unavailable.")
        }
        InjectedError::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            envelope_error(status, 10100, "Injected error.")
        }
    }
}

/// `GET /ips`: the edge's address ranges; public, no token needed.
async fn ips(State(inner): State<Arc<Inner>>) -> Response {
    let (v4, v6) = {
        let c = lock(&inner.config);
        (c.edge_ipv4.clone(), c.edge_ipv6.clone())
    };
    let etag = sam_core::secret::sha256_hex(format!("{v4:?}{v6:?}").as_bytes());
    ok(json!({"ipv4_cidrs": v4, "ipv6_cidrs": v6, "etag": etag}))
}

async fn auth_and_rate_limit(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/ips" {
        return next.run(request).await;
    }
    let token = bearer(request.headers());
    let (valid, read_only, limit, refill) = {
        let c = lock(&inner.config);
        let read_only = token.as_ref().is_some_and(|t| c.read_only_tokens.iter().any(|x| x == t));
        (
            read_only || token.as_ref().is_some_and(|t| c.tokens.iter().any(|x| x == t)),
            read_only,
            c.rate_limit,
            c.rate_refill_per_sec,
        )
    };
    let Some(token) = token.filter(|_| valid) else {
        return if request.uri().path().ends_with("/user/tokens/verify") {
            envelope_error(StatusCode::UNAUTHORIZED, 1000, "Invalid API Token")
        } else {
            envelope_error(StatusCode::FORBIDDEN, 10000, "Authentication error")
        };
    };
    if read_only && request.method() != axum::http::Method::GET {
        return envelope_error(StatusCode::FORBIDDEN, 10000, "Authentication error");
    }
    let rate = {
        let mut state = lock(&inner.state);
        state.buckets.entry(token).or_insert_with(|| Bucket::new(limit)).take(limit, refill)
    };
    if rate.allowed { next.run(request).await } else { too_many(rate.retry_in) }
}

async fn verify() -> Response {
    // A token without a validity window has neither `not_before` nor
    // `expires_on` (both are optional strings in the reference).
    ok(json!({"id": "ed17574386854bf78a67040be0a770b0", "status": "active"}))
}

/// Checks the zone id of the path; returns the zone name.
fn check_zone(inner: &Inner, zone: &str) -> Result<String, Response> {
    let config = lock(&inner.config);
    if zone == config.zone_id {
        return Ok(config.zone_name.clone());
    }
    if zone.len() == 32 && zone.chars().all(|c| c.is_ascii_hexdigit()) {
        Err(envelope_error(StatusCode::FORBIDDEN, 9109, "Unauthorized to access requested resource"))
    } else {
        Err(envelope_error(
            StatusCode::BAD_REQUEST,
            7003,
            &format!("Could not route to /zones/{zone}, perhaps your object identifier is invalid?"),
        ))
    }
}

fn record_json(r: &EmulatedRecord, zone_id: &str, zone_name: &str) -> Value {
    let proxiable = ["A", "AAAA", "CNAME"].contains(&r.record_type.as_str());
    let mut record = json!({"id": r.id, "zone_id": zone_id, "zone_name": zone_name, "name": r.name, "type": r.record_type,
           "content": r.content, "proxiable": proxiable,
           "proxied": r.proxied, "ttl": r.ttl, "locked": false,
           "meta": {"auto_added": false, "managed_by_apps": false, "managed_by_argo_tunnel": false},
           "tags": [], "created_on": rfc3339(r.created_on), "modified_on": rfc3339(r.modified_on)});
    // The reference types `comment` as a string: absent when there is none.
    if let Some(comment) = &r.comment {
        record["comment"] = json!(comment);
    }
    if let Some(priority) = r.priority {
        record["priority"] = json!(priority);
    }
    record
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "type")]
    record_type: Option<String>,
    name: Option<String>,
    #[serde(rename = "name.exact")]
    name_exact: Option<String>,
    #[serde(rename = "name.startswith")]
    name_startswith: Option<String>,
    #[serde(rename = "name.endswith")]
    name_endswith: Option<String>,
    #[serde(rename = "name.contains")]
    name_contains: Option<String>,
    content: Option<String>,
    #[serde(rename = "content.exact")]
    content_exact: Option<String>,
    #[serde(rename = "content.contains")]
    content_contains: Option<String>,
    #[serde(rename = "content.startswith")]
    content_startswith: Option<String>,
    #[serde(rename = "content.endswith")]
    content_endswith: Option<String>,
    order: Option<String>,
    direction: Option<String>,
    #[serde(rename = "comment.exact")]
    comment_exact: Option<String>,
    #[serde(rename = "comment.startswith")]
    comment_startswith: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

async fn list_records(
    State(inner): State<Arc<Inner>>,
    Path(zone): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let zone_name = match check_zone(&inner, &zone) {
        Ok(z) => z,
        Err(r) => return r,
    };
    let page: usize = match q.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return envelope_error(StatusCode::BAD_REQUEST, 1004, "DNS Validation Error: page must be >= 1"),
    };
    let per_page: usize = match q.per_page.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(p)) if (5..=5000).contains(&p) => p,
        Some(_) => {
            return envelope_error(StatusCode::BAD_REQUEST, 1004, "DNS Validation Error: per_page must be 5..=5000");
        }
    };
    let exact = q.name_exact.or(q.name).map(|n| fqdn(&n, &zone_name));
    let lower = |s: Option<String>| s.map(|s| s.to_ascii_lowercase());
    let (starts, ends, contains) = (lower(q.name_startswith), lower(q.name_endswith), lower(q.name_contains));
    let matching: Vec<EmulatedRecord> = lock(&inner.state)
        .records
        .iter()
        .filter(|r| q.record_type.as_ref().is_none_or(|t| t.eq_ignore_ascii_case(&r.record_type)))
        .filter(|r| exact.as_ref().is_none_or(|n| *n == r.name))
        .filter(|r| starts.as_ref().is_none_or(|p| r.name.starts_with(p.as_str())))
        .filter(|r| ends.as_ref().is_none_or(|p| r.name.ends_with(p.as_str())))
        .filter(|r| contains.as_ref().is_none_or(|p| r.name.contains(p.as_str())))
        .filter(|r| q.content.as_ref().or(q.content_exact.as_ref()).is_none_or(|c| *c == r.content))
        .filter(|r| q.content_contains.as_ref().is_none_or(|c| r.content.contains(c.as_str())))
        .filter(|r| q.content_startswith.as_ref().is_none_or(|c| r.content.starts_with(c.as_str())))
        .filter(|r| q.content_endswith.as_ref().is_none_or(|c| r.content.ends_with(c.as_str())))
        .filter(|r| q.comment_exact.as_ref().is_none_or(|c| r.comment.as_ref() == Some(c)))
        .filter(|r| {
            q.comment_startswith.as_ref().is_none_or(|c| r.comment.as_ref().is_some_and(|r| r.starts_with(c.as_str())))
        })
        .cloned()
        .collect();
    let mut matching = matching;
    let descending = match q.direction.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return envelope_error(
                StatusCode::BAD_REQUEST,
                1004,
                "DNS Validation Error: direction must be asc or desc",
            );
        }
    };
    match q.order.as_deref() {
        None => {}
        Some(order @ ("type" | "name" | "content" | "ttl" | "proxied")) => {
            matching.sort_by(|a, b| {
                let ordering = match order {
                    "type" => a.record_type.cmp(&b.record_type),
                    "name" => a.name.cmp(&b.name),
                    "content" => a.content.cmp(&b.content),
                    "ttl" => a.ttl.cmp(&b.ttl),
                    _ => a.proxied.cmp(&b.proxied),
                };
                if descending { ordering.reverse() } else { ordering }
            });
        }
        Some(_) => return envelope_error(StatusCode::BAD_REQUEST, 1004, "DNS Validation Error: invalid order"),
    }
    let total = matching.len();
    let total_pages = total.div_ceil(per_page);
    let zone_id = lock(&inner.config).zone_id.clone();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|r| record_json(r, &zone_id, &zone_name))
        .collect();
    let count = items.len();
    Json(json!({"success": true, "errors": [], "messages": [], "result": items,
                "result_info": {"page": page, "per_page": per_page, "count": count, "total_count": total, "total_pages": total_pages}}))
    .into_response()
}

#[derive(Deserialize)]
struct RecordBody {
    #[serde(rename = "type")]
    record_type: Option<String>,
    name: Option<String>,
    content: Option<String>,
    ttl: Option<u32>,
    proxied: Option<bool>,
    comment: Option<String>,
    priority: Option<u16>,
}

/// A record's fields as a request leaves them.
struct Fields {
    record_type: String,
    name: String,
    content: String,
    ttl: u32,
    proxied: bool,
    comment: Option<String>,
    priority: Option<u16>,
}

/// The longest comment the Free plan accepts.
const MAX_COMMENT: usize = 100;

/// Validates a complete record.
fn validate(body: RecordBody, zone: &str, current: Option<&EmulatedRecord>) -> Result<Fields, Response> {
    let record_type =
        body.record_type.or_else(|| current.map(|c| c.record_type.clone())).unwrap_or_default().to_ascii_uppercase();
    let name = body.name.or_else(|| current.map(|c| c.name.clone())).unwrap_or_default();
    let content = body.content.or_else(|| current.map(|c| c.content.clone())).unwrap_or_default();
    let ttl = body.ttl.or(current.map(|c| c.ttl)).unwrap_or(1);
    let proxied = body.proxied.or(current.map(|c| c.proxied)).unwrap_or(false);
    let comment = body.comment.or_else(|| current.and_then(|c| c.comment.clone())).filter(|c| !c.is_empty());
    let priority = body.priority.or(current.and_then(|c| c.priority));
    if comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            9100,
            "DNS Validation Error: comment must be at most 100 characters.",
        ));
    }
    if !["A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA"].contains(&record_type.as_str()) {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9000, "DNS Validation Error: invalid type"));
    }
    if record_type == "AAAA" && content.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            9005,
            "Content for AAAA record must be a valid IPv6 address.",
        ));
    }
    if record_type == "MX" && priority.is_none() {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            9100,
            "DNS Validation Error: priority is required for MX.",
        ));
    }
    if ["CNAME", "MX", "NS"].contains(&record_type.as_str())
        && (content.is_empty() || !content.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)))
    {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9005, "Content must be a valid hostname."));
    }
    if content.is_empty() {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9005, "Content is required."));
    }
    if name.trim().is_empty() {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9007, "Content for name is required"));
    }
    let name = fqdn(&name, zone);
    if name.len() > 253
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' || c == '*')
    {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9005, "DNS name is invalid."));
    }
    if record_type == "A" && content.parse::<Ipv4Addr>().is_err() {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            9005,
            "Content for A record must be a valid IPv4 address.",
        ));
    }
    if ttl != 1 && !(30..=86_400).contains(&ttl) {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            9021,
            "Invalid TTL. Must be between 30 and 86400 or 1 for automatic.",
        ));
    }
    if proxied && !["A", "AAAA", "CNAME"].contains(&record_type.as_str()) {
        return Err(envelope_error(StatusCode::BAD_REQUEST, 9004, "This record type cannot be proxied."));
    }
    // A proxied record's TTL is automatic, whatever was sent.
    let ttl = if proxied { 1 } else { ttl };
    let priority = if record_type == "MX" { priority } else { None };
    Ok(Fields { record_type, name, content, ttl, proxied, comment, priority })
}

fn identical_exists(state: &CState, except: Option<&str>, record_type: &str, name: &str, content: &str) -> bool {
    state.records.iter().any(|r| {
        Some(r.id.as_str()) != except && r.record_type == record_type && r.name == name && r.content == content
    })
}

fn parse_body(body: Result<Json<RecordBody>, axum::extract::rejection::JsonRejection>) -> Result<RecordBody, Response> {
    body.map(|Json(b)| b).map_err(|_| envelope_error(StatusCode::BAD_REQUEST, 9207, "Request body is invalid."))
}

async fn create_record(
    State(inner): State<Arc<Inner>>,
    Path(zone): Path<String>,
    body: Result<Json<RecordBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let zone_name = match check_zone(&inner, &zone) {
        Ok(z) => z,
        Err(r) => return r,
    };
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let f = match validate(body, &zone_name, None) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let zone_id = lock(&inner.config).zone_id.clone();
    let mut state = lock(&inner.state);
    if identical_exists(&state, None, &f.record_type, &f.name, &f.content) {
        return envelope_error(StatusCode::BAD_REQUEST, 81058, "An identical record already exists.");
    }
    let mut record = new_record(&mut state, f.name, f.record_type, f.content, f.ttl, f.proxied, f.comment);
    record.priority = f.priority;
    state.records.push(record.clone());
    ok(record_json(&record, &zone_id, &zone_name))
}

fn not_found() -> Response {
    envelope_error(StatusCode::NOT_FOUND, 81044, "Record does not exist.")
}

async fn get_record(State(inner): State<Arc<Inner>>, Path((zone, id)): Path<(String, String)>) -> Response {
    let zone_name = match check_zone(&inner, &zone) {
        Ok(z) => z,
        Err(r) => return r,
    };
    let zone_id = lock(&inner.config).zone_id.clone();
    match lock(&inner.state).records.iter().find(|r| r.id == id) {
        Some(r) => ok(record_json(r, &zone_id, &zone_name)),
        None => not_found(),
    }
}

async fn update(inner: &Inner, zone: &str, id: &str, body: RecordBody, replace: bool) -> Response {
    let zone_name = match check_zone(inner, zone) {
        Ok(z) => z,
        Err(r) => return r,
    };
    let zone_id = lock(&inner.config).zone_id.clone();
    let mut state = lock(&inner.state);
    let Some(index) = state.records.iter().position(|r| r.id == id) else {
        return not_found();
    };
    let current = state.records[index].clone();
    let f = match validate(body, &zone_name, if replace { None } else { Some(&current) }) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if identical_exists(&state, Some(id), &f.record_type, &f.name, &f.content) {
        return envelope_error(StatusCode::BAD_REQUEST, 81058, "An identical record already exists.");
    }
    let record = &mut state.records[index];
    record.record_type = f.record_type;
    record.name = f.name;
    record.content = f.content;
    record.ttl = f.ttl;
    record.proxied = f.proxied;
    record.comment = f.comment;
    record.priority = f.priority;
    record.modified_on = time::OffsetDateTime::now_utc();
    ok(record_json(record, &zone_id, &zone_name))
}

async fn patch_record(
    State(inner): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, String)>,
    body: Result<Json<RecordBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match parse_body(body) {
        Ok(b) => update(&inner, &zone, &id, b, false).await,
        Err(r) => r,
    }
}

async fn put_record(
    State(inner): State<Arc<Inner>>,
    Path((zone, id)): Path<(String, String)>,
    body: Result<Json<RecordBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match parse_body(body) {
        Ok(b) => update(&inner, &zone, &id, b, true).await,
        Err(r) => r,
    }
}

async fn delete_record(State(inner): State<Arc<Inner>>, Path((zone, id)): Path<(String, String)>) -> Response {
    if let Err(r) = check_zone(&inner, &zone) {
        return r;
    }
    let mut state = lock(&inner.state);
    let before = state.records.len();
    state.records.retain(|r| r.id != id);
    if state.records.len() == before {
        return not_found();
    }
    ok(json!({"id": id}))
}
