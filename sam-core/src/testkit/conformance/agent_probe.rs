//! The [`AgentProbe`] contract.

use crate::ports::AgentProbe;

/// `live` is the URL of an agent that is up and was idle for at least
/// `min_idle_seconds`; nothing answers at `dead`.
pub async fn run(probe: &dyn AgentProbe, live: &str, min_idle_seconds: u64, dead: &str) {
    let health = probe.health(live).await.expect("a live agent answers");
    assert!(health.idle_seconds >= min_idle_seconds, "idle {} < {min_idle_seconds}", health.idle_seconds);
    let again = probe.health(&format!("{live}/")).await.expect("a trailing slash is the same URL");
    assert!(again.idle_seconds >= health.idle_seconds);
    assert!(probe.health(dead).await.is_err(), "nothing answers at {dead}");
}
