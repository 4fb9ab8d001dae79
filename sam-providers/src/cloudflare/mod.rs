//! Cloudflare DNS adapter: [`DnsProvider`] over the Cloudflare API v4
//! (<https://developers.cloudflare.com/api/>) with `reqwest`, through the
//! shared [`http`](crate::http::HttpClient) layer.
//!
//! Calls used: `GET /user/tokens/verify` and `GET /zones/{zone_id}` (verify),
//! `GET /zones/{zone_id}/dns_records` (`type=A`, `name.exact` or
//! `name.startswith`, following `result_info.total_pages`), `POST`, `PATCH`
//! and `DELETE /zones/{zone_id}/dns_records[/{id}]`.
//!
//! Cloudflare accepts a second A record with the same name, so an upsert
//! lists by name first: with no record it creates one; otherwise it keeps one
//! (the one that already has the address, else the oldest), deletes the rest
//! and patches the kept one if its address differs. The whole upsert is
//! retried as one step, so a lost create response is found by the retry.
//!
//! A record made for a deployment carries the comment
//! `sam-deployment=<id>` (comments exist on every plan, tags only on paid
//! ones); an upsert for a deployment marks an existing record the same way,
//! and listings read the mark back as [`DnsRecord::owner`].
//!
//! Every response is the envelope `{success, errors: [{code, message}],
//! messages, result, result_info}`; errors map to kinds:
//!
//! | Cloudflare | kind |
//! |---|---|
//! | HTTP 429 (code 971) | `RateLimited` (wait from `Retry-After`) |
//! | codes 1000, 6003, 6111, 9103, 9106, 9109, 10000, 10001; HTTP 401/403 | `Unauthorized` |
//! | code 81044, HTTP 404 | `NotFound` |
//! | codes 81053, 81057, 81058 (a record exists), 7003, 1004, 9005, 9007, 9021 | `InvalidConfig` |
//! | HTTP 5xx, timeouts | `Transient` |
//! | `success: false` on a 2xx | `Other` |

use std::net::Ipv4Addr;

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::domain::DeploymentId;
use sam_core::ports::{DnsProvider, DnsRecord, LABEL_DEPLOYMENT, ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, HttpClient, HttpConfig, Request, Response};

mod edge;
mod origin_ca;

/// The CA of the client certificate Cloudflare's edge presents to origins
/// with Authenticated Origin Pulls on (zone setting `tls_client_auth`), as
/// Cloudflare publishes it (valid until 2029-11-01). Agents given it accept
/// connections from Cloudflare's edge only.
pub const ORIGIN_PULL_CA_PEM: &str = include_str!("origin_pull_ca.pem");
mod zones;

pub use edge::CloudflareEdge;
pub use origin_ca::CloudflareOriginCa;
pub use zones::{CertificatePack, CloudflareZones, Zone, ZoneRecord, ZoneSetting, certificate_covers};

/// The public API.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4";
const PROVIDER: &str = "cloudflare";
const PER_PAGE: u32 = 100;
const MAX_PAGES: u32 = 500;

/// Configuration of the adapter (the operator's credential and zone).
#[derive(Clone, Debug)]
pub struct CloudflareConfig {
    /// API base URL including `/client/v4`.
    pub base_url: String,
    /// API token with `Zone.DNS:Edit` on the zone.
    pub api_token: SecretString,
    /// Zone id.
    pub zone_id: String,
    /// TTL of created records (1 = automatic).
    pub ttl: u32,
    /// Workspace records go through Cloudflare's edge (which terminates TLS
    /// for the name and proxies WebSockets); the TTL is then automatic.
    pub proxied: bool,
    /// Transport settings.
    pub http: HttpConfig,
}

impl CloudflareConfig {
    /// A configuration for the public API with TTL 60 s.
    pub fn new(api_token: SecretString, zone_id: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_token,
            zone_id: zone_id.into(),
            ttl: 60,
            proxied: false,
            http: HttpConfig::default(),
        }
    }
}

/// The Cloudflare [`DnsProvider`].
#[derive(Debug, Clone)]
pub struct CloudflareDns {
    http: HttpClient,
    base: Url,
    token: SecretString,
    zone_id: String,
    ttl: u32,
    proxied: bool,
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    result: Option<T>,
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    total_pages: Option<u32>,
}

#[derive(Deserialize)]
struct CfError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<CfError>,
}

#[derive(Deserialize, Clone)]
struct CfRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    content: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    proxied: bool,
}

/// The comment that marks a record as `owner`'s.
fn owner_comment(owner: &DeploymentId) -> String {
    format!("{LABEL_DEPLOYMENT}={owner}")
}

