//! Heartbeats to the control plane:
//! `POST {control_plane}/api/workspaces/{id}/heartbeat` with the callback
//! credential as a bearer token and `{idleSeconds, activeSessions,
//! lastActivityAt, agentVersion}`; the answer is `{action: continue|warn|
//! shutdown, idleThreshold, shutdownAt}`. `warn` shows the deadline in every
//! open terminal; `shutdown` tells terminals and stops the agent.

use std::sync::Arc;
use std::time::Duration;

use sam_core::domain::WorkspaceId;
use sam_core::secret::SecretString;

use crate::agent::Agent;

/// Largest answer read (a certificate chain fits many times).
const MAX_RESPONSE: usize = 64 * 1024;
/// Longest a heartbeat (or a preview certificate request) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Heartbeat failures.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// Network or HTTP failure.
    #[error("heartbeat request failed: {0}")]
    Http(String),
    /// Non-success status.
    #[error("heartbeat refused with status {0}")]
    Status(u16),
    /// Not the documented answer.
    #[error("malformed heartbeat answer")]
    Malformed,
}

/// What the agent reports and what the control plane answers: one
/// definition for both sides.
pub use sam_core::wire::{HeartbeatAction, HeartbeatAnswer, HeartbeatReport};
use sam_core::wire::{PreviewCertificateAnswer, PreviewCertificateRequest};

/// Client for the heartbeat endpoint.
#[derive(Debug, Clone)]
pub struct HeartbeatClient {
    http: reqwest::Client,
    url: String,
    preview_url: String,
    credential: SecretString,
}

impl HeartbeatClient {
    /// A client for workspace `id` at `control_plane` (e.g. `https://sam.example.com`).
    /// Sends through `http` (the agent's one client, [`crate::http::client`]).
    pub fn new(control_plane: &str, id: WorkspaceId, credential: SecretString, http: reqwest::Client) -> Self {
        Self {
            http,
            url: format!("{}/api/workspaces/{id}/heartbeat", control_plane.trim_end_matches('/')),
            preview_url: format!("{}/api/workspaces/{id}/preview-certificate", control_plane.trim_end_matches('/')),
            credential,
        }
    }

    /// Sends one heartbeat.
    pub async fn send(&self, request: &HeartbeatReport) -> Result<HeartbeatAnswer, HeartbeatError> {
        self.post(&self.url, request).await
    }

    /// Asks for the preview name of a port (and, with a request, its
    /// certificate).
    pub async fn preview_certificate(
        &self,
        request: &PreviewCertificateRequest,
    ) -> Result<PreviewCertificateAnswer, HeartbeatError> {
        self.post(&self.preview_url, request).await
    }

