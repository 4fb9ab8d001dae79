//! Starting `sam-server dev` (plain or `--tls`) and driving it with the
//! e2e scripts in headless Chromium: shared by the dev-mode tests.

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

#[path = "process.rs"]
pub mod process;

pub fn agents_running(data: &std::path::Path) -> usize {
    agent_pids_under(data).len()
}

/// The processes of the local VMs under a data directory (their agents).
fn agent_pids_under(data: &std::path::Path) -> Vec<u32> {
    let needle = data.join("vms").display().to_string();
    pids_where(|cmdline| cmdline.contains(&needle))
}

/// The processes whose command line (arguments joined by NUL) `matches`,
/// without their children that still show it: a child forked to start a
/// shell carries its parent's command line until its `exec`, and a scan
/// at that instant would count one agent twice.
pub fn pids_where(matches: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else { return Vec::new() };
    let found: Vec<(u32, Option<u32>)> = proc
        .filter_map(|e| {
            let entry = e.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(entry.path().join("cmdline")).ok()?;
            if !matches(&String::from_utf8_lossy(&cmd)) {
                return None;
            }
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            Some((pid, ppid))
        })
        .collect();
    found.iter().filter(|(_, ppid)| !found.iter().any(|(p, _)| Some(*p) == *ppid)).map(|(pid, _)| *pid).collect()
}

/// A data directory for dev mode (or the emulator service) that ends the
/// agents of its local VMs when dropped: a test that ends by killing dev
/// mode, or fails, leaves no agent running after it.
pub struct DevData(tempfile::TempDir);

impl DevData {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for DevData {
    fn drop(&mut self) {
        // A failed test shows what its agents said (their logs go with the
        // directory).
        if std::thread::panicking()
            && let Ok(vms) = std::fs::read_dir(self.0.path().join("vms"))
        {
            for vm in vms.flatten() {
                let log = std::fs::read_to_string(vm.path().join("agent.log")).unwrap_or_default();
                // Without the backtraces of errors (RUST_BACKTRACE in tests).
                let frame = |l: &&str| {
                    let t = l.trim_start();
                    t.starts_with("at ") || t.split_once(": ").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
                };
                let tail: Vec<&str> = log.lines().filter(|l| !frame(l)).rev().take(80).collect();
                eprintln!("--- {} (last {} lines)", vm.path().join("agent.log").display(), tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for pid in agent_pids_under(self.0.path()) {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

pub fn e2e_ready() -> Option<PathBuf> {
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
pub async fn start_dev(data: &std::path::Path, extra: &[&str]) -> (tokio::process::Child, String) {
    start_dev_with(data, extra, None).await
}

/// Like [`start_dev`]; with `log`, the server logs at `info` (on stdout,
/// which the caller reads) and its stderr goes to that file.
pub async fn start_dev_with(
    data: &std::path::Path,
    extra: &[&str],
    log: Option<&std::path::Path>,
) -> (tokio::process::Child, String) {
    start_dev_on(process::HandedSockets::bind(2), data, extra, log).await
}

/// Like [`start_dev_with`], on `sockets` (the API's, then the workspace
/// port's): a restart handed a clone of the first start's sockets keeps the
/// ports, as a restarted server keeps its address.
pub async fn start_dev_on(
    sockets: process::HandedSockets,
    data: &std::path::Path,
    extra: &[&str],
    log: Option<&std::path::Path>,
) -> (tokio::process::Child, String) {
    start_dev_filtered(sockets, data, extra, log, "info").await
}

/// Like [`start_dev_on`], logging at `filter` (`RUST_LOG`, which the
/// VMs' agents inherit) into `log`.
pub async fn start_dev_filtered(
    sockets: process::HandedSockets,
    data: &std::path::Path,
    extra: &[&str],
    log: Option<&std::path::Path>,
    filter: &str,
) -> (tokio::process::Child, String) {
    let server_bin = PathBuf::from(env!("CARGO_BIN_EXE_sam-server"));
    let agent_bin = server_bin.with_file_name("sam-agent");
    assert!(agent_bin.exists(), "build the agent first (cargo build -p sam-agent): {}", agent_bin.display());
    // The API's socket and the workspace port's, handed to the child bound.
    let (port, workspace_port) = (sockets.port(0), sockets.port(1));
    let mut command = tokio::process::Command::new(&server_bin);
    sockets.hand_to(&mut command);
    let mut child = command
        .args(["dev", "--port", &port.to_string(), "--workspace-port", &workspace_port.to_string()])
        .arg("--data-dir")
        .arg(data)
        .arg("--agent")
        .arg(&agent_bin)
        .args(extra)
        .env("RUST_LOG", if log.is_some() { filter } else { "warn" })
        // Host shells unless a test asks for devcontainers (`--containers on`
        // wins over this).
        .env("SAM_DEV_CONTAINERS", "off")
        .stdout(Stdio::piped())
        .stderr(log.map_or_else(Stdio::inherit, |path| std::fs::File::create(path).unwrap().into()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tls = extra.contains(&"--tls");
    let base = format!("{}://localhost:{port}", if tls { "https" } else { "http" });
    // This process keeps the handed sockets open, so a request to a child
    // that died is accepted and never answered: bound each one, and stop
    // waiting as soon as the child has exited.
    let mut client = None;
    for _ in 0..400 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("dev mode exited before it came up: {status}");
        }
        if client.is_none() && (!tls || local_ca(data).exists()) {
            client = Some(https_client(data, tls));
        }
        if let Some(client) = &client
            && client.get(format!("{base}/api/health")).send().await.is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dev mode did not come up");
}

/// The CA of `dev --tls`'s edge certificates.
pub fn local_ca(data: &std::path::Path) -> PathBuf {
    data.join("tls/local-ca.pem")
}

/// A client of a dev deployment: with `tls`, trusting its local CA only.
pub fn https_client(data: &std::path::Path, tls: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if tls {
        let pem = std::fs::read(local_ca(data)).unwrap();
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
    }
    builder.build().unwrap()
}

pub async fn browser(e2e: &std::path::Path, script: &str, base: &str) -> String {
    browser_with(e2e, script, &[base, sam_providers::emulators::HETZNER_TOKEN], &[]).await
}

/// Runs `script` with `args` and the artifacts directory after them.
pub async fn browser_with(e2e: &std::path::Path, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let artifacts = e2e.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let output = tokio::process::Command::new("node")
        .current_dir(e2e)
        .arg(script)
        .args(args)
        .arg(artifacts.to_str().unwrap())
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}
