//! Headless Chromium opens the terminal page with a valid cookie, types a
//! command and sees its output rendered by xterm.js. Needs `node`, the npm
//! packages of `web/` (`npm ci`) and Chromium; `scripts/test.d/30-browser.sh`
//! installs them. Without Chromium this test fails unless `SAM_SKIP_BROWSER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_renders_in_headless_chromium() {
    if std::env::var("SAM_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("SAM_SKIP_BROWSER=1: browser test skipped on request");
        return;
    }
    let chromium = std::env::var("SAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run scripts/test.d/30-browser.sh (or set SAM_SKIP_BROWSER=1)"
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let web = root.join("web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "playwright-core missing: run `npm ci` in sam-agent/web (scripts/test.d/30-browser.sh does)"
    );
    let artifacts = root.join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("terminal.png");
    let _ = std::fs::remove_file(&shot);

    let t = common::start(|_| {}).await;
    // An idle warning in force: the page must show it on connect.
    t.agent.warn_idle(time::OffsetDateTime::now_utc() + Duration::from_secs(300));
    let (name, value) = t.cookie.split_once('=').unwrap();
    let base = format!("http://{}", t.addr);
    let child = tokio::process::Command::new("node")
        .arg(web.join("browser-test.mjs"))
        .args([base.as_str(), name, value, shot.to_str().unwrap()])
        .env("SAM_CHROMIUM", &chromium)
        .current_dir(&web)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), child).await.expect("browser test timed out").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(shot.exists(), "no screenshot");
    eprintln!("{stdout}");
}
