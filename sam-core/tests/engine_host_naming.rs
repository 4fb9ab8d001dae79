//! Flat workspace names (`ws-<id>--<env>.<zone>`, one level below the zone,
//! which Universal SSL covers): the record, the certificate, the URL, the
//! sweeps and the inventory all use them, and a nested deployment on the
//! same zone never takes them for its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{Harness, test_config};
use sam_core::domain::HostNaming;
use sam_core::engine::AgentReport;
use sam_core::wire::BootstrapRequest;

#[tokio::test]
async fn flat_names_are_used_end_to_end_and_kept_apart_from_nested_ones() {
    let mut config = test_config();
    config.host_naming = HostNaming::Flat;
    let h = Harness::with_config(config).await;
    let engine = h.engine();
    let ws = h.create(&engine, "flat").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let csr =
        format!("-----BEGIN CERTIFICATE REQUEST-----\nMII{}\n-----END CERTIFICATE REQUEST-----\n", "B".repeat(80));
    let token = h.bootstrap_token(ws.id).unwrap();
    let grant = engine.redeem_bootstrap_with(&token, &BootstrapRequest { csr: Some(csr) }).await.unwrap();
    let host = format!("{}--ws.sam.test", ws.id.dns_label());
    assert_eq!(grant.hostname, host);
    assert_eq!(h.dns.records_named(&host).len(), 1, "the record has the flat name");
    assert_eq!(h.origin_ca.valid_hostnames(), vec![host.clone()], "the certificate too");
    let running = engine.report_agent(h.user, ws.id, &AgentReport::Ready).await.unwrap();
    assert!(engine.workspace_url(&running).ends_with(&host), "{}", engine.workspace_url(&running));

    // Sweeps keep it; the inventory lists it as this deployment's.
    for _ in 0..3 {
        h.clock.advance(h.config.orphan_grace);
        engine.reconcile_once().await.unwrap();
    }
    assert_eq!(h.dns.records_named(&host).len(), 1);
    assert_eq!(engine.inventory().await.records.len(), 1);

    // A nested deployment on the zone apex's base sees none of it.
    let mut apex = test_config();
    apex.base_domain = "sam.test".into();
    apex.deployment = sam_core::domain::DeploymentId::new("apex").unwrap();
    let other = Harness::beside(&h, apex).await;
    let other_engine = other.engine();
    for _ in 0..3 {
        other.clock.advance(other.config.orphan_grace);
        other_engine.reconcile_once().await.unwrap();
    }
    assert_eq!(h.dns.records_named(&host).len(), 1, "not swept by the other deployment");
    let inventory = other_engine.inventory().await;
    assert!(inventory.records.is_empty() && inventory.other_records.is_empty(), "{inventory:?}");

    // Released: record gone, certificate revoked, nothing left.
    engine.delete(h.user, ws.id).await.unwrap();
    h.settle_everything(&engine).await;
    assert!(h.dns.records_named(&host).is_empty());
    assert!(h.origin_ca.valid_hostnames().is_empty());
    h.assert_no_leaks(&[h.user]).await;
}
