//! The engine: drives workspaces through their lifecycle using the ports.
//!
//! Every user action persists its transition first (with the store's optimistic
//! concurrency) and returns; the work itself happens in [`Engine::drive`], which
//! the caller runs in the background (the server spawns it; tests await it).
//! What remains to be done is always derivable from the stored state, and every
//! step looks up what already exists before creating anything, so a crash at
//! any point followed by a restart — or the [reconciler](Engine::reconcile_once)
//! — converges without leaking or duplicating a server or DNS record. One
//! workspace is only ever driven under a lease from the store, so several
//! engines (server replicas) can share one database.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use sam_core::engine::{Engine, EngineConfig, Ports};
//! use sam_core::testkit::fakes::*;
//!
//! let ports = Ports {
//!     store: Arc::new(MemoryStore::new()),
//!     compute: Arc::new(FakeCloud::new()),
//!     dns: Arc::new(FakeDnsZone::new()),
//!     repos: Arc::new(FakeGithub::new(30)),
//!     cipher: Arc::new(FakeCipher::new(1, "key")),
//!     tokens: Arc::new(FakeTokenAuthority::new("https://sam.test", "k1")),
//!     clock: Arc::new(ManualClock::new()),
//! };
//! let engine = Engine::new(ports, EngineConfig::new("ws.example.dev", "https://sam.example.dev"));
//! let report = engine.reconcile_once().await.unwrap();
//! assert_eq!(report.scanned, 0);
//! # }
//! ```

mod agent;
mod config;
mod driver;
mod error;
mod firewall;
mod idle;
mod inventory;
mod messages;
mod metered;
mod previews;
mod reconciler;
mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::wire::{HeartbeatAction, HeartbeatAnswer, HeartbeatReport};
pub use agent::{AgentReport, AgentVersion, BootstrapGrant, ORIGIN_CA_ATTEMPTS, TerminalAccess};
pub use config::{DEFAULT_SERVER_IMAGE, EngineConfig, RetryPolicy};
pub use driver::DriveOutcome;
pub use error::{EngineError, EngineErrorKind};
pub use firewall::WorkspaceFirewall;
pub use idle::idle_decision;
pub use idle::{CreateOptions, IdleWindow};
pub use inventory::{AccountServers, Inventory, InventoryPorts};
pub use previews::{MAX_PREVIEW_HOSTS, PreviewCertificate};
pub use reconciler::ReconcileReport;

use crate::domain::{
    CredentialProvider, InstallationId, NewWorkspace, Timestamp, UserId, Workspace, WorkspaceEvent, WorkspaceId,
    WorkspaceSpec,
};
use crate::lifecycle::{Event, WorkspaceStatus};
use crate::ports::{
    AgentProbe, Cipher, Clock, ComputeProvider, DnsProvider, OriginCertificateAuthority, RepoAccess, SealContext,
    Store, StoreErrorKind, TokenIssuer, WorkspaceLimits,
};

/// The purpose a cloud token is sealed for; seal with
/// [`credential_context`] so the engine can open it.
pub const CREDENTIAL_PURPOSE: &str = "api-token";

/// The seal context of a user's cloud API token.
pub fn credential_context(user: UserId, provider: CredentialProvider) -> SealContext<'static> {
    SealContext { user_id: user, provider, purpose: CREDENTIAL_PURPOSE }
}

