//! `GET /metrics`: a workspace driven through the engine (testkit fakes) and
//! the agent endpoints shows up in the Prometheus scrape.
//!
//! The `metrics` recorder is global to the process, so this file holds a single
//! test: everything recorded in this binary lands in the same registry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sam_core::accounts::{Accounts, AccountsConfig};
use sam_core::domain::WorkspaceId;
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_WORKSPACE, ProviderErrorKind};
use sam_core::testkit::fakes::Fault;
use sam_core::testkit::harness::{CLOUD_TOKEN, Harness};
use sam_server::state::{AppState, HttpSettings};
use serde_json::{Value, json};

/// The API router with `/metrics` merged in, on a random port, over the
/// harness engine.
async fn serve(h: &Harness, engine: Arc<sam_core::engine::Engine>) -> String {
    let handle = sam_server::metrics::install().unwrap();
    assert!(sam_server::metrics::install().is_ok(), "installing twice returns the same recorder");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState {
        engine,
        accounts: Arc::new(Accounts::new(h.ports(), h.github.clone(), AccountsConfig::default())),
        issuer: h.tokens.clone(),
        verifier: h.tokens.clone(),
        webhooks: None,
        http: HttpSettings { rate_limit_per_minute: 1000, ..HttpSettings::new(base.clone(), std::env::temp_dir()) },
    };
    let app = sam_server::api::router(state).merge(sam_server::metrics::router(handle));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    });
    base
}

async fn post(client: &reqwest::Client, url: String, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = client.post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The value of the sample `name{labels}` (labels as rendered, in order), or
/// of `name` when `labels` is empty.
fn sample(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    let series = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
    scrape.lines().find_map(|line| line.strip_prefix(&series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of the first sample of `name` whose labels contain every one of
/// `wanted` (`key="value"`), in any order.
fn sample_with(scrape: &str, name: &str, wanted: &[&str]) -> Option<f64> {
    scrape.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        wanted.iter().all(|w| labels.split(',').any(|l| l == *w)).then(|| value.trim().parse().ok())?
    })
}

#[tokio::test]
async fn the_scrape_shows_a_workspace_driven_through_the_engine() {
    let h = Harness::new().await;
    let engine = Arc::new(h.engine());
    let base = serve(&h, engine.clone()).await;
    let client = reqwest::Client::new();

    // An orphan: a server labelled for a workspace SAM does not know, found
    // once it is older than the grace period.
    h.cloud.plant_server(
        CLOUD_TOKEN,
        BTreeMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_WORKSPACE.to_owned(), WorkspaceId::new().to_string()),
            (LABEL_DEPLOYMENT.to_owned(), h.config.deployment.to_string()),
        ]),
    );
    h.clock.advance(h.config.orphan_grace + Duration::from_secs(1));
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.orphan_servers_deleted, 1);

    // A workspace whose first create call fails transiently (retried in the
    // step), then boots: 42 s on the engine's clock from create to ready.
    h.cloud.faults.push("create_server", Fault::Fail(ProviderErrorKind::Transient));
    let ws = h.create(&engine, "metrics").await;
    engine.drive(h.user, ws.id).await.unwrap();
    h.clock.advance(Duration::from_secs(42));
    let token = h.bootstrap_token(ws.id).unwrap();
    let (status, grant) = post(&client, format!("{base}/api/bootstrap/{token}"), None, json!({})).await;
    assert_eq!(status, 200, "{grant}");
    let callback = grant["callbackToken"].as_str().unwrap().to_owned();
    let (status, body) = post(
        &client,
        format!("{base}/api/workspaces/{}/boot-progress", ws.id),
        Some(&callback),
        json!({"step": "ready", "status": "done"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Running));

    // The agent reports three open terminals.
    let (status, answer) = post(
        &client,
        format!("{base}/api/workspaces/{}/heartbeat", ws.id),
        Some(&callback),
        json!({"idleSeconds": 5, "activeSessions": 3}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["action"], "continue");

    // A second workspace, stopped.
    let stopped = h.running(&engine, "stopped-one").await;
    engine.stop(h.user, stopped.id).await.unwrap();
    engine.drive(h.user, stopped.id).await.unwrap();
    assert_eq!(h.status(stopped.id).await, Some(WorkspaceStatus::Stopped));
    engine.reconcile_once().await.unwrap();

    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let scrape = response.text().await.unwrap();

    // Workspaces by status, every status present.
    assert_eq!(sample(&scrape, "sam_workspaces", r#"status="running""#), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, "sam_workspaces", r#"status="stopped""#), Some(1.0));
    assert_eq!(sample(&scrape, "sam_workspaces", r#"status="creating""#), Some(0.0));
    assert!(scrape.contains("# TYPE sam_workspaces gauge"));

    // Provisioning duration: two workspaces became ready, one after 42 s.
    assert!(scrape.contains("# TYPE sam_workspace_provisioning_duration_seconds histogram"));
    assert_eq!(sample(&scrape, "sam_workspace_provisioning_duration_seconds_count", ""), Some(2.0));
    assert_eq!(sample(&scrape, "sam_workspace_provisioning_duration_seconds_sum", ""), Some(42.0));
    assert_eq!(sample(&scrape, "sam_workspace_provisioning_duration_seconds_bucket", r#"le="30""#), Some(1.0));
    assert_eq!(sample(&scrape, "sam_workspace_provisioning_duration_seconds_bucket", r#"le="45""#), Some(2.0));

    // Provider calls: two create attempts for the first workspace, one for the
    // second; the failed one counted by kind.
    assert!(scrape.contains("# TYPE sam_provider_call_duration_seconds histogram"));
    let creates = sample_with(
        &scrape,
        "sam_provider_call_duration_seconds_count",
        &[r#"provider="fake""#, r#"operation="create_server""#],
    );
    assert_eq!(creates, Some(3.0), "{scrape}");
    let upserts = sample_with(
        &scrape,
        "sam_provider_call_duration_seconds_count",
        &[r#"provider="fake""#, r#"operation="upsert_a_record""#],
    );
    assert_eq!(upserts, Some(2.0));
    let errors = sample_with(
        &scrape,
        "sam_provider_call_errors_total",
        &[r#"provider="fake""#, r#"operation="create_server""#, r#"kind="transient""#],
    );
    assert_eq!(errors, Some(1.0));
    assert!(scrape.contains("# TYPE sam_provider_call_errors_total counter"));

    // Reconciler: three passes timed, one orphan server.
    assert!(scrape.contains("# TYPE sam_reconciler_pass_duration_seconds histogram"));
    let passes = sample(&scrape, "sam_reconciler_pass_duration_seconds_count", "").unwrap();
    assert!(passes >= 2.0, "{passes} passes");
    assert_eq!(sample(&scrape, "sam_reconciler_orphans_found_total", r#"resource="server""#), Some(1.0));

    // Terminal sessions from the heartbeat (the stopped workspace's agent
    // never reported any).
    assert_eq!(sample(&scrape, "sam_terminal_sessions_active", ""), Some(3.0));
    assert!(scrape.contains("# HELP sam_terminal_sessions_active"));

    // Once the workspace stops, its sessions no longer count.
    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    engine.reconcile_once().await.unwrap();
    let scrape = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&scrape, "sam_terminal_sessions_active", ""), Some(0.0));
    assert_eq!(sample(&scrape, "sam_workspaces", r#"status="stopped""#), Some(2.0));
    assert_eq!(sample(&scrape, "sam_workspaces", r#"status="running""#), Some(0.0));
}
