//! Hetzner Cloud adapter: [`ComputeProvider`] over the Hetzner Cloud API v1
//! (<https://docs.hetzner.cloud/>), written with `reqwest` through the shared
//! [`http`](crate::http::HttpClient) layer. The base URL is configurable, so the same code
//! talks to the emulator in tests and `sam-server dev`.
//!
//! Calls used: `GET /servers` (token check with `per_page=1`; listing by
//! `label_selector`, following `meta.pagination`), `POST /servers`,
//! `GET /servers/{id}`, `PUT /servers/{id}` (labels: read, merged, written
//! back, since Hetzner replaces the whole set), `DELETE /servers/{id}`,
//! `POST /servers/{id}/actions/poweroff|poweron`, `GET /server_types`,
//! `GET /locations`, and the deployment's firewall (see `firewalls`).
//!
//! Sizes map to server types from the live `/server_types` list with
//! [`choose_server_type_of`] (deprecated types are skipped; Arm types only when the spec allows them), never hard-coded
//! names. Create is idempotent: it looks the workspace's server up by the
//! `sam-workspace=<id>` label first, and a retry after a lost response finds
//! the server the first attempt created.
//!
//! Errors (`{"error": {"code", "message", "details"}}`) map to kinds:
//!
//! | Hetzner code | kind |
//! |---|---|
//! | `unauthorized`, `forbidden`, `token_readonly` | `Unauthorized` |
//! | `rate_limit_exceeded` | `RateLimited` (wait: the shorter of `RateLimit-Reset` and one request's refill time) |
//! | `resource_limit_exceeded`, `server_limit_exceeded` | `QuotaExceeded` |
//! | `resource_unavailable`, `placement_error`, `no_space_left_in_location` | `Capacity` (retryable) |
//! | `invalid_input`, `uniqueness_error`, `json_error`, `unsupported_error`, `invalid_server_type`, `protected`, `server_not_stopped`, `deprecated_api_endpoint` | `InvalidConfig` |
//! | `not_found` | `NotFound` |
//! | `firewall_already_applied`, `firewall_already_removed`, `firewall_managed_by_label_selector`, `server_already_added`, `incompatible_network_type`, `private_net_only_server` | `InvalidConfig` |
//! | `firewall_resource_not_found` | `NotFound` |
//! | `locked`, `conflict`, `service_error`, `maintenance`, `timeout`, `unavailable`, `server_error`, `robot_unavailable`, `resource_in_use`, any other 5xx, network timeouts | `Transient` |
//! | anything else | by HTTP status |

mod firewalls;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::domain::{
    DeploymentId, Location, LocationCode, LocationPrice, ServerId, ServerTypeOffer, Timestamp, WorkspaceId,
    choose_server_type_of,
};
use sam_core::ports::{
    ComputeProvider, Firewall, FirewallPolicy, LABEL_MANAGED, LABEL_WORKSPACE, ProviderError, ProviderErrorKind,
    Server, ServerSpec, ServerStatus,
};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, HttpClient, HttpConfig, Request, Response};

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1";
/// Largest `user_data` Hetzner accepts.
pub const MAX_USER_DATA_BYTES: usize = sam_core::cloud_init::MAX_USER_DATA;
const PROVIDER: &str = "hetzner";
const PER_PAGE: u32 = 50;
const MAX_PAGES: u32 = 200;

/// Configuration of the adapter.
#[derive(Clone, Debug)]
pub struct HetznerConfig {
    /// API base URL including `/v1` ([`DEFAULT_BASE_URL`], or an emulator's).
    pub base_url: String,
    /// Transport settings.
    pub http: HttpConfig,
}

impl Default for HetznerConfig {
    fn default() -> Self {
        Self { base_url: DEFAULT_BASE_URL.to_owned(), http: HttpConfig::default() }
    }
}

/// The Hetzner Cloud [`ComputeProvider`]. Holds no per-user state: every call
/// takes the user's token.
#[derive(Debug, Clone)]
pub struct HetznerProvider {
    http: HttpClient,
    base: Url,
}

