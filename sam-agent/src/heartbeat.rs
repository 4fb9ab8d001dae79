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

/// Largest heartbeat answer read.
const MAX_RESPONSE: usize = 16 * 1024;

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

/// Client for the heartbeat endpoint.
#[derive(Debug, Clone)]
pub struct HeartbeatClient {
    http: reqwest::Client,
    url: String,
    credential: SecretString,
}

impl HeartbeatClient {
    /// A client for workspace `id` at `control_plane` (e.g. `https://sam.example.com`).
    pub fn new(control_plane: &str, id: WorkspaceId, credential: SecretString) -> Result<Self, HeartbeatError> {
        crate::ensure_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HeartbeatError::Http(e.to_string()))?;
        Ok(Self {
            http,
            url: format!("{}/api/workspaces/{id}/heartbeat", control_plane.trim_end_matches('/')),
            credential,
        })
    }

    /// Sends one heartbeat.
    pub async fn send(&self, request: &HeartbeatReport) -> Result<HeartbeatAnswer, HeartbeatError> {
        let mut response = self
            .http
            .post(&self.url)
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
