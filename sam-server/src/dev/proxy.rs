//! Routes `ws-<id>.localhost:<port>` to the agent of workspace `<id>` on
//! this machine: reads the request head, picks the agent by `Host`, then
//! pipes bytes both ways (so WebSockets work unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Host name (without port) → agent port.
#[derive(Clone, Debug, Default)]
pub struct Routes(Arc<Mutex<HashMap<String, u16>>>);

impl Routes {
    /// Routes `host` to `port`.
    pub fn insert(&self, host: String, port: u16) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(host, port);
    }

    /// Stops routing `host`.
    pub fn remove(&self, host: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(host);
    }

    /// The agent for `host`: a workspace's own name, or one of its
    /// previews (`p<port>-<its name>`), which the same agent answers.
    pub(super) fn get(&self, host: &str) -> Option<u16> {
        let routes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        routes.get(host).copied().or_else(|| {
            let rest = host.strip_prefix('p')?;
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let workspace = rest.get(digits..)?.strip_prefix('-')?;
            (digits > 0).then(|| routes.get(workspace).copied()).flatten()
        })
    }
}

const MAX_HEAD: usize = 16 * 1024;

pub(super) fn host_of(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    text.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("host").then(|| {
            let value = value.trim();
            value.rsplit_once(':').map_or(value, |(h, _)| h).to_ascii_lowercase()
        })
    })
}

/// Reads a request head (up to the blank line, at most 16 KiB), with
/// whatever of the body came with it.
pub(super) async fn read_head<S: tokio::io::AsyncRead + Unpin>(client: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return None;
        }
    }
    Some(head)
}

/// A complete plain-text response that closes the connection.
pub(super) fn plain_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What answers a host no running workspace has.
pub(super) const NO_WORKSPACE: &str =
    "No running workspace answers at this address. Open the terminal from the dashboard.";

async fn handle(mut client: TcpStream, routes: Routes) {
    let Some(head) = read_head(&mut client).await else { return };
    let Some(port) = host_of(&head).and_then(|h| routes.get(&h)) else {
        let _ = client.write_all(plain_response("404 Not Found", NO_WORKSPACE).as_bytes()).await;
        return;
    };
    let Ok(mut agent) = TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        return;
    };
    if agent.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
}

/// The next connection; `None` after a failed accept (out of descriptors,
/// say), after a pause so a persistent failure does not spin.
pub(super) async fn accept_tcp(listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((socket, _)) => {
            let _ = socket.set_nodelay(true);
            Some(socket)
        }
        Err(error) => {
            tracing::debug!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, routes: Routes) {
    loop {
        if let Some(socket) = accept_tcp(&listener).await {
            tokio::spawn(handle(socket, routes.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_is_found_without_port() {
        let head = b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: WS-abc.localhost:8081\r\n\r\n";
        assert_eq!(host_of(head).as_deref(), Some("ws-abc.localhost"));
        assert_eq!(host_of(b"GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn previews_go_to_their_workspaces_agent() {
        let routes = Routes::default();
        routes.insert("ws-abc.localhost".into(), 4000);
        assert_eq!(routes.get("ws-abc.localhost"), Some(4000));
        assert_eq!(routes.get("p3000-ws-abc.localhost"), Some(4000));
        for other in ["p-ws-abc.localhost", "px-ws-abc.localhost", "p3000ws-abc.localhost", "p3000-ws-abd.localhost"] {
            assert_eq!(routes.get(other), None, "{other}");
        }
    }
}
