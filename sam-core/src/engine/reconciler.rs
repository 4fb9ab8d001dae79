//! The reconciler: one pass looks at every workspace that may need work,
//! enforces deadlines, retries failed steps, and deletes orphans (servers and
//! DNS records that belong to no live workspace) after a grace period. Safe to
//! run in several replicas at once: every workspace is handled under its lease,
//! and reading needs no lease, so a pass with nothing to do writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::driver::lease_key;
use super::idle::idle_decision;
use super::messages;
use super::{Engine, EngineError};
use crate::domain::{ServerId, Timestamp, UserId, Workspace, WorkspaceId};
use crate::lifecycle::{Event, Reason, WorkspaceStatus};
use crate::ports::{Audience, DnsRecord, LABEL_DEPLOYMENT, Server, TokenRequest, WorkspaceScan};
use crate::secret::SecretString;
use crate::wire::HeartbeatAction;

/// What one reconciler pass did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReconcileReport {
    /// Workspaces looked at.
    pub scanned: u64,
    /// Workspaces that needed work and were driven.
    pub driven: u64,
    /// Workspaces skipped because another engine holds their lease.
    pub busy: u64,
    /// Provisioning deadlines enforced.
    pub provision_timeouts: u64,
    /// Idle stops.
    pub idle_stops: u64,
    /// Running workspaces released after their agent stayed silent for the
    /// unreachable timeout, or whose server is gone.
    pub heartbeat_losses: u64,
    /// Running workspaces newly marked "agent unreachable" (kept).
    pub marked_unreachable: u64,
    /// Workspaces stuck in `stopping` beyond the stop timeout (still retried).
    pub stuck_stopping: u64,
    /// Orphan servers deleted.
    pub orphan_servers_deleted: u64,
    /// Orphan DNS records deleted.
    pub orphan_records_deleted: u64,
    /// Servers and records of this deployment's workspaces made before they
    /// carried the deployment's id, now marked with it.
    pub adopted: u64,
    /// Steps that failed and will be retried next pass.
    pub failures: u64,
}

impl ReconcileReport {
    /// Whether the pass changed anything.
    pub fn changed_anything(&self) -> bool {
        self.driven + self.orphan_servers_deleted + self.orphan_records_deleted + self.adopted > 0
    }
}

/// What the reconciler decided for one workspace.
#[derive(Clone, Debug)]
enum Decision {
    Drive(Option<Event>),
    /// Heartbeats are overdue: look for evidence of life.
    CheckAgent,
}

/// What a live workspace may legitimately own at the provider.
#[derive(Clone, Debug)]
struct Ownership {
    status: WorkspaceStatus,
    server: Option<ServerId>,
    has_dns: bool,
}

/// A probe token's lifetime: one request, sent at once.
const PROBE_TOKEN_TTL: Duration = Duration::from_secs(60);

const STATUSES: [WorkspaceStatus; 5] = [
    WorkspaceStatus::Creating,
    WorkspaceStatus::Running,
    WorkspaceStatus::Stopping,
    WorkspaceStatus::Error,
    WorkspaceStatus::Deleting,
];

