//! Races: two engines on one store, concurrent creates against the quota,
//! concurrent bootstrap redemptions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;

use common::Harness;
use sam_core::domain::InstallationId;
use sam_core::engine::EngineErrorKind;
use sam_core::testkit::fakes::MemoryStore;
use sam_core::testkit::sample_spec;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_share_200_workspaces() {
    sam_core::testkit::harness::two_engines_share_workspaces(Arc::new(MemoryStore::new()), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_quota_ten() {
    let h = Harness::new().await;
    let engine = Arc::new(h.engine());
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (engine, user) = (engine.clone(), h.user);
        tasks.push(tokio::spawn(
            async move { engine.create(user, sample_spec(&format!("q{n}")), InstallationId(1)).await },
        ));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind, EngineErrorKind::QuotaExceeded);
                assert!(e.message.contains("at most 10"), "{}", e.message);
            }
        }
    }
    assert_eq!(accepted, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_tokens_are_single_use_expire_and_die_with_their_workspace() {
    let h = Harness::new().await;
    let engine = Arc::new(h.engine());
    let ws = h.create(&engine, "boot").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).unwrap();

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (engine, token) = (engine.clone(), token.clone());
        tasks.push(tokio::spawn(async move { engine.redeem_bootstrap(&token).await }));
    }
    let mut grants = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(grant) => grants.push(grant),
            Err(e) => assert_eq!(e.kind, EngineErrorKind::Unauthorized),
        }
    }
    assert_eq!(grants.len(), 1, "exactly one redemption wins");
    let grant = &grants[0];
    assert_eq!(grant.workspace_id, ws.id);
    assert_eq!(grant.repository.as_str(), "octo-org/hello-world");
    assert!(grant.clone_token.expose().starts_with("ghs_fake_1_"));
    let callback = sam_core::ports::TokenVerifier::verify(
        &*h.tokens,
        grant.callback_token.expose(),
        sam_core::ports::Audience::WorkspaceCallback,
        sam_core::ports::Clock::now(&h.clock),
    )
    .await
    .unwrap();
    assert_eq!(callback.workspace, ws.id, "the callback credential names this workspace only");
    assert_eq!(callback.subject, h.user);

    // Expiry: a second workspace's token, redeemed too late.
    let late = h.create(&engine, "late").await;
    engine.drive(h.user, late.id).await.unwrap();
    let late_token = h.bootstrap_token(late.id).unwrap();
    h.clock.advance(h.config.bootstrap_token_ttl);
    assert_eq!(engine.redeem_bootstrap(&late_token).await.unwrap_err().kind, EngineErrorKind::Unauthorized);

    // A workspace that is being deleted no longer bootstraps.
    let gone = h.create(&engine, "gone").await;
    engine.drive(h.user, gone.id).await.unwrap();
    let gone_token = h.bootstrap_token(gone.id).unwrap();
    engine.delete(h.user, gone.id).await.unwrap();
    assert_eq!(engine.redeem_bootstrap(&gone_token).await.unwrap_err().kind, EngineErrorKind::Unauthorized);

    for garbage in ["", "x", "a b", &"a".repeat(500), "../../etc"] {
        assert_eq!(engine.redeem_bootstrap(garbage).await.unwrap_err().kind, EngineErrorKind::Unauthorized);
    }
}
