//! Cloudflare adapter ↔ Cloudflare emulator, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sam_core::domain::WorkspaceId;
use sam_core::ports::{DnsProvider, OriginCertificateAuthority, ProviderErrorKind};
use sam_core::secret::SecretString;
use sam_core::testkit::conformance;
use sam_core::testkit::conformance::dns::RawZone;
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns, CloudflareOriginCa};
use sam_providers::emulators::{CloudflareEmulator, CloudflareEmulatorConfig, Fault, InjectedError};
use sam_providers::http::{HttpConfig, RetryPolicy};

/// The conformance suite's raw access to the zone, through the emulator handle.
struct Raw(CloudflareEmulator);

#[async_trait]
impl RawZone for Raw {
    async fn create_raw(&self, name: &str, ipv4: Ipv4Addr) {
        self.0.create_raw(name, ipv4);
    }
}

async fn emulator() -> CloudflareEmulator {
    CloudflareEmulator::start(CloudflareEmulatorConfig::default()).await.unwrap()
}

fn adapter_with(emu: &CloudflareEmulator, token: &str, zone_id: &str, http: HttpConfig) -> CloudflareDns {
    CloudflareDns::new(CloudflareConfig {
        base_url: emu.base_url().to_owned(),
        api_token: SecretString::new(token),
        zone_id: zone_id.to_owned(),
        ttl: 60,
        proxied: false,
        http,
    })
    .unwrap()
}

fn adapter(emu: &CloudflareEmulator, http: HttpConfig) -> CloudflareDns {
    adapter_with(emu, &emu.token(), &emu.zone_id(), http)
}

fn no_retry() -> HttpConfig {
    HttpConfig { retry: RetryPolicy::never(), ..HttpConfig::fast() }
}

fn name(emu: &CloudflareEmulator) -> String {
    format!("{}.{}", WorkspaceId::new().dns_label(), emu.zone_name())
}

#[tokio::test]
async fn conformance_suite_passes_against_the_emulator() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    conformance::dns::run(&provider, &Raw(emu.clone()), &emu.zone_name()).await;
    assert!(emu.records().is_empty(), "the suite leaves no record behind");
}

#[tokio::test]
async fn each_error_kind_comes_from_a_real_emulator_response() {
    let emu = emulator().await;
    let mut cases = Vec::new();

    let bad_token = adapter_with(&emu, "wrong", &emu.zone_id(), no_retry());
    cases.push(("invalid token (verify)", ProviderErrorKind::Unauthorized, bad_token.verify().await.unwrap_err()));
    cases.push((
        "invalid token (zone)",
        ProviderErrorKind::Unauthorized,
        bad_token.list_records("ws-").await.unwrap_err(),
    ));

    let other_zone = adapter_with(&emu, &emu.token(), "00000000000000000000000000000000", no_retry());
    cases.push(("zone not accessible (9109)", ProviderErrorKind::Unauthorized, other_zone.verify().await.unwrap_err()));

    let bad_zone = adapter_with(&emu, &emu.token(), "nozone", no_retry());
    cases.push(("malformed zone (7003)", ProviderErrorKind::InvalidConfig, bad_zone.verify().await.unwrap_err()));

    let provider = adapter(&emu, no_retry());
    let err = provider.upsert_a_record("bad name!.sam.test", Ipv4Addr::new(192, 0, 2, 1), None).await.unwrap_err();
    cases.push(("invalid name", ProviderErrorKind::InvalidConfig, err));

    emu.faults().inject("GET", "/client/v4/zones/*", Fault::Error(InjectedError::Unavailable), 1);
    cases.push(("503", ProviderErrorKind::Transient, provider.list_records("ws-").await.unwrap_err()));
    emu.faults().inject("GET", "/client/v4/zones/*", Fault::Error(InjectedError::Internal), 1);
    cases.push(("500", ProviderErrorKind::Transient, provider.list_records("ws-").await.unwrap_err()));
    emu.faults().inject("GET", "/client/v4/zones/*", Fault::Latency(Duration::from_secs(3)), 1);
    cases.push(("timeout", ProviderErrorKind::Transient, provider.list_records("ws-").await.unwrap_err()));
    emu.faults().clear();

    emu.exhaust_rate_limit();
    let err = provider.list_records("ws-").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "Retry-After is carried");
    cases.push(("429", ProviderErrorKind::RateLimited { retry_after: Some(Duration::from_secs(1)) }, err));

    for (case, expected, err) in cases {
        assert_eq!(err.kind(), expected, "{case}: {err}");
        assert!(!err.to_string().contains(&emu.token()), "{case}: no token in errors");
    }
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let emu = CloudflareEmulator::start(CloudflareEmulatorConfig {
        rate_limit: 3,
        rate_refill_per_sec: 2.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let provider = adapter(&emu, HttpConfig::fast());
    emu.exhaust_rate_limit();
    let started = Instant::now();
    provider.list_records("ws-").await.expect("succeeds after Retry-After");
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(emu.faults().count("GET", "/client/v4/zones/*"), 2);
}

#[tokio::test]
async fn unavailable_is_retried_then_succeeds_and_401_is_not() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    emu.faults().inject("GET", "/client/v4/user/tokens/verify", Fault::Error(InjectedError::Unavailable), 2);
    provider.verify().await.unwrap();
    assert_eq!(emu.faults().count("GET", "/client/v4/user/tokens/verify"), 3);

    emu.faults().clear_requests();
    let bad = adapter_with(&emu, "revoked", &emu.zone_id(), HttpConfig::fast());
    assert_eq!(bad.verify().await.unwrap_err().kind(), ProviderErrorKind::Unauthorized);
    assert_eq!(emu.faults().count("GET", "/client/v4/user/tokens/verify"), 1);
}

