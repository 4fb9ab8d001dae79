use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{Reason, WorkspaceStatus};
use crate::domain::ServerId;

/// The lifecycle part of a workspace: everything the state machine reads and
/// writes. Resources are recorded here as soon as they exist, so cleanup knows
/// what to remove.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleState {
    /// Current status.
    pub status: WorkspaceStatus,
    /// Why the workspace reached `status`.
    pub reason: Reason,
    /// The provider's server, once created.
    pub server: Option<ServerRef>,
    /// The provider's id of the DNS record, once set.
    pub dns_record: Option<String>,
    /// The agent reported ready for the current server.
    pub agent_ready: bool,
    /// The Origin CA certificate issued to the agent for the workspace's
    /// name (its id), revoked when the workspace is released.
    #[serde(default)]
    pub origin_certificate: Option<String>,
    /// The id (`jti`) of the callback credential the current server's agent
    /// was given: the only one accepted from it. Forgotten with the server,
    /// so a deleted workspace's or an earlier VM's credential no longer
    /// works, however long it has to live.
    #[serde(default)]
    pub agent_credential: Option<String>,
    /// What went wrong, for `error` (kept on the way out of it until the next
    /// restart so the user can still read it); what is wrong now for a
    /// `running` workspace whose agent is unreachable, or a `stopping` or
    /// `deleting` one whose cleanup is blocked.
    pub error_message: Option<String>,
}

impl LifecycleState {
    /// A freshly recorded workspace: `pending`, nothing created.
    pub const fn new() -> Self {
        Self {
            status: WorkspaceStatus::Pending,
            reason: Reason::User,
            server: None,
            dns_record: None,
            agent_ready: false,
            origin_certificate: None,
            agent_credential: None,
            error_message: None,
        }
    }

    /// Whether a server or DNS record may still exist.
    pub const fn holds_resources(&self) -> bool {
        self.server.is_some() || self.dns_record.is_some()
    }

    /// The rules every reachable state obeys; `Err` names the broken one.
    /// Property tests assert these after every transition.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        match self.status {
            WorkspaceStatus::Running if self.server.is_none() => Err("running without a server"),
            WorkspaceStatus::Running if self.dns_record.is_none() => Err("running without a DNS record"),
            WorkspaceStatus::Running if !self.agent_ready => Err("running before the agent was ready"),
            WorkspaceStatus::Stopped | WorkspaceStatus::Pending if self.holds_resources() => {
                Err("stopped or pending with a server or DNS record still recorded")
            }
            WorkspaceStatus::Error if self.error_message.is_none() => Err("error without a message"),
            WorkspaceStatus::Running if self.error_message.is_some() != (self.reason == Reason::AgentUnreachable) => {
                Err("running with a message but a reachable agent, or the reverse")
            }
            WorkspaceStatus::Stopped | WorkspaceStatus::Pending | WorkspaceStatus::Creating
                if self.error_message.is_some() =>
            {
                Err("a message outside error, running, stopping and deleting")
            }
            _ if self.dns_record.is_some() && self.server.is_none() && self.status == WorkspaceStatus::Creating => {
                Err("a DNS record without a server while creating")
            }
            _ if self.agent_ready && self.server.is_none() => Err("agent ready without a server"),
            _ => Ok(()),
        }
    }
}

impl Default for LifecycleState {
    fn default() -> Self {
        Self::new()
    }
}

/// A server as far as the lifecycle cares.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRef {
    /// Provider's id.
    pub id: ServerId,
    /// Public IPv4 address the DNS record points at.
    pub ipv4: Ipv4Addr,
}

