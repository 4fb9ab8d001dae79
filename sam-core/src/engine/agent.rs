//! What the agent and the browser ask of the engine: bootstrap redemption,
//! progress and readiness reports, heartbeats, terminal tokens.

use serde::{Deserialize, Serialize};

use super::idle::idle_decision;
use super::{ACTION_ATTEMPTS, Engine, EngineError, EngineErrorKind};
use crate::domain::{
    BranchName, InstallationId, RepoFullName, Timestamp, UserId, Workspace, WorkspaceEvent, WorkspaceId,
};
use crate::lifecycle::{Event, Reason, WorkspaceStatus};
use crate::ports::{
    Audience, InstallationToken, IssuedToken, OriginCertificateAuthority, ProviderError, ProviderErrorKind,
    StoreErrorKind, TokenRequest, TokenScope,
};
use crate::secret::{SecretString, sha256_hex};
use crate::wire::{
    BootProgress, BootstrapRequest, HeartbeatAction, HeartbeatAnswer, HeartbeatReport, agent_version_matches,
};

/// What a redeemed bootstrap token gives the agent.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapGrant {
    /// The workspace the agent serves.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub workspace_id: WorkspaceId,
    /// Its owner (the only user whose terminal tokens it accepts).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub owner: UserId,
    /// Repository to clone.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "octo-org/hello-world"))]
    pub repository: RepoFullName,
    /// Branch to clone.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub branch: BranchName,
    /// Git URL to clone from (HTTPS; the clone token goes in a header).
    pub clone_url: String,
    /// Installation the clone token was minted from.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub installation_id: InstallationId,
    /// Short-lived GitHub token for the clone; never written to disk.
    #[serde(serialize_with = "expose_secret")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub clone_token: SecretString,
    /// When the clone token expires.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub clone_token_expires_at: Timestamp,
    /// Credential for heartbeats and reports (`aud=workspace-callback`).
    #[serde(serialize_with = "expose_secret")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub callback_token: SecretString,
    /// The workspace's host name.
    pub hostname: String,
    /// Idle threshold in seconds.
    pub idle_threshold: u64,
    /// The certificate (PEM) for `hostname`, signed from the agent's request
    /// by the deployment's origin CA; absent when none was asked for or the
    /// deployment has no origin CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_certificate: Option<String>,
    /// The CA (PEM) of the client certificates the edge presents: the agent
    /// accepts TLS connections only from holders of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_client_ca: Option<String>,
    /// The devcontainer image for a repository without a
    /// `devcontainer.json` (absent: the agent's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_image: Option<String>,
}

fn expose_secret<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

impl From<BootProgress> for AgentReport {
    /// Any failed step fails the boot; `ready` done makes the workspace
    /// running; everything else is progress for the history ("clone done",
    /// "shell done: in the devcontainer 1a2b3c4d5e6f as vscode").
    fn from(progress: BootProgress) -> Self {
        match (progress.step.as_str(), progress.status.as_str()) {
            (_, "failed") => AgentReport::Failed { message: format!("{} failed: {}", progress.step, progress.message) },
            (_, "output") => AgentReport::Output { step: progress.step, lines: progress.message },
            ("ready", "done") => AgentReport::Ready,
            _ if progress.message.trim().is_empty() => {
                AgentReport::Progress { step: format!("{} {}", progress.step, progress.status) }
            }
            _ => AgentReport::Progress {
                step: format!("{} {}: {}", progress.step, progress.status, progress.message.trim()),
            },
        }
    }
}

/// The agent version a workspace's last heartbeat reported.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgentVersion {
    /// What the agent said.
    pub reported: String,
    /// Whether it is the version this control plane serves
    /// ([`EngineConfig::agent_version`](super::EngineConfig::agent_version));
    /// `None` when that is not configured.
    pub current: Option<bool>,
}

/// A report from the agent during bootstrap.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum AgentReport {
    /// A step started or finished ("cloning", "building devcontainer").
    Progress {
        /// The step, for the workspace history.
        step: String,
    },
    /// The latest lines a running step printed (the agent sends them every
    /// few seconds while there is news).
    Output {
        /// The step (`clone`, `devcontainer`, …).
        step: String,
        /// Its last lines.
        lines: String,
    },
    /// The devcontainer is up; terminals can be served.
    Ready,
    /// Bootstrap failed for good.
    Failed {
        /// Why (e.g. the last lines of the devcontainer build).
        message: String,
    },
}