impl Engine {
    fn decide(&self, ws: &Workspace, now: Timestamp, report: &mut ReconcileReport) -> Option<Decision> {
        let lc = &ws.lifecycle;
        // Absence of evidence is not evidence: while no control plane ran
        // (before this engine started) no heartbeat could arrive and no step
        // could run, so deadlines count from the start at the earliest. After
        // a restart, agents are judged only a full timeout later, by which
        // time their heartbeats (every 30 s) have resumed.
        let since = |t: Timestamp| t.max(self.started_at);
        match lc.status {
            WorkspaceStatus::Creating => {
                if now - since(ws.status_changed_at) >= self.config.provision_timeout {
                    return Some(Decision::Drive(Some(Event::ProvisioningTimedOut { message: timeout_message(ws) })));
                }
                (lc.server.is_none() || lc.dns_record.is_none()).then_some(Decision::Drive(None))
            }
            WorkspaceStatus::Running => {
                // A silent agent is not evidence of an idle user: idleness
                // is judged on the agent's own reports (or, once silent, on
                // its answer to a direct probe), never on the silence.
                let silent_for = now - since(last_heard(ws));
                if silent_for >= self.config.heartbeat_timeout {
                    let checked = crate::sync::lock(&self.agents_checked).get(&ws.id).copied();
                    let due = silent_for >= self.config.unreachable_timeout
                        || checked.is_none_or(|at| now - at >= self.config.heartbeat_timeout);
                    return due.then_some(Decision::CheckAgent);
                }
                // The agent's own report of activity counts once it has
                // reported to this engine; before that, idle time counts
                // from the start.
                let reported = ws.last_heartbeat_at.is_some_and(|at| at >= self.started_at);
                let last_activity = ws.last_activity_at.unwrap_or(ws.status_changed_at).max(ws.status_changed_at);
                let last_activity = if reported { last_activity } else { since(last_activity) };
                let (action, _) = idle_decision(now, last_activity, self.idle_threshold(ws), self.config.idle_warning);
                (action == HeartbeatAction::Shutdown).then_some(Decision::Drive(Some(Event::IdleTimeout)))
            }
            WorkspaceStatus::Stopping => {
                if now - ws.status_changed_at >= self.config.stop_timeout {
                    report.stuck_stopping += 1;
                    tracing::warn!(workspace_id = %ws.id, "workspace stuck in stopping; cleanup keeps being retried");
                }
                Some(Decision::Drive(None))
            }
            WorkspaceStatus::Deleting => Some(Decision::Drive(None)),
            WorkspaceStatus::Error if lc.holds_resources() => Some(Decision::Drive(None)),
            _ => None,
        }
    }

