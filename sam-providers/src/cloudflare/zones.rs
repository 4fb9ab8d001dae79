//! Zone administration for operators: what `sam-server setup` and `doctor`
//! ask of Cloudflare beyond the [`DnsProvider`](sam_core::ports::DnsProvider)
//! port. Which zone holds a domain, whether the token is active, and records
//! of any type (the setup probe is a TXT record).
//!
//! Calls used: `GET /user/tokens/verify`, `GET /zones?name=`,
//! `GET /zones/{zone_id}`, `GET /zones/{zone_id}/dns_records?name.exact=`,
//! `POST /zones/{zone_id}/dns_records`,
//! `DELETE /zones/{zone_id}/dns_records/{id}`, `GET` and `PATCH
//! /zones/{zone_id}/settings/{setting_id}` (token permission "Zone
//! Settings") and `GET /zones/{zone_id}/ssl/certificate_packs` ("SSL and
//! Certificates"), `GET /certificates?zone_id=` (Origin CA). Errors are the adapter's
//! [`ProviderError`] kinds (see the [module](super) table); messages carry
//! Cloudflare's code and message, never the token.

use reqwest::{Method, Url};
use sam_core::ports::{ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{Envelope, PROVIDER, classify};
use crate::http::{self, HttpClient, HttpConfig, Request};

/// A zone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Zone {
    /// Zone id.
    pub id: String,
    /// Zone name (the apex domain).
    pub name: String,
    /// `active` once the domain's name servers point at Cloudflare.
    #[serde(default)]
    pub status: String,
}

/// A DNS record of any type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ZoneRecord {
    /// Record id.
    pub id: String,
    /// Fully qualified name.
    pub name: String,
    /// Type (`A`, `TXT`, …).
    #[serde(rename = "type")]
    pub record_type: String,
    /// Content.
    pub content: String,
    /// Whether Cloudflare's edge answers for the name (and forwards to the
    /// origin, naming the client in `CF-Connecting-IP`).
    #[serde(default)]
    pub proxied: bool,
}

/// One zone setting (`ssl`, `always_use_https`, `websockets`,
/// `tls_client_auth`, …).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZoneSetting {
    /// The setting's id.
    pub id: String,
    /// Its value: a string for the settings SAM reads (`strict`, `on`).
    pub value: serde_json::Value,
    /// Whether the zone's plan lets it be changed.
    #[serde(default)]
    pub editable: bool,
}

impl ZoneSetting {
    /// The value when it is a string.
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_str()
    }
}

/// One of the zone's edge certificate packs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CertificatePack {
    /// Pack id.
    pub id: String,
    /// `universal`, `advanced`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The names it covers (`example.dev`, `*.example.dev`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `active` once issued and deployed.
    #[serde(default)]
    pub status: String,
}

/// Whether a certificate for `hosts` is valid for `name`: an exact match,
/// or a wildcard standing for exactly one label (`*.a.b` covers `x.a.b`, not
/// `y.x.a.b`), as browsers match them.
///
/// ```
/// use sam_providers::cloudflare::certificate_covers;
/// let universal = ["sam.dev".to_owned(), "*.sam.dev".to_owned()];
/// assert!(certificate_covers(&universal, "ws-1.sam.dev"));
/// assert!(!certificate_covers(&universal, "ws-1.staging.sam.dev"));
/// ```
pub fn certificate_covers(hosts: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    hosts.iter().any(|host| {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match host.strip_prefix("*.") {
            Some(parent) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => host == name,
        }
    })
}

#[derive(Deserialize)]
struct TokenStatus {
    status: String,
}

/// The zones one Cloudflare API token can see.
///
/// ```no_run
/// # async fn demo() -> Result<(), sam_core::ports::ProviderError> {
/// use sam_providers::cloudflare::{CloudflareZones, DEFAULT_BASE_URL};
/// use sam_providers::http::HttpConfig;
/// let zones = CloudflareZones::new(DEFAULT_BASE_URL, "token".into(), HttpConfig::default())?;
/// if let Some(zone) = zones.find_zone("ws.example.dev").await? {
///     println!("{} holds it ({})", zone.name, zone.status);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CloudflareZones {
    http: HttpClient,
    base: Url,
    token: SecretString,
}