/// A terminal token and where to use it.
#[derive(Clone, Debug)]
pub struct TerminalAccess {
    /// The signed token (`aud=workspace-terminal`).
    pub token: SecretString,
    /// Its expiry.
    pub expires_at: Timestamp,
    /// The agent URL to open: `<workspace origin>/auth/callback?token=…`.
    pub url: String,
}

/// Longest report text kept; longer text is cut, keeping the end (the last
/// lines of a failed build are the useful ones: a failure carries 50).
const MAX_REPORT: usize = 8 * 1024;

/// Sign-ins a heartbeat may ask about (as many as the agent reports).
const MAX_SIGN_INS: usize = 32;

/// Bootstrap redemptions an unavailable Origin CA gets before the workspace
/// fails (each already retried within the step).
pub const ORIGIN_CA_ATTEMPTS: u32 = 3;

/// The stored hash of a bootstrap token; `None` for anything that cannot be
/// one (checked before the store is asked).
fn bootstrap_token_hash(token: &str) -> Option<String> {
    let well_formed = !token.is_empty()
        && token.len() <= 128
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| sha256_hex(token.as_bytes()))
}

/// A boot report for the history of `ws`, which must be being created.
fn boot_event(ws: &mut Workspace, now: Timestamp, event: &str, message: String) -> Result<WorkspaceEvent, EngineError> {
    if ws.status() != WorkspaceStatus::Creating {
        return Err(EngineError::new(EngineErrorKind::InvalidState, "the workspace is not being created"));
    }
    ws.updated_at = now;
    Ok(WorkspaceEvent {
        workspace_id: ws.id,
        from: ws.status(),
        to: ws.status(),
        event: event.into(),
        reason: Reason::Provisioning,
        message: Some(sanitize_report(&message)),
        at: now,
    })
}

fn sanitize_report(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() && c != '\n' { ' ' } else { c }).collect();
    let clean = clean.trim();
    if clean.len() <= MAX_REPORT {
        return clean.to_owned();
    }
    let mut start = clean.len() - MAX_REPORT;
    while !clean.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &clean[start..])
}

impl Engine {
    /// Redeems a bootstrap token once: the agent learns its workspace, gets a
    /// clone token and its callback credential. Unknown, used or expired tokens,
    /// and tokens of workspaces that are no longer being created, are refused
    /// alike (`Unauthorized`).
    pub async fn redeem_bootstrap(&self, token: &str) -> Result<BootstrapGrant, EngineError> {
        self.redeem_bootstrap_with(token, &BootstrapRequest::default()).await
    }

    /// [`Engine::redeem_bootstrap`] with the agent's request: with a CSR and
    /// an [origin CA](Engine::with_origin_ca), the grant carries the
    /// certificate for the workspace's name (recorded on the workspace and
    /// revoked when it is released).
    pub async fn redeem_bootstrap_with(
        &self,
        token: &str,
        request: &BootstrapRequest,
    ) -> Result<BootstrapGrant, EngineError> {
        let refused = || EngineError::new(EngineErrorKind::Unauthorized, "bootstrap token invalid, used or expired");
        let hash = bootstrap_token_hash(token).ok_or_else(refused)?;
        let now = self.now();
        // The token is consumed only once the grant is ready: if GitHub does
        // not issue a clone token now, the agent retries with the same token.
        let Some(grant) = self.ports.store.find_bootstrap_token(&hash, now).await? else {
            return Err(refused());
        };
        let ws = self.ports.store.get_workspace(grant.owner, grant.workspace_id).await?.ok_or_else(refused)?;
        if ws.status() != WorkspaceStatus::Creating {
            tracing::warn!(workspace_id = %ws.id, status = %ws.status(), "bootstrap for a workspace not being created");
            return Err(refused());
        }
        // The clone reads; pushing later goes through the credential helper,
        // which asks for a token of its own.
        let scope = TokenScope { repository: ws.spec.repository.clone(), write: false };
        let clone = self.ports.repos.installation_token(ws.installation_id, &scope).await.map_err(|e| {
            tracing::warn!(workspace_id = %ws.id, error = %e, "installation token failed");
            EngineError::new(EngineErrorKind::Unavailable, "GitHub did not issue a clone token; try again")
        })?;
        let callback = self.ports.tokens.issue(
            TokenRequest {
                audience: Audience::WorkspaceCallback,
                subject: ws.owner,
                workspace: ws.id,
                ttl: self.config.callback_token_ttl,
                session: None,
            },
            now,
        )?;
        let origin_certificate = match (&request.csr, &self.origin_ca) {
            (Some(csr), Some(ca)) => Some(self.issue_origin_certificate(ca.as_ref(), &ws, csr).await?),
            _ => None,
        };
        // Atomic: of concurrent redemptions of one token, one gets here.
        if self.ports.store.redeem_bootstrap_token(&hash, now).await?.is_none() {
            return Err(refused());
        }
        tracing::info!(workspace_id = %ws.id, "bootstrap token redeemed");
        // From now on only this credential speaks for the workspace.
        self.act(ws.owner, ws.id, &Event::AgentCredentialIssued { id: callback.id.clone() }).await?;
        Ok(BootstrapGrant {
            workspace_id: ws.id,
            owner: ws.owner,
            repository: ws.spec.repository.clone(),
            branch: ws.spec.branch.clone(),
            clone_url: format!("{}/{}.git", self.config.git_base_url.trim_end_matches('/'), ws.spec.repository),
            installation_id: ws.installation_id,
            clone_token: clone.token,
            clone_token_expires_at: clone.expires_at,
            callback_token: callback.token,
            hostname: self.config.hostname(&ws.id),
            idle_threshold: self.idle_threshold(&ws).as_secs(),
            origin_certificate,
            edge_client_ca: self.config.edge_client_ca_pem.clone(),
            default_image: self.config.default_devcontainer_image.clone(),
        })
    }