/// The adapters the engine works through.
#[derive(Clone, Debug)]
pub struct Ports {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// The users' cloud.
    pub compute: Arc<dyn ComputeProvider>,
    /// The operator's DNS zone.
    pub dns: Arc<dyn DnsProvider>,
    /// GitHub App access, for clone tokens.
    pub repos: Arc<dyn RepoAccess>,
    /// Opens sealed cloud tokens.
    pub cipher: Arc<dyn Cipher>,
    /// Signs terminal and callback tokens.
    pub tokens: Arc<dyn TokenIssuer>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// The workspace engine. Cheap to share (`Arc<Engine>`); all methods take
/// `&self`.
#[derive(Debug)]
pub struct Engine {
    ports: Ports,
    /// The engine's own calls to `ports.compute`, measured.
    compute: metered::MeteredCompute,
    /// The engine's own calls to `ports.dns`, measured.
    dns: metered::MeteredDns,
    config: EngineConfig,
    /// The deployment's workspace names (from `config`).
    hosts: crate::domain::WorkspaceHosts,
    id: String,
    /// When this engine started: time before it, when no control plane may
    /// have been running, is no evidence against an agent.
    started_at: Timestamp,
    /// When this engine first saw each DNS record that belongs to no live
    /// workspace (records carry no creation time).
    dns_first_seen: Mutex<HashMap<String, Timestamp>>,
    /// Open terminal sessions per workspace from the last heartbeat this
    /// engine received, and when (for the sessions gauge).
    terminal_sessions: Mutex<HashMap<WorkspaceId, (u32, Timestamp)>>,
    /// The agent version each workspace's last heartbeat to this engine
    /// reported.
    agent_versions: Mutex<HashMap<WorkspaceId, String>>,
    /// The ports each workspace's last heartbeat to this engine reported
    /// its processes listen on (what a preview can open).
    listening_ports: Mutex<HashMap<WorkspaceId, Vec<crate::wire::ListeningPort>>>,
    /// Asks silent agents directly ([`Engine::with_agent_probe`]).
    probe: Option<Arc<dyn AgentProbe>>,
    /// Signs agents' certificates ([`Engine::with_origin_ca`]).
    origin_ca: Option<Arc<dyn OriginCertificateAuthority>>,
    /// Redemptions that failed for want of a certificate, per workspace
    /// being created.
    origin_ca_failures: Mutex<HashMap<WorkspaceId, u32>>,
    /// The firewall in front of servers ([`Engine::with_firewall`]).
    firewall: Option<WorkspaceFirewall>,
    /// The edge's source ranges last fetched, and when.
    edge_ranges: firewall::CachedRanges,
    /// When this engine last looked into each silent agent (the provider and
    /// the probe): once per heartbeat timeout is enough, and a region of
    /// silent agents must not spend the account's provider rate limit.
    agents_checked: Mutex<HashMap<WorkspaceId, Timestamp>>,
}

/// What a user can do to one of their workspaces after creating it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WorkspaceAction {
    /// Release the server and DNS record ([`Engine::stop`]).
    Stop,
    /// Provision again from `stopped` or `error` ([`Engine::restart`]).
    Restart,
    /// Release everything, then remove the row ([`Engine::delete`]).
    Delete,
}

/// How many times a user action re-reads and re-applies after losing an
/// optimistic-concurrency race before giving up.
const ACTION_ATTEMPTS: usize = 8;

impl Engine {
    /// An engine over `ports` with `config`.
    pub fn new(ports: Ports, config: EngineConfig) -> Self {
        Self {
            compute: metered::MeteredCompute(ports.compute.clone()),
            dns: metered::MeteredDns(ports.dns.clone()),
            started_at: ports.clock.now(),
            ports,
            hosts: config.hosts(),
            config,
            id: format!("engine-{}", uuid::Uuid::new_v4().simple()),
            dns_first_seen: Mutex::new(HashMap::new()),
            terminal_sessions: Mutex::new(HashMap::new()),
            agent_versions: Mutex::new(HashMap::new()),
            listening_ports: Mutex::new(HashMap::new()),
            probe: None,
            origin_ca: None,
            origin_ca_failures: Mutex::new(HashMap::new()),
            firewall: None,
            edge_ranges: std::sync::Mutex::new(None),
            agents_checked: Mutex::new(HashMap::new()),
        }
    }

    /// Lets agents that send a certificate request at bootstrap serve TLS:
    /// `ca` signs it for the workspace's name (the edge in front of the
    /// workspaces trusts `ca`); the certificate is revoked when the
    /// workspace is released.
    pub fn with_origin_ca(mut self, ca: Arc<dyn OriginCertificateAuthority>) -> Self {
        self.origin_ca = Some(ca);
        self
    }