#[tokio::test]
async fn lost_create_response_does_not_leave_two_records() {
    let emu = emulator().await;
    let http = HttpConfig { request_timeout: Duration::from_millis(400), ..HttpConfig::fast() };
    let provider = adapter(&emu, http);
    emu.faults().inject("POST", "/client/v4/zones/*", Fault::DropResponse(Duration::from_secs(5)), 1);
    let n = name(&emu);
    let record = provider.upsert_a_record(&n, Ipv4Addr::new(192, 0, 2, 44), None).await.unwrap();
    let records: Vec<_> = emu.records().into_iter().filter(|r| r.name == n).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, record.id);
    assert_eq!(emu.faults().count("POST", "/client/v4/zones/*"), 1);
}

#[tokio::test]
async fn listing_follows_pagination() {
    let emu = emulator().await;
    for i in 0..230u32 {
        let n = format!("{}.{}", WorkspaceId::new().dns_label(), emu.zone_name());
        emu.create_raw(&n, Ipv4Addr::from(0xC000_0200 + (i % 250)));
    }
    emu.create_raw(&format!("www.{}", emu.zone_name()), Ipv4Addr::new(192, 0, 2, 250));
    let provider = adapter(&emu, HttpConfig::fast());
    let listed = provider.list_records("ws-").await.unwrap();
    assert_eq!(listed.len(), 230);
    assert_eq!(emu.faults().count("GET", "/client/v4/zones/*"), 3, "three pages of 100");
    provider.delete_records(&listed[0].name).await.unwrap();
    assert_eq!(emu.records().len(), 230);
}

#[tokio::test]
async fn a_record_created_between_list_and_post_is_taken_not_duplicated() {
    let emu = emulator().await;
    let provider = adapter(&emu, HttpConfig::fast());
    let n = name(&emu);
    // The adapter's POST is held back; meanwhile another writer creates the
    // identical record, so the POST gets 81058 and the adapter takes that one.
    emu.faults().inject("POST", "/client/v4/zones/*", Fault::Latency(Duration::from_millis(500)), 1);
    let racer = {
        let emu = emu.clone();
        let n = n.clone();
        tokio::spawn(async move {
            while emu.faults().count("POST", "/client/v4/zones/*") == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            emu.create_raw(&n, Ipv4Addr::new(192, 0, 2, 60))
        })
    };
    let record = provider.upsert_a_record(&n, Ipv4Addr::new(192, 0, 2, 60), None).await.unwrap();
    let raced_id = racer.await.unwrap();
    assert_eq!(record.id, raced_id);
    assert_eq!(emu.records().iter().filter(|r| r.name == n).count(), 1);
    assert_eq!(emu.faults().count("POST", "/client/v4/zones/*"), 1, "the POST was answered with 81058");
}

