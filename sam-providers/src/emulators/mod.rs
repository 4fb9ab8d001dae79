//! Emulators: real HTTP servers (axum, on random loopback ports) that speak the
//! Hetzner Cloud, Cloudflare DNS and GitHub APIs closely enough that SAM's
//! adapters cannot tell them from the real services. Tests and `sam-server dev`
//! use them instead of cloud accounts.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sam_providers::emulators::{Emulators, Fault, InjectedError};
//! let emu = Emulators::start().await?;
//! println!("hetzner at {}", emu.hetzner.base_url());
//! emu.hetzner.faults().inject("POST", "/v1/servers", Fault::Error(InjectedError::Unavailable), 1);
//! # Ok(()) }
//! ```
//!
//! Each emulator keeps its state behind a cloneable handle
//! ([`HetznerEmulator`], [`CloudflareEmulator`], [`GithubEmulator`]) with
//! methods to inspect and change it, and a [`FaultPlan`] that injects latency,
//! errors (429, 500, 503, Hetzner's `resource_unavailable`) or a dropped
//! response (the request takes effect but the client never sees the answer)
//! per endpoint. A server stops when the last clone of its handle is dropped.
//! Which endpoints each emulator covers is written in its module's doc; every
//! answer, success or error, is checked against the provider's own OpenAPI
//! description by `tests/contracts.rs`, and what an emulator does not cover
//! still answers in the provider's error body.
//!
//! [`Emulators::snapshot`] and [`Emulators::start_from`] keep the emulated
//! world across restarts (`sam-server emulators` writes it to disk), and
//! [`control`] is a loopback HTTP API over running emulators (state, faults,
//! latency, VMs that never start their agent) for programs not written in
//! Rust.

// Handlers pass ready error responses around as `Err`.
#![allow(clippy::result_large_err)]

pub mod body;
pub mod cloudflare;
pub mod control;
pub mod faults;
pub mod github;
pub mod hetzner;

use std::io;
use std::net::SocketAddr;

pub use cloudflare::{CLOUDFLARE_TOKEN, CloudflareEmulator, CloudflareEmulatorConfig, EmulatedRecord};
pub use faults::{Fault, FaultPlan, InjectedError, RecordedRequest};
pub use github::{
    EmulatedInstallation, EmulatedUser, GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET,
    GITHUB_WEBHOOK_SECRET, GithubEmulator, GithubEmulatorConfig, TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM,
    WebhookDelivery,
};
pub use hetzner::{
    EmulatedFirewall, EmulatedFirewallRule, EmulatedServer, FirewallTarget, HETZNER_TOKEN, HetznerEmulator,
    HetznerEmulatorConfig, ServerEvent, ServerHook,
};

/// All three emulators, started together.
#[derive(Debug, Clone)]
pub struct Emulators {
    /// Hetzner Cloud; the adapter's base URL is [`HetznerEmulator::base_url`].
    pub hetzner: HetznerEmulator,
    /// Cloudflare DNS; the adapter's base URL is [`CloudflareEmulator::base_url`].
    pub cloudflare: CloudflareEmulator,
    /// GitHub: web pages and API on one port ([`GithubEmulator::base_url`]).
    pub github: GithubEmulator,
}

impl Emulators {
    /// Starts the three emulators with the given configurations on random
    /// loopback ports.
    pub async fn start_with(
        hetzner: HetznerEmulatorConfig,
        cloudflare: CloudflareEmulatorConfig,
        github: GithubEmulatorConfig,
    ) -> io::Result<Self> {
        Ok(Self {
            hetzner: HetznerEmulator::start(hetzner).await?,
            cloudflare: CloudflareEmulator::start(cloudflare).await?,
            github: GithubEmulator::start(github).await?,
        })
    }

    /// Starts the three emulators with default configurations on random
    /// loopback ports.
    pub async fn start() -> io::Result<Self> {
        Ok(Self {
            hetzner: HetznerEmulator::start(HetznerEmulatorConfig::default()).await?,
            cloudflare: CloudflareEmulator::start(CloudflareEmulatorConfig::default()).await?,
            github: GithubEmulator::start(GithubEmulatorConfig::default()).await?,
        })
    }
}

/// Where each emulator listens, for [`Emulators::start_from`] (port 0: any
/// free port).
#[derive(Debug, Clone, Copy)]
pub struct EmulatorAddresses {
    /// Hetzner's.
    pub hetzner: SocketAddr,
    /// Cloudflare's.
    pub cloudflare: SocketAddr,
    /// GitHub's.
    pub github: SocketAddr,
}

