//! The control-plane pages in headless Chromium: landing, dashboard with live
//! rows, settings with prices, the create form with repository and branch
//! pickers, and the workspace detail; on a laptop and a phone viewport.
//! Screenshots go to `e2e/artifacts/`. Needs Chromium and `e2e/node_modules`
//! (`scripts/test.d/30-browser.sh` installs both); fails without them unless
//! `SAM_SKIP_BROWSER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::path::PathBuf;

use serde_json::json;
use support::{Backend, Server, workspace_body};

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e")
}

/// Creates workspace `name` and plays its agent until it is running.
async fn running(s: &Server, cookie: &str, name: &str) -> String {
    let (_, ws) = s.post("/api/workspaces", cookie, workspace_body(name)).await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let token = s.bootstrap_token(&id).await;
    let grant: serde_json::Value =
        s.client.post(s.url(&format!("/api/bootstrap/{token}"))).send().await.unwrap().json().await.unwrap();
    s.client
        .post(s.url(&format!("/api/workspaces/{id}/boot-progress")))
        .bearer_auth(grant["callbackToken"].as_str().unwrap())
        .json(&json!({"step": "ready", "status": "done", "message": ""}))
        .send()
        .await
        .unwrap();
    s.wait_for(cookie, &id, |w| w["status"] == "running").await;
    id
}

/// Marks a running workspace "agent unreachable" the way the reconciler does.
async fn mark_unreachable(s: &Server, id: &str) {
    use sam_core::ports::WorkspaceScan;
    let id: sam_core::domain::WorkspaceId = id.parse().unwrap();
    let all = s.store.scan_workspaces(&WorkspaceScan { statuses: Vec::new(), after: None, limit: 100 }).await.unwrap();
    let mut ws = all.into_iter().find(|w| w.id == id).unwrap();
    let message = "Nothing heard from the agent since 2026-12-03 09:12 UTC and it does not answer at \
                   https://ws-example.sam.test; the server is running. Kept until 2026-12-03 11:12 UTC unless the \
                   agent comes back; stop or delete the workspace to release it now."
        .to_owned();
    let (entry, _) =
        ws.apply(&sam_core::lifecycle::Event::AgentSilent { message }, time::OffsetDateTime::now_utc()).unwrap();
    s.store.update_workspace(&ws, &[entry]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_chromium() {
    let e2e = e2e_dir();
    if !e2e.join("node_modules/playwright-core").exists() || std::fs::metadata("/usr/bin/chromium").is_err() {
        if std::env::var("SAM_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("SAM_SKIP_BROWSER=1: skipping the browser test");
            return;
        }
        panic!("Chromium or e2e/node_modules missing: run through ./scripts/test (or set SAM_SKIP_BROWSER=1)");
    }
    let s = Server::start(Backend::Sqlite).await.unwrap();
    let cookie = s.ready_user(71).await;
    let id = running(&s, &cookie, "api-server").await;
    // A running workspace whose agent went silent: marked, kept, and shown
    // with the reason (the state the reconciler leaves it in).
    let flaky_id = running(&s, &cookie, "flaky agent").await;
    mark_unreachable(&s, &flaky_id).await;
    let (_, second) = s.post("/api/workspaces", &cookie, workspace_body("docs site")).await;
    s.send(
        reqwest::Method::POST,
        &format!("/api/workspaces/{}/stop", second["id"].as_str().unwrap()),
        Some(&cookie),
        None,
    )
    .await;

    let artifacts = e2e.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let (name, value) = cookie.split_once('=').unwrap();
    let output = tokio::process::Command::new("node")
        .current_dir(&e2e)
        .arg("ui.mjs")
        .args([&s.base, name, value, &id, artifacts.to_str().unwrap()])
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "browser walk failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in ["landing", "dashboard", "settings", "create", "workspace", "dashboard-phone"] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot} screenshot");
    }
}