    /// Records a step of the VM's own boot — what cloud-init does before the
    /// agent exists (installing what the image lacks, fetching the agent) —
    /// authenticated by the workspace's bootstrap token, which this does not
    /// spend. A failed step fails the workspace at once, with its output,
    /// instead of at the provisioning timeout; the last step seen is what
    /// that timeout names. Once the agent has redeemed the token, reports
    /// with it are refused (`Unauthorized`): the agent reports from then on.
    pub async fn report_vm_boot(&self, token: &str, progress: BootProgress) -> Result<Workspace, EngineError> {
        let refused = || EngineError::new(EngineErrorKind::Unauthorized, "bootstrap token invalid, used or expired");
        let hash = bootstrap_token_hash(token).ok_or_else(refused)?;
        let grant = self.ports.store.find_bootstrap_token(&hash, self.now()).await?.ok_or_else(refused)?;
        self.report_agent(grant.owner, grant.workspace_id, &AgentReport::from(progress)).await
    }

    /// A fresh token for the workspace's one repository (read, or read and
    /// write), for the git credential helper on its VM; never shared with
    /// another workspace. Only while the workspace is being created or runs:
    /// a stopped or deleted workspace's agent gets nothing.
    pub async fn repository_token(
        &self,
        owner: UserId,
        id: WorkspaceId,
        write: bool,
    ) -> Result<(RepoFullName, InstallationToken), EngineError> {
        let ws = self.get(owner, id).await?;
        if !matches!(ws.status(), WorkspaceStatus::Creating | WorkspaceStatus::Running) {
            return Err(EngineError::new(
                EngineErrorKind::InvalidState,
                format!("workspace is {}: no repository token", ws.status()),
            ));
        }
        let scope = TokenScope { repository: ws.spec.repository.clone(), write };
        let token = self.ports.repos.installation_token(ws.installation_id, &scope).await.map_err(|e| {
            tracing::warn!(workspace_id = %ws.id, kind = e.kind().code(), error = %e, "repository token failed");
            match e.kind() {
                ProviderErrorKind::NotFound
                | ProviderErrorKind::Unauthorized
                | ProviderErrorKind::Forbidden
                | ProviderErrorKind::InvalidConfig => {
                    EngineError::new(
                        EngineErrorKind::Precondition,
                        "GitHub no longer grants this workspace's repository (was the app uninstalled or the repository removed from it?)",
                    )
                }
                _ => EngineError::new(EngineErrorKind::Unavailable, "GitHub did not issue a token; try again"),
            }
        })?;
        tracing::info!(workspace_id = %ws.id, write, "repository token issued");
        Ok((ws.spec.repository, token))
    }

