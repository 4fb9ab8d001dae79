//! Bootstrap end to end against a tiny control plane: redeem over HTTP, clone
//! a real (local) repository with git, host shell, progress reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use sam_agent::bootstrap::{self, BootstrapOptions, DevcontainerCli, GitCloner, HttpControlPlane, Start};
use sam_agent::state::AgentState;
use sam_core::domain::WorkspaceId;
use sam_core::secret::SecretString;

#[derive(Default)]
struct Cp {
    redeemed: bool,
    reports: Vec<(String, String, serde_json::Value)>,
}

fn git(args: &[&str], cwd: &Path) {
    let ok = std::process::Command::new("git").args(args).current_dir(cwd).output().unwrap().status.success();
    assert!(ok, "git {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeem_clone_and_report() {
    sam_agent::ensure_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&["init", "-q", "-b", "dev"], &origin);
    std::fs::write(origin.join("hello.txt"), "hi").unwrap();
    git(&["add", "."], &origin);
    git(&["-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "init"], &origin);

    let workspace = WorkspaceId::new();
    let owner = sam_core::domain::UserId::new();
    let state = Arc::new(Mutex::new(Cp::default()));
    let grant = serde_json::json!({
        "workspaceId": workspace.to_string(),
        "owner": owner.to_string(),
        "repository": "octo/hello",
        "branch": "dev",
        "cloneToken": "ghs_clone_secret",
        "callbackToken": "cb_secret",
        "cloneUrl": origin.to_str().unwrap(),
    });
    let app =
        Router::new()
            .route(
                "/api/bootstrap/{token}",
                post(
                    |State((cp, grant)): State<(Arc<Mutex<Cp>>, serde_json::Value)>,
                     UrlPath(token): UrlPath<String>| async move {
                        let mut cp = cp.lock().unwrap();
                        if token != "boot123" || cp.redeemed {
                            return Err(StatusCode::GONE);
                        }
                        cp.redeemed = true;
                        Ok(Json(grant))
                    },
                ),
            )
            .route(
                "/api/workspaces/{id}/boot-progress",
                post(
                    |State((cp, _)): State<(Arc<Mutex<Cp>>, serde_json::Value)>,
                     UrlPath(id): UrlPath<String>,
                     headers: HeaderMap,
                     Json(body): Json<serde_json::Value>| async move {
                        let auth = headers.get("authorization").unwrap().to_str().unwrap().to_owned();
                        cp.lock().unwrap().reports.push((id, auth, body));
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state((Arc::clone(&state), grant));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let cp = HttpControlPlane::new(&base, sam_agent::http::client().unwrap());
    let saved = AgentState::new(dir.path().join("state"));
    let options = BootstrapOptions {
        workdir: dir.path().join("work"),
        host_shell: true,
        container_shell: "/bin/bash".into(),
        state: Some(saved.clone()),
    };
    let token = SecretString::new("boot123");
    let out = bootstrap::run(&cp, &GitCloner, &DevcontainerCli::default(), &token, &options).await.unwrap();
    assert_eq!(out.grant.workspace_id, workspace);
    assert_eq!(out.grant.owner, Some(owner), "the owner, whose terminal tokens alone are accepted");
    assert_eq!(saved.load(None).await.unwrap().unwrap().grant.owner, Some(owner), "kept for a restart");
    assert!(out.container.is_none());
    let checkout = dir.path().join("work/hello");
    assert_eq!(out.shell.cwd.as_deref(), checkout.to_str());
    assert!(checkout.join("hello.txt").exists());
    let config = std::fs::read_to_string(checkout.join(".git/config")).unwrap();
    assert!(!config.contains("ghs_clone_secret"), "clone token written to .git/config");

    let reports = state.lock().unwrap().reports.clone();
    let steps: Vec<String> = reports
        .iter()
        .map(|(_, _, b)| format!("{}:{}", b["step"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, ["clone:running", "clone:done", "shell:done", "ready:done"]);
    assert_eq!(reports[2].2["message"], "on the host (no container)");
    assert!(reports.iter().all(|(id, auth, _)| *id == workspace.to_string() && auth == "Bearer cb_secret"));

    // A restart resumes from the saved grant: no bootstrap token, the
    // repository (and the user's work in it) untouched, only "ready" said.
    std::fs::write(checkout.join("work-in-progress.txt"), "unsaved").unwrap();
    let resumed = saved.load(Some(&token)).await.unwrap().expect("the grant was saved");
    assert!(resumed.cloned);
    assert_eq!(resumed.grant.callback_token.expose(), "cb_secret");
    let start = Start::Resumed { cloned: resumed.cloned };
    let out = bootstrap::provision(&cp, &GitCloner, &DevcontainerCli::default(), resumed.grant, &options, start)
        .await
        .unwrap();
    bootstrap::report_ready(&cp, &out.grant).await;
    assert_eq!(out.shell.cwd.as_deref(), checkout.to_str());
    assert_eq!(std::fs::read_to_string(checkout.join("work-in-progress.txt")).unwrap(), "unsaved");
    let reports = state.lock().unwrap().reports.clone();
    assert_eq!(reports.len(), 5, "only ready:done more: {reports:?}");
    // A restart during the clone clones again from scratch.
    let mut unfinished = saved.load(None).await.unwrap().unwrap();
    unfinished.cloned = false;
    unfinished.grant.clone_token = SecretString::new("ghs_clone_secret");
    saved.save(&unfinished).await.unwrap();
    std::fs::remove_dir_all(checkout.join(".git")).unwrap();
    let start = Start::Resumed { cloned: false };
    bootstrap::provision(&cp, &GitCloner, &DevcontainerCli::default(), unfinished.grant, &options, start)
        .await
        .unwrap();
    assert!(checkout.join(".git").exists() && checkout.join("hello.txt").exists());
    assert!(!checkout.join("work-in-progress.txt").exists(), "an unfinished clone is redone");
    assert!(saved.load(None).await.unwrap().unwrap().cloned);

    // Single use: a second redeem fails with a reason.
    let err = bootstrap::run(&cp, &GitCloner, &DevcontainerCli::default(), &token, &options).await.unwrap_err();
    assert!(err.to_string().contains("410"), "{err}");
    // A token that is not URL-safe never reaches the network.
    let err = bootstrap::run(&cp, &GitCloner, &DevcontainerCli::default(), &SecretString::new("../x"), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_failure_is_reported_with_the_reason() {
    sam_agent::ensure_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let reports = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let missing = dir.path().join("does-not-exist");
    let grant = serde_json::json!({
        "workspaceId": WorkspaceId::new().to_string(), "repository": "octo/gone", "branch": "main",
        "cloneToken": "t", "callbackToken": "c", "cloneUrl": missing.to_str().unwrap(),
    });
    let app = Router::new()
        .route("/api/bootstrap/{token}", post(move || async move { Json(grant) }))
        .route(
            "/api/workspaces/{id}/boot-progress",
            post(
                |State(r): State<Arc<Mutex<Vec<serde_json::Value>>>>, Json(body): Json<serde_json::Value>| async move {
                    r.lock().unwrap().push(body);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(Arc::clone(&reports));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let cp = HttpControlPlane::new(&base, sam_agent::http::client().unwrap());
    let options = BootstrapOptions {
        workdir: dir.path().join("w"),
        host_shell: true,
        container_shell: "/bin/bash".into(),
        state: None,
    };
    let err = bootstrap::run(&cp, &GitCloner, &DevcontainerCli::default(), &SecretString::new("tok"), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("clone failed:"), "{err}");
    let last = reports.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["status"], "failed");
    assert!(
        last["message"].as_str().unwrap().contains("does not exist")
            || last["message"].as_str().unwrap().contains("not"),
        "{last}"
    );
}
