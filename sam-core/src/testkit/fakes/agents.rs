use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use std::sync::Arc;

use crate::ports::{AgentHealth, AgentProbe, Audience, Clock, ProviderError, ProviderErrorKind, TokenVerifier};
use crate::secret::SecretString;
use crate::testkit::lock;

/// Agents reachable by URL: the ones told to [`answer`](FakeAgents::answer)
/// report their idle time to a `workspace-probe` token `verifier` accepts
/// (as real agents do); every other URL gets no answer.
#[derive(Debug)]
pub struct FakeAgents {
    verifier: Arc<dyn TokenVerifier>,
    clock: Arc<dyn Clock>,
    answering: Mutex<HashMap<String, AgentHealth>>,
    probes: Mutex<Vec<String>>,
}

impl FakeAgents {
    /// No agent answers yet; those that will accept the tokens `verifier`
    /// verifies at `clock`'s time.
    pub fn new(verifier: Arc<dyn TokenVerifier>, clock: Arc<dyn Clock>) -> Self {
        Self { verifier, clock, answering: Mutex::default(), probes: Mutex::default() }
    }

    /// The agent at `workspace_url` answers, idle for `idle_seconds`.
    pub fn answer(&self, workspace_url: &str, idle_seconds: u64) {
        let health = AgentHealth { idle_seconds, version: None };
        lock(&self.answering).insert(workspace_url.trim_end_matches('/').to_owned(), health);
    }

    /// The agent at `workspace_url` stops answering.
    pub fn silence(&self, workspace_url: &str) {
        lock(&self.answering).remove(workspace_url.trim_end_matches('/'));
    }

    /// Every URL probed so far, in order.
    pub fn probes(&self) -> Vec<String> {
        lock(&self.probes).clone()
    }
}

#[async_trait]
impl AgentProbe for FakeAgents {
    async fn health(&self, workspace_url: &str, credential: &SecretString) -> Result<AgentHealth, ProviderError> {
        let url = workspace_url.trim_end_matches('/').to_owned();
        lock(&self.probes).push(url.clone());
        let health = lock(&self.answering)
            .get(&url)
            .cloned()
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Transient, format!("no answer from {url}")))?;
        let now = self.clock.now();
        match self.verifier.verify(credential.expose(), Audience::WorkspaceProbe, now).await {
            Ok(_) => Ok(health),
            Err(e) => Err(ProviderError::new(ProviderErrorKind::Unauthorized, format!("agent: {:?}", e.kind))),
        }
    }
}