impl HetznerProvider {
    /// An adapter for `config`.
    pub fn new(config: HetznerConfig) -> Result<Self, ProviderError> {
        let base = http::parse_base(PROVIDER, &config.base_url)?;
        Ok(Self { http: HttpClient::new(PROVIDER, config.http)?, base })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ProviderError> {
        let mut url = http::join(&self.base, path)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn get(&self, token: &SecretString, path: &str, query: &[(&str, String)]) -> Result<Response, ProviderError> {
        let request = Request::new(Method::GET, self.url(path, query)?).bearer(token);
        self.http.send(&request, classify).await
    }

    /// Every server matching `selector`, following pagination. `once` sends
    /// each page without retries (for use inside an outer retry).
    async fn list_by_selector(
        &self,
        token: &SecretString,
        selector: &str,
        once: bool,
    ) -> Result<Vec<Server>, ProviderError> {
        let mut servers = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let query = [
                ("label_selector", selector.to_owned()),
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let request = Request::new(Method::GET, self.url("servers", &query)?).bearer(token);
            let response = if once {
                self.http.send_once(&request, classify).await?
            } else {
                self.http.send(&request, classify).await?
            };
            let body: ServersBody = response.json(PROVIDER)?;
            for server in body.servers {
                servers.push(server.into_server()?);
            }
            match body.meta.and_then(|m| m.pagination).and_then(|p| p.next_page) {
                Some(next) if next > page => page = next,
                _ => return Ok(servers),
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "hetzner: too many pages of servers"))
    }

    async fn server_types(&self, token: &SecretString, once: bool) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        let mut offers = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let query = [("page", page.to_string()), ("per_page", PER_PAGE.to_string())];
            let request = Request::new(Method::GET, self.url("server_types", &query)?).bearer(token);
            let response = if once {
                self.http.send_once(&request, classify).await?
            } else {
                self.http.send(&request, classify).await?
            };
            let body: ServerTypesBody = response.json(PROVIDER)?;
            offers.extend(body.server_types.into_iter().map(HServerType::into_offer));
            match body.meta.and_then(|m| m.pagination).and_then(|p| p.next_page) {
                Some(next) if next > page => page = next,
                _ => return Ok(offers),
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "hetzner: too many pages of server types"))
    }

    async fn create_once(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        let selector = format!("{LABEL_WORKSPACE}={}", spec.workspace_id);
        if let Some(existing) = self.list_by_selector(token, &selector, true).await?.into_iter().next() {
            tracing::debug!(server = %existing.id, "server for workspace exists; not creating another");
            return Ok(existing);
        }
        let types = self.server_types(token, true).await?;
        let chosen = choose_server_type_of(spec.size, &spec.location, &types, spec.architectures).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidConfig,
                format!("hetzner: no server type for size {} in location {}", spec.size, spec.location),
            )
        })?;
        let mut body = json!({
            "name": spec.name,
            "server_type": chosen.name,
            "location": spec.location,
            "image": spec.image,
            "user_data": spec.user_data,
            "labels": spec.all_labels(),
            "start_after_create": true,
        });
        if let Some(firewall) = &spec.firewall {
            let id: u64 = firewall.parse().map_err(|_| {
                ProviderError::new(ProviderErrorKind::InvalidConfig, format!("hetzner: firewall id {firewall:?}"))
            })?;
            body["firewalls"] = json!([{"firewall": id}]);
        }
        let request = Request::new(Method::POST, self.url("servers", &[])?).bearer(token).json(body);
        let response = match self.http.send_once(&request, classify).await {
            Ok(response) => response,
            // The name is taken: if by this workspace's server (created
            // concurrently), that server is the answer.
            Err(err) if err.message().contains("uniqueness_error") => {
                return match self.list_by_selector(token, &selector, true).await?.into_iter().next() {
                    Some(existing) => Ok(existing),
                    None => Err(err),
                };
            }
            Err(err) => return Err(err),
        };
        let created: ServerBody = response.json(PROVIDER)?;
        created.server.into_server()
    }

    async fn action(&self, token: &SecretString, id: &ServerId, action: &str) -> Result<(), ProviderError> {
        let numeric = numeric_id(id).ok_or_else(|| {
            ProviderError::new(ProviderErrorKind::NotFound, format!("hetzner: server {id} not found"))
        })?;
        // Power actions are idempotent (powering off an off server is accepted).
        let request = Request::new(Method::POST, self.url(&format!("servers/{numeric}/actions/{action}"), &[])?)
            .bearer(token)
            .json(json!({}));
        self.http.send(&request, classify).await?;
        Ok(())
    }
}

fn numeric_id(id: &ServerId) -> Option<u64> {
    id.0.parse().ok()
}

