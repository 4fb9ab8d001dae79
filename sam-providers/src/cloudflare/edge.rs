//! Cloudflare's edge as an [`EdgeNetwork`]: the address ranges its proxies
//! connect to origins from, from `GET /ips` (public; the token is not sent).
//! A workspace firewall admits only these on the agent's port.

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::ports::{EdgeNetwork, EdgeRanges, ProviderError, ProviderErrorKind, is_cidr};
use serde::Deserialize;

use super::{Envelope, PROVIDER, classify};
use crate::http::{self, HttpClient, HttpConfig, Request};

/// Cloudflare's edge, asked at `config`'s base URL.
#[derive(Debug, Clone)]
pub struct CloudflareEdge {
    http: HttpClient,
    base: Url,
}

#[derive(Deserialize)]
struct Ips {
    #[serde(default)]
    ipv4_cidrs: Vec<String>,
    #[serde(default)]
    ipv6_cidrs: Vec<String>,
}

impl CloudflareEdge {
    /// The edge whose ranges the API at `base_url` (e.g.
    /// [`DEFAULT_BASE_URL`](super::DEFAULT_BASE_URL)) publishes.
    pub fn new(base_url: &str, http: HttpConfig) -> Result<Self, ProviderError> {
        let base = http::parse_base(PROVIDER, base_url)?;
        Ok(Self { http: HttpClient::new(PROVIDER, http)?, base })
    }
}

#[async_trait]
impl EdgeNetwork for CloudflareEdge {
    async fn source_ranges(&self) -> Result<EdgeRanges, ProviderError> {
        let request = Request::new(Method::GET, http::join(&self.base, "ips")?);
        let response = self.http.send(&request, classify).await?;
        let body: Envelope<Ips> = response.json(PROVIDER)?;
        let ips = body
            .result
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: no ranges in the answer"))?;
        // A firewall rule with a malformed range is refused as a whole:
        // better to say so here than to fail every server creation.
        if let Some(bad) = ips.ipv4_cidrs.iter().chain(&ips.ipv6_cidrs).find(|c| !is_cidr(c)) {
            return Err(ProviderError::new(ProviderErrorKind::Other, format!("cloudflare: edge range {bad:?}")));
        }
        if ips.ipv4_cidrs.is_empty() && ips.ipv6_cidrs.is_empty() {
            return Err(ProviderError::new(ProviderErrorKind::Other, "cloudflare: the edge published no ranges"));
        }
        Ok(EdgeRanges { ipv4: ips.ipv4_cidrs, ipv6: ips.ipv6_cidrs })
    }
}
