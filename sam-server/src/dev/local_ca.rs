//! The certificates of `sam-server dev --tls`: a local CA the browser is
//! told to trust (kept in the data directory, so it is trusted once), the
//! edge's server certificates made from it for each name asked for, and the
//! edge's origin-pull client certificate with its own CA (Cloudflare's
//! Authenticated Origin Pulls CA plays that part in production).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA kept as `<name>.pem` and `<name>-key.pem` in a directory.
pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    path: PathBuf,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("path", &self.path).finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::OrganizationName, "SAM dev mode");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10 * 365);
    params
}

impl LocalCa {
    /// The CA in `dir` named `name`, made on first use.
    pub fn load_or_create(dir: &Path, name: &str, common_name: &str) -> anyhow::Result<Self> {
        let (path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
        if let (Ok(pem), Ok(key)) = (std::fs::read_to_string(&path), std::fs::read_to_string(&key_path)) {
            let key = KeyPair::from_pem(&key).with_context(|| format!("reading {}", key_path.display()))?;
            let issuer = Issuer::from_ca_cert_pem(&pem, key).with_context(|| format!("reading {}", path.display()))?;
            return Ok(Self { issuer, path });
        }
        crate::ops::create_private_dir(dir)?;
        let key = KeyPair::generate().context("generating a CA key")?;
        let params = ca_params(common_name);
        let pem = params.self_signed(&key).context("signing the CA")?.pem();
        crate::ops::write_secret_file(&key_path, &key.serialize_pem())?;
        std::fs::write(&path, &pem).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { issuer: Issuer::new(params, key), path })
    }

    /// Where the CA certificate is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn leaf(&self, params: CertificateParams) -> anyhow::Result<(CertificateDer<'static>, KeyPair)> {
        let key = KeyPair::generate().context("generating a key")?;
        let certificate = params.signed_by(&key, &self.issuer).context("signing a certificate")?;
        Ok((certificate.der().clone(), key))
    }

    /// A server certificate for `name` (valid 30 days) and its key.
    pub fn server_certificate(&self, name: &str) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::DnsName(name.try_into().context("not a DNS name")?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(30);
        let (der, key) = self.leaf(params)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).context("the key")?;
        Ok(Arc::new(rustls::sign::CertifiedKey::new(vec![der], signer)))
    }

    /// A client certificate (valid 10 years): the chain and its key.
    pub fn client_certificate(
        &self,
        common_name: &str,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(10 * 365);
        let (der, key) = self.leaf(params)?;
        Ok((vec![der], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
    }
}