    /// One reconciler pass over every workspace and every connected cloud
    /// account.
    ///
    /// Also publishes the [workspaces-per-status](crate::metrics::WORKSPACES)
    /// gauge (as scanned at the start of the pass) and records the pass's
    /// duration.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, EngineError> {
        let started = std::time::Instant::now();
        let result = self.reconcile_pass().await;
        metrics::histogram!(crate::metrics::RECONCILER_PASS_DURATION).record(started.elapsed().as_secs_f64());
        result
    }

    async fn reconcile_pass(&self) -> Result<ReconcileReport, EngineError> {
        let mut report = ReconcileReport::default();
        let mut owned: HashMap<WorkspaceId, Ownership> = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .ports
                .store
                .scan_workspaces(&WorkspaceScan {
                    statuses: STATUSES.to_vec(),
                    after,
                    limit: self.config.scan_page_size,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let now = self.now();
            for ws in page {
                report.scanned += 1;
                owned.insert(
                    ws.id,
                    Ownership {
                        status: ws.status(),
                        server: ws.lifecycle.server.as_ref().map(|s| s.id.clone()),
                        has_dns: ws.lifecycle.dns_record.is_some(),
                    },
                );
                if self.decide(&ws, now, &mut report).is_some() {
                    self.handle(ws, &mut report).await;
                }
            }
        }
        let live = |id| {
            owned.get(&id).is_some_and(|o| matches!(o.status, WorkspaceStatus::Creating | WorkspaceStatus::Running))
        };
        self.prune_terminal_sessions(live, self.now());
        crate::sync::lock(&self.agents_checked).retain(|id, _| live(*id));
        // One aggregate rather than also reading every pending and stopped
        // row, which the pass has nothing to do with.
        let counts = self.ports.store.count_workspaces_by_status().await?;
        for status in WorkspaceStatus::ALL {
            let count = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            metrics::gauge!(crate::metrics::WORKSPACES, "status" => status.as_str()).set(count as f64);
        }
        self.sweep_orphan_servers(&owned, &mut report).await?;
        self.sweep_orphan_records(&owned, &mut report).await?;
        if report.changed_anything() || report.failures > 0 {
            tracing::info!(?report, "reconciler pass");
        }
        Ok(report)
    }

    async fn handle(&self, ws: Workspace, report: &mut ReconcileReport) {
        let key = lease_key(ws.id);
        let holder = self.holder("reconciler");
        match self.ports.store.try_acquire_lease(&key, &holder, self.config.lease_ttl, self.now()).await {
            Ok(true) => {}
            Ok(false) => {
                report.busy += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "lease unavailable");
                report.failures += 1;
                return;
            }
        }
        // Re-decide on a fresh read: the snapshot may be stale by now.
        let decision = match self.ports.store.get_workspace(ws.owner, ws.id).await {
            Ok(Some(fresh)) => self.decide(&fresh, self.now(), &mut ReconcileReport::default()).map(|d| (fresh, d)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "re-read failed");
                report.failures += 1;
                None
            }
        };
        if let Some((fresh, decision)) = decision {
            let (planned, event) = match decision {
                Decision::Drive(Some(Event::ProvisioningTimedOut { message })) => (
                    true,
                    Some(Event::ProvisioningTimedOut { message: self.with_last_boot_step(&fresh, message).await }),
                ),
                Decision::Drive(event) => (true, event),
                Decision::CheckAgent => (false, self.check_agent(&fresh).await),
            };
            match &event {
                Some(Event::ProvisioningTimedOut { .. }) => report.provision_timeouts += 1,
                Some(Event::IdleTimeout) => report.idle_stops += 1,
                Some(Event::AgentUnreachable | Event::ServerGone) => report.heartbeat_losses += 1,
                Some(Event::AgentSilent { .. }) => report.marked_unreachable += 1,
                _ => {}
            }
            if planned || event.is_some() {
                report.driven += 1;
                match self.drive_leased(fresh.owner, fresh.id, &key, &holder, event).await {
                    Ok(super::DriveOutcome::Settled(after)) if needs_more(&after) => report.failures += 1,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(workspace_id = %fresh.id, error = %e, "drive failed");
                        report.failures += 1;
                    }
                }
            }
        }
        if let Err(e) = self.ports.store.release_lease(&key, &holder).await {
            tracing::warn!(workspace_id = %ws.id, error = %e, "lease release failed; it will expire");
        }
    }

    /// `message` with the last boot step the VM or its agent reported in
    /// this boot ("Last seen: agent-start running."), or that none was:
    /// the difference between a VM that never booted and an agent stuck
    /// on a step.
    async fn with_last_boot_step(&self, ws: &Workspace, message: String) -> String {
        if ws.lifecycle.server.is_none() || ws.lifecycle.dns_record.is_none() {
            return message;
        }
        let events = match self.ports.store.list_workspace_events(ws.owner, ws.id).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "the boot history is unreadable");
                return message;
            }
        };
        // This boot: from the last time the workspace entered `creating`.
        let boot =
            events.iter().rposition(|e| e.to == WorkspaceStatus::Creating && e.from != WorkspaceStatus::Creating);
        let last = events[boot.unwrap_or(0)..]
            .iter()
            .rev()
            .find(|e| e.event == "agent_progress")
            .and_then(|e| e.message.as_deref());
        match last {
            Some(step) => format!("{message} Last seen: {step}."),
            None => format!(
                "{message} Nothing was heard from the VM: it did not boot, or could not reach this control plane."
            ),
        }
    }

    /// A running workspace's heartbeats are overdue: looks for positive
    /// evidence before judging. The server gone at the provider releases
    /// the workspace; an agent that answers a direct probe is alive (and
    /// judged idle only by its own answer); otherwise the workspace is
    /// marked unreachable and kept, and released only once it has been
    /// silent for the whole unreachable timeout.
    async fn check_agent(&self, ws: &Workspace) -> Option<Event> {
        crate::sync::lock(&self.agents_checked).insert(ws.id, self.now());
        let token = self.cloud_token(ws.owner).await.ok()?;
        let server = ws.lifecycle.server.as_ref()?;
        let status = match self.compute.get_server(&token, &server.id).await {
            Ok(Some(server)) => server.status,
            Ok(None) => {
                tracing::warn!(workspace_id = %ws.id, "server no longer exists");
                return Some(Event::ServerGone);
            }
            Err(e) => {
                tracing::warn!(workspace_id = %ws.id, error = %e, "server check failed; will retry");
                return None;
            }
        };
        let marked = ws.lifecycle.reason == Reason::AgentUnreachable;
        let url = self.workspace_url(ws);
        let now = self.now();
        if let Some(probe) = &self.probe {
            let request = TokenRequest {
                audience: Audience::WorkspaceProbe,
                subject: ws.owner,
                workspace: ws.id,
                ttl: PROBE_TOKEN_TTL,
                session: None,
            };
            let answer = match self.ports.tokens.issue(request, now) {
                Ok(issued) => probe.health(&url, &issued.token).await,
                Err(e) => Err(crate::ports::ProviderError::new(
                    crate::ports::ProviderErrorKind::InvalidConfig,
                    format!("no probe token: {e}"),
                )),
            };
            match answer {
                Ok(health) => {
                    if marked {
                        tracing::info!(workspace_id = %ws.id, "a silent agent answers its health check again");
                        return Some(Event::AgentBack);
                    }
                    tracing::warn!(
                        workspace_id = %ws.id,
                        "the agent answers its health check but its heartbeats do not arrive"
                    );
                    let idle = Duration::from_secs(health.idle_seconds.min(10 * 365 * 24 * 3600));
                    let last_activity = (now - idle).max(ws.status_changed_at);
                    let (action, _) =
                        idle_decision(now, last_activity, self.idle_threshold(ws), self.config.idle_warning);
                    return (action == HeartbeatAction::Shutdown).then_some(Event::IdleTimeout);
                }
                Err(e) => tracing::debug!(workspace_id = %ws.id, error = %e, "no answer from the agent"),
            }
        }
        let silent_since = last_heard(ws).max(self.started_at);
        if now - silent_since >= self.config.unreachable_timeout {
            tracing::warn!(workspace_id = %ws.id, "agent silent for the whole unreachable timeout; releasing");
            return Some(Event::AgentUnreachable);
        }
        if marked {
            return None;
        }
        tracing::warn!(workspace_id = %ws.id, server_status = ?status, "agent unreachable; the workspace is kept");
        let release_at = silent_since + self.config.unreachable_timeout;
        Some(Event::AgentSilent { message: messages::agent_silent(last_heard(ws), &url, status, release_at) })
    }

    async fn sweep_orphan_servers(
        &self,
        owned: &HashMap<WorkspaceId, Ownership>,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let credentials = self.ports.store.list_all_credentials(self.ports.compute.credential_kind()).await?;
        let mut users: HashSet<UserId> = HashSet::new();
        for credential in credentials {
            if !users.insert(credential.user_id) {
                continue;
            }
            let key = format!("orphans:{}", credential.user_id);
            let holder = self.holder("reconciler");
            if !self.ports.store.try_acquire_lease(&key, &holder, self.config.lease_ttl, self.now()).await? {
                continue;
            }
            self.sweep_account(credential.user_id, owned, report).await;
            let _ = self.ports.store.release_lease(&key, &holder).await;
        }
        Ok(())
    }

    async fn sweep_account(&self, user: UserId, owned: &HashMap<WorkspaceId, Ownership>, report: &mut ReconcileReport) {
        let Ok(token) = self.cloud_token(user).await else { return };
        let servers = match self.compute.list_servers(&token).await {
            Ok(servers) => servers,
            Err(e) => {
                tracing::warn!(user_id = %user, error = %e, "listing servers for the orphan sweep failed");
                report.failures += 1;
                return;
            }
        };
        let now = self.now();
        let ours = self.config.deployment.as_str();
        for server in servers {
            let known = server.workspace_id().and_then(|id| owned.get(&id));
            match server.deployment() {
                Some(deployment) if deployment == ours => {}
                // Another deployment's, on the same cloud account: not ours to judge.
                Some(_) => continue,
                // Made before servers carried a deployment id: the server one
                // of our workspaces records is ours (marked now); any other is
                // left alone, since it may be another deployment's.
                None => {
                    if known.is_some_and(|o| o.server.as_ref() == Some(&server.id)) {
                        self.adopt_server(&token, &server, report).await;
                    }
                    continue;
                }
            }
            let orphan = match known {
                None => true,
                Some(o) => match o.status {
                    WorkspaceStatus::Stopping | WorkspaceStatus::Deleting => false,
                    // A server created but not yet recorded is adopted by label.
                    WorkspaceStatus::Creating => o.server.as_ref().is_some_and(|id| *id != server.id),
                    _ => o.server.as_ref() != Some(&server.id),
                },
            };
            if !orphan || now - server.created_at < self.config.orphan_grace {
                continue;
            }
            match self.compute.delete_server(&token, &server.id).await {
                Ok(()) => {
                    tracing::warn!(user_id = %user, server_id = %server.id, workspace = ?server.workspace_id(), "orphan server deleted");
                    report.orphan_servers_deleted += 1;
                    metrics::counter!(crate::metrics::ORPHANS_FOUND, "resource" => "server").increment(1);
                }
                Err(e) => {
                    tracing::warn!(server_id = %server.id, error = %e, "orphan server deletion failed");
                    report.failures += 1;
                }
            }
        }
    }

    async fn adopt_server(&self, token: &SecretString, server: &Server, report: &mut ReconcileReport) {
        let labels = BTreeMap::from([(LABEL_DEPLOYMENT.to_owned(), self.config.deployment.to_string())]);
        match self.compute.add_labels(token, &server.id, &labels).await {
            Ok(()) => {
                tracing::info!(server_id = %server.id, workspace = ?server.workspace_id(), "server marked with the deployment id");
                report.adopted += 1;
            }
            Err(e) => {
                tracing::warn!(server_id = %server.id, error = %e, "marking a server with the deployment id failed");
                report.failures += 1;
            }
        }
    }

    async fn sweep_orphan_records(
        &self,
        owned: &HashMap<WorkspaceId, Ownership>,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let key = "orphans:dns";
        let holder = self.holder("reconciler");
        if !self.ports.store.try_acquire_lease(key, &holder, self.config.lease_ttl, self.now()).await? {
            return Ok(());
        }
        let records = match self.dns.list_records("ws-").await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "listing DNS records for the orphan sweep failed");
                report.failures += 1;
                let _ = self.ports.store.release_lease(key, &holder).await;
                return Ok(());
            }
        };
        let now = self.now();
        let hosts = &self.hosts;
        let mut seen_orphans = HashSet::new();
        for record in records {
            let Some(label) = hosts.workspace_label(&record.name) else { continue };
            let expected = WorkspaceId::from_dns_label(&label.to_ascii_lowercase())
                .and_then(|id| owned.get(&id))
                .is_some_and(|o| match o.status {
                    WorkspaceStatus::Error => o.has_dns,
                    _ => true,
                });
            match &record.owner {
                Some(owner) if *owner == self.config.deployment => {}
                // Another deployment's record in the same zone.
                Some(_) => continue,
                // Made before records carried a deployment id: ours when one
                // of our workspaces expects it (marked now), otherwise left
                // alone.
                None => {
                    if expected {
                        self.adopt_record(&record, report).await;
                    }
                    continue;
                }
            }
            if expected {
                continue;
            }
            seen_orphans.insert(record.name.clone());
            let first_seen = *crate::sync::lock(&self.dns_first_seen).entry(record.name.clone()).or_insert(now);
            if now - first_seen < self.config.orphan_grace {
                continue;
            }
            match self.dns.delete_records(&record.name).await {
                Ok(()) => {
                    tracing::warn!(name = %record.name, "orphan DNS record deleted");
                    report.orphan_records_deleted += 1;
                    metrics::counter!(crate::metrics::ORPHANS_FOUND, "resource" => "dns_record").increment(1);
                    crate::sync::lock(&self.dns_first_seen).remove(&record.name);
                }
                Err(e) => {
                    tracing::warn!(name = %record.name, error = %e, "orphan DNS record deletion failed");
                    report.failures += 1;
                }
            }
        }
        self.sweep_orphan_previews(owned, report, &mut seen_orphans).await;
        crate::sync::lock(&self.dns_first_seen).retain(|name, _| seen_orphans.contains(name));
        let _ = self.ports.store.release_lease(key, &holder).await;
        Ok(())
    }

    /// Preview names (`p<port>-ws-<id>`) of this deployment whose workspace
    /// is not running: their certificates revoked and records deleted after
    /// the orphan grace (a cleanup that crashed between two steps, a
    /// preview asked for while the workspace stopped).
    async fn sweep_orphan_previews(
        &self,
        owned: &HashMap<WorkspaceId, Ownership>,
        report: &mut ReconcileReport,
        seen_orphans: &mut HashSet<String>,
    ) {
        let records = match self.dns.list_records("p").await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "listing preview DNS records for the orphan sweep failed");
                report.failures += 1;
                return;
            }
        };
        let now = self.now();
        for record in records {
            let Some((id, _)) = self.hosts.preview_of(&record.name) else { continue };
            if record.owner.as_ref() != Some(&self.config.deployment) {
                continue;
            }
            if owned.get(&id).is_some_and(|o| o.status == WorkspaceStatus::Running) {
                continue;
            }
            seen_orphans.insert(record.name.clone());
            let first_seen = *crate::sync::lock(&self.dns_first_seen).entry(record.name.clone()).or_insert(now);
            if now - first_seen < self.config.orphan_grace {
                continue;
            }
            match self.release_preview_name(id, &record.name).await {
                Ok(()) => {
                    tracing::warn!(name = %record.name, "orphan preview DNS record deleted");
                    report.orphan_records_deleted += 1;
                    metrics::counter!(crate::metrics::ORPHANS_FOUND, "resource" => "dns_record").increment(1);
                    crate::sync::lock(&self.dns_first_seen).remove(&record.name);
                }
                Err(e) => {
                    tracing::warn!(name = %record.name, error = %e, "orphan preview DNS record deletion failed");
                    report.failures += 1;
                }
            }
        }
    }

    async fn adopt_record(&self, record: &DnsRecord, report: &mut ReconcileReport) {
        match self.dns.upsert_a_record(&record.name, record.ipv4, &self.config.deployment).await {
            Ok(_) => {
                tracing::info!(name = %record.name, "DNS record marked with the deployment id");
                report.adopted += 1;
            }
            Err(e) => {
                tracing::warn!(name = %record.name, error = %e, "marking a DNS record with the deployment id failed");
                report.failures += 1;
            }
        }
    }

    /// Runs [`Engine::reconcile_once`] every `interval` until `shutdown`
    /// completes; leases are released at the end of each pass, so stopping
    /// between passes leaves nothing held.
    pub async fn run_reconciler(&self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Err(e) = self.reconcile_once().await {
                tracing::warn!(error = %e, "reconciler pass failed");
            }
            if tokio::time::timeout(interval, &mut shutdown).await.is_ok() {
                tracing::info!("reconciler stopped");
                return;
            }
        }
    }
}

/// When the agent was last heard from: its last heartbeat, or becoming
/// running.
fn last_heard(ws: &Workspace) -> Timestamp {
    ws.last_heartbeat_at.unwrap_or(ws.status_changed_at).max(ws.status_changed_at)
}

/// Whether a settled workspace still has work pending (a retryable failure).
fn needs_more(ws: &Workspace) -> bool {
    match ws.status() {
        WorkspaceStatus::Creating => ws.lifecycle.server.is_none() || ws.lifecycle.dns_record.is_none(),
        WorkspaceStatus::Stopping | WorkspaceStatus::Deleting => true,
        WorkspaceStatus::Error => ws.lifecycle.holds_resources(),
        _ => false,
    }
}

fn timeout_message(ws: &Workspace) -> String {
    let step = match (&ws.lifecycle.server, &ws.lifecycle.dns_record, ws.lifecycle.agent_ready) {
        (None, _, _) => "creating the server",
        (Some(_), None, _) => "setting the DNS record",
        (Some(_), Some(_), false) => "waiting for the workspace agent to start (cloning and building the devcontainer)",
        _ => "finishing provisioning",
    };
    format!("Provisioning timed out while {step}. Delete the workspace or restart it to try again.")
}