/// An ECDSA P-256 key and a CSR for it, as an agent makes them.
fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap()
}

fn origin_ca(emu: &CloudflareEmulator) -> CloudflareOriginCa {
    CloudflareOriginCa::new(CloudflareConfig {
        base_url: emu.base_url().to_owned(),
        api_token: SecretString::new(emu.token()),
        zone_id: emu.zone_id(),
        ttl: 60,
        proxied: false,
        http: HttpConfig::fast(),
    })
    .unwrap()
}

#[tokio::test]
async fn origin_ca_conforms_against_the_emulator() {
    let emu = emulator().await;
    let ca = origin_ca(&emu);
    let zone = emu.zone_name();
    conformance::certificates::run(&ca, &csr(), &format!("ws-a.{zone}"), "ws-a.example.org").await;
    assert!(emu.origin_certificates().is_empty(), "the suite revoked what it issued");
}

/// A zone with many origin certificates: the listing follows the pages
/// (at most 50 each) and finds one name's among the others'.
#[tokio::test]
async fn origin_certificates_are_found_across_pages() {
    let emu = emulator().await;
    let ca = origin_ca(&emu);
    let zone = emu.zone_name();
    let request = csr();
    let mut mine = Vec::new();
    for n in 0..56 {
        let host = if n % 8 == 0 { format!("ws-mine.{zone}") } else { format!("ws-{n}.{zone}") };
        let issued = ca.issue(&request, &host).await.unwrap();
        if n % 8 == 0 {
            mine.push(issued.id);
        }
    }
    let mut found = ca.certificates_for(&format!("WS-MINE.{zone}")).await.unwrap();
    found.sort();
    mine.sort();
    assert_eq!(found, mine);
    assert!(found.len() == 7);
    let page = reqwest::Client::new()
        .get(format!("{}/certificates?zone_id={}&per_page=51", emu.base_url(), emu.zone_id()))
        .bearer_auth(emu.token())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400, "per_page is 5..=50");
}

/// The emulator's certificates are real X.509: valid, for the one name
/// asked, chained to the emulator's Origin CA, as a TLS client checks them.
#[tokio::test]
async fn origin_certificates_verify_for_their_name_only() {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
    sam_providers::http::ensure_crypto_provider();
    let emu = emulator().await;
    let ca = origin_ca(&emu);
    let name = format!("ws-b.{}", emu.zone_name());
    let issued = ca.issue(&csr(), &name).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(emu.origin_ca_pem().as_bytes()).unwrap()).unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots)).build().unwrap();
    let leaf = CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap();
    let verify = |host: &str| {
        verifier.verify_server_cert(&leaf, &[], &ServerName::try_from(host.to_owned()).unwrap(), &[], UnixTime::now())
    };
    verify(&name).expect("valid for its own name");
    assert!(verify(&format!("ws-c.{}", emu.zone_name())).is_err(), "not for another workspace's name");
    assert!(issued.expires_at > time::OffsetDateTime::now_utc() + Duration::from_secs(300 * 86_400));
}

