//! The firewall in front of every workspace server: only the edge may reach
//! the agent's port, plus ICMP (and SSH from networks the operator names).
//! The engine keeps one per deployment in each user's cloud project, made or
//! corrected before each server is created and applied to it at creation.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use super::metered::metered;
use super::retry::with_retry;
use crate::domain::{Timestamp, WorkspaceId};
use crate::ports::{
    EdgeNetwork, EdgeRanges, FirewallPolicy, FirewallProtocol, InboundRule, ProviderError, ProviderErrorKind,
};
use crate::secret::SecretString;

/// What the engine puts in front of workspace servers
/// ([`Engine::with_firewall`]).
#[derive(Clone, Debug)]
pub struct WorkspaceFirewall {
    /// Where the edge's connections to agents come from.
    pub edge: Arc<dyn EdgeNetwork>,
    /// The port agents serve on (443 behind Cloudflare).
    pub agent_port: u16,
    /// Networks (CIDR) allowed to reach SSH on port 22; empty: no SSH.
    pub ssh_sources: Vec<String>,
    /// How long fetched edge ranges are used before they are fetched again
    /// (a failed refresh keeps the last ones).
    pub refresh: Duration,
}

impl WorkspaceFirewall {
    /// The settings for `edge` with the agent on 443, no SSH, and a daily
    /// refresh of the edge's ranges.
    pub fn new(edge: Arc<dyn EdgeNetwork>) -> Self {
        Self { edge, agent_port: 443, ssh_sources: Vec::new(), refresh: Duration::from_secs(24 * 3600) }
    }

    /// The rules for edge ranges `ranges`.
    pub fn rules(&self, ranges: &EdgeRanges) -> Vec<InboundRule> {
        let mut rules = vec![
            InboundRule {
                protocol: FirewallProtocol::Tcp,
                port: Some(self.agent_port),
                sources: ranges.all(),
                description: "SAM agent, from the edge only".into(),
            },
            InboundRule {
                protocol: FirewallProtocol::Icmp,
                port: None,
                sources: vec!["0.0.0.0/0".into(), "::/0".into()],
                description: "ICMP (ping, path MTU discovery)".into(),
            },
        ];
        if !self.ssh_sources.is_empty() {
            rules.push(InboundRule {
                protocol: FirewallProtocol::Tcp,
                port: Some(22),
                sources: self.ssh_sources.clone(),
                description: "SSH, from the operator's networks".into(),
            });
        }
        rules
    }
}

/// The edge ranges last fetched, and when.
pub(crate) type CachedRanges = std::sync::Mutex<Option<(EdgeRanges, Timestamp)>>;

impl Engine {
    /// Puts a firewall in front of every workspace server: before a server
    /// is created, the deployment's firewall in the user's project is made
    /// (or its rules corrected) and the server is created behind it. Without
    /// this, servers are created with no firewall.
    pub fn with_firewall(mut self, firewall: WorkspaceFirewall) -> Self {
        self.firewall = Some(firewall);
        self
    }

    /// The policy the deployment's firewall must have now, if firewalls are
    /// configured.
    pub async fn firewall_policy(&self) -> Result<Option<FirewallPolicy>, ProviderError> {
        let Some(firewall) = &self.firewall else { return Ok(None) };
        let ranges = self.edge_ranges(firewall).await?;
        Ok(Some(FirewallPolicy { deployment: self.config.deployment.clone(), rules: firewall.rules(&ranges) }))
    }

    async fn edge_ranges(&self, firewall: &WorkspaceFirewall) -> Result<EdgeRanges, ProviderError> {
        let now = self.now();
        let cached = self.edge_ranges.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some((ranges, fetched)) = &cached
            && now < *fetched + firewall.refresh
        {
            return Ok(ranges.clone());
        }
        // An empty list breaks the port's contract; a firewall built from it
        // would shut the edge out, so it counts as a failed fetch.
        let fetched = metered("edge", "source_ranges", firewall.edge.source_ranges()).await.and_then(|ranges| {
            if ranges.all().is_empty() {
                Err(ProviderError::new(ProviderErrorKind::Transient, "the edge published no address ranges"))
            } else {
                Ok(ranges)
            }
        });
        match fetched {
            Ok(ranges) => {
                *self.edge_ranges.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((ranges.clone(), now));
                Ok(ranges)
            }
            Err(e) => match cached {
                Some((ranges, _)) => {
                    tracing::warn!(error = %e, "edge ranges not refreshed; keeping the last ones");
                    Ok(ranges)
                }
                None => Err(e),
            },
        }
    }

    /// Makes the deployment's firewall in `token`'s project current and
    /// returns its id (`None`: no firewall configured, or the cloud has none).
    pub(crate) async fn ensure_firewall(
        &self,
        token: &SecretString,
        workspace: WorkspaceId,
    ) -> Result<Option<String>, ProviderError> {
        let Some(policy) = self.firewall_policy().await? else { return Ok(None) };
        let compute = &self.compute.0;
        with_retry(self.config.retry, "ensure_firewall", workspace, || {
            metered(compute.name(), "ensure_firewall", compute.ensure_firewall(token, &policy))
        })
        .await
    }
}
