//! Early answers on kept-alive connections, counted from the client's
//! side: requests with bodies, sent whole on one connection after another,
//! each answer read to its end. Shared by the emulators' tests and the
//! control plane's (`#[path]`).

#![allow(dead_code, clippy::unwrap_used)]

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What happened to `count` requests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Answers read whole.
    pub answered: usize,
    /// Answers that said `Connection: close` (the client then reconnects).
    pub closed: usize,
    /// Requests whose connection broke without notice.
    pub resets: usize,
}

/// Sends `count` requests to `addr` (`host:port`), going round `requests`
/// (`method`, `path`, extra header lines) with a body of each of `sizes`
/// in turn, reusing the connection while the server keeps it.
pub async fn hammer(addr: &str, requests: &[(&str, &str, &str)], sizes: &[usize], count: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for n in 0..count {
        let (method, path, headers) = requests[n % requests.len()];
        let body = "x".repeat(sizes[(n / requests.len()) % sizes.len()]);
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match answer(&mut stream, request.as_bytes()).await {
            Some(close) => {
                outcome.answered += 1;
                if close {
                    outcome.closed += 1;
                    stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                }
            }
            None => {
                outcome.resets += 1;
                stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            }
        }
    }
    outcome
}

/// Sends `request` and reads one answer: `Some(closes)` when it came whole.
async fn answer(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Option<bool> {
    stream.write_all(request).await.ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? != 1 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
    let mut rest = vec![0u8; length];
    stream.read_exact(&mut rest).await.ok()?;
    Some(head.lines().any(|l| l.trim() == "connection: close"))
}
