//! `sam-server dev` end to end in headless Chromium: sign in through the
//! emulated GitHub, connect the emulated Hetzner token, create a workspace,
//! see it become running without reloading, open the terminal and run `ls` in
//! the cloned repository; stop (the terminal is explained as unavailable),
//! restart, delete with confirmation, sign out and back in; then Ctrl-C stops
//! the server and every agent.
//! Needs Chromium and `e2e/node_modules` (`scripts/test.d/31-e2e.sh`); fails
//! without them unless `SAM_SKIP_BROWSER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

#[path = "support/dev.rs"]
mod dev;

use dev::{agents_running, browser, e2e_ready, start_dev, start_dev_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_product_runs_locally() {
    let Some(e2e) = e2e_ready() else { return };
    let data = dev::DevData::new();
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
    let data = dev::DevData::new();
    let (_child, base) = start_dev(data.path(), &["--idle-seconds", "20"]).await;
    browser(&e2e, "idle.mjs", &base).await;
    // The page shows "stopped" as soon as the server is deleted (the live
    // stream is immediate); the VM's agent then gets SIGTERM, and SIGKILL
    // after 3 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agents_running(data.path()) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(agents_running(data.path()), 0, "the stopped workspace's agent is gone");
}

/// A dev server started in a workspace's terminal is listed in the
/// terminal and on the dashboard, and previewed at its own name for its
/// owner (HTTP and the page's WebSocket), not for a stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_in_a_workspace_is_previewed_for_its_owner() {
    let Some(e2e) = e2e_ready() else { return };
    let data = dev::DevData::new();
    let (_child, base) = start_dev(data.path(), &[]).await;
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/../sam-agent/tests/fixtures/preview_server.py");
    let stdout =
        dev::browser_with(&e2e, "preview.mjs", &[&base, sam_providers::emulators::HETZNER_TOKEN, server], &[]).await;
    eprintln!("{}", stdout.trim());
}

/// The pids of the agent processes of one local VM.
fn agent_pids(vm: &std::path::Path) -> Vec<u32> {
    let needle = vm.join("sam-agent").display().to_string();
    dev::pids_where(|cmdline| cmdline.split('\0').next() == Some(needle.as_str()))
}

/// What a child prints on stdout, line by line.
type Printed = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The lines `child` prints on stdout (taken from it).
fn printed(child: &mut tokio::process::Child) -> Printed {
    use tokio::io::AsyncBufReadExt as _;
    tokio::io::BufReader::new(child.stdout.take().unwrap()).lines()
}

/// The address a child prints after `label` (`Emulator control`,
/// `Hetzner API`): the first word after it, read up to that line.
async fn address(lines: &mut Printed, label: &str) -> String {
    loop {
        let line = lines.next_line().await.unwrap().expect("the child prints its addresses");
        if let Some(rest) = line.trim().strip_prefix(label) {
            return rest.split_whitespace().next().unwrap_or_default().to_owned();
        }
    }
}

/// Reads the rest and throws it away, so the child never blocks on a full
/// pipe.
fn drain(mut lines: Printed) {
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
}

/// Dev mode and its emulator control API's address (read from what it
/// prints; the rest of its output is drained).
async fn start_dev_with_control(data: &std::path::Path, extra: &[&str]) -> (tokio::process::Child, String, String) {
    let (mut child, base) = start_dev(data, extra).await;
    let mut lines = printed(&mut child);
    let control = address(&mut lines, "Emulator control").await;
    drain(lines);
    (child, base, control)
}

