//! The heartbeat client against a tiny control-plane server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use futures_util::StreamExt;
use sam_agent::heartbeat::{self, HeartbeatClient};
use sam_core::secret::SecretString;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Seen {
    auth: Vec<String>,
    bodies: Vec<serde_json::Value>,
    paths: Vec<String>,
}

async fn control_plane(answer: serde_json::Value) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route(
            "/api/workspaces/{id}/heartbeat",
            post(
                |State((seen, answer)): State<(Arc<Mutex<Seen>>, serde_json::Value)>,
                 Path(id): Path<String>,
                 headers: HeaderMap,
                 Json(body): Json<serde_json::Value>| async move {
                    let mut s = seen.lock().unwrap();
                    s.auth
                        .push(headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default());
                    s.bodies.push(body);
                    s.paths.push(id);
                    Json(answer)
                },
            ),
        )
        .with_state((Arc::clone(&seen), answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn next_text(ws: &mut Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(T, ws.next()).await.expect("a notice in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_reaches_every_open_terminal() {
    let t = start(|_| {}).await;
    let (url, seen) = control_plane(serde_json::json!({
        "action": "warn", "idleThreshold": 1800, "shutdownAt": "2030-01-01T00:05:00Z"
    }))
    .await;
    let mut a = t.connect("session=a").await;
    hello(&mut a).await;
    let mut b = t.connect("session=b").await;
    hello(&mut b).await;
    let client =
        HeartbeatClient::new(&url, t.workspace, SecretString::new("cb-secret"), sam_agent::http::client().unwrap());
    let task = tokio::spawn(heartbeat::run(Arc::clone(&t.agent), client, Duration::from_millis(100)));
    for ws in [&mut a, &mut b] {
        let notice = next_text(ws).await;
        assert_eq!(notice["type"], "idle_warning");
        assert_eq!(notice["deadline"], "2030-01-01T00:05:00Z");
    }
    // A terminal opened after the warning sees it too.
    let mut c = t.connect("session=c").await;
    hello(&mut c).await;
    assert_eq!(next_text(&mut c).await["type"], "idle_warning");
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.auth[0], "Bearer cb-secret");
        assert_eq!(s.paths[0], t.workspace.to_string());
        assert_eq!(s.bodies[0]["activeSessions"], 2);
        assert!(s.bodies[0]["idleSeconds"].is_u64());
        // The wire shape (sam_core::wire::HeartbeatReport, pinned by its
        // golden tests): exactly these fields.
        let mut keys: Vec<&str> = s.bodies[0].as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["activeSessions", "agentVersion", "idleSeconds", "lastActivityAt"]);
        assert_eq!(s.bodies[0]["agentVersion"], env!("CARGO_PKG_VERSION"));
        let at = s.bodies[0]["lastActivityAt"].as_str().unwrap();
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    }
    task.abort();
    // Gone for good before the next answer (a heartbeat in flight would
    // warn again after it).
    let _ = task.await;
    // Activity (here, elsewhere, or "I'm still here" on the dashboard):
    // the next answer is `continue`, and every terminal drops its warning.
    let answer = serde_json::from_value(serde_json::json!({"action": "continue", "idleThreshold": 1800})).unwrap();
    assert!(!heartbeat::apply(&t.agent, &answer));
    for ws in [&mut a, &mut b, &mut c] {
        // Warnings the heartbeat repeated before it stopped come first.
        loop {
            let notice = next_text(ws).await;
            match notice["type"].as_str() {
                Some("idle_cleared") => break,
                Some("idle_warning") => {}
                _ => panic!("unexpected {notice}"),
            }
        }
    }
    assert!(t.agent.current_warning().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_terminal() {
    let t = start(|_| {}).await;
    let (url, _) = control_plane(serde_json::json!({"action": "shutdown"})).await;
    let mut a = t.connect("session=a").await;
    hello(&mut a).await;
    let mut b = t.connect("session=b").await;
    hello(&mut b).await;
    let client = HeartbeatClient::new(&url, t.workspace, SecretString::new("cb"), sam_agent::http::client().unwrap());
    let task = tokio::spawn(heartbeat::run(Arc::clone(&t.agent), client, Duration::from_millis(100)));
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await["type"], "shutdown");
        assert_eq!(close_code(ws, T).await, Some(1001));
    }
    tokio::time::timeout(T, task).await.unwrap().unwrap();
    assert_eq!(tokio::time::timeout(T, t.agent.shutdown_requested()).await.unwrap(), "idle_timeout");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(t.agent.sessions.is_empty(), "shells end on shutdown");
}
