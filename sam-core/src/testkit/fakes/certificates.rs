use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::faults::{FaultPlan, after};
use crate::ports::{OriginCertificate, OriginCertificateAuthority, ProviderError, ProviderErrorKind};
use crate::testkit::lock;

/// An origin CA for one zone that keeps what it issued: hostnames by id,
/// and whether each is revoked. Its "certificates" are PEM-shaped but not
/// X.509 (nothing in the engine parses them).
#[derive(Debug)]
pub struct FakeOriginCa {
    zone: String,
    issued: Mutex<HashMap<String, (String, bool)>>,
    next: AtomicU64,
    /// Faults by operation (`issue`, `revoke`).
    pub faults: FaultPlan,
}

impl FakeOriginCa {
    /// A CA for names in `zone`.
    pub fn new(zone: &str) -> Self {
        Self {
            zone: zone.to_ascii_lowercase(),
            issued: Mutex::default(),
            next: AtomicU64::new(1),
            faults: FaultPlan::default(),
        }
    }

    /// Hostnames of the certificates issued and not revoked.
    pub fn valid_hostnames(&self) -> Vec<String> {
        lock(&self.issued).values().filter(|(_, revoked)| !revoked).map(|(h, _)| h.clone()).collect()
    }
}

/// A PEM `CERTIFICATE REQUEST` whose body is base64 of a DER sequence.
fn looks_like_csr(pem: &str) -> bool {
    let body: String = pem
        .lines()
        .skip_while(|l| *l != "-----BEGIN CERTIFICATE REQUEST-----")
        .skip(1)
        .take_while(|l| *l != "-----END CERTIFICATE REQUEST-----")
        .collect();
    body.starts_with("MI") && body.len() > 64
}

#[async_trait]
impl OriginCertificateAuthority for FakeOriginCa {
    async fn issue(&self, csr_pem: &str, hostname: &str) -> Result<OriginCertificate, ProviderError> {
        let pending = self.faults.before("issue")?;
        let host = hostname.to_ascii_lowercase();
        if !host.ends_with(&format!(".{}", self.zone)) {
            return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, format!("{hostname} is not in the zone")));
        }
        if !looks_like_csr(csr_pem) {
            return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "not a certificate request"));
        }
        let id = format!("{}", 1_000_000 + self.next.fetch_add(1, Ordering::Relaxed));
        lock(&self.issued).insert(id.clone(), (host.clone(), false));
        let certificate_pem = format!("-----BEGIN CERTIFICATE-----\nZmFrZSBmb3Ig{id}\n-----END CERTIFICATE-----\n");
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::days(90);
        after("issue", pending, OriginCertificate { id, certificate_pem, expires_at })
    }

    async fn revoke(&self, id: &str) -> Result<(), ProviderError> {
        let pending = self.faults.before("revoke")?;
        if let Some(entry) = lock(&self.issued).get_mut(id) {
            entry.1 = true;
        }
        after("revoke", pending, ())
    }

    async fn certificates_for(&self, hostname: &str) -> Result<Vec<String>, ProviderError> {
        let pending = self.faults.before("certificates_for")?;
        let host = hostname.to_ascii_lowercase();
        let mut ids: Vec<String> = lock(&self.issued)
            .iter()
            .filter(|(_, (h, revoked))| *h == host && !revoked)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        after("certificates_for", pending, ids)
    }
}
