//! Every example runs here, through the same function its program calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sam_core::testkit::conformance;
use sam_examples::custom_provider::{RackCloud, RackCloudConfig};

#[tokio::test]
async fn provision_creates_runs_stops_and_deletes_leaving_nothing_at_the_emulators() {
    let mut out = Vec::new();
    let outcome = sam_examples::provision::run(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(outcome.statuses, ["creating", "creating", "running", "stopping", "stopped", "deleting"], "{text}");
    assert_eq!(outcome.servers_left, 0);
    assert_eq!(outcome.records_left, 0);
    assert!(text.contains("Cloudflare: ws-"), "the DNS record was shown: {text}");
    assert!(text.contains("→ removed"));
}

#[tokio::test]
async fn the_custom_provider_passes_the_compute_conformance_suite() {
    let cloud = RackCloud::new(RackCloudConfig::default());
    let token = cloud.add_project("conformance");
    conformance::compute::run(&cloud, &token, "lab1").await;
    assert!(cloud.servers().is_empty(), "the suite leaves no server behind");
}

#[tokio::test]
async fn the_custom_provider_runs_a_workspace_through_the_unchanged_engine() {
    let mut out = Vec::new();
    let statuses = sam_examples::custom_provider::run(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(
        statuses,
        ["creating", "creating", "running", "stopping", "stopped", "creating", "creating", "running", "deleting"],
        "{text}"
    );
    assert!(text.contains("at 10.42."), "{text}");
    assert!(text.ends_with("removed; rack: 0 servers\n"), "{text}");
}

#[tokio::test]
async fn embed_axum_serves_the_host_routes_and_sams_api_side_by_side() {
    let mut out = Vec::new();
    let seen = sam_examples::embed_axum::run(&mut out).await.unwrap();
    println!("{}", String::from_utf8(out).unwrap());
    assert_eq!(seen.home.0, 200);
    assert!(seen.home.1.contains("Acme internal tools"), "the host's page, not SAM's dashboard");
    assert_eq!(seen.internal_status.0, 200);
    assert_eq!(seen.internal_status.1["workspaces"], 1, "{}", seen.internal_status.1);
    assert_eq!(seen.sam_health, (200, seen.sam_health.1.clone()));
    assert_eq!(seen.sam_health.1["status"], "ok");
    assert_eq!(seen.sam_workspaces_anonymous.0, 401, "{}", seen.sam_workspaces_anonymous.1);
    assert_eq!(seen.sam_bootstrap.0, 200, "{}", seen.sam_bootstrap.1);
    assert!(seen.sam_bootstrap.1["workspaceId"].is_string());
}