/// The subject of the last commit on `main` of the emulated GitHub's
/// `repository` in dev mode's data directory `data`.
fn last_commit_on_main(data: &std::path::Path, repository: &str) -> String {
    let bare = data.join(format!("git/{repository}.git"));
    let head = std::process::Command::new("git")
        .args(["--git-dir", bare.to_str().unwrap(), "log", "-1", "--format=%s", "main"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&head.stdout).trim().to_owned()
}

/// Waits (up to `secs`) until `check` holds.
async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A signed-in user of a dev-mode deployment, talking HTTP like the browser.
struct DevUser {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl DevUser {
    /// Signs in through the emulated GitHub's authorize form.
    async fn sign_in(base: &str) -> Self {
        Self::sign_in_as(base, None).await
    }

    /// Signs in as `login` (one of the consent page's other identities), or
    /// as the default user.
    async fn sign_in_as(base: &str, login: Option<&str>) -> Self {
        use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let start = client.get(format!("{base}/api/auth/github")).send().await.unwrap();
        let oauth_cookie = start.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
        let authorize = reqwest::Url::parse(start.headers()[LOCATION].to_str().unwrap()).unwrap();
        let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
        match login {
            Some(login) => form.push(("user".into(), login.into())),
            None => form.push(("decision".into(), "approve".into())),
        }
        let approved = client.post(authorize.as_str().split('?').next().unwrap()).form(&form).send().await.unwrap();
        let callback = approved.headers()[LOCATION].to_str().unwrap().to_owned();
        let done = client.get(callback).header(COOKIE, oauth_cookie).send().await.unwrap();
        let cookie = done
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("sam_session="))
            .expect("a session")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Self { client, base: base.to_owned(), cookie }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value = response.json().await.unwrap_or(serde_json::Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// Connects the emulated Hetzner project's token in Settings.
    async fn connect_hetzner(&self) {
        let token = sam_providers::emulators::HETZNER_TOKEN;
        self.call(
            reqwest::Method::POST,
            "/api/credentials",
            Some(serde_json::json!({"provider": "hetzner", "token": token})),
        )
        .await;
    }

    /// Creates a workspace `name` of `repository` (branch `main`, small,
    /// fsn1): its id and its API path.
    async fn create_workspace(&self, name: &str, repository: &str) -> (String, String) {
        let ws = self
            .call(
                reqwest::Method::POST,
                "/api/workspaces",
                Some(serde_json::json!({"name": name, "repository": repository, "branch": "main",
                    "vmSize": "small", "vmLocation": "fsn1"})),
            )
            .await;
        let id = ws["id"].as_str().unwrap().to_owned();
        let path = format!("/api/workspaces/{id}");
        (id, path)
    }

    /// Opens the workspace's terminal through the dev proxy (as the browser
    /// does: terminal token, the agent's callback, the WebSocket) and runs a
    /// command in it.
    async fn terminal_echo(&self, workspace: &str, word: &str) {
        self.terminal_run(workspace, &format!("echo {word}-$((40+2))"), &format!("{word}-42"), 10).await;
    }

    /// Runs `command` in a new terminal of the workspace until its output
    /// shows `wanted` (within `secs`); returns everything the terminal sent.
    async fn terminal_run(&self, workspace: &str, command: &str, wanted: &str, secs: u64) -> String {
        self.terminal_run_via(workspace, None, command, wanted, secs).await
    }

    /// [`DevUser::terminal_run`], reaching the agent on loopback `port`
    /// instead of the workspace URL's (an agent the dev proxy does not know:
    /// the cloud-init rehearsal's).
    async fn terminal_run_via(
        &self,
        workspace: &str,
        port: Option<u16>,
        command: &str,
        wanted: &str,
        secs: u64,
    ) -> String {
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let access = self
            .call(reqwest::Method::POST, "/api/terminal/token", Some(serde_json::json!({"workspaceId": workspace})))
            .await;
        let url = reqwest::Url::parse(access["url"].as_str().unwrap()).unwrap();
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let port = port.unwrap_or_else(|| url.port().unwrap());
        // `*.localhost` is loopback (the browser knows; the resolver may not).
        let callback = format!("http://127.0.0.1:{port}{}?{}", url.path(), url.query().unwrap());
        let login = self.client.get(callback).header("host", &host).send().await.unwrap();
        assert!(login.status().is_success(), "terminal login: {}", login.status());
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut request = format!("ws://127.0.0.1:{port}/ws/terminal").into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("host", host.parse().unwrap());
        headers.insert("origin", format!("http://{host}").parse().unwrap());
        headers.insert("cookie", cookie.parse().unwrap());
        // A restarted agent serves its page before its terminals are ready
        // (503 for a moment), and one its supervisor is starting again is
        // not there at all for a moment (the proxy's 502), as the
        // browser's reconnect knows.
        let started = tokio::time::Instant::now();
        let (mut ws, _) = loop {
            match tokio_tungstenite::connect_async(request.clone()).await {
                Ok(connected) => break connected,
                Err(tokio_tungstenite::tungstenite::Error::Http(r))
                    if (r.status() == 503 || r.status() == 502) && started.elapsed() < Duration::from_secs(15) =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("terminal WebSocket: {e:?}"),
            }
        };
        ws.send(Message::Binary(format!("{command}\r").into_bytes().into())).await.unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        // The echo of the command line itself does not count: `wanted` is
        // built by the shell (`$((40+2))`), so only output matches.
        while !String::from_utf8_lossy(&seen).contains(wanted) {
            match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Binary(bytes)))) => seen.extend_from_slice(&bytes),
                Ok(Some(Ok(_))) => {}
                other => panic!("no {wanted} from the terminal: {other:?}; saw {}", String::from_utf8_lossy(&seen)),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
}

/// Issue 16's process test in dev mode: a bootstrap whose clone-token fetch
/// fails, an agent killed with SIGKILL, and a VM reboot (every agent process
/// gone, then started from the unit's command line). Each time the agent
/// comes back by itself (systemd's Restart=on-failure, here dev mode's VM),
/// resumes from its saved grant without a bootstrap token, and the same
/// workspace keeps running with a usable terminal; nothing leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_come_back_after_a_failed_bootstrap_a_crash_and_a_reboot() {
    let data = dev::DevData::new();
    let (mut child, base) = start_dev(data.path(), &["--heartbeat-timeout-seconds", "6"]).await;
    let mut lines = printed(&mut child);
    let hetzner = address(&mut lines, "Hetzner API").await;
    drain(lines);
    let user = DevUser::sign_in(&base).await;
    let hetzner_token = sam_providers::emulators::HETZNER_TOKEN;
    user.connect_hetzner().await;
    let installations = user.call(reqwest::Method::GET, "/api/github/installations", None).await;
    let installation = installations
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["accountLogin"] == "octo-org")
        .expect("the octo-org installation")["id"]
        .clone();

    // GitHub fails the first clone-token request (every retry of it).
    let faults = reqwest::Client::new().post(format!("{base}/dev/faults/github-installation-token")).send().await;
    assert!(faults.unwrap().status().is_success());
    let started = std::time::Instant::now();
    let ws = user
        .call(
            reqwest::Method::POST,
            "/api/workspaces",
            Some(serde_json::json!({"name": "survivor", "repository": "octo-org/hello-world", "branch": "main",
                "vmSize": "small", "vmLocation": "fsn1", "installationId": installation})),
        )
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let status = async || user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await;
    eventually(90, "the workspace running", async || status().await["status"] == "running").await;
    eprintln!("create → running with one failed bootstrap: {} ms", started.elapsed().as_millis());
    let vm = std::fs::read_dir(data.path().join("vms")).unwrap().next().unwrap().unwrap().path();
    let log = std::fs::read_to_string(vm.join("agent.log")).unwrap();
    assert!(log.contains("bootstrap token"), "the first bootstrap failed and the agent was restarted:\n{log}");
    let state = vm.join("state");
    assert!(state.join("grant.json").exists());
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(state.join("grant.json")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    user.terminal_echo(&id, "first").await;
    std::fs::write(vm.join("work/hello-world/unsaved.txt"), "work in progress").unwrap();

    // SIGKILL: the VM's supervisor restarts the agent, which resumes.
    let pids = agent_pids(&vm);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap().success());
    eventually(30, "a new agent process", async || agent_pids(&vm).first().is_some_and(|p| *p != pids[0])).await;
    user.terminal_echo(&id, "after-kill").await;
    eprintln!("SIGKILL → terminal usable again: {} ms", killed.elapsed().as_millis());

    // A VM reboot through the (emulated) Hetzner API: down, then up again.
    let servers: serde_json::Value = reqwest::Client::new()
        .get(format!("{hetzner}/servers?label_selector=sam-workspace={id}"))
        .bearer_auth(hetzner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let server = servers["servers"][0]["id"].as_u64().unwrap();
    let before = agent_pids(&vm);
    let rebooted = std::time::Instant::now();
    let reboot = reqwest::Client::new()
        .post(format!("{hetzner}/servers/{server}/actions/reboot"))
        .bearer_auth(hetzner_token)
        .send()
        .await
        .unwrap();
    assert!(reboot.status().is_success(), "{}", reboot.status());
    eventually(30, "the agent after the reboot", async || {
        let now = agent_pids(&vm);
        now.len() == 1 && now != before
    })
    .await;
    user.terminal_echo(&id, "after-reboot").await;
    eprintln!("reboot → terminal usable again: {} ms", rebooted.elapsed().as_millis());

    // Past the (shortened) heartbeat timeout the workspace is still running
    // and not marked: the resumed agent heartbeats with its saved credential.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let now = status().await;
    assert_eq!(
        (now["status"].as_str(), now["statusReason"].as_str()),
        (Some("running"), Some("provisioning")),
        "{now}"
    );
    assert!(now["errorMessage"].is_null(), "{now}");
    let events = user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}/events"), None).await;
    let names: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "agent_ready").count(), 1, "one bootstrap: {names:?}");
    assert_eq!(std::fs::read_to_string(vm.join("work/hello-world/unsaved.txt")).unwrap(), "work in progress");
    assert_eq!(agents_running(data.path()), 1, "one agent, no stray");

    // Deleting it leaves nothing behind.
    user.call(reqwest::Method::DELETE, &format!("/api/workspaces/{id}"), None).await;
    eventually(30, "the agent gone", async || agents_running(data.path()) == 0).await;
}

