//! What the agent and the control plane say to each other, defined once and
//! used by both sides (`sam-agent` sends what the server's handlers parse).
//! JSON, camelCase; the golden tests below pin the exact text, so a field
//! renamed on one side cannot drift from the other. Fields added later are
//! optional (`#[serde(default)]`) so an agent and a control plane of
//! neighbouring versions keep talking during an upgrade.
//!
//! ```
//! use sam_core::wire::HeartbeatReport;
//! let report: HeartbeatReport = serde_json::from_str(r#"{"idleSeconds": 5}"#).unwrap();
//! assert_eq!(report.idle_seconds, 5);
//! assert_eq!(report.agent_version, None);
//! ```

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

/// `POST /api/workspaces/{id}/heartbeat`: what the agent reports.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReport {
    /// Seconds since the last terminal input or output on any session.
    pub idle_seconds: u64,
    /// Open terminal sessions.
    #[serde(default)]
    pub active_sessions: u32,
    /// The agent's clock's time of that last activity (informative: the
    /// control plane decides from `idleSeconds` and its own clock).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_activity_at: Option<Timestamp>,
    /// The agent's version, compared with the control plane's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The sign-ins (`sid` of their terminal tokens) the agent's open
    /// terminal sessions were opened under: the answer names those that
    /// ended. At most 32 are looked at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub sign_ins: Vec<String>,
    /// The TCP ports processes in the workspace listen on (the dev servers
    /// a preview can open), lowest first; at most 64 are looked at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub ports: Vec<ListeningPort>,
}

/// The preview callback's path on a preview host (`p<port>-ws-<id>…`):
/// `?token=<workspace-preview token>&next=<path on that host>`.
pub const PREVIEW_CALLBACK_PATH: &str = "/__sam/preview/callback";

/// Percent-encodes `text` for a query value (and a path, where `/` stays):
/// everything but unreserved characters and `/`.
///
/// ```
/// assert_eq!(sam_core::wire::url_encode("/app?x=1&y=é"), "/app%3Fx%3D1%26y%3D%C3%A9");
/// ```
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Listening ports a heartbeat reports at most.
pub const MAX_LISTENING_PORTS: usize = 64;

/// A TCP port a process in the workspace listens on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListeningPort {
    /// The port (1–65535).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: u16,
    /// The listening process's command name (`comm`, at most 15
    /// characters), when the agent could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub process: Option<String>,
}

impl HeartbeatReport {
    /// A report of `idle_seconds` and `active_sessions`, without the
    /// optional fields.
    pub fn new(idle_seconds: u64, active_sessions: u32) -> Self {
        Self {
            idle_seconds,
            active_sessions,
            last_activity_at: None,
            agent_version: None,
            sign_ins: Vec::new(),
            ports: Vec::new(),
        }
    }
}

/// What the agent must do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeartbeatAction {
    /// Nothing.
    Continue,
    /// Show the shutdown deadline in every open terminal.
    Warn,
    /// Tell the terminals and exit; the workspace is stopping.
    Shutdown,
}

/// `POST /api/bootstrap/{token}`: what the agent sends with its bootstrap
/// token (the body may be empty or absent).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapRequest {
    /// A certificate signing request (PEM) for the workspace's name, made
    /// with a key that never leaves the VM: the control plane has the
    /// deployment's origin CA sign it, and the agent serves TLS with the
    /// certificate.
    #[serde(default)]
    pub csr: Option<String>,
}

/// `POST /api/workspaces/{id}/preview-certificate`: the agent asks for the
/// preview name of a port its workspace listens on (the edge's DNS record)
/// and, serving TLS, a certificate for it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewCertificateRequest {
    /// The port (1–65535).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: u16,
    /// A certificate signing request (PEM), made with a key that never
    /// leaves the VM, as at bootstrap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub csr: Option<String>,
}

/// The answer to a [`PreviewCertificateRequest`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewCertificateAnswer {
    /// The preview's host name (`p<port>-ws-<id>…`).
    pub hostname: String,
    /// The certificate (PEM) for exactly that name, when a request was sent
    /// and the deployment has an origin CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The answer to a heartbeat.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    /// What to do.
    pub action: HeartbeatAction,
    /// The idle threshold in seconds that applies to this workspace.
    #[serde(default)]
    pub idle_threshold: u64,
    /// When the workspace stops unless there is activity (for `warn`, and for
    /// `shutdown` when it was an idle stop).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub shutdown_at: Option<Timestamp>,
    /// Of the reported `signIns`, those that ended (signed out, expired):
    /// the agent ends the terminal sessions opened under them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended_sign_ins: Vec<String>,
}

