//! The idle policy: activity is terminal input or output, reported by the agent
//! as "seconds since the last activity".

use std::time::Duration;

use crate::domain::Timestamp;
use crate::wire::HeartbeatAction;

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

/// What a user chose at create beyond the workspace's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The workspace's idle timeout (the deployment's default when `None`).
    pub idle_timeout: Option<Duration>,
}

/// When a running workspace stops for idleness, as known from its last
/// reported activity: the dashboard's countdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleWindow {
    /// The idle timeout that applies to it.
    pub threshold: Duration,
    /// When the warning starts (unless there is activity before).
    pub warn_at: Timestamp,
    /// When it stops (unless there is activity before).
    pub stop_at: Timestamp,
}