    /// Lets the reconciler ask a silent agent directly (at the workspace's
    /// URL) before marking it unreachable, and judge its idleness by its own
    /// answer. Without a probe, a silent agent is judged by heartbeats and
    /// the provider's server status alone.
    pub fn with_agent_probe(mut self, probe: Arc<dyn AgentProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current time on the engine's clock (injected, so tests move it).
    pub fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    /// Whether the store answers (a readiness probe).
    pub async fn check_store(&self) -> Result<(), EngineError> {
        self.ports.store.get_user(UserId::from_uuid(uuid::Uuid::nil())).await?;
        Ok(())
    }

    /// Records a new workspace for `owner` and starts provisioning (state
    /// `creating`); call [`Engine::drive`] to do the work. Checks that the user
    /// has a cloud token and a usable GitHub App installation, that the location
    /// is offered, the name is free and the quota not reached (atomically).
    pub async fn create(
        &self,
        owner: UserId,
        spec: WorkspaceSpec,
        installation: InstallationId,
    ) -> Result<Workspace, EngineError> {
        self.create_with(owner, spec, installation, CreateOptions::default()).await
    }

    /// [`create`](Self::create) with the user's choices beyond the spec: an
    /// idle timeout within [`EngineConfig::idle_timeout_min`] and
    /// [`EngineConfig::idle_timeout_max`] (else `Invalid`, field
    /// `idleTimeoutSeconds`).
    pub async fn create_with(
        &self,
        owner: UserId,
        spec: WorkspaceSpec,
        installation: InstallationId,
        options: CreateOptions,
    ) -> Result<Workspace, EngineError> {
        let idle_timeout_secs = match options.idle_timeout {
            None => None,
            Some(chosen) => {
                let (min, max) = self.config.idle_timeout_bounds();
                if chosen < min || chosen > max {
                    return Err(EngineError {
                        kind: EngineErrorKind::Invalid,
                        message: format!(
                            "The idle timeout is between {} and {} minutes.",
                            min.as_secs().div_ceil(60),
                            max.as_secs() / 60
                        ),
                        field: Some("idleTimeoutSeconds"),
                    });
                }
                Some(u32::try_from(chosen.as_secs()).unwrap_or(u32::MAX))
            }
        };
        let token = self.cloud_token(owner).await.map_err(|m| EngineError::new(EngineErrorKind::Precondition, m))?;
        match self.ports.store.get_installation(installation).await? {
            Some(i) if i.is_usable() => {}
            Some(_) => {
                return Err(EngineError::new(
                    EngineErrorKind::Precondition,
                    "The GitHub App was uninstalled or suspended for this repository's account; install it again.",
                ));
            }
            None => {
                return Err(EngineError::new(
                    EngineErrorKind::Precondition,
                    "Install the SAM GitHub App on the repository's account first.",
                ));
            }
        }
        let locations = self.compute.list_locations(&token).await?;
        if !locations.iter().any(|l| l.code == spec.vm_location) {
            return Err(EngineError {
                kind: EngineErrorKind::Invalid,
                message: format!("location {} is not offered by the provider", spec.vm_location),
                field: Some("vmLocation"),
            });
        }

        let now = self.now();
        let mut workspace =
            Workspace::new(NewWorkspace { owner, spec, installation_id: installation, idle_timeout_secs }, now);
        let (event, _) = workspace.apply(&Event::CreateRequested, now)?;
        let limits = WorkspaceLimits {
            max_active_per_user: self.config.max_active_per_user,
            required_credential: Some(self.ports.compute.credential_kind()),
        };
        let stored = self.ports.store.insert_workspace(&workspace, Some(&event), limits).await.map_err(|e| {
            if e.kind() == StoreErrorKind::CredentialMissing {
                EngineError::new(EngineErrorKind::Precondition, messages::NO_CREDENTIAL)
            } else if e.kind() == StoreErrorKind::QuotaExceeded {
                EngineError::new(
                    EngineErrorKind::QuotaExceeded,
                    format!(
                        "You can have at most {} active workspaces; stop or delete one first.",
                        self.config.max_active_per_user
                    ),
                )
            } else {
                e.into()
            }
        })?;
        tracing::info!(workspace_id = %stored.id, user_id = %owner, "workspace created");
        Ok(stored)
    }

    /// One of `owner`'s workspaces.
    pub async fn get(&self, owner: UserId, id: WorkspaceId) -> Result<Workspace, EngineError> {
        self.ports.store.get_workspace(owner, id).await?.ok_or_else(EngineError::not_found)
    }

    /// `owner`'s workspaces, newest first.
    pub async fn list(&self, owner: UserId, status: Option<WorkspaceStatus>) -> Result<Vec<Workspace>, EngineError> {
        Ok(self.ports.store.list_workspaces(owner, status).await?)
    }

    /// The store's change feed (see [`ChangeFeed`](crate::ports::ChangeFeed)):
    /// which owners' workspaces and sign-ins changed, committed by this
    /// process or another replica. A live view subscribes once per process
    /// and re-reads through [`Engine::list`] on a change of its owner.
    pub async fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<crate::ports::StoreChange> {
        self.ports.store.subscribe_changes().await
    }

    /// The transition history of one of `owner`'s workspaces.
    pub async fn events(&self, owner: UserId, id: WorkspaceId) -> Result<Vec<WorkspaceEvent>, EngineError> {
        Ok(self.ports.store.list_workspace_events(owner, id).await?)
    }

    /// Stops a workspace (its server and DNS record are deleted; the MVP keeps
    /// no disk). Returns the `stopping` workspace; [`Engine::drive`] finishes.
    pub async fn stop(&self, owner: UserId, id: WorkspaceId) -> Result<Workspace, EngineError> {
        self.act(owner, id, &Event::StopRequested).await
    }

    /// Deletes a workspace from any state; the row goes once its server and
    /// record are confirmed gone.
    pub async fn delete(&self, owner: UserId, id: WorkspaceId) -> Result<Workspace, EngineError> {
        self.act(owner, id, &Event::DeleteRequested).await
    }

    /// Provisions a fresh server for a `stopped` or `error` workspace with the
    /// same configuration. Any server left by an earlier run is deleted first so
    /// it is never adopted.
    pub async fn restart(&self, owner: UserId, id: WorkspaceId) -> Result<Workspace, EngineError> {
        let current = self.get(owner, id).await?;
        // Validate before touching the cloud.
        crate::lifecycle::transition(&current.lifecycle, &Event::RestartRequested)?;
        let token = self.cloud_token(owner).await.map_err(|m| EngineError::new(EngineErrorKind::Precondition, m))?;
        if self.release_resources(&current, Some(&token)).await.is_err() {
            return Err(EngineError::new(
                EngineErrorKind::Unavailable,
                "The previous server could not be removed yet; try again in a minute.",
            ));
        }
        self.act(owner, id, &Event::RestartRequested).await
    }

    /// Performs a user's action on one of their workspaces; see
    /// [`Engine::stop`], [`Engine::restart`] and [`Engine::delete`].
    pub async fn perform(
        &self,
        owner: UserId,
        id: WorkspaceId,
        action: WorkspaceAction,
    ) -> Result<Workspace, EngineError> {
        match action {
            WorkspaceAction::Stop => self.stop(owner, id).await,
            WorkspaceAction::Restart => self.restart(owner, id).await,
            WorkspaceAction::Delete => self.delete(owner, id).await,
        }
    }

    /// Applies a user event with optimistic-concurrency retries.
    async fn act(&self, owner: UserId, id: WorkspaceId, event: &Event) -> Result<Workspace, EngineError> {
        for _ in 0..ACTION_ATTEMPTS {
            let mut ws = self.get(owner, id).await?;
            let (record, _) = ws.apply(event, self.now())?;
            match self.ports.store.update_workspace(&ws, &[record]).await {
                Ok(saved) => {
                    tracing::info!(workspace_id = %id, user_id = %owner, event = event.name(), status = %saved.status(), "workspace action");
                    return Ok(saved);
                }
                Err(e) if e.kind() == StoreErrorKind::StaleVersion => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::new(EngineErrorKind::Unavailable, "the workspace is changing too quickly; try again"))
    }

    /// The owner's cloud token, opened; `Err` carries a user-facing message.
    async fn cloud_token(&self, owner: UserId) -> Result<crate::secret::SecretString, String> {
        let credential = self
            .ports
            .store
            .get_credential(owner, self.ports.compute.credential_kind())
            .await
            .map_err(|e| {
                tracing::warn!(user_id = %owner, error = %e, "credential lookup failed");
                "The database is unavailable; SAM will retry.".to_owned()
            })?
            .ok_or_else(|| messages::NO_CREDENTIAL.to_owned())?;
        let plain = self
            .ports
            .cipher
            .open(&credential.ciphertext, credential_context(owner, self.ports.compute.credential_kind()))
            .map_err(|e| {
                tracing::error!(user_id = %owner, kind = ?e.kind, "stored credential does not open");
                messages::CREDENTIAL_UNREADABLE.to_owned()
            })?;
        plain.into_secret_string().ok_or_else(|| messages::CREDENTIAL_UNREADABLE.to_owned())
    }
}
