//! The firewall in front of workspace servers (`Engine::with_firewall`):
//! made before the first server, applied to each at creation, kept in step
//! with the edge's published ranges, never skipped, removed at teardown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CLOUD_TOKEN, Harness};
use sam_core::engine::{DriveOutcome, Engine, WorkspaceFirewall};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{
    ComputeProvider, EdgeRanges, FirewallProtocol, InboundRule, ProviderErrorKind, normalized_rules,
};
use sam_core::secret::SecretString;
use sam_core::testkit::fakes::{FakeEdge, Fault};

fn edge() -> Arc<FakeEdge> {
    Arc::new(FakeEdge::new(&["198.51.100.0/24", "192.0.2.0/24"], &["2001:db8::/32"]))
}

fn fail_edge(edge: &FakeEdge, times: usize) {
    for _ in 0..times {
        edge.faults.push("source_ranges", Fault::Fail(ProviderErrorKind::Transient));
    }
}

fn engine(h: &Harness, edge: &Arc<FakeEdge>) -> Engine {
    let mut settings = WorkspaceFirewall::new(edge.clone());
    settings.refresh = Duration::from_secs(3600);
    h.engine().with_firewall(settings)
}

fn expected(edge_sources: &[&str]) -> Vec<InboundRule> {
    normalized_rules(&[
        InboundRule {
            protocol: FirewallProtocol::Tcp,
            port: Some(443),
            sources: edge_sources.iter().map(|s| (*s).to_owned()).collect(),
            description: "SAM agent, from the edge only".into(),
        },
        InboundRule {
            protocol: FirewallProtocol::Icmp,
            port: None,
            sources: vec!["0.0.0.0/0".into(), "::/0".into()],
            description: "ICMP (ping, path MTU discovery)".into(),
        },
    ])
}

#[tokio::test]
async fn every_server_is_created_behind_the_deployment_firewall() {
    let h = Harness::new().await;
    let edge = edge();
    let engine = engine(&h, &edge);
    let token = SecretString::new(CLOUD_TOKEN);
    let first = h.running(&engine, "a").await;
    let second = h.running(&engine, "b").await;

    let fw = h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().expect("the firewall");
    assert_eq!(fw.name, format!("sam-{}", h.config.deployment));
    assert_eq!(normalized_rules(&fw.rules), expected(&["198.51.100.0/24", "192.0.2.0/24", "2001:db8::/32"]));
    for ws in [&first, &second] {
        let server = ws.lifecycle.server.as_ref().unwrap();
        assert!(fw.servers.contains(&server.id), "{} is behind the firewall", server.id);
    }
    assert_eq!(edge.calls(), 1, "the edge's ranges are fetched once and cached");
}

#[tokio::test]
async fn without_the_edge_ranges_no_server_is_created() {
    let h = Harness::new().await;
    let edge = edge();
    let engine = engine(&h, &edge);
    fail_edge(&edge, 100);
    let ws = h.create(&engine, "a").await;
    let DriveOutcome::Settled(ws) = engine.drive(h.user, ws.id).await.unwrap() else { panic!("settles") };
    assert_eq!(ws.status(), WorkspaceStatus::Creating, "deferred, not failed");
    assert!(h.cloud.servers().is_empty(), "no server without its firewall");

    edge.faults.clear();
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.cloud.servers_of(ws.id).len(), 1);
    let token = SecretString::new(CLOUD_TOKEN);
    let fw = h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().unwrap();
    assert!(fw.servers.contains(&h.cloud.servers_of(ws.id)[0].id));
}

#[tokio::test]
async fn new_edge_ranges_reach_the_firewall_and_a_failed_refresh_keeps_the_old_ones() {
    let h = Harness::new().await;
    let edge = edge();
    let engine = engine(&h, &edge);
    let token = SecretString::new(CLOUD_TOKEN);
    h.running(&engine, "a").await;

    // Within the refresh period: cached. After it, a failed fetch keeps the
    // last ranges (servers still get created)...
    h.clock.advance(Duration::from_secs(3601));
    fail_edge(&edge, 100);
    h.running(&engine, "b").await;
    let fw = h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().unwrap();
    assert_eq!(normalized_rules(&fw.rules), expected(&["198.51.100.0/24", "192.0.2.0/24", "2001:db8::/32"]));

    // ...and once the edge answers with new ranges, the next server's
    // creation puts them in the firewall.
    edge.faults.clear();
    edge.publish(EdgeRanges { ipv4: vec!["203.0.113.0/24".into()], ipv6: vec![] });
    h.running(&engine, "c").await;
    let fw = h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().unwrap();
    assert_eq!(normalized_rules(&fw.rules), expected(&["203.0.113.0/24"]));
}

#[tokio::test]
async fn teardown_removes_the_firewall_after_the_servers() {
    let h = Harness::new().await;
    let edge = edge();
    let engine = engine(&h, &edge);
    h.running(&engine, "a").await;
    let inventory = engine.inventory().await;
    let account = &inventory.accounts[0];
    assert!(account.firewall.is_some(), "the inventory names the firewall");

    // A server that cannot be deleted keeps the firewall.
    h.cloud.faults.push("delete_server", Fault::Fail(ProviderErrorKind::Other));
    let failures = inventory.delete(engine.inventory_ports(), |_| {}).await;
    assert!(failures.iter().any(|f| f.contains("kept while servers are left")), "{failures:?}");
    let token = SecretString::new(CLOUD_TOKEN);
    assert!(h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().is_some());

    let mut deleted = Vec::new();
    let failures =
        engine.inventory().await.delete(engine.inventory_ports(), |what| deleted.push(what.to_owned())).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(deleted.last().unwrap().starts_with("firewall sam-"), "the firewall goes last: {deleted:?}");
    assert!(h.cloud.find_firewall(&token, &h.config.deployment).await.unwrap().is_none());
    assert!(h.cloud.servers().is_empty());
}