/// Something that happened to a workspace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// The owner created the workspace; start provisioning.
    CreateRequested,
    /// The provider created (or we found, by label) the workspace's server.
    ServerCreated(ServerRef),
    /// The DNS record `ws-<id>` points at the server.
    DnsRecordSet {
        /// Provider's record id.
        record_id: String,
    },
    /// The agent redeemed its bootstrap token, cloned and started the
    /// devcontainer.
    AgentReady,
    /// The agent of the current server redeemed its bootstrap token and was
    /// given a callback credential.
    AgentCredentialIssued {
        /// The credential's id (`jti`).
        id: String,
    },
    /// An origin certificate was issued to the agent (at its bootstrap).
    OriginCertificateIssued {
        /// The authority's id of the certificate.
        id: String,
    },
    /// A provisioning step failed for good (not retryable, or retries exhausted).
    ProvisioningFailed {
        /// Actionable message for the user.
        message: String,
    },
    /// Provisioning did not finish within the deadline.
    ProvisioningTimedOut {
        /// Which step it was stuck at, for the user.
        message: String,
    },
    /// The owner asked to stop.
    StopRequested,
    /// The idle threshold passed.
    IdleTimeout,
    /// Heartbeats stopped, the server still exists and the agent does not
    /// answer: the workspace stays running, marked, and nothing is released.
    AgentSilent {
        /// What was seen, for the user.
        message: String,
    },
    /// A silent agent reported again (or answered its health check).
    AgentBack,
    /// An agent stayed silent for the whole unreachable timeout: release.
    AgentUnreachable,
    /// The provider no longer has the server.
    ServerGone,
    /// Cleanup cannot finish (a DNS record that cannot be deleted keeps its
    /// server); it is retried, and the user sees why.
    CleanupBlocked {
        /// Why, for the user.
        message: String,
    },
    /// Server and DNS record of a stopping (or failed) workspace are confirmed gone.
    StopFinished,
    /// The owner asked to start a stopped or failed workspace again.
    RestartRequested,
    /// The owner asked to delete.
    DeleteRequested,
    /// Server and DNS record of a deleting workspace are confirmed gone; the row
    /// may be removed.
    CleanupFinished,
}

impl Event {
    /// A stable name for logs and the event history.
    pub const fn name(&self) -> &'static str {
        match self {
            Event::CreateRequested => "create_requested",
            Event::ServerCreated(_) => "server_created",
            Event::DnsRecordSet { .. } => "dns_record_set",
            Event::AgentReady => "agent_ready",
            Event::OriginCertificateIssued { .. } => "origin_certificate_issued",
            Event::AgentCredentialIssued { .. } => "agent_credential_issued",
            Event::ProvisioningFailed { .. } => "provisioning_failed",
            Event::ProvisioningTimedOut { .. } => "provisioning_timed_out",
            Event::StopRequested => "stop_requested",
            Event::IdleTimeout => "idle_timeout",
            Event::AgentSilent { .. } => "agent_silent",
            Event::AgentBack => "agent_back",
            Event::AgentUnreachable => "agent_unreachable",
            Event::CleanupBlocked { .. } => "cleanup_blocked",
            Event::ServerGone => "server_gone",
            Event::StopFinished => "stop_finished",
            Event::RestartRequested => "restart_requested",
            Event::DeleteRequested => "delete_requested",
            Event::CleanupFinished => "cleanup_finished",
        }
    }
}

/// Work the engine must do through the ports after a transition was persisted.
/// Every effect is idempotent (create looks up by label first, deletes treat
/// "absent" as success), which is what makes the engine restartable.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Create the server (or adopt the one already labelled for this workspace).
    CreateServer,
    /// Point `ws-<id>` at this address (list-then-patch, never a duplicate).
    UpsertDns {
        /// Server address.
        ipv4: Ipv4Addr,
    },
    /// Delete every server labelled for this workspace.
    DeleteServer,
    /// Delete every DNS record named `ws-<id>`.
    DeleteDns,
    /// Remove the workspace's row (after [`Event::CleanupFinished`]).
    RemoveWorkspace,
}

/// The outcome of a legal transition.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transition {
    /// The new lifecycle state.
    pub state: LifecycleState,
    /// Effects to perform, in order.
    pub effects: Vec<Effect>,
}

