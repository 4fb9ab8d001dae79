//! Headless Chromium opens the terminal page with a valid cookie, types a
//! command and sees its output rendered by xterm.js. Needs `node`, the npm
//! packages of `web/` (`npm ci`) and Chromium; `scripts/test.d/30-browser.sh`
//! installs them. Without Chromium this test fails unless `SAM_SKIP_BROWSER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

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

    // Three terminals at most: the page's limit message is part of the run.
    let t = common::start(|c| c.sessions.max_sessions = 3).await;
    // Signed in through a terminal token of a control-plane sign-in, which
    // the test ends at the page's signal.
    let sign_in = "c".repeat(64);
    let cookie = t.login(&t.token_signed_in(&sign_in)).await.unwrap();
    // An idle warning in force: the page must show it on connect.
    t.agent.warn_idle(time::OffsetDateTime::now_utc() + Duration::from_secs(300));
    let (name, value) = cookie.split_once('=').unwrap();
    let base = format!("http://{}", t.addr);
    let mut child = tokio::process::Command::new("node")
        .arg(web.join("browser-test.mjs"))
        .args([base.as_str(), name, value, shot.to_str().unwrap()])
        .env("SAM_CHROMIUM", &chromium)
        .current_dir(&web)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "SIGN_OUT_NOW" {
                assert_eq!(t.agent.auth.end_sign_ins(std::slice::from_ref(&sign_in)), 1);
            }
            stdout.push_str(&line);
            stdout.push('\n');
        }
        child.wait_with_output().await.unwrap()
    };
    let out = tokio::time::timeout(Duration::from_secs(90), run).await.expect("browser test timed out");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(shot.exists(), "no screenshot");
    eprintln!("{stdout}");
}
