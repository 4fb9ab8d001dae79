//! The agent on a random port: HTTP routes, auth, origin and the terminal
//! WebSocket's limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use sam_core::domain::WorkspaceId;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_websocket() {
    let t = start(|_| {}).await;
    let mut ws = t.connect("session=abc&rows=30&cols=90").await;
    let h = hello(&mut ws).await;
    assert_eq!(h["session"], "abc");
    assert_eq!(h["resumed"], false);
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"$ ", T).await;
    send_text(&mut ws, "echo h''i; stty size\r").await;
    read_until(&mut ws, &mut out, b"hi\r\n30 90", T).await;
    send_control(&mut ws, r#"{"type":"resize","rows":50,"cols":160}"#).await;
    send_text(&mut ws, "stty size\r").await;
    read_until(&mut ws, &mut out, b"50 160", T).await;
    send_control(&mut ws, r#"{"type":"ping","id":9}"#).await;
    send_control(&mut ws, r#"{"type":"close"}"#).await;
    assert_eq!(close_code(&mut ws, T).await, Some(1000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(t.agent.sessions.is_empty(), "close ends the shell at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes() {
    let t = start(|_| {}).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", t.addr);
    // Anyone learns that the agent is up, and nothing more.
    let health: serde_json::Value = client.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok"}));
    // The details only for the control plane's probe token of this workspace.
    let details = ["version", "uptime", "devcontainer", "activeSessions", "lastActivity", "idleSeconds"];
    let probe = t.probe_token(t.workspace);
    let health: serde_json::Value =
        client.get(format!("{base}/health")).bearer_auth(&probe).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    for key in details {
        assert!(health.get(key).is_some(), "{key} missing from /health");
    }
    let terminal = t.token(t.workspace, Duration::from_secs(60));
    for refused in [t.probe_token(WorkspaceId::new()), terminal, "garbage".into(), String::new()] {
        let response = client.get(format!("{base}/health")).bearer_auth(&refused).send().await.unwrap();
        assert_eq!(response.status(), 401, "{refused:.20}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "ok"}), "no details for {refused:.20}");
    }
    assert_eq!(client.get(format!("{base}/ready")).send().await.unwrap().status(), 200);
    // No cookie: the page explains how to get in.
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("Open Terminal"));
    // With the cookie: the terminal page.
    let page = client.get(format!("{base}/")).header("cookie", &t.cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("content-security-policy").is_some());
    assert!(page.text().await.unwrap().contains("/assets/terminal.js"));
    for asset in ["terminal.js", "terminal.css", "vendor/xterm.mjs", "vendor/xterm.css", "vendor/addon-fit.mjs"] {
        assert_eq!(client.get(format!("{base}/assets/{asset}")).send().await.unwrap().status(), 200, "{asset}");
    }
    for bad in ["../Cargo.toml", "..%2FCargo.toml", "vendor/../../src/lib.rs", "nope.js"] {
        assert_eq!(client.get(format!("{base}/assets/{bad}")).send().await.unwrap().status(), 404, "{bad}");
    }
    // Logout drops the session.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = no_redirect
        .post(format!("{base}/auth/logout"))
        .header("cookie", &t.cookie)
        .header("origin", t.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{:?}", res.headers());
    assert!(res.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(refused_status(t.connect_with("", Some(&t.cookie), Some(&t.origin())).await), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_requires_cookie_and_origin() {
    let t = start(|_| {}).await;
    assert_eq!(refused_status(t.connect_with("", None, Some(&t.origin())).await), 401);
    assert_eq!(refused_status(t.connect_with("", Some("sam_session=forged"), Some(&t.origin())).await), 401);
    assert_eq!(refused_status(t.connect_with("", Some(&t.cookie), Some("https://evil.example")).await), 403);
    assert_eq!(refused_status(t.connect_with("", Some(&t.cookie), None).await), 403);
    assert_eq!(refused_status(t.connect_with("session=../../x", Some(&t.cookie), Some(&t.origin())).await), 400);
    assert_eq!(refused_status(t.connect_with("rows=0&cols=80", Some(&t.cookie), Some(&t.origin())).await), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_rejected() {
    let t = start(|_| {}).await;
    // Expired (issued with a zero lifetime).
    let expired = t.token(t.workspace, Duration::ZERO);
    assert_eq!(t.login(&expired).await, Err(401));
    // Another workspace.
    let other = t.token(WorkspaceId::new(), Duration::from_secs(60));
    assert_eq!(t.login(&other).await, Err(401));
    // Forged: tampered signature, other key, garbage.
    let good = t.token(t.workspace, Duration::from_secs(60));
    let forged = format!("{}x", &good[..good.len() - 1]);
    assert_eq!(t.login(&forged).await, Err(401));
    let mut stranger = sam_core::testkit::fakes::FakeTokenAuthority::new("sam-test", "other-key");
    stranger.rotate("other-key");
    let req = sam_core::ports::TokenRequest {
        audience: sam_core::ports::Audience::WorkspaceTerminal,
        subject: sam_core::domain::UserId::new(),
        workspace: t.workspace,
        ttl: Duration::from_secs(60),
        session: None,
    };
    let foreign = sam_core::ports::TokenIssuer::issue(&stranger, req.clone(), time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(t.login(foreign.token.expose()).await, Err(401));
    assert_eq!(t.login("garbage").await, Err(401));
    assert_eq!(t.login("").await, Err(400));
    // Wrong audience.
    let cb = sam_core::ports::TokenRequest { audience: sam_core::ports::Audience::WorkspaceCallback, ..req };
    let cb = sam_core::ports::TokenIssuer::issue(&t.authority, cb, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(t.login(cb.token.expose()).await, Err(401));
    // The good one still works, once: a replayed token (a leaked URL)
    // opens no second session.
    let cookie = t.login(&good).await.unwrap();
    assert_eq!(t.login(&good).await, Err(401), "terminal tokens work once");
    // Reloading the callback page with the session it opened moves on to
    // the terminal, opening no second session.
    let reload = reqwest::Client::new()
        .get(format!("http://{}/auth/callback?token={good}", t.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    assert!(reload.headers().get("set-cookie").is_none());
    let fresh = t.token(t.workspace, Duration::from_secs(60));
    assert!(t.login(&fresh).await.is_ok(), "a new token works");
}

async fn assert_violation_closes(t: &TestAgent, send: Message, expected: u16) {
    let mut ws = t.connect("").await;
    hello(&mut ws).await;
    let mut other = t.connect("session=bystander").await;
    hello(&mut other).await;
    let sender = tokio::spawn(async move {
        let _ = ws.send(send).await;
        close_code(&mut ws, T).await
    });
    assert_eq!(sender.await.unwrap(), Some(expected));
    // The agent keeps serving the others.
    let mut out = Vec::new();
    send_text(&mut other, "echo still-$((1+1))\r").await;
    read_until(&mut other, &mut out, b"still-2", T).await;
    let mut fresh = t.connect("").await;
    hello(&mut fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_control_closes_only_that_socket() {
    let t = start(|_| {}).await;
    assert_violation_closes(&t, Message::Text("{not json".into()), 1007).await;
    assert_violation_closes(&t, Message::Text(r#"{"type":"resize","rows":0,"cols":80}"#.into()), 1007).await;
    assert_violation_closes(&t, Message::Text(r#"{"type":"resize","rows":100000,"cols":80}"#.into()), 1007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_with_1009() {
    let t = start(|_| {}).await;
    assert_violation_closes(&t, Message::Binary(vec![b'a'; 10 * 1024 * 1024].into()), 1009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit() {
    let t = start(|c| c.sessions.max_sessions = 2).await;
    let mut a = t.connect("session=a").await;
    hello(&mut a).await;
    let mut b = t.connect("session=b").await;
    hello(&mut b).await;
    // The third is refused with its own code and a reason a page can show
    // (not 1013: retrying would not help).
    let mut c = t.connect("session=c").await;
    let (code, reason) = close_frame(&mut c, T).await.unwrap();
    assert_eq!(code, 4004);
    assert!(reason.contains("as many terminals as it allows"), "{reason}");
    assert_eq!(t.sessions().await["limit"], 2);
    // Reattaching an existing one is still allowed.
    let mut a2 = t.connect("session=a").await;
    assert_eq!(hello(&mut a2).await["resumed"], true);
    assert_eq!(close_code(&mut a, T).await, Some(4001), "the old connection is told it was taken over");
    // Closing one makes room.
    send_control(&mut b, r#"{"type":"close"}"#).await;
    assert_eq!(close_code(&mut b, T).await, Some(1000));
    let mut c = t.connect("session=c").await;
    assert_eq!(hello(&mut c).await["resumed"], false);
}

/// Terminal tabs: a session has a name (given at creation, else numbered),
/// a rename sticks across reattach, and the list shows the live ones in
/// the order they were opened, with whether a connection is attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_have_names_and_a_list() {
    let t = start(|c| c.sessions.spare_for = Duration::ZERO).await;
    assert_eq!(t.sessions().await, serde_json::json!({"limit": 32, "sessions": []}));
    let mut build = t.connect("session=one&name=build%20%E2%9C%93").await;
    assert_eq!(hello(&mut build).await["name"], "build ✓");
    let mut plain = t.connect("session=two").await;
    assert_eq!(hello(&mut plain).await["name"], "Terminal 2");
    let list = t.sessions().await;
    assert_eq!(
        list["sessions"],
        serde_json::json!([
            {"id": "one", "name": "build ✓", "attached": true},
            {"id": "two", "name": "Terminal 2", "attached": true},
        ])
    );
    send_control(&mut plain, r#"{"type":"rename","name":"logs"}"#).await;
    // "I'm still here": activity without a keystroke.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = t.agent.activity.idle();
    send_control(&mut plain, r#"{"type":"active"}"#).await;
    send_control(&mut plain, r#"{"type":"ping","id":1}"#).await;
    let pong = loop {
        match tokio::time::timeout(T, futures_util::StreamExt::next(&mut plain)).await.unwrap() {
            Some(Ok(Message::Text(text))) if text.contains("pong") => break text,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(pong.contains("\"id\":1"));
    assert!(t.agent.activity.idle() < before, "{:?} then {:?}", before, t.agent.activity.idle());
    // A reattach keeps the name (the name it asks for is for a new shell).
    drop(plain);
    let mut again = t.connect("session=two&name=ignored").await;
    let h = hello(&mut again).await;
    assert_eq!((h["resumed"].as_bool(), h["name"].as_str()), (Some(true), Some("logs")));
    send_control(&mut build, r#"{"type":"close"}"#).await;
    assert_eq!(close_code(&mut build, T).await, Some(1000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.sessions().await["sessions"], serde_json::json!([{"id": "two", "name": "logs", "attached": true}]));
    // Bad names: refused before a shell starts, or the socket closes.
    for bad in ["", "%20", "a%07b", &"x".repeat(41)] {
        let refused = t.connect_with(&format!("session=three&name={bad}"), Some(&t.cookie), Some(&t.origin())).await;
        assert_eq!(refused_status(refused), 400, "name {bad:?}");
    }
    send_control(&mut again, r#"{"type":"rename","name":"\u001b[2J"}"#).await;
    assert_eq!(close_code(&mut again, T).await, Some(1007));
    // The list needs the cookie.
    let anonymous = reqwest::get(format!("http://{}/api/sessions", t.addr)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_with_a_stalled_client_stays_bounded_and_ctrl_c_is_prompt() {
    use futures_util::StreamExt;
    let t = start(|_| {}).await;
    let mut ws = t.connect("session=flood&ack=1").await;
    let h = hello(&mut ws).await;
    let window = h["ackWindow"].as_u64().unwrap();
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"$ ", T).await;
    send_text(&mut ws, "yes flood-line\r").await;
    // Stop reading and acking: the agent must pause the shell.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let session = t.agent.sessions.get("flood").unwrap();
    let (start, end) = session.output().span();
    assert!(end - start <= 256 * 1024, "ring bounded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, end2) = session.output().span();
    assert!(end2 <= window + 64 * 1024, "producer ran {end2} bytes ahead of acks (window {window})");
    assert_eq!(end2, end, "producer paused");
    // Ctrl-C, then read (acking) until the shell answers.
    let started = std::time::Instant::now();
    send_text(&mut ws, "\x03").await;
    send_text(&mut ws, "echo done-$((1+1))\r").await;
    let mut offset = out.len() as u64;
    let mut tailbuf: Vec<u8> = Vec::new();
    loop {
        let msg = tokio::time::timeout(T, ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Binary(b) = msg {
            offset += b.len() as u64;
            tailbuf.extend_from_slice(&b);
            if contains(&tailbuf, b"done-2") {
                break;
            }
            let keep = tailbuf.len().saturating_sub(16);
            tailbuf.drain(..keep);
            send_control(&mut ws, &format!(r#"{{"type":"ack","offset":{offset}}}"#)).await;
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "Ctrl-C took {took:?} during a flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_a_shell_is_set() {
    use std::sync::Arc;
    sam_agent::ensure_tls_provider();
    let workspace = WorkspaceId::new();
    let authority = sam_core::testkit::fakes::FakeTokenAuthority::new("sam-test", "k1");
    let mut config = sam_agent::AgentConfig::new(workspace);
    config.cookie.secure = true;
    let agent = sam_agent::Agent::new(config, Arc::new(authority.clone()), None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(sam_agent::web::serve(listener, Arc::clone(&agent)));
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{base}/ready")).send().await.unwrap().status(), 503);
    let health: serde_json::Value = client.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "starting");
    assert_eq!(agent.auth.cookie_name(), "__Host-sam_session", "secure cookies use the __Host- prefix");
    agent.set_ready(common::test_shell(), Some("c0ffee".into()));
    assert_eq!(client.get(format!("{base}/ready")).send().await.unwrap().status(), 200);
    let request = sam_core::ports::TokenRequest {
        audience: sam_core::ports::Audience::WorkspaceProbe,
        subject: sam_core::domain::UserId::new(),
        workspace,
        ttl: Duration::from_secs(60),
        session: None,
    };
    use sam_core::ports::TokenIssuer as _;
    let probe = authority.issue(request, time::OffsetDateTime::now_utc()).unwrap().token;
    let health: serde_json::Value =
        client.get(format!("{base}/health")).bearer_auth(probe.expose()).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["devcontainer"], "c0ffee");
    agent.shutdown("test");
    tokio::time::timeout(T, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_counts_as_dropped() {
    let t = start(|c| {
        c.keepalive = Duration::from_millis(200);
        c.client_timeout = Duration::from_millis(800);
    })
    .await;
    let mut ws = t.connect("session=quiet").await;
    hello(&mut ws).await;
    // A client that reads (tungstenite answers the agent's pings) stays attached.
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"$ ", T).await;
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < deadline {
        use futures_util::StreamExt;
        let _ = tokio::time::timeout(Duration::from_millis(100), ws.next()).await;
    }
    let session = t.agent.sessions.get("quiet").unwrap();
    assert!(session.output().is_attached(), "a live client must stay attached");
    // A client that stops reading (no pongs, nothing) is detached.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!session.output().is_attached(), "a silent client must be detached");
    assert!(t.agent.sessions.get("quiet").is_some(), "its shell waits for reattach");
}

/// Opening a tab prepares a spare shell at that tab's size; the next tab
/// gets it (its prompt is already there) and `/health` does not count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tab_gets_the_spare_its_predecessor_prepared() {
    let t = start(|_| {}).await;
    let mut first = t.connect("session=one&rows=33&cols=99").await;
    hello(&mut first).await;
    let mut out = Vec::new();
    read_until(&mut first, &mut out, b"$ ", T).await;
    let deadline = std::time::Instant::now() + T;
    let spare = loop {
        if let Some(pid) = t.agent.sessions.spare_pid() {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no spare shell was prepared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(t.agent.sessions.len(), 1, "the spare is not an active session");

    let mut second = t.connect("session=two&rows=33&cols=99").await;
    assert_eq!(hello(&mut second).await["resumed"], false);
    let mut out = Vec::new();
    read_until(&mut second, &mut out, b"$ ", T).await;
    assert_eq!(t.agent.sessions.get("two").and_then(|s| s.pid()), Some(spare), "the second tab took the spare");
    send_text(&mut second, "stty size\r").await;
    read_until(&mut second, &mut out, b"33 99", T).await;
    for ws in [&mut first, &mut second] {
        send_control(ws, r#"{"type":"close"}"#).await;
        assert_eq!(close_code(ws, T).await, Some(1000));
    }
}

/// An agent that knows its workspace's owner (from its bootstrap grant)
/// opens terminals only for that user's tokens, however valid another
/// user's token for the workspace is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owners_tokens_open_terminals() {
    let owner = sam_core::domain::UserId::new();
    let t = start(|_| {}).await;
    let agent = sam_agent::Agent::new(
        {
            let mut config = sam_agent::AgentConfig::new(t.workspace);
            config.cookie.secure = false;
            config.owner = Some(owner);
            config
        },
        std::sync::Arc::new(t.authority.clone()),
        Some(test_shell()),
    );
    let token = |subject| {
        let request = sam_core::ports::TokenRequest {
            audience: sam_core::ports::Audience::WorkspaceTerminal,
            subject,
            workspace: t.workspace,
            ttl: Duration::from_secs(60),
            session: None,
        };
        let issued = sam_core::ports::TokenIssuer::issue(&t.authority, request, time::OffsetDateTime::now_utc());
        issued.unwrap().token.expose().to_owned()
    };
    let stranger = agent.auth.redeem(&token(sam_core::domain::UserId::new())).await;
    assert_eq!(stranger, Err(sam_agent::auth::AuthError::NotOwner));
    assert!(agent.auth.redeem(&token(owner)).await.is_ok());
}

/// Signing out at the control plane ends the terminals opened under that
/// sign-in: the heartbeat reports the sign-ins its sessions came from, the
/// answer names the ended ones, their connections close (4003) and their
/// cookies stop working; the shell stays for a new sign-in to reattach.
/// Another sign-in's terminal is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_ends_the_terminals_opened_under_it() {
    let t = start(|_| {}).await;
    let (gone, kept) = ("a".repeat(64), "b".repeat(64));
    let gone_cookie = t.login(&t.token_signed_in(&gone)).await.unwrap();
    let kept_cookie = t.login(&t.token_signed_in(&kept)).await.unwrap();
    let mut ws = t.connect_with("session=signed-out", Some(&gone_cookie), Some(&t.origin())).await.unwrap();
    hello(&mut ws).await;
    let mut other = t.connect_with("session=still-in", Some(&kept_cookie), Some(&t.origin())).await.unwrap();
    hello(&mut other).await;
    let mut reported = sam_agent::heartbeat::report(&t.agent).sign_ins;
    reported.sort();
    assert_eq!(reported, vec![gone.clone(), kept.clone()], "the heartbeat asks about both sign-ins");

    let answer = sam_core::wire::HeartbeatAnswer {
        action: sam_core::wire::HeartbeatAction::Continue,
        idle_threshold: 1800,
        shutdown_at: None,
        ended_sign_ins: vec![gone.clone()],
    };
    assert!(!sam_agent::heartbeat::apply(&t.agent, &answer));
    assert_eq!(close_code(&mut ws, T).await, Some(4003), "the signed-out terminal closes");
    let client = reqwest::Client::new();
    let page = client.get(format!("{}/", t.origin())).header("cookie", &gone_cookie).send().await.unwrap();
    assert_eq!(page.status(), 401, "its cookie no longer opens the terminal");
    assert_eq!(refused_status(t.connect_with("session=signed-out", Some(&gone_cookie), Some(&t.origin())).await), 401);
    assert_eq!(sam_agent::heartbeat::report(&t.agent).sign_ins, vec![kept.clone()]);

    // The other sign-in's terminal goes on, and may take over the shell.
    send_text(&mut other, "echo still''here\r").await;
    let mut out = Vec::new();
    read_until(&mut other, &mut out, b"stillhere", T).await;
    let mut back = t.connect_with("session=signed-out", Some(&kept_cookie), Some(&t.origin())).await.unwrap();
    assert_eq!(hello(&mut back).await["resumed"], true, "the shell was kept for a new sign-in");
}
