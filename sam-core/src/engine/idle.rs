//! The idle policy: activity is terminal input or output, reported by the agent
//! as "seconds since the last activity".

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

/// What the agent reports every heartbeat.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReport {
    /// Seconds since the last terminal input or output on any session.
    pub idle_seconds: u64,
    /// Open terminal sessions.
    #[serde(default)]
    pub active_sessions: u32,
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

/// The answer to a heartbeat.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    /// What to do.
    pub action: HeartbeatAction,
    /// The idle threshold in seconds that applies to this workspace.
    pub idle_threshold: u64,
    /// When the workspace stops unless there is activity (for `warn`, and for
    /// `shutdown` when it was an idle stop).
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub shutdown_at: Option<Timestamp>,
}

/// The idle decision, a pure function: `Shutdown` once `last_activity +
/// threshold` has passed, `Warn` within `warning` of it, else `Continue`.
///
/// ```
/// use std::time::Duration;
/// use sam_core::engine::{idle_decision, HeartbeatAction};
/// let t0 = time::OffsetDateTime::UNIX_EPOCH;
/// let m = |n: u64| Duration::from_secs(n * 60);
/// assert_eq!(idle_decision(t0 + m(24), t0, m(30), m(5)).0, HeartbeatAction::Continue);
/// assert_eq!(idle_decision(t0 + m(25), t0, m(30), m(5)).0, HeartbeatAction::Warn);
/// assert_eq!(idle_decision(t0 + m(30), t0, m(30), m(5)).0, HeartbeatAction::Shutdown);
/// ```
pub fn idle_decision(
    now: Timestamp,
    last_activity: Timestamp,
    threshold: Duration,
    warning: Duration,
) -> (HeartbeatAction, Timestamp) {
    let deadline = last_activity + threshold;
    let action = if now >= deadline {
        HeartbeatAction::Shutdown
    } else if now + warning >= deadline {
        HeartbeatAction::Warn
    } else {
        HeartbeatAction::Continue
    };
    (action, deadline)
}
