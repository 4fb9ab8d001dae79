//! Previews through the agent, with host shells: a dev server started in a
//! terminal is listed, and reachable at `p<port>-ws-<id>…` by its owner
//! only (a `workspace-preview` token, then a cookie for that one port),
//! HTTP and WebSocket; nothing else on the machine is reachable that way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use sam_core::domain::UserId;
use sam_core::ports::{Audience, TokenIssuer as _, TokenRequest};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

const T: Duration = Duration::from_secs(10);
const CONTROL_PLANE: &str = "http://control.example:8080";

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn preview_host(t: &TestAgent, port: u16) -> String {
    format!("p{port}-{}.localhost:{}", t.workspace.dns_label(), t.addr.port())
}

fn preview_token(t: &TestAgent, subject: UserId, audience: Audience) -> String {
    let req = TokenRequest { audience, subject, workspace: t.workspace, ttl: T, session: None };
    t.authority.issue(req, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
}

async fn get(t: &TestAgent, host: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("http://{}{path}", t.addr)).header("host", host);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

/// Redeems a preview token on `host`: the cookie (`name=value`), or the status.
async fn open(t: &TestAgent, host: &str, token: &str, next: &str) -> Result<String, u16> {
    let res = get(t, host, &format!("/__sam/preview/callback?token={token}&next={next}"), None).await;
    if res.status() != 303 {
        return Err(res.status().as_u16());
    }
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Domain"), "{set}");
    Ok(set.split(';').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_in_the_workspace_is_previewed_for_its_owner_only() {
    let owner = UserId::new();
    let t = start(|c| {
        c.owner = Some(owner);
        c.control_plane = Some(CONTROL_PLANE.into());
    })
    .await;
    let terminal_cookie = t.cookie.clone();

    // A dev server, started in a terminal.
    let mut ws = t.connect_with("session=dev", Some(&terminal_cookie), Some(&t.origin())).await.unwrap();
    hello(&mut ws).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/preview_server.py");
    send_text(&mut ws, &format!("python3 {script} 0\r")).await;
    let mut out = Vec::new();
    read_until(&mut ws, &mut out, b"listening ", T).await;
    // The line after it: the typed command's echo already holds a newline,
    // and the port may come in a later frame than "listening ".
    let after = out.windows(10).rposition(|w| w == b"listening ").expect("printed") + 10;
    let mut line = out.split_off(after);
    read_until(&mut ws, &mut line, b"\n", T).await;
    let port: u16 = String::from_utf8_lossy(&line).lines().next().unwrap_or("").trim().parse().expect("the port");

    // The page lists it.
    let ports: serde_json::Value = client()
        .get(format!("http://{}/api/ports", t.addr))
        .header("cookie", &terminal_cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = ports["ports"].as_array().unwrap();
    assert!(listed.iter().any(|p| p["port"] == port && p["process"] == "python3" && p["ready"] == true), "{ports}");
    assert_eq!(client().get(format!("http://{}/api/ports", t.addr)).send().await.unwrap().status(), 401);

    let host = preview_host(&t, port);
    // Anonymous: a page is sent to the control plane to sign in, with the
    // path to come back to; anything else is refused.
    let res = get(&t, &host, "/app?x=1", None).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("{CONTROL_PLANE}/api/workspaces/{}/ports/{port}/open?path=/app%3Fx%3D1", t.workspace).as_str()
    );
    let res = client().post(format!("http://{}/echo", t.addr)).header("host", &host).body("x").send().await.unwrap();
    assert_eq!(res.status(), 401);

    // Tokens that do not open a preview: a terminal token, another user's,
    // another workspace's, garbage.
    assert_eq!(open(&t, &host, &preview_token(&t, owner, Audience::WorkspaceTerminal), "/").await, Err(401));
    assert_eq!(open(&t, &host, &preview_token(&t, UserId::new(), Audience::WorkspacePreview), "/").await, Err(401));
    let elsewhere = TokenRequest {
        audience: Audience::WorkspacePreview,
        subject: owner,
        workspace: sam_core::domain::WorkspaceId::new(),
        ttl: T,
        session: None,
    };
    let elsewhere = t.authority.issue(elsewhere, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned();
    assert_eq!(open(&t, &host, &elsewhere, "/").await, Err(401));
    assert_eq!(open(&t, &host, "garbage", "/").await, Err(401));

    // The owner's preview token: a cookie, then on to `next` (never to
    // another host), and the token works once.
    let token = preview_token(&t, owner, Audience::WorkspacePreview);
    let res = get(&t, &host, &format!("/__sam/preview/callback?token={token}&next=%2Fapp%3Fx%3D1"), None).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/app?x=1");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("sam_preview="), "{cookie}");
    assert_eq!(open(&t, &host, &token, "/").await, Err(401), "a token works once");
    let other = preview_token(&t, owner, Audience::WorkspacePreview);
    let res = get(&t, &host, &format!("/__sam/preview/callback?token={other}&next=//evil.example"), None).await;
    assert_eq!(res.headers()["location"], "/");

    // Through the preview: the server sees localhost, not our cookie, but
    // its own cookies.
    let res = get(&t, &host, "/headers", Some(&format!("theirs=1; {cookie}"))).await;
    assert_eq!(res.status(), 200);
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(seen["host"], format!("localhost:{port}"));
    assert_eq!(seen["cookie"], "theirs=1");
    assert_eq!(seen["x-forwarded-host"], host.as_str());
    let page = get(&t, &host, "/", Some(&cookie)).await.text().await.unwrap();
    assert!(page.contains("preview test app"));
    // A body both ways (1 MiB).
    let body: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    let res = client()
        .post(format!("http://{}/echo", t.addr))
        .header("host", &host)
        .header("cookie", &cookie)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), body.as_slice());

    // A WebSocket through the preview.
    let mut req = format!("ws://{}/ws", t.addr).into_client_request().unwrap();
    req.headers_mut().insert("host", HeaderValue::from_str(&host).unwrap());
    req.headers_mut().insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.expect("websocket through the preview");
    socket.send(Message::text("hot reload?")).await.unwrap();
    let answer = tokio::time::timeout(T, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(answer.into_text().unwrap().as_str(), "echo: hot reload?");
    // Without the cookie, no WebSocket.
    let mut req = format!("ws://{}/ws", t.addr).into_client_request().unwrap();
    req.headers_mut().insert("host", HeaderValue::from_str(&host).unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Signed out at SAM: the preview's cookie and open WebSocket end with
    // the sign-in they were opened under.
    let req = TokenRequest {
        audience: Audience::WorkspacePreview,
        subject: owner,
        workspace: t.workspace,
        ttl: T,
        session: Some("sign-in-1".into()),
    };
    let token = t.authority.issue(req, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned();
    let signed_in = open(&t, &host, &token, "/").await.unwrap();
    let mut req = format!("ws://{}/ws", t.addr).into_client_request().unwrap();
    req.headers_mut().insert("host", HeaderValue::from_str(&host).unwrap());
    req.headers_mut().insert("cookie", HeaderValue::from_str(&signed_in).unwrap());
    let (mut live, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    live.send(Message::text("still there?")).await.unwrap();
    assert!(tokio::time::timeout(T, live.next()).await.unwrap().unwrap().is_ok());
    assert_eq!(t.agent.auth.sign_ins(), vec!["sign-in-1".to_owned()]);
    assert_eq!(t.agent.auth.end_sign_ins(&["sign-in-1".into()]), 1);
    let closed = tokio::time::timeout(T, live.next()).await.expect("closed at once");
    assert!(!matches!(closed, Some(Ok(Message::Text(_)))), "{closed:?}");
    assert_eq!(get(&t, &host, "/headers", Some(&signed_in)).await.status(), 303, "the cookie is gone too");

    // A cookie opens its own port only, and never the terminal (nor the
    // terminal's cookie a preview).
    let elsewhere = preview_host(&t, port.wrapping_add(1).max(1));
    assert_eq!(get(&t, &elsewhere, "/headers", Some(&cookie)).await.status(), 303);
    let value = cookie.split_once('=').unwrap().1;
    let res = client()
        .get(format!("http://{}/api/sessions", t.addr))
        .header("cookie", format!("sam_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let terminal_value = terminal_cookie.split_once('=').unwrap().1;
    assert_eq!(get(&t, &host, "/headers", Some(&format!("sam_preview={terminal_value}"))).await.status(), 303);

    // Only what the workspace listens on: the agent's own port, or a
    // listener of a process outside the workspace, is not reachable.
    let own = preview_host(&t, t.addr.port());
    let other_token = preview_token(&t, owner, Audience::WorkspacePreview);
    let own_cookie = open(&t, &own, &other_token, "/").await.unwrap();
    let res = get(&t, &own, "/api/sessions", Some(&own_cookie)).await;
    assert_eq!(res.status(), 502, "the agent itself is not a preview");
    assert!(res.text().await.unwrap().contains("Nothing in the workspace listens on port"));

    // The server stops: the preview says so.
    send_text(&mut ws, "\x03").await;
    tokio::time::sleep(Ports::settle()).await;
    assert_eq!(get(&t, &host, "/headers", Some(&cookie)).await.status(), 502);
}

struct Ports;
impl Ports {
    /// Longer than a port scan is reused.
    fn settle() -> Duration {
        sam_agent::ports::Ports::FRESH + Duration::from_millis(500)
    }
}
