//! The [`OriginCertificateAuthority`] contract.

use crate::ports::{OriginCertificateAuthority, ProviderErrorKind};

/// `csr_pem` is a valid certificate signing request; `hostname` is in the
/// authority's zone and `foreign` is not. Revokes what it issues.
pub async fn run(ca: &dyn OriginCertificateAuthority, csr_pem: &str, hostname: &str, foreign: &str) {
    let issued = ca.issue(csr_pem, hostname).await.expect("a certificate for a name in the zone");
    assert!(!issued.id.is_empty(), "an id to revoke it by");
    assert!(issued.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", issued.certificate_pem);
    assert!(issued.expires_at > time::OffsetDateTime::now_utc(), "valid from now on");
    let second = ca.issue(csr_pem, hostname).await.expect("a second certificate for the same request");
    assert_ne!(second.id, issued.id, "each issue is its own certificate");

    let err = ca.issue(csr_pem, foreign).await.expect_err("a name outside the zone");
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig, "{err}");
    let err = ca
        .issue("-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n", hostname)
        .await
        .expect_err("garbage is not a request");
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig, "{err}");

    let mut found = ca.certificates_for(hostname).await.expect("list");
    found.sort();
    let mut expected = vec![issued.id.clone(), second.id.clone()];
    expected.sort();
    assert_eq!(found, expected, "both, and only them");
    assert!(ca.certificates_for(&format!("other-{hostname}")).await.expect("list").is_empty());

    for id in [&issued.id, &second.id] {
        ca.revoke(id).await.expect("revoke");
        ca.revoke(id).await.expect("revoking again succeeds");
    }
    assert!(ca.certificates_for(hostname).await.expect("list").is_empty(), "revoked ones are not listed");
    ca.revoke("123456789").await.expect("revoking an unknown id succeeds");
}