/// The deployment a record's comment names, if it is a mark.
fn owner_of(comment: Option<&str>) -> Option<DeploymentId> {
    comment?.strip_prefix(LABEL_DEPLOYMENT)?.strip_prefix('=')?.parse().ok()
}

#[derive(Deserialize)]
struct TokenStatus {
    status: String,
}

impl CloudflareDns {
    /// An adapter for `config`.
    pub fn new(config: CloudflareConfig) -> Result<Self, ProviderError> {
        if config.zone_id.is_empty() || !config.zone_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "cloudflare: invalid zone id"));
        }
        let base = http::parse_base(PROVIDER, &config.base_url)?;
        Ok(Self {
            http: HttpClient::new(PROVIDER, config.http)?,
            base,
            token: config.api_token,
            zone_id: config.zone_id,
            ttl: if config.proxied { 1 } else { config.ttl },
            proxied: config.proxied,
        })
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

    fn records_path(&self) -> String {
        format!("zones/{}/dns_records", self.zone_id)
    }

    /// A records matching `filter` (`name.exact` or `name.startswith`), all pages.
    async fn list(&self, filter: (&str, &str), once: bool) -> Result<Vec<CfRecord>, ProviderError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let query = [
                ("type", "A".to_owned()),
                (filter.0, filter.1.to_owned()),
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let request = Request::new(Method::GET, self.url(&self.records_path(), &query)?).bearer(&self.token);
            let response = if once {
                self.http.send_once(&request, classify).await?
            } else {
                self.http.send(&request, classify).await?
            };
            let body: Envelope<Vec<CfRecord>> = response.json(PROVIDER)?;
            out.extend(body.result.unwrap_or_default().into_iter().filter(|r| r.record_type == "A"));
            let total_pages = body.result_info.and_then(|i| i.total_pages).unwrap_or(1);
            if page >= total_pages {
                return Ok(out);
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "cloudflare: too many pages of records"))
    }

    async fn delete_id(&self, id: &str) -> Result<(), ProviderError> {
        let request =
            Request::new(Method::DELETE, self.url(&format!("{}/{id}", self.records_path()), &[])?).bearer(&self.token);
        match self.http.send_once(&request, classify).await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ProviderErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn upsert_once(
        &self,
        name: &str,
        ipv4: Ipv4Addr,
        owner: Option<&DeploymentId>,
    ) -> Result<DnsRecord, ProviderError> {
        let address = ipv4.to_string();
        let comment = owner.map(owner_comment);
        let mut existing = self.list(("name.exact", name), true).await?;
        existing.retain(|r| r.name.eq_ignore_ascii_case(name));
        if existing.is_empty() {
            let mut body =
                json!({"type": "A", "name": name, "content": address, "ttl": self.ttl, "proxied": self.proxied});
            if let Some(comment) = &comment {
                body["comment"] = json!(comment);
            }
            let request =
                Request::new(Method::POST, self.url(&self.records_path(), &[])?).bearer(&self.token).json(body);
            let response = self.http.send_once(&request, classify_allowing_exists).await?;
            if response.status.is_success() {
                let created: Envelope<CfRecord> = response.json(PROVIDER)?;
                return record(created.result);
            }
            // 81057/81058: someone created it between our list and our POST.
            existing = self.list(("name.exact", name), true).await?;
            existing.retain(|r| r.name.eq_ignore_ascii_case(name));
            if existing.is_empty() {
                return Err(ProviderError::new(
                    ProviderErrorKind::Transient,
                    "cloudflare: the record exists but is not listed yet",
                ));
            }
        }
        let keep_index = existing.iter().position(|r| r.content == address).unwrap_or(0);
        let keep = existing.swap_remove(keep_index);
        for extra in &existing {
            tracing::debug!(record = %extra.id, "removing duplicate record");
            self.delete_id(&extra.id).await?;
        }
        let marked = comment.is_none() || keep.comment == comment;
        if keep.content == address && marked && keep.proxied == self.proxied {
            return record(Some(keep));
        }
        let mut body = json!({"content": address, "ttl": self.ttl, "proxied": self.proxied});
        if let Some(comment) = &comment {
            body["comment"] = json!(comment);
        }
        let request = Request::new(Method::PATCH, self.url(&format!("{}/{}", self.records_path(), keep.id), &[])?)
            .bearer(&self.token)
            .json(body);
        let response = self.http.send_once(&request, classify).await?;
        let patched: Envelope<CfRecord> = response.json(PROVIDER)?;
        record(patched.result)
    }
}

