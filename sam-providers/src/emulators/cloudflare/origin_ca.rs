//! The Origin CA part of the Cloudflare emulator: certificates for origin
//! servers, signed by the emulator's own CA (real X.509, so TLS stacks can
//! use them), with the request and response shapes of
//! `POST/GET /certificates` and `GET/DELETE /certificates/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Inner, envelope_error, ok};
use crate::emulators::{lock, rfc3339};

/// Validities (days) the API accepts; 5475 (15 years) is the default.
const VALIDITIES: [u32; 7] = [7, 30, 90, 365, 730, 1095, 5475];
const REQUEST_TYPES: [&str; 3] = ["origin-rsa", "origin-ecc", "keyless-certificate"];

/// The emulator's Origin CA: its key and self-signed root.
pub(super) struct OriginCa {
    issuer: Issuer<'static, KeyPair>,
    root_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for OriginCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCa").finish_non_exhaustive()
    }
}

impl OriginCa {
    pub(super) fn generate() -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::OrganizationName, "CloudFlare, Inc.");
        params.distinguished_name.push(DnType::OrganizationalUnitName, "CloudFlare Origin SSL Certificate Authority");
        params.distinguished_name.push(DnType::CommonName, "SAM emulator Origin CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(20 * 365);
        let key = KeyPair::generate()?;
        let root_pem = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok(Self { issuer: Issuer::new(params, key), root_pem, key_pem })
    }

    /// The CA of an earlier run (its root and key, PEM).
    pub(super) fn restore(root_pem: &str, key_pem: &str) -> Result<Self, rcgen::Error> {
        let issuer = Issuer::from_ca_cert_pem(root_pem, KeyPair::from_pem(key_pem)?)?;
        Ok(Self { issuer, root_pem: root_pem.to_owned(), key_pem: key_pem.to_owned() })
    }

    /// The root certificate (PEM) that origin certificates chain to.
    pub(super) fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// The CA's key (PEM), for a snapshot.
    pub(super) fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// One issued certificate.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(super) struct Issued {
    pub(super) id: String,
    certificate: String,
    csr: String,
    pub(super) hostnames: Vec<String>,
    request_type: String,
    requested_validity: u32,
    expires_on: time::OffsetDateTime,
    pub(super) revoked: bool,
}

/// Cloudflare writes `expires_on` as Go's time format.
fn go_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn issued_json(c: &Issued) -> Value {
    json!({"id": c.id, "certificate": c.certificate, "csr": c.csr, "hostnames": c.hostnames,
           "request_type": c.request_type, "requested_validity": c.requested_validity,
           "expires_on": go_time(c.expires_on)})
}

#[derive(Deserialize)]
pub(super) struct CreateBody {
    csr: Option<String>,
    #[serde(default)]
    hostnames: Vec<String>,
    request_type: Option<String>,
    requested_validity: Option<u32>,
}

/// Whether `hostname` is the zone or a name under it (a wildcard only as a
/// single `*.` prefix).
fn in_zone(hostname: &str, zone: &str) -> bool {
    let name = hostname.strip_prefix("*.").unwrap_or(hostname).to_ascii_lowercase();
    !name.contains('*') && (name == zone || name.ends_with(&format!(".{zone}")))
}