    async fn post<T: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        request: &T,
    ) -> Result<A, HeartbeatError> {
        let mut response = self
            .http
            .post(url)
            .timeout(REQUEST_TIMEOUT)
            .bearer_auth(self.credential.expose())
            .json(request)
            .send()
            .await
            .map_err(|e| HeartbeatError::Http(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(HeartbeatError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| HeartbeatError::Http(e.without_url().to_string()))? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(HeartbeatError::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| HeartbeatError::Malformed)
    }
}

/// The report for `agent` now.
pub fn report(agent: &Agent) -> HeartbeatReport {
    HeartbeatReport {
        idle_seconds: agent.activity.idle().as_secs(),
        active_sessions: u32::try_from(agent.sessions.len()).unwrap_or(u32::MAX),
        last_activity_at: Some(agent.activity.last_activity_at()),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        sign_ins: agent.auth.sign_ins(),
        ports: agent.last_listening_ports(),
    }
}

/// The preview names this agent has: asked for once per port (again after
/// a failure that may pass), at most [`MAX_PREVIEW_HOSTS`].
///
/// [`MAX_PREVIEW_HOSTS`]: sam_core::engine::MAX_PREVIEW_HOSTS
#[derive(Debug, Default)]
struct PreviewNames {
    /// Ports whose name exists (or was refused for good).
    done: std::collections::BTreeSet<u16>,
}

impl PreviewNames {
    async fn ensure(&mut self, agent: &Agent, client: &HeartbeatClient, ports: &[sam_core::wire::ListeningPort]) {
        for port in ports.iter().map(|p| p.port) {
            if self.done.contains(&port) || self.done.len() >= sam_core::engine::MAX_PREVIEW_HOSTS {
                continue;
            }
            match preview_name(agent, client, port).await {
                Ok(hostname) => {
                    tracing::info!(workspace = %agent.workspace(), port, %hostname, "preview name ready");
                    agent.preview_named(port);
                    self.done.insert(port);
                }
                // Refused for good (the limit, a port the names cannot carry,
                // a control plane without previews).
                Err(HeartbeatError::Status(404 | 409 | 422)) => {
                    tracing::warn!(workspace = %agent.workspace(), port, "no preview name for this port");
                    self.done.insert(port);
                }
                Err(error) => {
                    tracing::warn!(workspace = %agent.workspace(), port, %error, "preview name not ready; retried");
                }
            }
        }
    }
}

/// Asks for the preview name of `port` and, serving TLS, a certificate for
/// it (made from a key that stays here), then serves it.
async fn preview_name(agent: &Agent, client: &HeartbeatClient, port: u16) -> Result<String, HeartbeatError> {
    let names = agent.server_names();
    let key_and_request = match &names {
        Some(_) => Some(crate::tls::certificate_request().map_err(|e| HeartbeatError::Http(e.to_string()))?),
        None => None,
    };
    let request = PreviewCertificateRequest { port, csr: key_and_request.as_ref().map(|(_, csr)| csr.clone()) };
    let answer = client.preview_certificate(&request).await?;
    if let (Some(names), Some((key, _)), Some(certificate)) = (names, key_and_request, answer.certificate.as_deref()) {
        names.add(&answer.hostname, certificate, &key).map_err(|e| HeartbeatError::Http(e.to_string()))?;
    }
    Ok(answer.hostname)
}

/// Acts on an answer. Returns true when the agent must stop.
pub fn apply(agent: &Agent, response: &HeartbeatAnswer) -> bool {
    if !response.ended_sign_ins.is_empty() {
        agent.auth.end_sign_ins(&response.ended_sign_ins);
    }
    match response.action {
        HeartbeatAction::Continue => {
            agent.clear_warning();
            false
        }
        HeartbeatAction::Warn => {
            let deadline =
                response.shutdown_at.unwrap_or_else(|| time::OffsetDateTime::now_utc() + Duration::from_secs(300));
            tracing::info!(workspace = %agent.workspace(), %deadline, "idle warning");
            agent.warn_idle(deadline);
            false
        }
        HeartbeatAction::Shutdown => {
            agent.shutdown("idle_timeout");
            true
        }
    }
}

/// How often the listening ports are looked at between heartbeats.
pub const PORT_SCAN_INTERVAL: Duration = Duration::from_secs(3);

/// Heartbeats every `interval` until the agent shuts down (or the control
/// plane says so). Failures are logged and retried at the next tick. The
/// workspace's listening ports are scanned every [`PORT_SCAN_INTERVAL`]; a
/// change is reported at once (so the dashboard lists a new dev server
/// within seconds), at most one extra heartbeat per scan.
pub async fn run(agent: Arc<Agent>, client: HeartbeatClient, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scans = tokio::time::interval(PORT_SCAN_INTERVAL);
    scans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_ports = Vec::new();
    let mut previews = PreviewNames::default();
    agent.await_preview_names();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = scans.tick() => {
                if !agent.is_ready() {
                    continue;
                }
                let Some(scope) = agent.port_scope().await else { continue };
                if agent.listening_ports(scope).await == reported_ports {
                    continue;
                }
            }
            _ = agent.shutdown_requested() => return,
        }
        // Names (and certificates) first, so a port the dashboard lists
        // opens at once.
        previews.ensure(&agent, &client, &agent.last_listening_ports()).await;
        let report = report(&agent);
        reported_ports.clone_from(&report.ports);
        match client.send(&report).await {
            Ok(answer) => {
                if apply(&agent, &answer) {
                    return;
                }
            }
            Err(error) => tracing::warn!(workspace = %agent.workspace(), %error, "heartbeat failed"),
        }
    }
}
