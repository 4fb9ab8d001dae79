//! Cloudflare's Origin CA as an [`OriginCertificateAuthority`]: certificates
//! a workspace's agent presents to Cloudflare's edge, which trusts them in
//! SSL mode *Full (strict)*.
//!
//! Calls used: `POST /certificates` (`csr`, one hostname,
//! `request_type: origin-ecc` — agents make ECDSA P-256 keys —,
//! `requested_validity` 365 days), `DELETE /certificates/{id}` (revoke;
//! 404 counts as done) and `GET /certificates?zone_id=` (pages of 50,
//! filtered by hostname here). The token needs "SSL and Certificates: Edit" on the
//! zone. Errors are the adapter's [`ProviderError`] kinds (see the
//! [module](super) table): a name outside the zone (code 1010) or a bad
//! request is `InvalidConfig`.

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::ports::{OriginCertificate, OriginCertificateAuthority, ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{CloudflareConfig, Envelope, PROVIDER, classify};
use crate::http::{self, HttpClient, Request};

/// Days an origin certificate is valid (workspaces are shorter-lived; a
/// restarted workspace gets a new VM and a new certificate).
const VALIDITY_DAYS: u32 = 365;

/// Cloudflare's Origin CA for the configured zone.
#[derive(Debug, Clone)]
pub struct CloudflareOriginCa {
    http: HttpClient,
    base: Url,
    token: SecretString,
    zone_id: String,
}

#[derive(Deserialize)]
struct Listed {
    id: String,
    #[serde(default)]
    hostnames: Vec<String>,
}

/// Pages of `GET /certificates` read at most (50 each).
const MAX_PAGES: u32 = 100;

#[derive(Deserialize)]
struct Issued {
    id: String,
    certificate: String,
    expires_on: String,
}

impl CloudflareOriginCa {
    /// The Origin CA reached with `config`'s base URL and token.
    pub fn new(config: CloudflareConfig) -> Result<Self, ProviderError> {
        let base = http::parse_base(PROVIDER, &config.base_url)?;
        Ok(Self {
            http: HttpClient::new(PROVIDER, config.http)?,
            base,
            token: config.api_token,
            zone_id: config.zone_id,
        })
    }

    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        http::join(&self.base, path)
    }
}

/// Cloudflare's `expires_on`: Go's `2006-01-02 15:04:05 -0700 MST`.
fn parse_expiry(text: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let (datetime, rest) = text.split_at_checked(19)?;
    let offset = rest.trim().split(' ').next()?;
    let primitive = time::PrimitiveDateTime::parse(datetime, &format).ok()?;
    let format = time::macros::format_description!("[offset_hour sign:mandatory][offset_minute]");
    Some(primitive.assume_offset(time::UtcOffset::parse(offset, &format).ok()?))
}

#[async_trait]
impl OriginCertificateAuthority for CloudflareOriginCa {
    async fn issue(&self, csr_pem: &str, hostname: &str) -> Result<OriginCertificate, ProviderError> {
        let body = json!({"csr": csr_pem, "hostnames": [hostname], "request_type": "origin-ecc",
                          "requested_validity": VALIDITY_DAYS});
        let request = Request::new(Method::POST, self.url("certificates")?).bearer(&self.token).json(body);
        // Issuing twice after a lost answer only leaves an unused
        // certificate, which expires; still, one attempt per call and the
        // caller's retry policy decide.
        let response = self.http.send_once(&request, classify).await?;
        let issued: Envelope<Issued> = response.json(PROVIDER)?;
        let issued = issued
            .result
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: no certificate in the answer"))?;
        let expires_at = parse_expiry(&issued.expires_on)
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "cloudflare: unreadable certificate expiry"))?;
        Ok(OriginCertificate { id: issued.id, certificate_pem: issued.certificate, expires_at })
    }

    async fn revoke(&self, id: &str) -> Result<(), ProviderError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(());
        }
        let request = Request::new(Method::DELETE, self.url(&format!("certificates/{id}"))?).bearer(&self.token);
        match self.http.send(&request, classify).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn certificates_for(&self, hostname: &str) -> Result<Vec<String>, ProviderError> {
        let mut ids = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = self.url("certificates")?;
            url.query_pairs_mut()
                .append_pair("zone_id", &self.zone_id)
                .append_pair("page", &page.to_string())
                .append_pair("per_page", "50");
            let request = Request::new(Method::GET, url).bearer(&self.token);
            let body: Envelope<Vec<Listed>> = self.http.send(&request, classify).await?.json(PROVIDER)?;
            let listed = body.result.unwrap_or_default();
            ids.extend(
                listed
                    .iter()
                    .filter(|c| c.hostnames.iter().any(|h| h.eq_ignore_ascii_case(hostname)))
                    .map(|c| c.id.clone()),
            );
            let total_pages = body.result_info.and_then(|i| i.total_pages).unwrap_or(1);
            if page >= total_pages || listed.is_empty() {
                return Ok(ids);
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "cloudflare: too many pages of origin certificates"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_times_parse() {
        let t = super::parse_expiry("2029-12-01 05:20:00 +0000 UTC").unwrap();
        assert_eq!((t.year(), t.hour(), t.minute()), (2029, 5, 20));
        assert!(super::parse_expiry("yesterday").is_none());
    }
}
