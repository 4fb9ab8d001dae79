//! The few Cloudflare API calls the operator commands make beyond the DNS
//! adapter: token verification, zone lookup by name, and arbitrary records
//! (the setup probe). Errors carry Cloudflare's code and message, never the
//! token.

use anyhow::Context as _;
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

/// A zone.
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    /// Zone id.
    pub id: String,
    /// Zone name (the apex domain).
    pub name: String,
    /// `active` once the domain's name servers point at Cloudflare.
    #[serde(default)]
    pub status: String,
}

/// A DNS record.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Record id.
    pub id: String,
    /// Fully qualified name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Content.
    pub content: String,
}

/// A Cloudflare API client with one token.
#[derive(Debug, Clone)]
pub struct CloudflareApi {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

impl CloudflareApi {
    /// A client for `base` (e.g. `https://api.cloudflare.com/client/v4`).
    pub fn new(base: &str, token: SecretString) -> anyhow::Result<Self> {
        Ok(Self { http: super::http_client()?, base: base.trim_end_matches('/').to_owned(), token })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut request = self.http.request(method.clone(), &url).bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let what = format!("Cloudflare {method} /{}", path.split('?').next().unwrap_or_default());
        let response = request.send().await.map_err(|e| anyhow::anyhow!("{what}: {}", e.without_url()))?;
        let status = response.status();
        let envelope: Envelope =
            response.json().await.map_err(|e| anyhow::anyhow!("{what}: HTTP {status}, unreadable answer: {e}"))?;
        if status.is_success() && envelope.success {
            return Ok(envelope.result);
        }
        let detail =
            envelope.errors.iter().map(|e| format!("{} (code {})", e.message, e.code)).collect::<Vec<_>>().join("; ");
        anyhow::bail!("{what}: HTTP {status}: {detail}")
    }

    /// `GET /user/tokens/verify`: the token's status (`active` when usable).
    pub async fn verify_token(&self) -> anyhow::Result<String> {
        let result = self.call(reqwest::Method::GET, "user/tokens/verify", None).await?;
        Ok(result.get("status").and_then(Value::as_str).unwrap_or("unknown").to_owned())
    }

    /// The zone holding `domain`: `domain` itself or its closest parent that
    /// is a zone the token can see (`GET /zones?name=`).
    pub async fn find_zone(&self, domain: &str) -> anyhow::Result<Option<Zone>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        for start in 0..labels.len().saturating_sub(1) {
            let candidate = labels[start..].join(".");
            let result = self.call(reqwest::Method::GET, &format!("zones?name={candidate}"), None).await?;
            let zones: Vec<Zone> = serde_json::from_value(result).context("Cloudflare zones answer")?;
            if let Some(zone) = zones.into_iter().find(|z| z.name.eq_ignore_ascii_case(&candidate)) {
                return Ok(Some(zone));
            }
        }
        Ok(None)
    }

    /// `GET /zones/{id}`.
    pub async fn zone(&self, id: &str) -> anyhow::Result<Zone> {
        let result = self.call(reqwest::Method::GET, &format!("zones/{id}"), None).await?;
        serde_json::from_value(result).context("Cloudflare zone answer")
    }

    /// Records named exactly `name`.
    pub async fn records_named(&self, zone: &str, name: &str) -> anyhow::Result<Vec<Record>> {
        let result = self
            .call(reqwest::Method::GET, &format!("zones/{zone}/dns_records?name.exact={name}&per_page=100"), None)
            .await?;
        serde_json::from_value(result).context("Cloudflare records answer")
    }

    /// Creates a record.
    pub async fn create_record(
        &self,
        zone: &str,
        record_type: &str,
        name: &str,
        content: &str,
    ) -> anyhow::Result<Record> {
        let body = json!({"type": record_type, "name": name, "content": content, "ttl": 60, "proxied": false,
                          "comment": "sam-server setup"});
        let result = self.call(reqwest::Method::POST, &format!("zones/{zone}/dns_records"), Some(body)).await?;
        serde_json::from_value(result).context("Cloudflare record answer")
    }

    /// Deletes a record by id.
    pub async fn delete_record(&self, zone: &str, id: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::DELETE, &format!("zones/{zone}/dns_records/{id}"), None).await.map(|_| ())
    }
}