/// An event that is not legal in the current state. The engine turns it into a
/// 409-style error for user actions and ignores it for stale system events.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("cannot apply {event} to a {status} workspace: {why}")]
pub struct TransitionError {
    /// State the workspace was in.
    pub status: WorkspaceStatus,
    /// [`Event::name`] of the rejected event.
    pub event: &'static str,
    /// Explanation for the user.
    pub why: &'static str,
}

const CLEANUP: [Effect; 2] = [Effect::DeleteServer, Effect::DeleteDns];

/// The workspace state machine: a pure function with no I/O.
///
/// ```
/// use sam_core::lifecycle::{transition, Effect, Event, LifecycleState, WorkspaceStatus};
/// let pending = LifecycleState::new();
/// let t = transition(&pending, &Event::CreateRequested).unwrap();
/// assert_eq!(t.state.status, WorkspaceStatus::Creating);
/// assert_eq!(t.effects, vec![Effect::CreateServer]);
/// assert!(transition(&pending, &Event::AgentReady).is_err());
/// ```
pub fn transition(state: &LifecycleState, event: &Event) -> Result<Transition, TransitionError> {
    use WorkspaceStatus as S;

    let reject = |why: &'static str| TransitionError { status: state.status, event: event.name(), why };
    let mut next = state.clone();
    let mut effects = Vec::new();

    match (state.status, event) {
        (S::Pending, Event::CreateRequested) => {
            next.status = S::Creating;
            next.reason = Reason::User;
            effects.push(Effect::CreateServer);
        }
        (S::Creating, Event::ServerCreated(server)) => {
            match &state.server {
                Some(known) if known.id != server.id => {
                    return Err(reject("a different server is already recorded for this workspace"));
                }
                _ => {}
            }
            next.server = Some(server.clone());
            next.reason = Reason::Provisioning;
            effects.push(Effect::UpsertDns { ipv4: server.ipv4 });
        }
        (S::Creating, Event::DnsRecordSet { record_id }) => {
            if state.server.is_none() {
                return Err(reject("a DNS record needs a server address first"));
            }
            next.dns_record = Some(record_id.clone());
            next.reason = Reason::Provisioning;
            if state.agent_ready {
                next.status = S::Running;
            }
        }
        (S::Creating, Event::AgentReady) => {
            if state.server.is_none() {
                return Err(reject("no server is recorded for this workspace yet"));
            }
            next.agent_ready = true;
            next.reason = Reason::Provisioning;
            // The agent can beat the DNS upsert (a fast local VM); the workspace
            // becomes running when both have happened, in either order.
            if state.dns_record.is_some() {
                next.status = S::Running;
            }
        }
        (S::Creating | S::Running, Event::AgentCredentialIssued { id }) => {
            if state.server.is_none() {
                return Err(reject("no server is recorded for this workspace yet"));
            }
            next.agent_credential = Some(id.clone());
        }
        (S::Creating, Event::OriginCertificateIssued { id }) => {
            if state.server.is_none() {
                return Err(reject("no server is recorded for this workspace yet"));
            }
            next.origin_certificate = Some(id.clone());
        }
        (S::Pending | S::Creating, Event::ProvisioningFailed { message }) => {
            enter_error(&mut next, Reason::ProviderError, message);
            effects.extend(CLEANUP);
        }
        (S::Pending | S::Creating, Event::ProvisioningTimedOut { message }) => {
            enter_error(&mut next, Reason::ProvisionTimeout, message);
            effects.extend(CLEANUP);
        }
        (S::Pending, Event::StopRequested) => {
            next.status = S::Stopped;
            next.reason = Reason::User;
        }
        (S::Creating | S::Running, Event::StopRequested) => {
            next.status = S::Stopping;
            next.reason = Reason::User;
            next.error_message = None;
            effects.extend(CLEANUP);
        }
        // Repeating a stop retries the cleanup; the user's click is never an error.
        (S::Stopping, Event::StopRequested) => effects.extend(CLEANUP),
        (S::Running, Event::IdleTimeout) => {
            next.status = S::Stopping;
            next.reason = Reason::IdleTimeout;
            next.error_message = None;
            effects.extend(CLEANUP);
        }
        (S::Running, Event::AgentSilent { message }) => {
            next.reason = Reason::AgentUnreachable;
            next.error_message = Some(message.clone());
        }
        (S::Running, Event::AgentBack) => {
            if state.reason != Reason::AgentUnreachable {
                return Err(reject("the agent was not marked unreachable"));
            }
            next.reason = Reason::Provisioning;
            next.error_message = None;
        }
        (S::Running, Event::AgentUnreachable) => {
            enter_error(
                &mut next,
                Reason::AgentUnreachable,
                "The workspace agent stopped responding for longer than the unreachable timeout; the server was \
                 removed. Restart the workspace to get a fresh one.",
            );
            effects.extend(CLEANUP);
        }
        (S::Running, Event::ServerGone) => {
            next.status = S::Stopping;
            next.reason = Reason::ServerGone;
            next.error_message = None;
            forget_server(&mut next);
            effects.extend(CLEANUP);
        }
        (S::Creating, Event::ServerGone) => {
            enter_error(
                &mut next,
                Reason::ServerGone,
                "The server disappeared while the workspace was being created (deleted outside SAM?).",
            );
            forget_server(&mut next);
            effects.extend(CLEANUP);
        }
        (S::Stopping | S::Error | S::Deleting, Event::ServerGone) => forget_server(&mut next),
        (S::Stopping | S::Deleting, Event::CleanupBlocked { message }) => next.error_message = Some(message.clone()),
        (S::Stopping, Event::StopFinished) => {
            next.status = S::Stopped;
            next.error_message = None;
            release_all(&mut next);
        }
        (S::Error, Event::StopFinished) => release_all(&mut next),
        (S::Stopped | S::Error, Event::RestartRequested) => {
            next.status = S::Creating;
            next.reason = Reason::User;
            next.error_message = None;
            if state.holds_resources() {
                // A failed cleanup may have left the old server; never adopt it.
                effects.extend(CLEANUP);
                release_all(&mut next);
            }
            effects.push(Effect::CreateServer);
        }
        (_, Event::DeleteRequested) => {
            if state.status == S::Running {
                next.error_message = None;
            }
            next.status = S::Deleting;
            next.reason = Reason::User;
            effects.extend(CLEANUP);
        }
        (S::Deleting, Event::CleanupFinished) => {
            release_all(&mut next);
            effects.push(Effect::RemoveWorkspace);
        }

        (S::Pending, _) => return Err(reject("provisioning has not started")),
        (S::Creating, Event::CreateRequested) => return Err(reject("the workspace is already being created")),
        (S::Creating, _) => return Err(reject("the workspace is still being created")),
        (S::Running, Event::RestartRequested) => return Err(reject("the workspace is already running")),
        (S::Running, _) => return Err(reject("the workspace is running")),
        (S::Stopping, _) => return Err(reject("the workspace is stopping")),
        (S::Stopped, Event::StopRequested) => return Err(reject("the workspace is already stopped")),
        (S::Stopped, _) => return Err(reject("the workspace is stopped; restart it first")),
        (S::Error, Event::StopRequested) => {
            return Err(reject("the workspace has failed and holds no running server; restart or delete it"));
        }
        (S::Error, _) => return Err(reject("the workspace has failed; restart or delete it")),
        (S::Deleting, _) => return Err(reject("the workspace is being deleted")),
    }

    Ok(Transition { state: next, effects })
}

fn enter_error(next: &mut LifecycleState, reason: Reason, message: &str) {
    next.status = WorkspaceStatus::Error;
    next.reason = reason;
    next.error_message = Some(message.to_owned());
    next.agent_ready = false;
}

fn forget_server(next: &mut LifecycleState) {
    next.server = None;
    next.agent_ready = false;
    next.agent_credential = None;
}

fn release_all(next: &mut LifecycleState) {
    forget_server(next);
    next.dns_record = None;
    next.origin_certificate = None;
}
