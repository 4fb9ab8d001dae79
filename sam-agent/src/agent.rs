//! The shared state of a running agent: authentication, sessions, activity,
//! notices to every open terminal and the shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::TokenVerifier;
use tokio::sync::{broadcast, watch};

use crate::activity::Activity;
use crate::auth::{Authenticator, CookieConfig};
use crate::ports::{PortScope, Ports};
use crate::protocol::ServerControl;
use crate::session::{SessionConfig, SessionManager, ShellCommand};

/// Default cap on inbound WebSocket frames and messages.
pub const DEFAULT_MAX_FRAME_IN: usize = 64 * 1024;

/// What an agent serves.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The workspace this agent serves; terminal tokens must name it.
    pub workspace: WorkspaceId,
    /// Its owner, when known (from the bootstrap grant): terminal tokens
    /// must be theirs.
    pub owner: Option<UserId>,
    /// Origins allowed on the WebSocket (empty: same origin as `Host`).
    pub allowed_origins: Vec<String>,
    /// Largest inbound WebSocket frame/message.
    pub max_frame_in: usize,
    /// Cookie settings.
    pub cookie: CookieConfig,
    /// Session settings.
    pub sessions: SessionConfig,
    /// How often the agent pings each terminal socket.
    pub keepalive: std::time::Duration,
    /// A socket silent this long (no frame, not even a pong) counts as
    /// dropped: its shell goes into the grace period.
    pub client_timeout: std::time::Duration,
    /// The largest file an upload may bring, in bytes.
    pub max_upload: u64,
    /// The control plane's public URL: a preview opened without its cookie
    /// is sent there to be signed in.
    pub control_plane: Option<String>,
}

impl AgentConfig {
    /// Defaults for `workspace`.
    pub fn new(workspace: WorkspaceId) -> Self {
        Self {
            workspace,
            owner: None,
            allowed_origins: Vec::new(),
            max_frame_in: DEFAULT_MAX_FRAME_IN,
            cookie: CookieConfig::default(),
            sessions: SessionConfig::default(),
            keepalive: std::time::Duration::from_secs(30),
            client_timeout: std::time::Duration::from_secs(75),
            max_upload: 2 * 1024 * 1024 * 1024,
            control_plane: None,
        }
    }
}

/// A notice broadcast to every open terminal.
#[derive(Clone, Debug)]
pub enum Notice {
    /// Idle warning (already serialised).
    IdleWarning(ServerControl),
    /// The idle warning is over.
    IdleCleared,
    /// The workspace is stopping.
    Shutdown(String),
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    /// Configuration.
    pub config: AgentConfig,
    /// Terminal authentication.
    pub auth: Authenticator,
    /// Shell sessions.
    pub sessions: Arc<SessionManager>,
    /// Input/output activity.
    pub activity: Arc<Activity>,
    notices: broadcast::Sender<Notice>,
    warning: Mutex<Option<ServerControl>>,
    shutdown: watch::Sender<Option<String>>,
    ready: AtomicBool,
    devcontainer: Mutex<Option<String>>,
    ports: Ports,
    /// The names served over TLS (none when serving plain HTTP).
    server_names: Mutex<Option<crate::tls::ServerNames>>,
    /// The ports whose preview name the control plane has made (DNS, and
    /// a certificate under TLS); `None` while nobody asks for names (no
    /// control plane): every port is then ready.
    named_ports: Mutex<Option<std::collections::BTreeSet<u16>>>,
}

impl Agent {
    /// An agent; `shell` is `None` until bootstrap provides it (then `/ready`
    /// answers 503 and terminals wait).
    pub fn new(config: AgentConfig, verifier: Arc<dyn TokenVerifier>, shell: Option<ShellCommand>) -> Arc<Self> {
        let activity = Arc::new(Activity::new());
        let ready = shell.is_some();
        let sessions = Arc::new(SessionManager::new(shell, config.sessions.clone(), Arc::clone(&activity)));
        let auth = Authenticator::new(verifier, config.workspace, config.cookie.clone()).owned_by(config.owner);
        let (notices, _) = broadcast::channel(16);
        let (shutdown, _) = watch::channel(None);
        Arc::new(Self {
            config,
            auth,
            sessions,
            activity,
            notices,
            warning: Mutex::new(None),
            shutdown,
            ready: AtomicBool::new(ready),
            devcontainer: Mutex::new(None),
            ports: Ports::default(),
            server_names: Mutex::new(None),
            named_ports: Mutex::new(None),
        })
    }

    /// The workspace served.
    pub fn workspace(&self) -> WorkspaceId {
        self.config.workspace
    }

    /// Makes terminals available with `shell`; `container` is reported on `/health`.
    pub fn set_ready(&self, shell: ShellCommand, container: Option<String>) {
        self.sessions.set_shell(shell);
        *self.devcontainer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = container;
        self.ready.store(true, Ordering::SeqCst);
    }