impl Default for EmulatorAddresses {
    fn default() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self { hetzner: any, cloudflare: any, github: any }
    }
}

impl Emulators {
    /// The three emulators' state as one JSON document (see each
    /// emulator's `snapshot`): what `sam-server emulators` keeps on disk.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({"version": 1, "hetzner": self.hetzner.snapshot(),
                           "cloudflare": self.cloudflare.snapshot(), "github": self.github.snapshot()})
    }

    /// Starts the three emulators on `addresses` with the state of an
    /// [`Emulators::snapshot`], if given.
    pub async fn start_from(
        configs: (HetznerEmulatorConfig, CloudflareEmulatorConfig, GithubEmulatorConfig),
        snapshot: Option<serde_json::Value>,
        addresses: EmulatorAddresses,
    ) -> io::Result<Self> {
        let part = |name: &str| snapshot.as_ref().and_then(|s| s.get(name)).filter(|v| !v.is_null()).cloned();
        let (hetzner, cloudflare, github) = configs;
        Ok(Self {
            hetzner: HetznerEmulator::start_from(hetzner, part("hetzner"), addresses.hetzner).await?,
            cloudflare: CloudflareEmulator::start_from(cloudflare, part("cloudflare"), addresses.cloudflare).await?,
            github: GithubEmulator::start_from(github, part("github"), addresses.github).await?,
        })
    }
}

/// Aborts the server task when the last handle is dropped.
#[derive(Debug)]
struct ServerTask(tokio::task::JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `router` on `addr` (port 0: any free port), reading each body
/// (up to 32 MiB) before anything answers.
async fn serve_on(router: axum::Router, addr: SocketAddr) -> io::Result<(SocketAddr, ServerTask)> {
    fn too_large() -> axum::response::Response {
        use axum::response::IntoResponse as _;
        (axum::http::StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
    }
    let first = body::BodyFirst { limit: 32 * 1024 * 1024, too_large };
    let router = router.layer(axum::middleware::from_fn_with_state(first, body::read_first));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::warn!(error = %err, "emulator stopped");
        }
    });
    Ok((addr, ServerTask(task)))
}

/// Renders an error answer the provider's way, from a status and a message.
type ErrorRenderer = fn(axum::http::StatusCode, &str) -> axum::response::Response;

/// Gives every error answer that is not already the provider's (axum's
/// plain-text rejections of a malformed path or query, an empty 405 for a
/// method a route does not take) the provider's own error body, keeping the
/// status and the other headers (`Allow`, `Retry-After`). HTML pages (the
/// emulated GitHub's web flow) pass untouched.
async fn provider_errors(
    axum::extract::State(render): axum::extract::State<ErrorRenderer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let response = next.run(request).await;
    let status = response.status();
    let kind = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if !(status.is_client_error() || status.is_server_error()) || kind.contains("json") || kind.contains("html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = text.unwrap_or_default();
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        text => text.to_owned(),
    };
    let mut rendered = render(status, &message);
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| token.trim().to_owned())
}

/// A simple token bucket for the emulators' rate limits.
#[derive(Debug, Clone)]
struct Bucket {
    remaining: f64,
    last: std::time::Instant,
}

/// Result of taking one request from a bucket.
#[derive(Debug, Clone, Copy)]
struct RateState {
    allowed: bool,
    limit: u32,
    remaining: u32,
    /// Seconds until the bucket is full again.
    reset_in: u64,
    /// Seconds until one request is allowed.
    retry_in: u64,
}

impl Bucket {
    fn new(limit: u32) -> Self {
        Self { remaining: f64::from(limit), last: std::time::Instant::now() }
    }

    fn take(&mut self, limit: u32, refill_per_sec: f64) -> RateState {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * refill_per_sec;
        self.remaining = (self.remaining + refill).min(f64::from(limit));
        self.last = now;
        let allowed = self.remaining >= 1.0;
        if allowed {
            self.remaining -= 1.0;
        }
        let rate = refill_per_sec.max(1e-9);
        let reset_in = ((f64::from(limit) - self.remaining) / rate).ceil();
        let retry_in = if allowed { 0.0 } else { ((1.0 - self.remaining) / rate).ceil() };
        RateState {
            allowed,
            limit,
            remaining: self.remaining.floor().max(0.0) as u32,
            reset_in: reset_in.max(0.0) as u64,
            retry_in: retry_in.max(0.0) as u64,
        }
    }
}
