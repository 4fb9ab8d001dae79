//! The conformance suites run against the in-memory fakes: the same suites the
//! real adapters run in `sam-providers`.

use std::sync::Arc;
use std::time::Duration;

use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::{Audience, Clock as _, SystemClock, TokenIssuer as _, TokenRequest};
use sam_core::testkit::conformance;
use sam_core::testkit::fakes::{
    FakeAgents, FakeCipher, FakeCloud, FakeDnsZone, FakeEdge, FakeOriginCa, FakeTokenAuthority, MemoryStore,
};

#[tokio::test]
async fn fake_cloud_conforms() {
    let cloud = FakeCloud::new();
    let token = cloud.add_token("valid");
    conformance::compute::run(&cloud, &token, "fsn1").await;
    assert!(cloud.servers().is_empty(), "the suite cleans up after itself");
}

#[tokio::test]
async fn fake_edge_conforms() {
    conformance::edge::run(&FakeEdge::new(&["198.51.100.0/24"], &["2001:db8::/32"])).await;
}

#[tokio::test]
async fn fake_dns_conforms() {
    let zone = FakeDnsZone::new();
    conformance::dns::run(&zone, &zone, "example.test").await;
    assert!(zone.records().is_empty());
}

#[tokio::test]
async fn fake_origin_ca_conforms() {
    let ca = FakeOriginCa::new("sam.test");
    let csr =
        format!("-----BEGIN CERTIFICATE REQUEST-----\nMII{}\n-----END CERTIFICATE REQUEST-----\n", "A".repeat(80));
    conformance::certificates::run(&ca, &csr, "ws-a.sam.test", "ws-a.example.org").await;
    assert!(ca.valid_hostnames().is_empty(), "the suite revoked what it issued");
}

#[tokio::test]
async fn fake_agents_conform() {
    let tokens = Arc::new(FakeTokenAuthority::new("https://sam.test", "k1"));
    let agents = FakeAgents::new(tokens.clone(), Arc::new(SystemClock));
    agents.answer("http://ws-a.sam.test", 7);
    let request = TokenRequest {
        audience: Audience::WorkspaceProbe,
        subject: UserId::new(),
        workspace: WorkspaceId::new(),
        ttl: Duration::from_secs(60),
        session: None,
    };
    let credential = tokens.issue(request, SystemClock.now()).unwrap().token;
    conformance::agent_probe::run(&agents, "http://ws-a.sam.test", &credential, 7, "http://ws-b.sam.test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::store::run(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn fake_cipher_conforms() {
    let cipher = FakeCipher::new(1, "first key");
    let rotated = cipher.rotated(2, "second key");
    let stranger = FakeCipher::new(9, "unrelated");
    conformance::cipher::run(&cipher, &rotated, &stranger).await;
}

#[tokio::test]
async fn fake_tokens_conform() {
    let authority = FakeTokenAuthority::new("https://sam.test", "k1");
    let foreign = FakeTokenAuthority::new("https://evil.test", "k-evil");
    conformance::tokens::run(&authority, &authority, &foreign).await;
}

#[tokio::test]
async fn fake_tokens_rotate_with_overlap() {
    use sam_core::ports::{Audience, TokenIssuer, TokenRequest, TokenVerifier};
    let mut authority = FakeTokenAuthority::new("https://sam.test", "k1");
    let now = time::OffsetDateTime::now_utc();
    let request = TokenRequest {
        audience: Audience::WorkspaceCallback,
        subject: sam_core::domain::UserId::new(),
        workspace: sam_core::domain::WorkspaceId::new(),
        ttl: std::time::Duration::from_secs(60),
        session: None,
    };
    let old = authority.issue(request.clone(), now).unwrap();
    authority.rotate("k2");
    let new = authority.issue(request, now).unwrap();
    assert!(authority.verify(old.token.expose(), Audience::WorkspaceCallback, now).await.is_ok());
    assert!(authority.verify(new.token.expose(), Audience::WorkspaceCallback, now).await.is_ok());
    authority.retire("k1");
    let err = authority.verify(old.token.expose(), Audience::WorkspaceCallback, now).await.unwrap_err();
    assert_eq!(err.kind, sam_core::ports::TokenErrorKind::UnknownKey);
}