    /// True once terminals can be opened.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The devcontainer id, if shells run in one.
    pub fn devcontainer(&self) -> Option<String> {
        self.devcontainer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Where the workspace's servers run: the devcontainer's network (its
    /// first process, asked of Docker once per container), or the host.
    /// `None` when the container's process cannot be found (not running).
    pub async fn port_scope(&self) -> Option<PortScope> {
        let Some(container) = self.devcontainer() else { return Some(PortScope::Host) };
        if let Some(pid) = self.ports.container_pid(&container)
            && std::path::Path::new(&format!("/proc/{pid}/ns/net")).exists()
        {
            return Some(PortScope::Container { pid });
        }
        let docker = self.sessions.shell().and_then(|s| s.container).map_or_else(|| "docker".to_owned(), |c| c.docker);
        let mut inspect = tokio::process::Command::new(docker);
        inspect.args(["inspect", "--format", "{{.State.Pid}}", "--", &container]);
        let output = match crate::reaper::output_tracked(&mut inspect).await {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                tracing::debug!(workspace = %self.workspace(), status = %output.status, "docker inspect failed");
                return None;
            }
            Err(error) => {
                tracing::debug!(workspace = %self.workspace(), %error, "docker inspect failed");
                return None;
            }
        };
        let pid = String::from_utf8_lossy(&output.stdout).trim().parse::<u32>().ok().filter(|pid| *pid > 0)?;
        self.ports.set_container_pid(&container, pid);
        Some(PortScope::Container { pid })
    }

    /// The ports the workspace's processes listen on (a scan at most a
    /// second old).
    pub async fn listening_ports(&self, scope: PortScope) -> Vec<sam_core::wire::ListeningPort> {
        if let Some(ports) = self.ports.cached() {
            return ports;
        }
        let agent = std::process::id();
        let ports = tokio::task::spawn_blocking(move || crate::ports::scan(scope, agent)).await.unwrap_or_default();
        self.ports.store(ports.clone());
        ports
    }

    /// Serving TLS for `names`: preview names get certificates of their own.
    pub fn set_server_names(&self, names: crate::tls::ServerNames) {
        *self.server_names.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(names);
    }

    /// The names served over TLS, when serving TLS.
    pub fn server_names(&self) -> Option<crate::tls::ServerNames> {
        self.server_names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// From now on a port's preview is ready only once its name was made
    /// ([`Self::preview_named`]).
    pub fn await_preview_names(&self) {
        let mut named = self.named_ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        named.get_or_insert_with(Default::default);
    }

    /// The preview name of `port` was made.
    pub fn preview_named(&self, port: u16) {
        let mut named = self.named_ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        named.get_or_insert_with(Default::default).insert(port);
    }

    /// Whether the preview of `port` can be opened: its name exists (or no
    /// names are made here).
    pub fn preview_ready(&self, port: u16) -> bool {
        let named = self.named_ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        named.as_ref().is_none_or(|ports| ports.contains(&port))
    }

    /// The ports found by the last scan, however old.
    pub fn last_listening_ports(&self) -> Vec<sam_core::wire::ListeningPort> {
        self.ports.last()
    }

    /// Shows an idle warning in every open terminal (and in terminals opened
    /// until the warning is cleared).
    pub fn warn_idle(&self, deadline: time::OffsetDateTime) {
        let now = time::OffsetDateTime::now_utc();
        let seconds_left = u64::try_from((deadline - now).whole_seconds()).unwrap_or(0);
        let deadline = deadline.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let msg = ServerControl::IdleWarning { deadline, seconds_left };
        *self.warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(msg.clone());
        let _ = self.notices.send(Notice::IdleWarning(msg));
    }

    /// Forgets the idle warning (activity resumed) and tells the open
    /// terminals, if there was one.
    pub fn clear_warning(&self) {
        let had = self.warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().is_some();
        if had {
            let _ = self.notices.send(Notice::IdleCleared);
        }
    }

    /// The idle warning in force.
    pub fn current_warning(&self) -> Option<ServerControl> {
        self.warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Subscribes to notices.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Tells every terminal the workspace stops, closes them, ends every
    /// shell and signals [`shutdown_requested`](Self::shutdown_requested).
    pub fn shutdown(&self, reason: &str) {
        tracing::info!(workspace = %self.config.workspace, reason, "agent shutting down");
        let _ = self.notices.send(Notice::Shutdown(reason.to_owned()));
        self.shutdown.send_replace(Some(reason.to_owned()));
    }

    /// Resolves when [`shutdown`](Self::shutdown) was called; yields the reason.
    pub async fn shutdown_requested(&self) -> String {
        let mut rx = self.shutdown.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return String::from("dropped");
            }
        }
    }

    /// True once shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.borrow().is_some()
    }
}