pub(super) async fn create(
    State(inner): State<Arc<Inner>>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return envelope_error(StatusCode::BAD_REQUEST, 9207, "Request body is invalid.");
    };
    let zone = lock(&inner.config).zone_name.clone();
    let Some(request_type) = body.request_type.filter(|t| REQUEST_TYPES.contains(&t.as_str())) else {
        return envelope_error(
            StatusCode::BAD_REQUEST,
            1002,
            "request_type must be origin-rsa, origin-ecc or keyless-certificate",
        );
    };
    let requested_validity = body.requested_validity.unwrap_or(5475);
    if !VALIDITIES.contains(&requested_validity) {
        return envelope_error(
            StatusCode::BAD_REQUEST,
            1002,
            "requested_validity must be one of 7, 30, 90, 365, 730, 1095, 5475",
        );
    }
    if body.hostnames.is_empty() || body.hostnames.len() > 100 {
        return envelope_error(StatusCode::BAD_REQUEST, 1002, "hostnames must name 1 to 100 hostnames");
    }
    if let Some(h) = body.hostnames.iter().find(|h| !in_zone(h, &zone)) {
        return envelope_error(
            StatusCode::BAD_REQUEST,
            1010,
            &format!(
                "Failed to validate requested hostname {h}: This zone is either not part of your account, or you do not have access to it. Please contact support if using a multi-user organization."
            ),
        );
    }
    let Some(csr_pem) = body.csr else {
        return envelope_error(StatusCode::BAD_REQUEST, 1002, "csr is required");
    };
    let Ok(mut csr) = CertificateSigningRequestParams::from_pem(&csr_pem) else {
        return envelope_error(StatusCode::BAD_REQUEST, 1001, "Failed to read the certificate request");
    };
    let algorithm = csr.public_key.algorithm();
    let ecdsa = *algorithm == rcgen::PKCS_ECDSA_P256_SHA256 || *algorithm == rcgen::PKCS_ECDSA_P384_SHA384;
    let matches = match request_type.as_str() {
        "origin-ecc" => ecdsa,
        "origin-rsa" => !ecdsa,
        _ => true,
    };
    if !matches {
        return envelope_error(
            StatusCode::BAD_REQUEST,
            1001,
            "The key type of the request does not match request_type",
        );
    }
    let sans: Result<Vec<SanType>, _> =
        body.hostnames.iter().map(|h| h.to_ascii_lowercase().try_into().map(SanType::DnsName)).collect();
    let Ok(sans) = sans else {
        return envelope_error(StatusCode::BAD_REQUEST, 1002, "a hostname is not valid");
    };
    let now = time::OffsetDateTime::now_utc();
    let expires_on = now + time::Duration::days(i64::from(requested_validity));
    let serial: [u8; 16] = rand_serial();
    let params = &mut csr.params;
    params.subject_alt_names = sans;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "CloudFlare, Inc.");
    params.distinguished_name.push(DnType::OrganizationalUnitName, "CloudFlare Origin CA");
    params.distinguished_name.push(DnType::CommonName, "CloudFlare Origin Certificate");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = expires_on;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let Ok(certificate) = csr.signed_by(&inner.origin_ca.issuer) else {
        return envelope_error(StatusCode::BAD_REQUEST, 1001, "Failed to sign the certificate request");
    };
    let issued = Issued {
        id: u128::from_be_bytes(serial).to_string(),
        certificate: certificate.pem(),
        csr: csr_pem,
        hostnames: body.hostnames,
        request_type,
        requested_validity,
        expires_on,
        revoked: false,
    };
    let value = issued_json(&issued);
    lock(&inner.state).certificates.push(issued);
    ok(value)
}

fn rand_serial() -> [u8; 16] {
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    // A positive serial of at most 127 bits.
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    zone_id: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

pub(super) async fn list(State(inner): State<Arc<Inner>>, Query(q): Query<ListQuery>) -> Response {
    let zone_id = lock(&inner.config).zone_id.clone();
    if q.zone_id.as_deref() != Some(zone_id.as_str()) {
        return envelope_error(StatusCode::BAD_REQUEST, 1002, "zone_id is required and must be a zone of the account");
    }
    let page = match q.page.as_deref().map(str::parse::<usize>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return envelope_error(StatusCode::BAD_REQUEST, 1001, "page must be at least 1"),
    };
    let per_page = match q.per_page.as_deref().map(str::parse::<usize>) {
        None => 20,
        Some(Ok(p)) if (5..=50).contains(&p) => p,
        Some(_) => return envelope_error(StatusCode::BAD_REQUEST, 1001, "per_page must be between 5 and 50"),
    };
    let all: Vec<Value> = lock(&inner.state).certificates.iter().filter(|c| !c.revoked).map(issued_json).collect();
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip((page - 1).saturating_mul(per_page)).take(per_page).collect();
    let count = items.len();
    Json(json!({"success": true, "errors": [], "messages": [], "result": items,
                "result_info": {"page": page, "per_page": per_page, "count": count, "total_count": total,
                                "total_pages": total.div_ceil(per_page)}}))
    .into_response()
}

fn not_found() -> Response {
    envelope_error(StatusCode::NOT_FOUND, 1003, "Certificate not found")
}

pub(super) async fn get(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    match lock(&inner.state).certificates.iter().find(|c| c.id == id && !c.revoked) {
        Some(c) => ok(issued_json(c)),
        None => not_found(),
    }
}

pub(super) async fn revoke(State(inner): State<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let mut state = lock(&inner.state);
    match state.certificates.iter_mut().find(|c| c.id == id && !c.revoked) {
        Some(c) => {
            c.revoked = true;
            ok(json!({"id": c.id, "revoked_at": rfc3339(time::OffsetDateTime::now_utc())}))
        }
        None => not_found(),
    }
}
