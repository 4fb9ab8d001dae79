//! Listening sockets: handed over by whoever started the server (systemd
//! socket activation: `LISTEN_FDS`, the sockets from fd 3 on), or bound here.
//!
//! A socket handed over is bound before the server starts and stays bound
//! across a restart, so connections queue instead of being refused while a
//! new version starts; tests use the same path to give a server a port they
//! bound themselves, with no window in which another process could take it.

use anyhow::Context as _;
use tokio::net::TcpListener;

/// The sockets handed over at start.
pub struct Sockets(listenfd::ListenFd);

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets").field("handed_over", &self.0.len()).finish()
    }
}

impl Sockets {
    /// Takes the handed-over sockets from the environment. Call it first in
    /// `main`, before any thread starts: it removes `LISTEN_FDS` and
    /// `LISTEN_PID` from the environment, so children do not inherit them.
    pub fn from_env() -> Self {
        Self(listenfd::ListenFd::from_env())
    }

    /// None handed over (for embedding and tests).
    pub fn none() -> Self {
        Self(listenfd::ListenFd::empty())
    }

    /// The `index`th handed-over socket, if it is a TCP listener; otherwise a
    /// new listener bound to `address`.
    pub async fn tcp(&mut self, index: usize, address: &str) -> anyhow::Result<TcpListener> {
        match self.0.take_tcp_listener(index).with_context(|| format!("the handed-over socket {index}"))? {
            Some(listener) => {
                listener.set_nonblocking(true).context("making the handed-over socket non-blocking")?;
                let listener = TcpListener::from_std(listener).context("using the handed-over socket")?;
                tracing::info!(index, address = ?listener.local_addr().ok(), "listening on a handed-over socket");
                Ok(listener)
            }
            None => TcpListener::bind(address).await.with_context(|| format!("binding {address}")),
        }
    }
}