fn record(r: Option<CfRecord>) -> Result<DnsRecord, ProviderError> {
    let r = r.ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: response without a record"))?;
    to_record(r).ok_or_else(|| {
        ProviderError::new(ProviderErrorKind::Other, "cloudflare: record content is not an IPv4 address")
    })
}

fn to_record(r: CfRecord) -> Option<DnsRecord> {
    let owner = owner_of(r.comment.as_deref());
    Some(DnsRecord { ipv4: r.content.parse().ok()?, id: r.id, name: r.name, owner })
}

#[async_trait]
impl DnsProvider for CloudflareDns {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn verify(&self) -> Result<(), ProviderError> {
        let request = Request::new(Method::GET, self.url("user/tokens/verify", &[])?).bearer(&self.token);
        let response = self.http.send(&request, classify).await?;
        let status: Envelope<TokenStatus> = response.json(PROVIDER)?;
        if status.result.is_none_or(|s| s.status != "active") {
            return Err(ProviderError::new(ProviderErrorKind::Unauthorized, "cloudflare: the API token is not active"));
        }
        let request = Request::new(Method::GET, self.url(&format!("zones/{}", self.zone_id), &[])?).bearer(&self.token);
        self.http.send(&request, classify).await.map(|_| ())
    }

    async fn upsert_a_record(
        &self,
        name: &str,
        ipv4: Ipv4Addr,
        owner: Option<&DeploymentId>,
    ) -> Result<DnsRecord, ProviderError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "cloudflare: empty record name"));
        }
        self.http.retry("upsert A record", |_| self.upsert_once(&name, ipv4, owner)).await
    }

    async fn delete_records(&self, name: &str) -> Result<(), ProviderError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.http
            .retry("delete records", |_| async {
                let records = self.list(("name.exact", &name), true).await?;
                for r in records.iter().filter(|r| r.name.eq_ignore_ascii_case(&name)) {
                    self.delete_id(&r.id).await?;
                }
                Ok(())
            })
            .await
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let prefix = prefix.to_ascii_lowercase();
        let records = self.list(("name.startswith", &prefix), false).await?;
        Ok(records.into_iter().filter(|r| r.name.starts_with(&prefix)).filter_map(to_record).collect())
    }
}

/// Maps a Cloudflare response to `Ok` (2xx with `success: true`) or the
/// error kind of its envelope.
pub fn classify(response: &Response) -> Result<(), ProviderError> {
    let status = response.status;
    if status.is_success() {
        let success = serde_json::from_slice::<Envelope<serde_json::Value>>(&response.body).map(|e| e.success);
        return match success {
            Ok(true) => Ok(()),
            _ => Err(ProviderError::new(
                ProviderErrorKind::Other,
                format!("cloudflare: {} without success", status.as_u16()),
            )),
        };
    }
    let errors = serde_json::from_slice::<ErrorEnvelope>(&response.body).map(|e| e.errors).unwrap_or_default();
    let first = errors.first();
    let code = first.map_or(0, |e| e.code);
    let kind = if status.as_u16() == 429 {
        ProviderErrorKind::RateLimited { retry_after: http::server_wait(&response.headers) }
    } else if status.is_server_error() {
        ProviderErrorKind::Transient
    } else {
        kind_for_code(code).unwrap_or_else(|| http::kind_for_status(status, &response.headers))
    };
    let message = first.map_or("", |e| e.message.as_str());
    let message: String = message.chars().take(200).collect();
    Err(ProviderError::new(kind, format!("cloudflare: {} code {code}: {message}", status.as_u16())))
}

/// Like [`classify`], but a "record already exists" answer (81057, 81058)
/// passes, so the upsert can take the existing record.
fn classify_allowing_exists(response: &Response) -> Result<(), ProviderError> {
    if response.status.as_u16() == 400 {
        let errors = serde_json::from_slice::<ErrorEnvelope>(&response.body).map(|e| e.errors).unwrap_or_default();
        if errors.iter().any(|e| e.code == 81057 || e.code == 81058) {
            return Ok(());
        }
    }
    classify(response)
}

/// The kind for a Cloudflare error code, if the code is known.
pub fn kind_for_code(code: u32) -> Option<ProviderErrorKind> {
    Some(match code {
        1000 | 6003 | 6111 | 9103 | 9106 | 9109 | 10000 | 10001 => ProviderErrorKind::Unauthorized,
        81044 => ProviderErrorKind::NotFound,
        81053 | 81057 | 81058 | 7003 | 7000 | 1004 | 9000 | 9005 | 9007 | 9021 | 9207 => {
            ProviderErrorKind::InvalidConfig
        }
        971 => ProviderErrorKind::RateLimited { retry_after: None },
        _ => return None,
    })
}
