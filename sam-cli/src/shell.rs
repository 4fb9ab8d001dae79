//! `sam shell`: this terminal attached to a workspace shell over the agent's
//! terminal WebSocket, as the browser page is (`sam_core::terminal`): the
//! local terminal in raw mode (Ctrl-C goes to the remote shell), its size
//! sent on every change, output acknowledged for flow control, and a
//! dropped connection reattached to the same shell at the offset reached
//! (output missed meanwhile is replayed, nothing twice).

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use sam_core::terminal::{ServerControl, close_code};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::api::{Api, loopback_alias};

/// Output acknowledged every this many bytes. Finer than the page's 64
/// KiB: a terminal here has no render pauses to cover, and the agent keeps
/// no less than half again this much on its way, all of which scrolls past
/// after a Ctrl-C.
const ACK_EVERY: u64 = 16 * 1024;
/// Ctrl-] then `d`: detach, leaving the shell for a later `--session`.
const ESCAPE: u8 = 0x1d;

/// The local terminal in raw mode until dropped.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = rustix::stdio::stdin();
        if !rustix::termios::isatty(stdin) {
            return Self(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else { return Self(None) };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).is_err() {
            return Self(None);
        }
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}

/// The local terminal's size (rows, columns), 24×80 when not a terminal.
fn size() -> (u16, u16) {
    match rustix::termios::tcgetwinsize(rustix::stdio::stdout()) {
        Ok(ws) if ws.ws_row > 0 && ws.ws_col > 0 => (ws.ws_row.min(500), ws.ws_col.min(500)),
        _ => (24, 80),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(origin: &reqwest::Url, cookie: &str, session: &str, offset: Option<u64>) -> anyhow::Result<Socket> {
    let (rows, cols) = size();
    let scheme = if origin.scheme() == "https" { "wss" } else { "ws" };
    let host = origin.host_str().context("no host")?;
    let authority = match origin.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut url = format!("{scheme}://{authority}/ws/terminal?session={session}&rows={rows}&cols={cols}&ack=1");
    if let Some(offset) = offset {
        url.push_str(&format!("&offset={offset}"));
    }
    let mut request = url.into_client_request()?;
    let page = origin.as_str().trim_end_matches('/');
    request.headers_mut().insert("origin", HeaderValue::from_str(page)?);
    request.headers_mut().insert("cookie", HeaderValue::from_str(cookie)?);
    let addr = match loopback_alias(origin) {
        Some(addr) => addr,
        None => tokio::net::lookup_host((host, origin.port_or_known_default().unwrap_or(443)))
            .await?
            .next()
            .context("the workspace's name does not resolve")?,
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.context("connecting to the workspace")?;
    let _ = tcp.set_nodelay(true);
    let (socket, _) = tokio_tungstenite::client_async_tls(request, tcp).await?;
    Ok(socket)
}

enum End {
    /// The shell exited, or the workspace stopped: done.
    Done(String),
    /// The user detached; the shell keeps running.
    Detached,
    /// The connection dropped: reattach.
    Dropped,
}

/// Attaches to shell `session` (a new one when `None`) of workspace `id`.
pub async fn attach(
    api: &Api,
    id: sam_core::domain::WorkspaceId,
    session: Option<String>,
) -> anyhow::Result<std::process::ExitCode> {
    let session = session.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let (mut origin, mut cookie) = api.terminal_cookie(id).await?;
    let raw = RawMode::enter();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut received: Option<u64> = None;
    let mut attempts = 0u32;
    let mut escape = false;
    let end = 'attach: loop {
        let mut socket = match connect(&origin, &cookie, &session, received).await {
            Ok(socket) => socket,
            Err(error) => {
                let refused = error.downcast_ref::<tokio_tungstenite::tungstenite::Error>().and_then(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(r) => Some(r.status().as_u16()),
                    _ => None,
                });
                attempts += 1;
                if attempts > 30 {
                    eprintln!("\r\n[sam: the workspace did not answer: {error:#}]");
                    break End::Dropped;
                }
                if refused == Some(401) {
                    (origin, cookie) = api.terminal_cookie(id).await?;
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempts.min(8)))).await;
                continue;
            }
        };
        let mut acked = received.unwrap_or(0);
        let mut input = vec![0u8; 16 * 1024];
        let end = loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        stdout.write_all(&bytes).await?;
                        stdout.flush().await?;
                        let at = received.unwrap_or(0) + bytes.len() as u64;
                        received = Some(at);
                        if at - acked >= ACK_EVERY {
                            acked = at;
                            let ack = format!(r#"{{"type":"ack","offset":{at}}}"#);
                            if socket.send(Message::Text(ack.into())).await.is_err() {
                                break End::Dropped;
                            }
                        }
                    }
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerControl>(&text) {
                        Ok(ServerControl::Hello { offset, resumed, lost_bytes, .. }) => {
                            attempts = 0;
                            if lost_bytes > 0 {
                                stdout.write_all(b"\r\n[sam: output lost while disconnected]\r\n").await?;
                            }
                            if received.is_some() && !resumed {
                                stdout.write_all(b"\r\n[sam: the shell was gone; this is a new one]\r\n").await?;
                            }
                            received = Some(offset);
                            acked = offset;
                        }
                        Ok(ServerControl::IdleWarning { seconds_left, .. }) => {
                            let note = format!("\r\n[sam: the workspace is idle and stops in {} min; type anything to keep it]\r\n", seconds_left.div_ceil(60));
                            stdout.write_all(note.as_bytes()).await?;
                        }
                        Ok(ServerControl::Exit { code }) => {
                            break End::Done(format!("the shell exited{}", code.map(|c| format!(" ({c})")).unwrap_or_default()));
                        }
                        Ok(ServerControl::Shutdown { reason }) => break End::Done(format!("the workspace is stopping ({reason})")),
                        _ => {}
                    },
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.as_ref().map(|f| u16::from(f.code));
                        let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                        break match code {
                            Some(close_code::NORMAL) => End::Done("the shell ended".into()),
                            Some(close_code::GOING_AWAY) => End::Done("the workspace stopped".into()),
                            Some(close_code::TAKEN_OVER) => End::Done("the shell was opened elsewhere".into()),
                            Some(close_code::SIGNED_OUT) => End::Done("the access token was revoked".into()),
                            Some(close_code::TOO_MANY_SESSIONS) => End::Done(reason),
                            _ => End::Dropped,
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break End::Dropped,
                },
                read = stdin.read(&mut input) => {
                    let n = read?;
                    if n == 0 {
                        // Input ended (a pipe): let the shell finish what it got.
                        let _ = socket.send(Message::Text(r#"{"type":"close","after":10}"#.into())).await;
                        break End::Detached;
                    }
                    let chunk = &input[..n];
                    if escape && chunk.first() == Some(&b'd') || chunk.windows(2).any(|w| w == [ESCAPE, b'd']) {
                        break End::Detached;
                    }
                    escape = chunk.last() == Some(&ESCAPE);
                    if socket.send(Message::Binary(chunk.to_vec().into())).await.is_err() {
                        break End::Dropped;
                    }
                }
                _ = winch.recv() => {
                    let (rows, cols) = size();
                    let resize = format!(r#"{{"type":"resize","rows":{rows},"cols":{cols}}}"#);
                    if socket.send(Message::Text(resize.into())).await.is_err() {
                        break End::Dropped;
                    }
                }
            }
        };
        match end {
            End::Dropped => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break 'attach other,
        }
    };
    drop(raw);
    match end {
        End::Done(why) => {
            eprintln!("\r\n[sam: {why}]");
            Ok(std::process::ExitCode::SUCCESS)
        }
        End::Detached => {
            eprintln!("\r\n[sam: detached; `sam shell {id} --session {session}` reattaches within 5 minutes]");
            Ok(std::process::ExitCode::SUCCESS)
        }
        End::Dropped => bail!("the connection to the workspace was lost"),
    }
}