/// The emulators' control API in dev mode, from outside the process: the
/// next VM never starts its agent, so with a short provisioning timeout the
/// workspace fails with the timeout message and its server and record are
/// released; a Hetzner fault injected once makes one creation fail; the
/// state lists what exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_control_api_rehearses_a_vm_that_never_starts_its_agent() {
    let data = dev::DevData::new();
    let (_child, base, control) =
        start_dev_with_control(data.path(), &["--provision-timeout-seconds", "6", "--reconcile-interval-seconds", "1"])
            .await;
    assert!(control.starts_with("http://127.0.0.1:"), "loopback only: {control}");
    let http = reqwest::Client::new();
    let index: serde_json::Value = http.get(&control).send().await.unwrap().json().await.unwrap();
    assert!(index["services"]["hetzner"]["token"].is_string(), "{index}");
    let answer =
        http.post(format!("{control}/hetzner/agentless")).json(&serde_json::json!({"servers": 1})).send().await;
    assert_eq!(answer.unwrap().status(), 204);
    let bad = http.post(format!("{control}/faults")).json(&serde_json::json!({"service": "aws"})).send().await;
    assert_eq!(bad.unwrap().status(), 400);

    let user = DevUser::sign_in(&base).await;
    user.connect_hetzner().await;
    let installations = user.call(reqwest::Method::GET, "/api/github/installations", None).await;
    let installation = installations.as_array().unwrap()[0]["id"].clone();
    let repository = "octo-org/hello-world";
    let create = async |name: &str| {
        user.call(
            reqwest::Method::POST,
            "/api/workspaces",
            Some(serde_json::json!({"name": name, "repository": repository, "branch": "main", "vmSize": "small",
                "vmLocation": "fsn1", "installationId": installation})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let id = create("never-starts").await;
    let get = async |id: &str| user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await;
    eventually(60, "the provisioning timeout", async || get(&id).await["status"] == "error").await;
    let failed = get(&id).await;
    let message = failed["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("timed out"), "{failed}");
    // How far the VM got, from its own boot reports.
    assert!(message.ends_with("Last seen: agent-start running."), "{failed}");
    let state = async || -> serde_json::Value {
        http.get(format!("{control}/state")).send().await.unwrap().json().await.unwrap()
    };
    eventually(30, "the failed workspace's server and record released", async || {
        let s = state().await;
        s["hetzner"]["servers"].as_array().unwrap().is_empty()
            && s["cloudflare"]["records"].as_array().unwrap().is_empty()
    })
    .await;

    // One Hetzner 503 on the next creation: the workspace still comes up
    // (the adapter retries), and the control API saw the requests.
    let fault = serde_json::json!({"service": "hetzner", "method": "POST", "path": "/v1/servers",
                                   "fault": {"error": 503}, "times": 1});
    assert_eq!(http.post(format!("{control}/faults")).json(&fault).send().await.unwrap().status(), 201);
    let id = create("comes-up").await;
    eventually(90, "running despite one 503", async || get(&id).await["status"] == "running").await;
    let requests: serde_json::Value =
        http.get(format!("{control}/requests?service=hetzner")).send().await.unwrap().json().await.unwrap();
    let creates = requests.as_array().unwrap().iter().filter(|r| r["method"] == "POST" && r["path"] == "/v1/servers");
    assert!(creates.count() >= 3, "two creations and a retry: {requests}");
    assert_eq!(http.delete(format!("{control}/faults")).send().await.unwrap().status(), 204);
}

/// `sam-server emulators` alone: addresses and tokens printed, the state
/// kept on disk. A `kill -9` loses nothing older than a second: restarted on
/// the same directory, the server and record made before are there; Ctrl-C
/// saves and exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_service_keeps_its_state_across_a_kill() {
    use tokio::io::AsyncBufReadExt as _;
    let data = dev::DevData::new();
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sam-server"));
    let start = async || {
        let mut child = tokio::process::Command::new(&bin)
            .args(["emulators", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        while !printed.last().is_some_and(|l: &String| l.trim().starts_with("State")) {
            printed.push(lines.next_line().await.unwrap().expect("the service prints its addresses"));
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let value = |label: &str| {
            printed.iter().find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned())).unwrap()
        };
        let restored = printed.iter().any(|l| l.contains("state restored"));
        (
            child,
            value("Hetzner API"),
            value("Hetzner token"),
            value("Cloudflare API"),
            value("Cloudflare token"),
            restored,
        )
    };
    let http = reqwest::Client::new();
    let (child, hetzner, hetzner_token, cloudflare, cloudflare_token, restored) = start().await;
    assert!(!restored);
    let created = http
        .post(format!("{hetzner}/servers"))
        .bearer_auth(&hetzner_token)
        .json(&serde_json::json!({"name": "outlives", "server_type": "cx23", "image": "ubuntu-24.04"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let zones: serde_json::Value = http
        .get(format!("{cloudflare}/zones"))
        .bearer_auth(&cloudflare_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let zone = zones["result"][0]["id"].as_str().unwrap().to_owned();
    let record = http
        .post(format!("{cloudflare}/zones/{zone}/dns_records"))
        .bearer_auth(&cloudflare_token)
        .json(&serde_json::json!({"type": "A", "name": "ws-outlives", "content": "198.51.100.4", "ttl": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(record.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    drop(child);

    let (mut child, hetzner, hetzner_token, cloudflare, cloudflare_token, restored) = start().await;
    assert!(restored, "the restart says it continues");
    let servers: serde_json::Value =
        http.get(format!("{hetzner}/servers")).bearer_auth(&hetzner_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(servers["servers"][0]["name"], "outlives", "{servers}");
    let records: serde_json::Value = http
        .get(format!("{cloudflare}/zones/{zone}/dns_records"))
        .bearer_auth(&cloudflare_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records["result"][0]["name"], "ws-outlives.localhost", "{records}");
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(data.path().join("state.json").exists());
}

/// Starts `sam-server emulators` on `data`; returns it and its control API.
async fn start_emulator_service(data: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
        .args(["emulators", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = printed(&mut child);
    let control = address(&mut lines, "Emulator control").await;
    drain(lines);
    (child, control)
}

/// The control plane crashes (`kill -9` of dev mode) while the emulated
/// cloud runs on (`sam-server emulators`): nothing is lost. The server and
/// record stay; dev mode started again on the same ports finds them, its
/// VM boots again, the agent resumes from its saved grant, and the same
/// workspace answers in its terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_crash_loses_nothing_with_the_emulator_service() {
    let (world, data) = (dev::DevData::new(), dev::DevData::new());
    let (_service, control) = start_emulator_service(world.path()).await;
    let sockets = dev::process::HandedSockets::bind(2);
    let again = sockets.try_clone();
    let (dev_mode, base) = start_dev_on(sockets, data.path(), &["--emulators", &control], None).await;
    let user = DevUser::sign_in(&base).await;
    user.connect_hetzner().await;
    let installations = user.call(reqwest::Method::GET, "/api/github/installations", None).await;
    let installation =
        installations.as_array().unwrap().iter().find(|i| i["accountLogin"] == "octo-org").unwrap()["id"].clone();
    let ws = user
        .call(
            reqwest::Method::POST,
            "/api/workspaces",
            Some(serde_json::json!({"name": "outlives", "repository": "octo-org/hello-world", "branch": "main",
                "vmSize": "small", "vmLocation": "fsn1", "installationId": installation})),
        )
        .await;
    let id = ws["id"].as_str().unwrap().to_owned();
    eventually(90, "running", async || {
        user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await["status"] == "running"
    })
    .await;
    user.terminal_echo(&id, "before").await;

    // The control plane dies without a chance to clean up.
    let pid = dev_mode.id().unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    drop(dev_mode);
    let http = reqwest::Client::new();
    let state: serde_json::Value = http.get(format!("{control}/state")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["hetzner"]["servers"].as_array().unwrap().len(), 1, "the server is still there: {state}");
    assert_eq!(state["cloudflare"]["records"].as_array().unwrap().len(), 1, "and its record");

    let started = std::time::Instant::now();
    let (_dev_mode, base) = start_dev_on(again, data.path(), &["--emulators", &control], None).await;
    let user = DevUser::sign_in(&base).await;
    eventually(60, "the same workspace running again", async || {
        user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await["status"] == "running"
    })
    .await;
    // Its VM boots again (the agent left from before is stopped first, so
    // counting agents is not enough): wait for the new agent's route.
    let url = user.call(reqwest::Method::GET, &format!("/api/workspaces/{id}"), None).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = reqwest::Url::parse(&url).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let health = format!("http://127.0.0.1:{}/health", url.port().unwrap());
    eventually(60, "its terminal answering", async || {
        let vm = std::fs::read_dir(data.path().join("vms")).unwrap().count();
        let routed = http.get(&health).header("host", &host).send().await.is_ok_and(|r| r.status() != 404);
        vm == 1 && routed && agents_running(data.path()) == 1
    })
    .await;
    user.terminal_echo(&id, "after").await;
    eprintln!("dev mode restart → terminal answering: {} ms", started.elapsed().as_millis());
    let state: serde_json::Value = http.get(format!("{control}/state")).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["hetzner"]["servers"].as_array().unwrap().len(), 1, "no second server: {state}");
}

/// Work gets back to GitHub: in a workspace's terminal the user commits and
/// `git push`es, long after the clone token (shortened to seconds) expired,
/// through the credential helper the agent configured; the commit is in
/// the emulated repository. A member without push permission gets a clear
/// refusal from the helper and GitHub's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_the_terminal_reach_github_through_the_credential_helper() {
    let data = dev::DevData::new();
    let (_child, base, control) = start_dev_with_control(data.path(), &[]).await;
    // Installation tokens live 3 seconds: the clone token is long dead when
    // the user pushes.
    let shortened = reqwest::Client::new()
        .put(format!("{control}/github/app"))
        .json(&serde_json::json!({"installation_token_ttl_seconds": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(shortened.status(), 204);

    let workspace = async |user: &DevUser, name: &str| {
        user.connect_hetzner().await;
        let (id, path) = user.create_workspace(name, "octo-org/hello-world").await;
        eventually(90, "the workspace running", async || {
            user.call(reqwest::Method::GET, &path, None).await["status"] == "running"
        })
        .await;
        id
    };
    let owner = DevUser::sign_in(&base).await;
    let reader = DevUser::sign_in_as(&base, Some("mona-member")).await;
    let (id, reader_id) = tokio::join!(workspace(&owner, "pusher"), workspace(&reader, "reader"));
    tokio::time::sleep(Duration::from_secs(4)).await;

    let commit = "echo pushed > pushed.txt && git add pushed.txt \
        && git -c user.name=Octo -c user.email=octo@example.com commit -qm 'from the workspace'";
    let push = format!("{commit} && git push -q origin HEAD:main && echo PUSHED-$((40+2))");
    let out = owner.terminal_run(&id, &push, "PUSHED-42", 30).await;
    assert!(!out.contains("ghs_"), "no token in the terminal");
    assert_eq!(last_commit_on_main(data.path(), "octo-org/hello-world"), "from the workspace");

    // Later pulls and pushes keep working as tokens come and go.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = "export GIT_AUTHOR_NAME=Octo GIT_AUTHOR_EMAIL=octo@example.com GIT_COMMITTER_NAME=Octo \
        GIT_COMMITTER_EMAIL=octo@example.com; git commit -q --allow-empty -m again \
        && git pull -q --rebase origin main && git push -q origin HEAD:main && echo AGAIN-$((40+2))";
    owner.terminal_run(&id, again, "AGAIN-42", 30).await;

    // Read access only: the helper says why, GitHub refuses the push.
    let refused = format!("{commit}; git push -q origin HEAD:main; echo EXIT-$((40+2))-$?");
    let out = reader.terminal_run(&reader_id, &refused, "EXIT-42-", 30).await;
    assert!(out.contains("no push permission on octo-org/hello-world"), "{out}");
    assert!(out.contains("403"), "{out}");
    assert!(!out.contains("EXIT-42-0"), "the push failed: {out}");
}

/// In the browser: a dead GitHub sign-in (expired token, revoked refresh
/// token) sends the user to the front page with the reason; signing in
/// again works; someone without an installation is shown how to install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_github_sign_in_leads_back_to_the_sign_in_page() {
    let Some(e2e) = e2e_ready() else { return };
    let data = dev::DevData::new();
    let (_child, base, control) = start_dev_with_control(data.path(), &[]).await;
    let token = sam_providers::emulators::HETZNER_TOKEN;
    dev::browser_with(&e2e, "github.mjs", &[&base, &control], &[("SAM_HETZNER_TOKEN", token)]).await;
}

/// The container runtime `scripts/test.d/40-containers.sh` set up: the
/// Docker CLI and the local image with user `vscode`; `None` when the
/// container tests are skipped explicitly (`SAM_SKIP_CONTAINERS=1`).
fn container_runtime() -> Option<(String, String)> {
    if std::env::var("SAM_SKIP_CONTAINERS").as_deref() == Ok("1") {
        eprintln!("SAM_SKIP_CONTAINERS=1: skipping the dev-mode devcontainer test");
        return None;
    }
    let (Ok(docker), Ok(image)) = (std::env::var("SAM_TEST_DOCKER_CLI"), std::env::var("SAM_TEST_USER_IMAGE")) else {
        panic!("no container runtime: run through ./scripts/test (or set SAM_SKIP_CONTAINERS=1)");
    };
    Some((docker, image))
}

/// The containers whose clone lies under `vm` (the devcontainer CLI's
/// `devcontainer.local_folder` label), with their state.
fn containers_of(docker: &str, vm: &std::path::Path) -> Vec<(String, String)> {
    let out = std::process::Command::new(docker)
        .args(["ps", "--all", "--no-trunc", "--filter", "label=devcontainer.local_folder"])
        .args(["--format", "{{.ID}}\t{{.State}}\t{{.Label \"devcontainer.local_folder\"}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let (id, state, folder) = (parts.next()?, parts.next()?, parts.next()?);
            std::path::Path::new(folder).starts_with(vm).then(|| (id.to_owned(), state.to_owned()))
        })
        .collect()
}

/// Issue 20 in dev mode: with a container runtime, a workspace's terminals
/// run in its devcontainer (a repository without `devcontainer.json` gets
/// the configured default image), as on a VM; the dashboard's history says
/// so; a push from inside reaches the emulated GitHub through the agent's
/// credential helper; the container survives a killed agent (the same
/// container serves the next terminal) and is removed with the workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_terminals_run_in_a_devcontainer_that_outlives_its_agent() {
    let Some((docker, image)) = container_runtime() else { return };
    let Some(e2e) = e2e_ready() else { return };
    let data = dev::DevData::new();
    // Whatever happens, no container of this test outlives it.
    let _cleanup = ContainersRemoved { docker: docker.clone(), under: data.path().to_owned() };
    let (_child, base, _control) = start_dev_with_control(
        data.path(),
        &["--containers", "on", "--docker", &docker, "--devcontainer-image", &image],
    )
    .await;
    let user = DevUser::sign_in(&base).await;
    user.connect_hetzner().await;
    let started = std::time::Instant::now();
    let (id, path) = user.create_workspace("contained", "octo-org/hello-world").await;
    eventually(240, "the workspace running", async || {
        let ws = user.call(reqwest::Method::GET, &path, None).await;
        assert_ne!(ws["status"], "error", "{ws}");
        ws["status"] == "running"
    })
    .await;
    eprintln!("create → running in a devcontainer: {} ms", started.elapsed().as_millis());
    let vm = std::fs::read_dir(data.path().join("vms")).unwrap().next().unwrap().unwrap().path();
    let containers = containers_of(&docker, &vm);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].1, "running");

    let events = user.call(reqwest::Method::GET, &format!("{path}/events"), None).await;
    let shell =
        events.as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).find(|m| m.starts_with("shell done: "));
    assert!(shell.is_some_and(|m| m.contains("in the devcontainer") && m.contains(&containers[0].0[..12])), "{events}");

    // /tmp is the container's own: the marker tells this container apart
    // from any other, later.
    let inside = "test -e /run/.containerenv -o -e /.dockerenv && echo kept > /tmp/sam-marker \
        && echo INSIDE-$((40+2)) \"$(pwd)\" \"$(id -un)\"";
    let out = user.terminal_run(&id, inside, "INSIDE-42", 30).await;
    assert!(out.contains("INSIDE-42 /workspaces/hello-world root"), "{out}");

    let push = "echo contained > contained.txt && git add contained.txt \
        && git -c user.name=Octo -c user.email=octo@example.com commit -qm 'from the container' \
        && git push -q origin HEAD:main && echo PUSHED-$((40+2))";
    user.terminal_run(&id, push, "PUSHED-42", 60).await;
    assert_eq!(last_commit_on_main(data.path(), "octo-org/hello-world"), "from the container");

    // SIGKILL the agent: its supervisor starts it again, it resumes, and
    // the same container serves the next terminal.
    let pids = agent_pids(&vm);
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(std::process::Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap().success());
    eventually(30, "a new agent process", async || agent_pids(&vm).first().is_some_and(|p| *p != pids[0])).await;
    let out = user.terminal_run(&id, "echo AGAIN-$((40+2)) $(cat /tmp/sam-marker)", "AGAIN-42", 60).await;
    assert!(out.contains("AGAIN-42 kept"), "the same container's /tmp: {out}");
    assert_eq!(containers_of(&docker, &vm), containers, "the same container, still running");

    // The repository gets a devcontainer.json whose postCreateCommand
    // prints for a while, then fails (pushed from the terminal, as a user
    // would).
    // (As `vscode`: the devcontainer CLI builds an image with the user's
    // uid for it, which must go with the VM.)
    let broken = serde_json::json!({"image": image, "runArgs": ["--network=host"], "remoteUser": "vscode",
        "postCreateCommand": "for i in $(seq 1 60); do echo build line $i; sleep 0.1; done; exit 3"});
    let broken = broken.to_string();
    assert!(!broken.contains('\''), "single-quoted for the shell");
    let push = format!(
        "mkdir -p .devcontainer && printf '%s' '{broken}' > .devcontainer/devcontainer.json && git add -A \
         && git -c user.name=Octo -c user.email=octo@example.com commit -qm 'a devcontainer' \
         && git push -q origin HEAD:main && echo BROKEN-$((40+2))"
    );
    user.terminal_run(&id, &push, "BROKEN-42", 60).await;

    // Deleting the workspace removes the container with the VM.
    user.call(reqwest::Method::DELETE, &path, None).await;
    eventually(60, "the container removed", async || containers_of(&docker, &vm).is_empty()).await;

    // A workspace of the broken configuration: its boot shows the step's
    // output while it runs, fails with the step and its last lines, and
    // leaves nothing behind.
    // (The browser created the failing one.)
    let create = async |name: &str, repository: &str| user.create_workspace(name, repository).await.1;
    // In the browser: the boot panel with the live output, then the
    // failure with the step's last lines (e2e/boot.mjs).
    let token = sam_providers::emulators::HETZNER_TOKEN;
    let out =
        dev::browser_with(&e2e, "boot.mjs", &[&base, "octo-org/hello-world"], &[("SAM_HETZNER_TOKEN", token)]).await;
    let failed = out.lines().find_map(|l| l.strip_prefix("WORKSPACE ")).expect("boot.mjs prints the workspace");
    let failing = format!("/api/workspaces/{failed}");
    let ws = user.call(reqwest::Method::GET, &failing, None).await;
    let message = ws["errorMessage"].as_str().unwrap();
    assert!(message.starts_with("The workspace failed to start: devcontainer failed: "), "{message}");
    assert!(message.contains("postCreateCommand"), "{message}");
    assert!(message.lines().any(|l| l.trim().ends_with("build line 60")), "the step's last lines: {message}");
    let events = user.call(reqwest::Method::GET, &format!("{failing}/events"), None).await;
    let live: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "agent_output")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(live.iter().any(|m| m.starts_with("devcontainer\n") && m.contains("build line")), "live output: {events}");
    eventually(60, "the failed workspace's VM and container released", async || {
        let vms = std::fs::read_dir(data.path().join("vms")).unwrap().count();
        let left: usize = std::fs::read_dir(data.path().join("vms"))
            .unwrap()
            .map(|vm| containers_of(&docker, &vm.unwrap().path()).len())
            .sum();
        agents_running(data.path()) == 0 && left == 0 && vms >= 2
    })
    .await;
    // And the image the devcontainer CLI built for the clone (its uid
    // layer), as a VM's disk would take it.
    let images = std::process::Command::new(&docker).args(["images", "--format", "{{.Repository}}"]).output().unwrap();
    let images = String::from_utf8_lossy(&images.stdout).into_owned();
    assert!(!images.lines().any(|i| i.rsplit('/').next().unwrap().starts_with("vsc-hello-world-")), "{images}");

    // The next create works (a repository without devcontainer.json).
    let next = create("after", "octo-org/api-service").await;
    eventually(240, "the next workspace running", async || {
        user.call(reqwest::Method::GET, &next, None).await["status"] == "running"
    })
    .await;
    user.call(reqwest::Method::DELETE, &next, None).await;
    eventually(60, "every container removed", async || containers_of(&docker, data.path()).is_empty()).await;
}

/// Removes the containers whose clone lies under `under` when dropped.
struct ContainersRemoved {
    docker: String,
    under: std::path::PathBuf,
}

impl Drop for ContainersRemoved {
    fn drop(&mut self) {
        for (id, _) in containers_of(&self.docker, &self.under) {
            let _ = std::process::Command::new(&self.docker).args(["rm", "-f", &id]).output();
        }
    }
}

/// Issue 20's cloud-init rehearsal (`scripts/rehearse-boot`; not in the
/// default suite: it installs Node.js in the "VM" from the Debian mirror).
/// Dev mode creates the server; its user data — the exact bytes Hetzner
/// would get — boots a systemd container with the real cloud-init (NoCloud
/// seed), as on Hetzner's `docker-ce` image: Docker (the host's runtime,
/// through its socket), git, no Node.js. The workspace goes to `running`
/// and its terminal shows a prompt inside the devcontainer; the boot steps'
/// times are printed. The one difference from a VM: the agent's binary,
/// state and clones live in a directory shared with the host's container
/// runtime (a drop-in for its unit), since that runtime starts the
/// devcontainer and mounts them by their paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the cloud-init rehearsal: run scripts/rehearse-boot"]
async fn rehearse_a_vm_boot_with_real_cloud_init() {
    let vm_image = std::env::var("SAM_REHEARSAL_VM_IMAGE").expect("run through scripts/rehearse-boot");
    let (docker, image) = container_runtime().expect("run through scripts/rehearse-boot");
    let socket = std::env::var("DOCKER_HOST").unwrap().strip_prefix("unix://").unwrap().to_owned();
    // Not under /tmp: the systemd container has a /tmp of its own.
    let data = tempfile::tempdir_in("/var/tmp").unwrap();
    let shared = data.path().join("vm-shared");
    std::fs::create_dir_all(&shared).unwrap();
    let _cleanup = ContainersRemoved { docker: docker.clone(), under: shared.clone() };
    let (_child, base, control) =
        start_dev_with_control(data.path(), &["--vms", "none", "--devcontainer-image", &image]).await;
    // SAM_REHEARSAL_WITHOUT_BUNDLE=1: a control plane without the
    // devcontainer CLI bundle, whose VMs install npm and the CLI instead.
    let without_bundle = std::env::var("SAM_REHEARSAL_WITHOUT_BUNDLE").as_deref() == Ok("1");
    if without_bundle {
        std::fs::remove_file(data.path().join("agents").join(sam_server::api::devcontainer_cli_file())).unwrap();
    }
    let user = DevUser::sign_in(&base).await;
    user.connect_hetzner().await;
    let created = std::time::Instant::now();
    let (id, path) = user.create_workspace("rehearsed", "octo-org/hello-world").await;

    // The server's user data, as Hetzner holds it.
    let mut server = serde_json::Value::Null;
    eventually(60, "the server", async || {
        let servers: serde_json::Value =
            reqwest::get(format!("{control}/hetzner/servers")).await.unwrap().json().await.unwrap();
        server = servers[0].clone();
        !server.is_null()
    })
    .await;
    let user_data = server["user_data"].as_str().unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    let seed = data.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("user-data"), user_data).unwrap();
    std::fs::write(seed.join("meta-data"), format!("instance-id: sam-{}\nlocal-hostname: rehearsal\n", server["id"]))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = shared.display();
    let drop_in = format!(
        "[Service]\nEnvironment=DOCKER_HOST=unix:///sam-host/docker.sock\nEnvironment=SAM_AGENT_WORKDIR={s}/workspace\n\
         Environment=SAM_AGENT_STATE_DIR={s}/state\nEnvironment=SAM_AGENT_LISTEN=127.0.0.1:{port}\n\
         ExecStartPre=/bin/mkdir -p {s}/bin\nExecStartPre=/bin/cp /usr/local/bin/sam-agent {s}/bin/sam-agent\n\
         ExecStart=\nExecStart={s}/bin/sam-agent\n"
    );
    std::fs::write(data.path().join("rehearsal.conf"), drop_in).unwrap();

    let name = format!("sam-rehearsal-{}", std::process::id());
    let booted = std::time::Instant::now();
    let run = std::process::Command::new("podman")
        .args(["run", "-d", "--name", &name, "--privileged", "--systemd=always", "--network=host"])
        .arg("-v")
        .arg(format!("{}:/var/lib/cloud/seed/nocloud:ro", seed.display()))
        .arg("-v")
        .arg(format!("{docker}:/usr/local/bin/docker:ro"))
        .arg("-v")
        .arg(format!("{socket}:/sam-host/docker.sock"))
        .arg("-v")
        .arg(format!("{s}:{s}"))
        .arg("-v")
        .arg(format!(
            "{}:/etc/systemd/system/sam-agent.service.d/rehearsal.conf:ro",
            data.path().join("rehearsal.conf").display()
        ))
        .args([&vm_image, "/sbin/init"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    struct Vm(String);
    impl Drop for Vm {
        fn drop(&mut self) {
            let _ = std::process::Command::new("podman").args(["rm", "-f", "-t", "2", &self.0]).output();
        }
    }
    let vm = Vm(name);
    let vm_log = |file: &str| {
        let out = std::process::Command::new("podman").args(["exec", &vm.0, "cat", file]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let mut last = serde_json::Value::Null;
    let waited = tokio::time::timeout(Duration::from_secs(900), async {
        loop {
            last = user.call(reqwest::Method::GET, &path, None).await;
            if last["status"] == "running" || last["status"] == "error" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let boot_log = vm_log("/var/log/sam-boot.log");
    assert!(
        waited.is_ok() && last["status"] == "running",
        "{last}\n--- sam-boot.log\n{boot_log}\n--- cloud-init-output.log\n{}",
        vm_log("/var/log/cloud-init-output.log")
    );
    let running = booted.elapsed();
    let out = user
        .terminal_run_via(
            &id,
            Some(port),
            "test -e /run/.containerenv && echo PROMPT-$((40+2)) $(pwd)",
            "PROMPT-42",
            60,
        )
        .await;
    assert!(out.contains("PROMPT-42 /workspaces/hello-world"), "{out}");
    let prompt = booted.elapsed();

    // The timings, from the VM's start.
    let events = user.call(reqwest::Method::GET, &format!("{path}/events"), None).await;
    let start = time::OffsetDateTime::now_utc() - time::Duration::try_from(prompt).unwrap();
    println!(
        "\ncloud-init rehearsal: seconds from the VM's start (create → server: {:.1} s)",
        (booted - created).as_secs_f64()
    );
    for e in events.as_array().unwrap() {
        let (Some(message), Some(at)) = (e["message"].as_str(), e["at"].as_str()) else { continue };
        if e["event"] != "agent_progress" {
            continue;
        }
        let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
        println!("  {:>6.1}  {message}", (at - start).as_seconds_f64());
    }
    println!("  {:>6.1}  running", running.as_secs_f64());
    println!("  {:>6.1}  first prompt in the terminal", prompt.as_secs_f64());
    let summary: Vec<&str> = boot_log
        .lines()
        .filter(|l| l.starts_with("== ") || l.starts_with("installing") || l.starts_with("nothing to install"))
        .collect();
    println!("--- /var/log/sam-boot.log (steps)\n{}", summary.join("\n"));
    assert!(summary.iter().any(|l| l.starts_with("installing: nodejs")), "the boot installed Node.js: {boot_log}");
    assert_eq!(boot_log.contains("installing npm and the CLI (slow)"), without_bundle, "{boot_log}");

    user.call(reqwest::Method::DELETE, &path, None).await;
}

/// Issue 21: no secret issued during a whole user journey — sign-in,
/// a Hetzner credential, a workspace booted and its terminal used, a
/// webhook, stop, restart, delete, a backup — appears in any log line of
/// the control plane, the emulators or the agents, logging at `debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_whole_journey_reaches_a_log() {
    let data = dev::DevData::new();
    let log = data.path().join("dev.log");
    let (child, base) = dev::start_dev_filtered(
        dev::process::HandedSockets::bind(2),
        data.path(),
        &["--heartbeat-seconds", "1"],
        Some(&log),
        "debug,hyper=info,h2=info,rustls=info,sqlx=info",
    )
    .await;
    let mut child = child;
    // The logs go to stdout (the banner too, which shows the test tokens
    // on purpose and is not a log: only what follows it is kept).
    let logged = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (control, reader) = {
        let mut lines = printed(&mut child);
        let control = address(&mut lines, "Emulator control").await;
        let logged = logged.clone();
        let reader = tokio::spawn(async move {
            let mut banner = true;
            while let Ok(Some(line)) = lines.next_line().await {
                banner = banner && !line.contains("Ctrl-C stops the server");
                if !banner || line.contains("INFO") || line.contains("DEBUG") || line.contains("WARN") {
                    let mut all = logged.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            }
        });
        (control, reader)
    };
    let mut secrets: Vec<(String, String)> = Vec::new();
    let user = DevUser::sign_in(&base).await;
    secrets.push(("session".into(), user.cookie.split_once('=').unwrap().1.to_owned()));
    let hetzner = sam_providers::emulators::HETZNER_TOKEN;
    secrets.push(("Hetzner token".into(), hetzner.to_owned()));
    user.connect_hetzner().await;
    let (id, path) = user.create_workspace("secretive", "octo-org/hello-world").await;
    eventually(90, "running", async || user.call(reqwest::Method::GET, &path, None).await["status"] == "running").await;
    let servers: serde_json::Value =
        reqwest::get(format!("{control}/hetzner/servers")).await.unwrap().json().await.unwrap();
    let user_data = servers[0]["user_data"].as_str().unwrap();
    let bootstrap = user_data.lines().find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=")).unwrap();
    secrets.push(("bootstrap token".into(), bootstrap.to_owned()));
    let vm = std::fs::read_dir(data.path().join("vms")).unwrap().next().unwrap().unwrap().path();
    let grant = std::fs::read_to_string(vm.join("state/grant.json")).unwrap();
    for key in ["callback_token", "callbackToken", "clone_token", "cloneToken", "tls_key"] {
        let needle = format!("\"{key}\":\"");
        if let Some(start) = grant.find(&needle) {
            let value = &grant[start + needle.len()..];
            secrets.push((key.into(), value[..value.find('"').unwrap()].to_owned()));
        }
    }
    assert!(secrets.iter().any(|(k, _)| k.starts_with("callback")), "the grant's callback credential: {grant}");
    let access =
        user.call(reqwest::Method::POST, "/api/terminal/token", Some(serde_json::json!({"workspaceId": id}))).await;
    let url = reqwest::Url::parse(access["url"].as_str().unwrap()).unwrap();
    let terminal = url.query_pairs().find(|(k, _)| k == "token").unwrap().1.into_owned();
    secrets.push(("terminal token".into(), terminal));
    user.terminal_echo(&id, "journey").await;

    // A webhook, signed as GitHub signs it.
    let github =
        sam_providers::emulators::GithubEmulator::start(sam_providers::emulators::GithubEmulatorConfig::default())
            .await
            .unwrap();
    let delivery = github
        .send_webhook(
            &format!("{base}/api/github/webhook"),
            "installation",
            &serde_json::json!({"action": "new_permissions_accepted", "installation": {"id": 1, "account": {"login": "octo-org"}}}),
        )
        .await
        .unwrap();
    assert!(delivery.status < 500, "{delivery:?}");
    secrets.push(("webhook secret".into(), sam_providers::emulators::GITHUB_WEBHOOK_SECRET.into()));

    for action in ["stop", "restart"] {
        user.call(reqwest::Method::POST, &format!("{path}/{action}"), None).await;
        let wanted = if action == "stop" { "stopped" } else { "running" };
        eventually(90, wanted, async || user.call(reqwest::Method::GET, &path, None).await["status"] == wanted).await;
    }
    user.call(reqwest::Method::DELETE, &path, None).await;
    eventually(60, "deleted", async || {
        let list = user.call(reqwest::Method::GET, "/api/workspaces", None).await;
        list.as_array().unwrap().is_empty()
    })
    .await;
    let keys = sam_providers::keys::KeyFiles::in_dir(&data.path().join("keys"));
    let backup = std::process::Command::new(env!("CARGO_BIN_EXE_sam-server"))
        .arg("backup")
        .arg("--out")
        .arg(data.path().join("backup"))
        .env("SAM_DATABASE_URL", format!("sqlite://{}", data.path().join("sam.db").display()))
        .env("SAM_JWT_PRIVATE_KEY_FILE", &keys.jwt_signing_key)
        .env("SAM_ENCRYPTION_KEY_FILE", &keys.credentials_key)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let backup_log = format!("{}{}", String::from_utf8_lossy(&backup.stdout), String::from_utf8_lossy(&backup.stderr));
    assert!(backup.status.success(), "{backup_log}");

    // The keys dev mode generated, and the secrets GitHub issued (their
    // prefixes: installation, user and refresh tokens).
    for file in [&keys.jwt_signing_key, &keys.credentials_key] {
        let text = std::fs::read_to_string(file).unwrap();
        // A line of the key's body (PEM lines, or the whole key).
        let body = text.lines().find(|l| !l.starts_with("-----") && l.len() >= 16).unwrap();
        secrets.push((file.display().to_string(), body.to_owned()));
    }
    // The metrics, scraped with the scraper's token (itself a secret).
    let metrics_token = std::fs::read_to_string(data.path().join("secrets/metrics-token")).unwrap();
    let scrape = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth(metrics_token.trim()).send();
    let scrape = scrape.await.unwrap();
    assert_eq!(scrape.status(), 200);
    let metrics = scrape.text().await.unwrap();
    assert!(metrics.contains("sam_"), "{metrics}");
    secrets.push(("metrics token".into(), metrics_token.trim().to_owned()));
    let _ = child.kill().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    let stdout = logged.lock().unwrap().clone();
    let mut logs = vec![
        ("dev mode's log".to_owned(), stdout),
        ("dev mode's stderr".to_owned(), std::fs::read_to_string(&log).unwrap()),
        ("backup".to_owned(), backup_log),
        ("the metrics".to_owned(), metrics),
    ];
    for vm in std::fs::read_dir(data.path().join("vms")).unwrap() {
        let agent_log = vm.unwrap().path().join("agent.log");
        if let Ok(text) = std::fs::read_to_string(&agent_log) {
            logs.push((agent_log.display().to_string(), text));
        }
    }
    assert!(logs[0].1.lines().count() > 100, "debug logging on: {}", logs[0].1.lines().count());
    let mut found = Vec::new();
    for (name, text) in &logs {
        for (what, secret) in &secrets {
            if secret.len() >= 8 && text.contains(secret.as_str()) {
                let line = text.lines().find(|l| l.contains(secret.as_str())).unwrap_or_default();
                found.push(format!("{what} in {name}: {line}"));
            }
        }
        for prefix in ["ghs_", "ghu_", "ghr_"] {
            if let Some(line) = text.lines().find(|l| l.contains(prefix)) {
                found.push(format!("a GitHub token ({prefix}…) in {name}: {line}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets in logs:\n{}", found.join("\n"));
}

/// The `sam` binary beside the server's (the workspace builds it).
fn sam_cli() -> std::path::PathBuf {
    let cli = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sam-server")).with_file_name("sam");
    assert!(cli.exists(), "build the CLI first (cargo build -p sam-cli): {}", cli.display());
    cli
}

/// Runs `sam args…` with its login in `config`; returns (success, stdout + stderr).
async fn sam(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(sam_cli())
        .args(args)
        .env("SAM_CONFIG", config)
        .env_remove("SAM_URL")
        .env_remove("SAM_TOKEN")
        .output()
        .await
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Issue 22: the CLI as a process against dev mode, with a personal access
/// token from the settings API: login, create (waits for running), list,
/// open, and `shell` in a pseudo-terminal — type and see the output, resize,
/// Ctrl-C during a flood, exit — then delete; a revoked token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_workspace_from_a_local_terminal() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let data = dev::DevData::new();
    let (_child, base) = start_dev(data.path(), &[]).await;
    let user = DevUser::sign_in(&base).await;
    user.connect_hetzner().await;
    let created = user
        .call(reqwest::Method::POST, "/api/tokens", Some(serde_json::json!({"name": "cli test", "scope": "write"})))
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let config = data.path().join("cli-login.json");

    let (ok, out) = sam(&config, &["login", "--url", &base, "--token", &token]).await;
    assert!(ok && out.contains("as octocat"), "{out}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let started = std::time::Instant::now();
    let (ok, out) = sam(&config, &["create", "cli-ws", "--repo", "octo-org/hello-world", "--idle-minutes", "30"]).await;
    assert!(ok && out.contains("cli-ws running at http://ws-"), "{out}");
    eprintln!("sam create → running: {} ms", started.elapsed().as_millis());
    let (ok, out) = sam(&config, &["list"]).await;
    assert!(ok && out.lines().any(|l| l.starts_with("cli-ws") && l.contains("running")), "{out}");
    let (ok, out) = sam(&config, &["open", "cli-ws"]).await;
    assert!(ok && out.contains("/auth/callback?token="), "{out}");

    // `sam shell` in a pseudo-terminal, as a person's terminal runs it.
    let pty = native_pty_system().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut command = CommandBuilder::new(sam_cli());
    command.args(["shell", "cli-ws"]);
    command.env("SAM_CONFIG", &config);
    let mut child = pty.slave.spawn_command(command).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = async |what: &str, secs: u64| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !String::from_utf8_lossy(&seen).contains(what) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(chunk)) => seen.extend_from_slice(&chunk),
                other => panic!("no {what:?} from sam shell ({other:?}); saw {}", String::from_utf8_lossy(&seen)),
            }
        }
        // Later waits look at what follows.
        seen.clear();
    };
    let mut send = |bytes: &[u8]| {
        std::io::Write::write_all(&mut writer, bytes).unwrap();
        std::io::Write::flush(&mut writer).unwrap();
    };
    send(b"echo cli-$((6*7)); stty size\r");
    wait_for("cli-42", 20).await;
    wait_for("30 100", 5).await;
    // A resize of the local terminal reaches the shell (SIGWINCH → resize).
    pty.master.resize(PtySize { rows: 40, cols: 120, pixel_width: 0, pixel_height: 0 }).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(b"stty size\r");
    wait_for("40 120", 5).await;
    // Ctrl-C during a flood stops it promptly (raw mode: the byte goes to
    // the remote shell, not to the CLI).
    send(b"yes flood-line\r");
    wait_for("flood-line\r\nflood-line", 10).await;
    let interrupted = std::time::Instant::now();
    send(b"\x03");
    send(b"echo after-$((1+1))\r");
    wait_for("after-2", 10).await;
    eprintln!("sam shell: Ctrl-C in a flood → answer {} ms", interrupted.elapsed().as_millis());
    send(b"exit\r");
    wait_for("[sam: the shell", 10).await;
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");

    let (ok, out) = sam(&config, &["delete", "cli-ws"]).await;
    assert!(ok && out.contains("cli-ws deleting"), "{out}");
    // Revoked in the settings: refused at once.
    let id = created["id"].as_str().unwrap();
    user.call(reqwest::Method::DELETE, &format!("/api/tokens/{id}"), None).await;
    let (ok, out) = sam(&config, &["list"]).await;
    assert!(!ok && out.contains("the token was refused"), "{out}");
}
