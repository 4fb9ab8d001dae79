//! `sam-server dev` end to end in headless Chromium: sign in through the
//! emulated GitHub, connect the emulated Hetzner token, create a workspace,
//! see it become running without reloading, open the terminal and run `ls` in
//! the cloned repository; stop (the terminal is explained as unavailable),
//! restart, delete with confirmation, sign out and back in; then Ctrl-C stops
//! the server and every agent.
//! Needs Chromium and `e2e/node_modules` (`scripts/test.d/31-e2e.sh`); fails
//! without them unless `SAM_SKIP_BROWSER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

#[path = "support/process.rs"]
mod process;

fn agents_running(data: &std::path::Path) -> usize {
    let needle = data.join("vms").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmd| String::from_utf8_lossy(cmd).contains(&needle))
        .count()
}

fn e2e_ready() -> Option<PathBuf> {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e");
    if !e2e.join("node_modules/playwright-core").exists() || std::fs::metadata("/usr/bin/chromium").is_err() {
        if std::env::var("SAM_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("SAM_SKIP_BROWSER=1: skipping the dev-mode browser test");
            return None;
        }
        panic!("Chromium or e2e/node_modules missing: run through ./scripts/test (or set SAM_SKIP_BROWSER=1)");
    }
    Some(e2e)
}

/// `sam-server dev` on free ports in a fresh data directory.
async fn start_dev(data: &std::path::Path, extra: &[&str]) -> (tokio::process::Child, String) {
    let server_bin = PathBuf::from(env!("CARGO_BIN_EXE_sam-server"));
    let agent_bin = server_bin.with_file_name("sam-agent");
    assert!(agent_bin.exists(), "build the agent first (cargo build -p sam-agent): {}", agent_bin.display());
    // The API's socket and the workspace port's, handed to the child bound.
    let sockets = process::HandedSockets::bind(2);
    let (port, workspace_port) = (sockets.port(0), sockets.port(1));
    let mut command = tokio::process::Command::new(&server_bin);
    sockets.hand_to(&mut command);
    let child = command
        .args(["dev", "--port", &port.to_string(), "--workspace-port", &workspace_port.to_string()])
        .arg("--data-dir")
        .arg(data)
        .arg("--agent")
        .arg(&agent_bin)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://localhost:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("{base}/api/health")).await.is_ok_and(|r| r.status().is_success()) {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dev mode did not come up");
}

async fn browser(e2e: &std::path::Path, script: &str, base: &str) -> String {
    let artifacts = e2e.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let output = tokio::process::Command::new("node")
        .current_dir(e2e)
        .arg(script)
        .args([base, sam_providers::emulators::HETZNER_TOKEN, artifacts.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_product_runs_locally() {
    let Some(e2e) = e2e_ready() else { return };
    let data = tempfile::tempdir().unwrap();
    let (mut child, base) = start_dev(data.path(), &[]).await;
    let stdout = browser(&e2e, "dev.mjs", &base).await;
    let timings: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("dev mode timings: {timings}");
    assert!(timings["createToRunningMs"].as_u64().is_some());
    // The walk deleted its first workspace (whose local VM must be gone) and
    // left a second one running.
    assert_eq!(agents_running(data.path()), 1, "exactly the running workspace's agent");

    // Ctrl-C: the server stops, and so does every agent.
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("dev mode exits").unwrap();
    assert!(status.success(), "{status:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(agents_running(data.path()), 0, "no stray agent processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workspaces_warn_then_stop() {
    let Some(e2e) = e2e_ready() else { return };
    let data = tempfile::tempdir().unwrap();
    let (_child, base) = start_dev(data.path(), &["--idle-seconds", "20"]).await;
    browser(&e2e, "idle.mjs", &base).await;
    assert_eq!(agents_running(data.path()), 0, "the stopped workspace's agent is gone");
}