impl CloudflareZones {
    /// A client for the API at `base_url` (including `/client/v4`).
    pub fn new(base_url: &str, api_token: SecretString, http: HttpConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            http: HttpClient::new(PROVIDER, http)?,
            base: http::parse_base(PROVIDER, base_url)?,
            token: api_token,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ProviderError> {
        let mut url = http::join(&self.base, path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let response = self.http.send(&Request::new(Method::GET, url).bearer(&self.token), classify).await?;
        let envelope: Envelope<T> = response.json(PROVIDER)?;
        envelope
            .result
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: answer without a result"))
    }

    /// The token's status: `active` when it can be used
    /// (`GET /user/tokens/verify`).
    pub async fn token_status(&self) -> Result<String, ProviderError> {
        Ok(self.get::<TokenStatus>("user/tokens/verify", &[]).await?.status)
    }

    /// The zone holding `domain`: `domain` itself or its closest parent that
    /// is a zone the token can see. `None` when there is none.
    pub async fn find_zone(&self, domain: &str) -> Result<Option<Zone>, ProviderError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        // Never asks for a bare top-level domain.
        for start in 0..labels.len().saturating_sub(1) {
            let candidate = labels[start..].join(".");
            let zones: Vec<Zone> = self.get("zones", &[("name", &candidate)]).await?;
            if let Some(zone) = zones.into_iter().find(|z| z.name.eq_ignore_ascii_case(&candidate)) {
                return Ok(Some(zone));
            }
        }
        Ok(None)
    }

    /// One zone by id.
    pub async fn zone(&self, id: &str) -> Result<Zone, ProviderError> {
        self.get(&format!("zones/{}", path_segment(id)?), &[]).await
    }

    /// The records named exactly `name` (first 100), of any type.
    pub async fn records_named(&self, zone: &str, name: &str) -> Result<Vec<ZoneRecord>, ProviderError> {
        let path = format!("zones/{}/dns_records", path_segment(zone)?);
        self.get(&path, &[("name.exact", name), ("per_page", "100")]).await
    }

    /// Creates a record (TTL 60 s, not proxied) with `comment`. Sent once: a
    /// create is not idempotent.
    pub async fn create_record(
        &self,
        zone: &str,
        record_type: &str,
        name: &str,
        content: &str,
        comment: &str,
    ) -> Result<ZoneRecord, ProviderError> {
        let url = http::join(&self.base, &format!("zones/{}/dns_records", path_segment(zone)?))?;
        let body = json!({"type": record_type, "name": name, "content": content, "ttl": 60, "proxied": false,
                          "comment": comment});
        let request = Request::new(Method::POST, url).bearer(&self.token).json(body);
        let envelope: Envelope<ZoneRecord> = self.http.send_once(&request, classify).await?.json(PROVIDER)?;
        envelope
            .result
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: answer without a record"))
    }

    /// One zone setting (`GET /zones/{zone_id}/settings/{setting_id}`).
    pub async fn setting(&self, zone: &str, setting: &str) -> Result<ZoneSetting, ProviderError> {
        self.get(&format!("zones/{}/settings/{}", path_segment(zone)?, setting_segment(setting)?), &[]).await
    }

    /// Changes a zone setting to a string value (`PATCH
    /// /zones/{zone_id}/settings/{setting_id}` with `{"value": …}`).
    pub async fn set_setting(&self, zone: &str, setting: &str, value: &str) -> Result<ZoneSetting, ProviderError> {
        let path = format!("zones/{}/settings/{}", path_segment(zone)?, setting_segment(setting)?);
        let request = Request::new(Method::PATCH, http::join(&self.base, &path)?)
            .bearer(&self.token)
            .json(json!({"value": value}));
        let envelope: Envelope<ZoneSetting> = self.http.send(&request, classify).await?.json(PROVIDER)?;
        envelope
            .result
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: answer without a setting"))
    }

    /// The zone's edge certificate packs
    /// (`GET /zones/{zone_id}/ssl/certificate_packs`).
    pub async fn certificate_packs(&self, zone: &str) -> Result<Vec<CertificatePack>, ProviderError> {
        self.get(&format!("zones/{}/ssl/certificate_packs", path_segment(zone)?), &[("per_page", "50")]).await
    }

    /// How many Origin CA certificates the zone has (`GET
    /// /certificates?zone_id=`, first page): whether the token may use the
    /// Origin CA at all.
    pub async fn origin_certificate_count(&self, zone: &str) -> Result<usize, ProviderError> {
        let list: Vec<serde_json::Value> = self.get("certificates", &[("zone_id", path_segment(zone)?)]).await?;
        Ok(list.len())
    }

    /// Deletes a record by id; a record already gone is not an error.
    pub async fn delete_record(&self, zone: &str, id: &str) -> Result<(), ProviderError> {
        let path = format!("zones/{}/dns_records/{}", path_segment(zone)?, path_segment(id)?);
        let request = Request::new(Method::DELETE, http::join(&self.base, &path)?).bearer(&self.token);
        match self.http.send(&request, classify).await {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == ProviderErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// Cloudflare ids are hex; anything else would change the path.
fn path_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "cloudflare: invalid zone or record id"))
    }
}

/// Setting ids are lower-case words joined by `_`.
fn setting_segment(id: &str) -> Result<&str, ProviderError> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        Ok(id)
    } else {
        Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "cloudflare: invalid zone setting id"))
    }
}