/// The API's shapes and errors, spoken raw: a request type that does not
/// match the key, a validity the API does not offer, a name outside the
/// zone (code 1010), listing by zone, revoking twice (404 the second time).
#[tokio::test]
async fn origin_ca_endpoints_answer_like_cloudflare() {
    let emu = emulator().await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client.post(format!("{}/certificates", emu.base_url())).bearer_auth(emu.token()).json(&body).send()
    };
    let host = format!("ws-d.{}", emu.zone_name());
    let refused =
        post(serde_json::json!({"csr": csr(), "hostnames": [host], "request_type": "origin-rsa"})).await.unwrap();
    assert_eq!(refused.status(), 400, "an ECDSA key under origin-rsa");
    let refused = post(
        serde_json::json!({"csr": csr(), "hostnames": [host], "request_type": "origin-ecc", "requested_validity": 42}),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 400);
    let refused =
        post(serde_json::json!({"csr": csr(), "hostnames": ["ws.example.org"], "request_type": "origin-ecc"}))
            .await
            .unwrap();
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!((body["success"].as_bool(), body["errors"][0]["code"].as_u64()), (Some(false), Some(1010)), "{body}");
    let created =
        post(serde_json::json!({"csr": csr(), "hostnames": [host], "request_type": "origin-ecc"})).await.unwrap();
    assert_eq!(created.status(), 200);
    let created: serde_json::Value = created.json().await.unwrap();
    let result = &created["result"];
    assert_eq!(result["requested_validity"], 5475, "15 years unless asked");
    assert!(result["expires_on"].as_str().unwrap().ends_with(" +0000 UTC"), "{result}");
    let id = result["id"].as_str().unwrap();
    let listed: serde_json::Value = client
        .get(format!("{}/certificates?zone_id={}", emu.base_url(), emu.zone_id()))
        .bearer_auth(emu.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["result"][0]["id"], id);
    let revoke = || client.delete(format!("{}/certificates/{id}", emu.base_url())).bearer_auth(emu.token()).send();
    let first: serde_json::Value = revoke().await.unwrap().json().await.unwrap();
    assert_eq!(first["result"]["id"], id);
    assert!(first["result"]["revoked_at"].is_string());
    assert_eq!(revoke().await.unwrap().status(), 404);
}

/// With `proxied`, workspace records go through the edge (automatic TTL),
/// and an upsert turns an existing unproxied record into a proxied one.
#[tokio::test]
async fn proxied_records_are_created_and_converted() {
    let emu = emulator().await;
    let plain = adapter_with(&emu, &emu.token(), &emu.zone_id(), HttpConfig::fast());
    let proxied = CloudflareDns::new(CloudflareConfig {
        base_url: emu.base_url().to_owned(),
        proxied: true,
        http: HttpConfig::fast(),
        ..CloudflareConfig::new(SecretString::new(emu.token()), emu.zone_id())
    })
    .unwrap();
    let zone = emu.zone_name();
    let fresh = format!("{}.{zone}", WorkspaceId::new().dns_label());
    proxied.upsert_a_record(&fresh, Ipv4Addr::new(192, 0, 2, 70), None).await.unwrap();
    let old = format!("{}.{zone}", WorkspaceId::new().dns_label());
    plain.upsert_a_record(&old, Ipv4Addr::new(192, 0, 2, 71), None).await.unwrap();
    proxied.upsert_a_record(&old, Ipv4Addr::new(192, 0, 2, 71), None).await.unwrap();
    let records = emu.records();
    for name in [&fresh, &old] {
        let record = records.iter().find(|r| &r.name == name).unwrap();
        assert!(record.proxied, "{name} goes through the edge");
        assert_eq!(record.ttl, 1, "automatic TTL for proxied records");
    }
    assert_eq!(records.len(), 2, "converted in place, no duplicate");
}

/// `GET /ips` needs no token: the edge adapter sends none, and the ranges it
/// reads are the emulator's published ones (Cloudflare's list by default).
#[tokio::test]
async fn the_edge_ranges_conform_and_need_no_token() {
    let emu = emulator().await;
    // No token at all: the adapter sends none.
    let edge = sam_providers::cloudflare::CloudflareEdge::new(emu.base_url(), HttpConfig::fast()).unwrap();
    conformance::edge::run(&edge).await;
    let ranges = sam_core::ports::EdgeNetwork::source_ranges(&edge).await.unwrap();
    assert!(ranges.ipv4.contains(&"173.245.48.0/20".to_owned()));
    assert!(ranges.ipv6.contains(&"2606:4700::/32".to_owned()));

    // The raw answer is Cloudflare's envelope, without any authentication.
    let raw: serde_json::Value = reqwest::get(format!("{}/ips", emu.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(raw["success"], true);
    assert!(raw["result"]["etag"].is_string());
    assert_eq!(raw["result"]["ipv4_cidrs"].as_array().unwrap().len(), ranges.ipv4.len());

    // An outage is an error of a retryable kind, so the engine defers.
    emu.faults().always("GET", "/client/v4/ips", Fault::Error(InjectedError::Unavailable));
    let no_retries = sam_providers::cloudflare::CloudflareEdge::new(emu.base_url(), no_retry()).unwrap();
    let err = sam_core::ports::EdgeNetwork::source_ranges(&no_retries).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