/// `POST /api/workspaces/{id}/boot-progress`: one step of the agent's boot.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BootProgress {
    /// `redeem`, `clone`, `devcontainer`, `ready`, ...: a word of letters,
    /// digits, `-` and `_`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64))]
    pub step: String,
    /// `running`, `done`, `failed`, or `output` (the running step's newest
    /// lines, sent every few seconds while there are new ones); other words
    /// are recorded as progress.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]{1,16}$", min_length = 1, max_length = 16))]
    pub status: String,
    /// What went wrong (for `failed`: the reason, then the step's last
    /// lines of output), the newest lines (for `output`), or what is
    /// happening.
    #[serde(default)]
    pub message: String,
}

/// Whether an agent of `agent_version` is the one this control plane serves
/// (`served`); `None` when either is unknown.
pub fn agent_version_matches(agent_version: Option<&str>, served: Option<&str>) -> Option<bool> {
    Some(agent_version? == served?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::datetime;

    use super::*;

    /// The exact text each side sends; `sam-agent` checks its side against
    /// the same strings.
    pub const HEARTBEAT_REPORT: &str =
        r#"{"idleSeconds":42,"activeSessions":2,"lastActivityAt":"2026-01-01T00:00:00Z","agentVersion":"0.1.0"}"#;
    pub const HEARTBEAT_ANSWER: &str = r#"{"action":"warn","idleThreshold":1800,"shutdownAt":"2026-01-01T00:30:00Z"}"#;
    pub const BOOT_PROGRESS: &str = r#"{"step":"clone","status":"failed","message":"repository not found"}"#;

    #[test]
    fn heartbeat_report_golden() {
        let report = HeartbeatReport {
            idle_seconds: 42,
            active_sessions: 2,
            last_activity_at: Some(datetime!(2026-01-01 00:00:00 UTC)),
            agent_version: Some("0.1.0".into()),
            sign_ins: Vec::new(),
            ports: Vec::new(),
        };
        assert_eq!(serde_json::to_string(&report).unwrap(), HEARTBEAT_REPORT);
        assert_eq!(serde_json::from_str::<HeartbeatReport>(HEARTBEAT_REPORT).unwrap(), report);
        // An older agent's report (no optional fields) still parses.
        assert_eq!(
            serde_json::from_str::<HeartbeatReport>(r#"{"idleSeconds":3}"#).unwrap(),
            HeartbeatReport::new(3, 0)
        );
    }

    #[test]
    fn heartbeat_answer_golden() {
        let answer = HeartbeatAnswer {
            action: HeartbeatAction::Warn,
            idle_threshold: 1800,
            shutdown_at: Some(datetime!(2026-01-01 00:30:00 UTC)),
            ended_sign_ins: Vec::new(),
        };
        assert_eq!(serde_json::to_string(&answer).unwrap(), HEARTBEAT_ANSWER);
        assert_eq!(serde_json::from_str::<HeartbeatAnswer>(HEARTBEAT_ANSWER).unwrap(), answer);
        let bare: HeartbeatAnswer = serde_json::from_str(r#"{"action":"continue"}"#).unwrap();
        assert_eq!((bare.action, bare.idle_threshold, bare.shutdown_at), (HeartbeatAction::Continue, 0, None));
        assert!(serde_json::from_str::<HeartbeatAnswer>(r#"{"action":"explode"}"#).is_err());
    }

    #[test]
    fn boot_progress_golden() {
        let progress =
            BootProgress { step: "clone".into(), status: "failed".into(), message: "repository not found".into() };
        assert_eq!(serde_json::to_string(&progress).unwrap(), BOOT_PROGRESS);
        assert_eq!(serde_json::from_str::<BootProgress>(BOOT_PROGRESS).unwrap(), progress);
    }

    #[test]
    fn versions_are_compared_only_when_both_are_known() {
        assert_eq!(agent_version_matches(Some("0.1.0"), Some("0.1.0")), Some(true));
        assert_eq!(agent_version_matches(Some("0.0.9"), Some("0.1.0")), Some(false));
        assert_eq!(agent_version_matches(None, Some("0.1.0")), None);
        assert_eq!(agent_version_matches(Some("0.1.0"), None), None);
    }
}
