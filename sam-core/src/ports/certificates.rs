use async_trait::async_trait;

use super::ProviderError;
use crate::domain::Timestamp;

/// A certificate an origin (a workspace's agent) presents to the TLS edge in
/// front of it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OriginCertificate {
    /// The authority's id, for revoking it.
    pub id: String,
    /// The certificate (PEM), valid for the one hostname it was issued for.
    pub certificate_pem: String,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// Issues the certificates origins present to the edge (Cloudflare: the
/// Origin CA). The private key never reaches the authority nor SAM: the
/// origin sends a certificate signing request.
///
/// Contract (checked by `testkit::conformance::certificates`):
/// - `issue` signs the request for exactly the one hostname asked, which
///   must be in the operator's zone (else `InvalidConfig`); a request that
///   is not a valid CSR is `InvalidConfig`;
/// - `revoke` of a revoked or unknown id succeeds;
/// - `certificates_for` lists every certificate issued for the hostname and
///   not revoked (so release can revoke what a lost answer or a restart
///   left unrecorded), and nothing for another name.
#[async_trait]
pub trait OriginCertificateAuthority: Send + Sync + std::fmt::Debug {
    /// Signs `csr_pem` (PEM `CERTIFICATE REQUEST`) for `hostname` only.
    async fn issue(&self, csr_pem: &str, hostname: &str) -> Result<OriginCertificate, ProviderError>;

    /// Revokes the certificate `id`; unknown or already revoked counts as
    /// success.
    async fn revoke(&self, id: &str) -> Result<(), ProviderError>;

    /// The ids of the certificates issued for `hostname` and not revoked.
    async fn certificates_for(&self, hostname: &str) -> Result<Vec<String>, ProviderError>;
}