#[async_trait]
impl ComputeProvider for HetznerProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn credential_kind(&self) -> sam_core::domain::CredentialProvider {
        sam_core::domain::CredentialProvider::HETZNER
    }

    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError> {
        self.get(token, "servers", &[("per_page", "1".to_owned())]).await.map(|_| ())
    }

    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        if spec.user_data.len() > MAX_USER_DATA_BYTES {
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidConfig,
                format!("hetzner: user_data is {} bytes, the limit is {MAX_USER_DATA_BYTES}", spec.user_data.len()),
            ));
        }
        self.http.retry("create server", |_| self.create_once(token, spec)).await
    }

    async fn get_server(&self, token: &SecretString, id: &ServerId) -> Result<Option<Server>, ProviderError> {
        let Some(numeric) = numeric_id(id) else {
            return Ok(None);
        };
        match self.get(token, &format!("servers/{numeric}"), &[]).await {
            Ok(response) => Ok(Some(response.json::<ServerBody>(PROVIDER)?.server.into_server()?)),
            Err(err) if err.kind() == ProviderErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn find_servers(&self, token: &SecretString, workspace: WorkspaceId) -> Result<Vec<Server>, ProviderError> {
        self.list_by_selector(token, &format!("{LABEL_WORKSPACE}={workspace}"), false).await
    }

    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        self.list_by_selector(token, &format!("{LABEL_MANAGED}=true"), false).await
    }

    async fn add_labels(
        &self,
        token: &SecretString,
        id: &ServerId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let not_found = || ProviderError::new(ProviderErrorKind::NotFound, format!("hetzner: server {id} not found"));
        let numeric = numeric_id(id).ok_or_else(not_found)?;
        let path = format!("servers/{numeric}");
        // A PUT replaces the whole set, so read, merge and write back as one
        // retried step (a PUT of the same set is harmless to repeat).
        self.http
            .retry("add labels", |_| async {
                let current = match self.get(token, &path, &[]).await {
                    Ok(response) => response.json::<ServerBody>(PROVIDER)?.server.into_server()?,
                    Err(err) if err.kind() == ProviderErrorKind::NotFound => return Err(not_found()),
                    Err(err) => return Err(err),
                };
                let mut merged = current.labels;
                merged.extend(labels.clone());
                let request =
                    Request::new(Method::PUT, self.url(&path, &[])?).bearer(token).json(json!({"labels": merged}));
                self.http.send_once(&request, classify).await.map(|_| ())
            })
            .await
    }

    async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        let Some(numeric) = numeric_id(id) else {
            return Ok(());
        };
        let request = Request::new(Method::DELETE, self.url(&format!("servers/{numeric}"), &[])?).bearer(token);
        match self.http.send(&request, classify).await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ProviderErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn power_off(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.action(token, id, "poweroff").await
    }

    async fn power_on(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.action(token, id, "poweron").await
    }

    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        self.server_types(token, false).await
    }

    async fn ensure_firewall(
        &self,
        token: &SecretString,
        policy: &FirewallPolicy,
    ) -> Result<Option<String>, ProviderError> {
        self.ensure_firewall_now(token, policy).await.map(Some)
    }

    async fn find_firewall(
        &self,
        token: &SecretString,
        deployment: &DeploymentId,
    ) -> Result<Option<Firewall>, ProviderError> {
        self.find_firewall_now(token, deployment).await
    }

    async fn delete_firewall(&self, token: &SecretString, deployment: &DeploymentId) -> Result<(), ProviderError> {
        self.delete_firewall_now(token, deployment).await
    }

    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        let response = self.get(token, "locations", &[("per_page", PER_PAGE.to_string())]).await?;
        let body: LocationsBody = response.json(PROVIDER)?;
        Ok(body
            .locations
            .into_iter()
            .filter_map(|l| {
                Some(Location {
                    code: LocationCode::new(l.name).ok()?,
                    description: l.description,
                    country: l.country,
                    city: l.city,
                })
            })
            .collect())
    }
}

