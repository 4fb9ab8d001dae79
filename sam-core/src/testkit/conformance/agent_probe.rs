//! The [`AgentProbe`] contract.

use crate::ports::{AgentProbe, ProviderErrorKind};
use crate::secret::SecretString;

/// `live` is the URL of an agent that is up and was idle for at least
/// `min_idle_seconds`, and accepts `credential`; nothing answers at `dead`.
pub async fn run(probe: &dyn AgentProbe, live: &str, credential: &SecretString, min_idle_seconds: u64, dead: &str) {
    let health = probe.health(live, credential).await.expect("a live agent answers");
    assert!(health.idle_seconds >= min_idle_seconds, "idle {} < {min_idle_seconds}", health.idle_seconds);
    let again = probe.health(&format!("{live}/"), credential).await.expect("a trailing slash is the same URL");
    assert!(again.idle_seconds >= health.idle_seconds);
    for forged in ["", "not-a-token", "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ3b3Jrc3BhY2UtcHJvYmUifQ."] {
        let refused = probe.health(live, &SecretString::from(forged)).await.expect_err("details need the credential");
        assert_eq!(refused.kind(), ProviderErrorKind::Unauthorized, "{forged:?}: {refused}");
    }
    assert!(probe.health(dead, credential).await.is_err(), "nothing answers at {dead}");
}