    /// Has the origin CA sign the agent's request for the workspace's name
    /// and records the certificate on the workspace (revoking it again if
    /// that fails, so none is left that nobody will revoke).
    async fn issue_origin_certificate(
        &self,
        ca: &dyn OriginCertificateAuthority,
        ws: &Workspace,
        csr: &str,
    ) -> Result<String, EngineError> {
        if csr.len() > 16 * 1024 || !csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----") {
            return Err(EngineError {
                kind: EngineErrorKind::Invalid,
                message: "csr must be a PEM certificate request".into(),
                field: Some("csr"),
            });
        }
        let hostname = self.config.hostname(&ws.id);
        let issued = super::retry::with_retry(self.config.retry, "issue_origin_certificate", ws.id, || {
            super::metered::metered("origin_ca", "issue_origin_certificate", ca.issue(csr, &hostname))
        })
        .await;
        let issued = match issued {
            Ok(issued) => {
                crate::sync::lock(&self.origin_ca_failures).remove(&ws.id);
                issued
            }
            Err(e) => return Err(self.origin_ca_failed(ws, &hostname, &e).await),
        };
        let event = Event::OriginCertificateIssued { id: issued.id.clone() };
        if let Err(e) = self.act(ws.owner, ws.id, &event).await {
            if let Err(revoke) = ca.revoke(&issued.id).await {
                tracing::warn!(workspace_id = %ws.id, error = %revoke, "revoking an unrecorded origin certificate failed");
            }
            return Err(e);
        }
        tracing::info!(workspace_id = %ws.id, certificate = %issued.id, "origin certificate issued");
        Ok(issued.certificate_pem)
    }

    /// The answer to an agent whose certificate was not issued (after the
    /// step's retries). A refusal (a permission, a name outside the zone)
    /// will not go away by itself: the workspace fails now, with what the
    /// operator must fix. An unavailable or rate-limiting Origin CA gets
    /// the agent's own retries, [`ORIGIN_CA_ATTEMPTS`] redemptions in all,
    /// before the workspace fails. Failing releases what was made (server,
    /// record, any certificate) like any provisioning failure.
    async fn origin_ca_failed(&self, ws: &Workspace, hostname: &str, e: &ProviderError) -> EngineError {
        use crate::ports::ProviderErrorKind as K;
        tracing::warn!(workspace_id = %ws.id, error = %e, "origin certificate not issued");
        let passing = matches!(e.kind(), K::Transient | K::RateLimited { .. });
        let attempts = {
            let mut failures = crate::sync::lock(&self.origin_ca_failures);
            let n = failures.entry(ws.id).or_insert(0);
            *n += 1;
            *n
        };
        if passing && attempts < ORIGIN_CA_ATTEMPTS {
            return EngineError::new(
                EngineErrorKind::Unavailable,
                "the origin CA did not issue a certificate; try again",
            );
        }
        crate::sync::lock(&self.origin_ca_failures).remove(&ws.id);
        let message = super::messages::origin_ca_failure(e, hostname);
        if let Err(failed) = self.act(ws.owner, ws.id, &Event::ProvisioningFailed { message }).await {
            tracing::warn!(workspace_id = %ws.id, error = %failed, "recording the certificate failure failed");
        }
        EngineError::new(EngineErrorKind::InvalidState, "the workspace failed: no certificate for its name")
    }

    /// Records a bootstrap report from the agent of `id` (authenticated by its
    /// callback credential). `Ready` twice is fine.
    pub async fn report_agent(
        &self,
        owner: UserId,
        id: WorkspaceId,
        report: &AgentReport,
    ) -> Result<Workspace, EngineError> {
        for _ in 0..ACTION_ATTEMPTS {
            let mut ws = self.get(owner, id).await?;
            let now = self.now();
            // Entering `creating` (create or restart) until ready.
            let provisioning_started = (ws.status() == WorkspaceStatus::Creating).then_some(ws.status_changed_at);
            let entry = match report {
                AgentReport::Ready if ws.status() == WorkspaceStatus::Running => return Ok(ws),
                AgentReport::Ready => ws.apply(&Event::AgentReady, now)?.0,
                AgentReport::Failed { message } => {
                    let message = format!("The workspace failed to start: {}", sanitize_report(message));
                    ws.apply(&Event::ProvisioningFailed { message }, now)?.0
                }
                AgentReport::Progress { step } => boot_event(&mut ws, now, "agent_progress", step.clone())?,
                // The step on the first line, its output below.
                AgentReport::Output { step, lines } => {
                    boot_event(&mut ws, now, "agent_output", format!("{step}\n{lines}"))?
                }
            };
            match self.ports.store.update_workspace(&ws, &[entry]).await {
                Ok(saved) => {
                    tracing::info!(workspace_id = %id, report = ?report, status = %saved.status(), "agent report");
                    if let Some(started) = provisioning_started
                        && saved.status() == WorkspaceStatus::Running
                    {
                        let seconds = (now - started).as_seconds_f64().max(0.0);
                        metrics::histogram!(crate::metrics::PROVISIONING_DURATION).record(seconds);
                    }
                    return Ok(saved);
                }
                Err(e) if e.kind() == StoreErrorKind::StaleVersion => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::new(EngineErrorKind::Unavailable, "the workspace is changing too quickly; try again"))
    }

    /// The idle countdown of a running workspace (`None` in any other
    /// status): its last activity, or the moment it became running if that
    /// is later, plus its threshold.
    pub fn idle_window(&self, ws: &Workspace) -> Option<super::IdleWindow> {
        if ws.status() != WorkspaceStatus::Running {
            return None;
        }
        let threshold = self.idle_threshold(ws);
        let last = ws.last_activity_at.map_or(ws.status_changed_at, |at| at.max(ws.status_changed_at));
        let stop_at = last + threshold;
        Some(super::IdleWindow { threshold, warn_at: stop_at - self.config.idle_warning, stop_at })
    }

    /// The user says they are still there (the dashboard's "I'm still
    /// here"): counts as activity of running workspace `id` now, as a
    /// keystroke would. Its agent learns it with its next heartbeat (whose
    /// answer then clears the warning in its terminals).
    pub async fn record_user_activity(&self, owner: UserId, id: WorkspaceId) -> Result<Workspace, EngineError> {
        let ws = self.get(owner, id).await?;
        if ws.status() != WorkspaceStatus::Running {
            return Err(EngineError::new(
                EngineErrorKind::InvalidState,
                format!("The workspace is {}; only a running workspace can be kept running.", ws.status()),
            ));
        }
        let now = self.now();
        // Not a heartbeat: the agent's last one stays the last one.
        let heartbeat = ws.last_heartbeat_at.unwrap_or(ws.status_changed_at);
        if !self.ports.store.record_heartbeat(owner, id, heartbeat, now).await? {
            return Err(EngineError::not_found());
        }
        tracing::info!(workspace_id = %id, "the user is still there");
        self.get(owner, id).await
    }

    /// The idle threshold of a workspace.
    pub fn idle_threshold(&self, ws: &Workspace) -> std::time::Duration {
        ws.idle_timeout_secs.map(|s| std::time::Duration::from_secs(u64::from(s))).unwrap_or(self.config.idle_timeout)
    }

    /// Of the sign-ins an agent's terminals were opened under, those that are
    /// over (signed out, expired, or never the owner's): the agent ends
    /// their terminal sessions. Each is a session hash, looked up as is.
    async fn ended_sign_ins(
        &self,
        owner: UserId,
        sign_ins: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>, EngineError> {
        let mut ended = Vec::new();
        for sign_in in sign_ins.iter().take(MAX_SIGN_INS) {
            let plausible = sign_in.len() == 64 && sign_in.bytes().all(|b| b.is_ascii_hexdigit());
            let store = &self.ports.store;
            // A browser's sign-in, or a program's personal access token.
            let live = plausible
                && (store.get_session(sign_in, now).await?.is_some_and(|session| session.user_id == owner)
                    || store.find_access_token(sign_in, now).await?.is_some_and(|token| token.user_id == owner));
            if !live {
                ended.push(sign_in.clone());
            }
        }
        Ok(ended)
    }

    /// Records a heartbeat and answers it: `continue`, `warn` with the deadline,
    /// or `shutdown` (and then the workspace is already `stopping`: the caller
    /// should [`drive`](Engine::drive) it).
    pub async fn record_heartbeat(
        &self,
        owner: UserId,
        id: WorkspaceId,
        report: HeartbeatReport,
    ) -> Result<HeartbeatAnswer, EngineError> {
        let ws = self.get(owner, id).await?;
        self.record_heartbeat_of(ws, report).await
    }

    /// [`record_heartbeat`](Self::record_heartbeat) for a workspace the
    /// caller has just read (to authenticate its agent): one store read per
    /// heartbeat instead of two.
    pub async fn record_heartbeat_of(
        &self,
        ws: Workspace,
        report: HeartbeatReport,
    ) -> Result<HeartbeatAnswer, EngineError> {
        let (owner, id) = (ws.owner, ws.id);
        let now = self.now();
        let threshold = self.idle_threshold(&ws);
        // Becoming ready counts as activity, so a restarted workspace is never
        // stopped for idleness it had before.
        let idle = std::time::Duration::from_secs(report.idle_seconds.min(10 * 365 * 24 * 3600));
        // The user may have said they are still there on the dashboard
        // since (recorded activity the agent does not know about).
        let recorded = ws.last_activity_at.unwrap_or(ws.status_changed_at);
        let last_activity = (now - idle).max(ws.status_changed_at).max(recorded);
        let ended_sign_ins = self.ended_sign_ins(owner, &report.sign_ins, now).await?;
        let answer = |action, shutdown_at| HeartbeatAnswer {
            action,
            idle_threshold: threshold.as_secs(),
            shutdown_at,
            ended_sign_ins: ended_sign_ins.clone(),
        };
        match ws.status() {
            WorkspaceStatus::Running | WorkspaceStatus::Creating => {}
            _ => {
                self.forget_terminal_sessions(id);
                return Ok(answer(HeartbeatAction::Shutdown, None));
            }
        }
        if !self.ports.store.record_heartbeat(owner, id, now, last_activity).await? {
            self.forget_terminal_sessions(id);
            return Err(EngineError::not_found());
        }
        self.note_terminal_sessions(id, report.active_sessions, now);
        self.note_listening_ports(id, report.ports);
        if let Some(version) = report.agent_version {
            self.note_agent_version(id, version);
        }
        if ws.status() == WorkspaceStatus::Running && ws.lifecycle.reason == Reason::AgentUnreachable {
            match self.act(owner, id, &Event::AgentBack).await {
                Ok(_) => tracing::info!(workspace_id = %id, "a silent agent reports again"),
                Err(e) if e.kind == EngineErrorKind::InvalidState => {}
                Err(e) => return Err(e),
            }
        }
        if ws.status() == WorkspaceStatus::Creating {
            return Ok(answer(HeartbeatAction::Continue, None));
        }
        let (action, deadline) = idle_decision(now, last_activity, threshold, self.config.idle_warning);
        match action {
            HeartbeatAction::Shutdown => {
                self.forget_terminal_sessions(id);
                match self.act(owner, id, &Event::IdleTimeout).await {
                    Ok(_) => tracing::info!(workspace_id = %id, "idle timeout; stopping"),
                    Err(e) if e.kind == EngineErrorKind::InvalidState => {}
                    Err(e) => return Err(e),
                }
                Ok(answer(HeartbeatAction::Shutdown, Some(deadline)))
            }
            HeartbeatAction::Warn => Ok(answer(HeartbeatAction::Warn, Some(deadline))),
            HeartbeatAction::Continue => Ok(answer(HeartbeatAction::Continue, None)),
        }
    }

    /// Where the browser (and the agent probe) reaches the workspace.
    pub fn workspace_url(&self, ws: &Workspace) -> String {
        self.config.workspace_url_template.replace("{host}", &self.config.hostname(&ws.id))
    }

    /// A short-lived token for `audience` (a terminal, a preview) of
    /// workspace `id`, issued to `owner` under the sign-in `session`.
    pub(super) fn issue_workspace_token(
        &self,
        audience: Audience,
        owner: UserId,
        id: WorkspaceId,
        session: Option<&str>,
    ) -> Result<IssuedToken, EngineError> {
        let request = TokenRequest {
            audience,
            subject: owner,
            workspace: id,
            ttl: self.config.terminal_token_ttl,
            session: session.map(str::to_owned),
        };
        Ok(self.ports.tokens.issue(request, self.now())?)
    }

    /// A short-lived token for opening the terminal of a running workspace,
    /// under the sign-in `session` (its hash), which the agent checks with
    /// its heartbeats: when that sign-in ends, so do its terminals' cookies
    /// and connections.
    pub async fn issue_terminal_token(
        &self,
        owner: UserId,
        id: WorkspaceId,
        session: Option<&str>,
    ) -> Result<TerminalAccess, EngineError> {
        let ws = self.get(owner, id).await?;
        if ws.status() != WorkspaceStatus::Running {
            return Err(EngineError::new(
                EngineErrorKind::InvalidState,
                format!("The workspace is {}; start it first.", ws.status()),
            ));
        }
        let issued = self.issue_workspace_token(Audience::WorkspaceTerminal, owner, id, session)?;
        let origin = self.workspace_url(&ws);
        let url = format!("{origin}/auth/callback?token={}", issued.token.expose());
        Ok(TerminalAccess { token: issued.token, expires_at: issued.expires_at, url })
    }

    /// Remembers the open terminal sessions a heartbeat reported and updates
    /// the sessions gauge.
    fn note_terminal_sessions(&self, id: WorkspaceId, sessions: u32, at: Timestamp) {
        let mut seen = crate::sync::lock(&self.terminal_sessions);
        seen.insert(id, (sessions, at));
        publish_terminal_sessions(&seen);
    }

    /// The agent version workspace `id` last reported to this engine, and
    /// whether it is the one this control plane serves.
    pub fn agent_version(&self, id: WorkspaceId) -> Option<AgentVersion> {
        let reported = crate::sync::lock(&self.agent_versions).get(&id).cloned()?;
        let current = agent_version_matches(Some(&reported), self.config.agent_version.as_deref());
        Some(AgentVersion { reported, current })
    }

    /// Remembers the reported agent version; a change to a version other
    /// than the served one is logged once.
    fn note_agent_version(&self, id: WorkspaceId, version: String) {
        let mut seen = crate::sync::lock(&self.agent_versions);
        if seen.get(&id) == Some(&version) {
            return;
        }
        if agent_version_matches(Some(&version), self.config.agent_version.as_deref()) == Some(false) {
            tracing::warn!(
                workspace_id = %id,
                agent_version = %version,
                served_version = ?self.config.agent_version,
                "the workspace's agent is not the version this control plane serves"
            );
        }
        seen.insert(id, version);
    }

    /// Remembers the listening ports a heartbeat reported (at most
    /// [`MAX_LISTENING_PORTS`](crate::wire::MAX_LISTENING_PORTS), valid ones,
    /// each once, lowest first).
    fn note_listening_ports(&self, id: WorkspaceId, mut ports: Vec<crate::wire::ListeningPort>) {
        ports.retain(|p| p.port > 0);
        ports.sort_by_key(|p| p.port);
        ports.dedup_by_key(|p| p.port);
        ports.truncate(crate::wire::MAX_LISTENING_PORTS);
        for port in &mut ports {
            port.process = port
                .process
                .take()
                .map(|name| name.chars().filter(|c| !c.is_control()).take(64).collect::<String>())
                .filter(|name| !name.is_empty());
        }
        let mut seen = crate::sync::lock(&self.listening_ports);
        if ports.is_empty() {
            seen.remove(&id);
        } else {
            seen.insert(id, ports);
        }
    }

    /// The ports workspace `id`'s processes listen on, as its last
    /// heartbeat to this engine reported (empty when none did).
    pub fn listening_ports(&self, id: WorkspaceId) -> Vec<crate::wire::ListeningPort> {
        crate::sync::lock(&self.listening_ports).get(&id).cloned().unwrap_or_default()
    }

    /// Forgets a workspace's sessions (it stopped or is gone).
    fn forget_terminal_sessions(&self, id: WorkspaceId) {
        crate::sync::lock(&self.agent_versions).remove(&id);
        crate::sync::lock(&self.listening_ports).remove(&id);
        let mut seen = crate::sync::lock(&self.terminal_sessions);
        if seen.remove(&id).is_some() {
            publish_terminal_sessions(&seen);
        }
    }

    /// Keeps only the sessions of workspaces in `live` heard from within the
    /// heartbeat timeout (the reconciler calls this every pass).
    pub(crate) fn prune_terminal_sessions(&self, live: impl Fn(WorkspaceId) -> bool, now: Timestamp) {
        let mut seen = crate::sync::lock(&self.terminal_sessions);
        let timeout = self.config.heartbeat_timeout;
        seen.retain(|id, (_, at)| live(*id) && now - *at < timeout);
        publish_terminal_sessions(&seen);
        crate::sync::lock(&self.agent_versions).retain(|id, _| seen.contains_key(id));
        crate::sync::lock(&self.listening_ports).retain(|id, _| seen.contains_key(id));
    }
}

fn publish_terminal_sessions(seen: &std::collections::HashMap<WorkspaceId, (u32, Timestamp)>) {
    let total: u64 = seen.values().map(|(n, _)| u64::from(*n)).sum();
    metrics::gauge!(crate::metrics::TERMINAL_SESSIONS).set(total as f64);
}