/// Maps a Hetzner response to `Ok` (2xx) or the error kind of its
/// `{"error": {"code", "message"}}` body.
pub fn classify(response: &Response) -> Result<(), ProviderError> {
    if response.status.is_success() {
        return Ok(());
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let (code, message) = parsed.map_or_else(|| (String::new(), String::new()), |b| (b.error.code, b.error.message));
    let kind = kind_for_code(&code).unwrap_or_else(|| http::kind_for_status(response.status, &response.headers));
    let kind = match kind {
        ProviderErrorKind::RateLimited { .. } => {
            ProviderErrorKind::RateLimited { retry_after: rate_limit_wait(response) }
        }
        other => other,
    };
    let code = if code.is_empty() { response.status.as_str().to_owned() } else { code };
    Err(ProviderError::new(kind, format!("hetzner: {code}: {}", truncate(&message, 200))))
}

/// How long to wait after a 429. `RateLimit-Reset` is when the bucket is
/// *full* again, but Hetzner refills it gradually (a limit of 3600 per hour
/// gains one request per second), so the wait is the shorter of the time to
/// the reset and the time one request takes to refill.
fn rate_limit_wait(response: &Response) -> Option<std::time::Duration> {
    let to_reset = http::server_wait(&response.headers);
    let per_request = response
        .header("ratelimit-limit")
        .and_then(|l| l.trim().parse::<u64>().ok())
        .filter(|l| *l > 0)
        .map(|limit| std::time::Duration::from_secs(3600_u64.div_ceil(limit)));
    match (to_reset, per_request) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The kind for a Hetzner error code, if the code is known.
pub fn kind_for_code(code: &str) -> Option<ProviderErrorKind> {
    Some(match code {
        "unauthorized" | "forbidden" | "token_readonly" => ProviderErrorKind::Unauthorized,
        "rate_limit_exceeded" | "limit_reached" => ProviderErrorKind::RateLimited { retry_after: None },
        "resource_limit_exceeded" | "server_limit_exceeded" | "server_limit" => ProviderErrorKind::QuotaExceeded,
        "resource_unavailable" | "placement_error" | "no_space_left_in_location" => ProviderErrorKind::Capacity,
        "invalid_input"
        | "uniqueness_error"
        | "json_error"
        | "unsupported_error"
        | "invalid_server_type"
        | "protected"
        | "server_not_stopped"
        | "deprecated_api_endpoint" => ProviderErrorKind::InvalidConfig,
        "not_found" => ProviderErrorKind::NotFound,
        // `resource_in_use`: a firewall just removed from its resources is
        // still being detached.
        "locked" | "conflict" | "service_error" | "maintenance" | "timeout" | "unavailable" | "server_error"
        | "robot_unavailable" | "resource_in_use" => ProviderErrorKind::Transient,
        "firewall_resource_not_found" => ProviderErrorKind::NotFound,
        "firewall_already_applied"
        | "firewall_already_removed"
        | "firewall_managed_by_label_selector"
        | "server_already_added"
        | "incompatible_network_type"
        | "private_net_only_server" => ProviderErrorKind::InvalidConfig,
        _ => return None,
    })
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Meta {
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    next_page: Option<u32>,
}

#[derive(Deserialize)]
struct ServersBody {
    servers: Vec<HServer>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct ServerBody {
    server: HServer,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct HDatacenter {
    location: Named,
}

#[derive(Deserialize)]
struct HIpv4 {
    ip: String,
}

#[derive(Deserialize, Default)]
struct HPublicNet {
    ipv4: Option<HIpv4>,
}

#[derive(Deserialize)]
struct HServer {
    id: u64,
    name: String,
    status: String,
    created: String,
    #[serde(default)]
    public_net: HPublicNet,
    server_type: Named,
    datacenter: Option<HDatacenter>,
    location: Option<Named>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl HServer {
    fn into_server(self) -> Result<Server, ProviderError> {
        let created_at =
            Timestamp::parse(&self.created, &time::format_description::well_known::Rfc3339).map_err(|_| {
                ProviderError::new(
                    ProviderErrorKind::Other,
                    format!("hetzner: server {} has an invalid creation time", self.id),
                )
            })?;
        let status = match self.status.as_str() {
            "initializing" | "starting" => ServerStatus::Starting,
            "running" => ServerStatus::Running,
            "stopping" => ServerStatus::Stopping,
            "off" => ServerStatus::Off,
            "deleting" => ServerStatus::Deleting,
            _ => ServerStatus::Unknown,
        };
        let location =
            self.location.map(|l| l.name).or_else(|| self.datacenter.map(|d| d.location.name)).unwrap_or_default();
        Ok(Server {
            id: ServerId(self.id.to_string()),
            name: self.name,
            status,
            public_ipv4: self.public_net.ipv4.and_then(|v| v.ip.parse::<Ipv4Addr>().ok()),
            labels: self.labels,
            server_type: self.server_type.name,
            location,
            created_at,
        })
    }
}

#[derive(Deserialize)]
struct ServerTypesBody {
    server_types: Vec<HServerType>,
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct HPrice {
    gross: String,
}

#[derive(Deserialize)]
struct HLocationPrice {
    location: String,
    price_hourly: HPrice,
    price_monthly: HPrice,
}

#[derive(Deserialize)]
struct HServerType {
    name: String,
    cores: u32,
    memory: f64,
    disk: u32,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default)]
    deprecation: Option<serde_json::Value>,
    #[serde(default)]
    prices: Vec<HLocationPrice>,
}

impl HServerType {
    fn into_offer(self) -> ServerTypeOffer {
        let deprecated = self.deprecated.unwrap_or(false) || self.deprecation.as_ref().is_some_and(|d| !d.is_null());
        ServerTypeOffer {
            name: self.name,
            cores: self.cores,
            memory_gb: self.memory,
            disk_gb: self.disk,
            architecture: self.architecture.unwrap_or_else(|| "x86".to_owned()),
            deprecated,
            prices: self
                .prices
                .into_iter()
                .map(|p| LocationPrice {
                    location: p.location,
                    hourly: p.price_hourly.gross,
                    monthly: p.price_monthly.gross,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct LocationsBody {
    locations: Vec<HLocation>,
}

#[derive(Deserialize)]
struct HLocation {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    city: String,
}
