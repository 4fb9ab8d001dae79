use async_trait::async_trait;

use super::ProviderError;
use crate::secret::SecretString;

/// What a workspace agent says about itself when asked directly.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgentHealth {
    /// Seconds since the last terminal input or output, as the agent counts.
    pub idle_seconds: u64,
    /// The agent's version, when it says.
    pub version: Option<String>,
}

/// Asks a workspace's agent directly whether it is alive: the positive
/// evidence the reconciler looks for before it calls a silent agent
/// unreachable (heartbeats can stop for reasons that are not the agent's,
/// such as a lost callback credential or a network path that only fails one
/// way).
///
/// An adapter reaches the agent the way the user's browser does (the
/// workspace's URL), so "answers" means "a user can reach it".
#[async_trait]
pub trait AgentProbe: Send + Sync + std::fmt::Debug {
    /// The agent's own health report from `workspace_url` (the address the
    /// browser opens, without a path), asked with `credential` (a
    /// `workspace-probe` token for that workspace: an agent gives its details
    /// to nobody else). An agent that refuses the credential is an error of
    /// kind `Unauthorized`; any error means "no answer".
    async fn health(&self, workspace_url: &str, credential: &SecretString) -> Result<AgentHealth, ProviderError>;
}
