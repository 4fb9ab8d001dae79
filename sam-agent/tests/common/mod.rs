//! Shared helpers: an agent on a random port with a fake token authority, a
//! WebSocket client, and readers with deadlines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sam_agent::output::Take;
use sam_agent::session::{Session, SessionManager};
use sam_agent::{Agent, AgentConfig, ShellCommand};
use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::{Audience, TokenIssuer, TokenRequest};
use sam_core::testkit::fakes::FakeTokenAuthority;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A deterministic interactive shell: bash without rc files, prompt `$ `.
pub fn test_shell() -> ShellCommand {
    let mut shell = ShellCommand::new("/bin/bash", &["--noprofile", "--norc"]);
    shell.env = vec![("PS1".into(), "$ ".into()), ("HISTFILE".into(), "/dev/null".into())];
    shell
}

pub struct TestAgent {
    pub addr: SocketAddr,
    pub agent: Arc<Agent>,
    pub authority: FakeTokenAuthority,
    pub workspace: WorkspaceId,
    pub cookie: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.agent.sessions.close_all();
        self.server.abort();
    }
}

pub async fn start(tweak: impl FnOnce(&mut AgentConfig)) -> TestAgent {
    sam_agent::ensure_tls_provider();
    let workspace = WorkspaceId::new();
    let authority = FakeTokenAuthority::new("sam-test", "k1");
    let mut config = AgentConfig::new(workspace);
    config.cookie.secure = false;
    tweak(&mut config);
    let agent = Agent::new(config, Arc::new(authority.clone()), Some(test_shell()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn({
        let agent = Arc::clone(&agent);
        async move {
            let _ = sam_agent::web::serve(listener, agent).await;
        }
    });
    let mut t = TestAgent { addr, agent, authority, workspace, cookie: String::new(), server };
    let token = t.token(workspace, Duration::from_secs(60));
    t.cookie = t.login(&token).await.expect("login");
    t
}

impl TestAgent {
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A terminal token of the agent's owner (a new user when it has none).
    pub fn token(&self, workspace: WorkspaceId, ttl: Duration) -> String {
        let req = TokenRequest {
            audience: Audience::WorkspaceTerminal,
            subject: self.agent.config.owner.unwrap_or_default(),
            workspace,
            ttl,
            session: None,
        };
        self.authority.issue(req, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
    }

    /// A terminal token issued under the control plane's sign-in `sign_in`.
    pub fn token_signed_in(&self, sign_in: &str) -> String {
        let req = TokenRequest {
            audience: Audience::WorkspaceTerminal,
            subject: UserId::new(),
            workspace: self.workspace,
            ttl: Duration::from_secs(60),
            session: Some(sign_in.to_owned()),
        };
        self.authority.issue(req, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
    }

    /// A `workspace-probe` token (the control plane's, for `/health`).
    pub fn probe_token(&self, workspace: WorkspaceId) -> String {
        let req = TokenRequest {
            audience: Audience::WorkspaceProbe,
            subject: UserId::new(),
            workspace,
            ttl: Duration::from_secs(60),
            session: None,
        };
        self.authority.issue(req, time::OffsetDateTime::now_utc()).unwrap().token.expose().to_owned()
    }

    /// GET /auth/callback; the cookie (`name=value`) on success, else the status.
    pub async fn login(&self, token: &str) -> Result<String, u16> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let res = client.get(format!("http://{}/auth/callback?token={token}", self.addr)).send().await.unwrap();
        if res.status().as_u16() != 200 {
            return Err(res.status().as_u16());
        }
        let set = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        Ok(set.split(';').next().unwrap().to_owned())
    }

    /// `GET /api/sessions` with this agent's cookie.
    pub async fn sessions(&self) -> serde_json::Value {
        let res = reqwest::Client::new()
            .get(format!("http://{}/api/sessions", self.addr))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn connect(&self, query: &str) -> Ws {
        self.connect_with(query, Some(&self.cookie), Some(&self.origin())).await.expect("websocket connect")
    }

    pub async fn connect_with(
        &self,
        query: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let mut req = format!("ws://{}/ws/terminal?{query}", self.addr).into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", HeaderValue::from_str(c).unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
        }
        tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
    }
}

/// The HTTP status of a refused upgrade.
pub fn refused_status(result: Result<Ws, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade unexpectedly accepted"),
    }
}

/// Reads the `hello` frame.
pub async fn hello(ws: &mut Ws) -> serde_json::Value {
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("hello in time").unwrap().unwrap();
    let Message::Text(text) = msg else { panic!("expected hello, got {msg:?}") };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "hello");
    v
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
}

pub async fn send_control(ws: &mut Ws, json: &str) {
    ws.send(Message::Text(json.into())).await.unwrap();
}

/// Collects output until `needle` appears in it (or panics after `timeout`).
pub async fn read_until(ws: &mut Ws, out: &mut Vec<u8>, needle: &[u8], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !contains(out, needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next()).await.unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(tail(out))
            )
        });
        match msg {
            Some(Ok(Message::Binary(b))) => out.extend_from_slice(&b),
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("socket ended while waiting: {other:?}"),
        }
    }
}

/// Waits for the close frame; returns its code.
pub async fn close_code(ws: &mut Ws, timeout: Duration) -> Option<u16> {
    close_frame(ws, timeout).await.map(|(code, _)| code)
}

/// Waits for the close frame; returns its code and reason.
pub async fn close_frame(ws: &mut Ws, timeout: Duration) -> Option<(u16, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("no close within {timeout:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("socket error before close: {e}"),
            Ok(None) => return None,
        }
    }
}

pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

pub fn tail(b: &[u8]) -> &[u8] {
    &b[b.len().saturating_sub(300)..]
}

/// Manager-level reader: collects a session's output until `needle`.
pub async fn session_read_until(
    session: &Arc<Session>,
    generation: u64,
    waker: &tokio::sync::Notify,
    out: &mut Vec<u8>,
    needle: &[u8],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while !contains(out, needle) {
        match session.output().take(generation) {
            Take::Data(b) => out.extend_from_slice(&b),
            Take::Empty => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || tokio::time::timeout(left, waker.notified()).await.is_err() {
                    panic!(
                        "timed out waiting for {:?}; got {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(tail(out))
                    );
                }
            }
            other => panic!("session ended while waiting: {other:?}"),
        }
    }
}

/// Direct children of this process (Linux `/proc`), zombies included.
pub fn child_processes() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            out.push((pid, format!("{} {}", &stat[..=close], fields[0])));
        }
    }
    out
}

pub fn manager(config: sam_agent::SessionConfig) -> Arc<SessionManager> {
    Arc::new(SessionManager::new(Some(test_shell()), config, Arc::new(sam_agent::activity::Activity::new())))
}
