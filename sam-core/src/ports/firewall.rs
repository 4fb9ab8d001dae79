//! What a cloud firewall in front of workspace servers must let in, and how
//! the edge in front of workspaces says where its connections come from.

use async_trait::async_trait;

use super::ProviderError;
use crate::domain::{DeploymentId, ServerId};

/// A protocol an inbound rule admits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum FirewallProtocol {
    /// TCP to one port.
    Tcp,
    /// UDP to one port.
    Udp,
    /// ICMP (ping, path MTU discovery).
    Icmp,
}

/// One inbound allowance. Everything no rule admits is dropped.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InboundRule {
    /// The protocol.
    pub protocol: FirewallProtocol,
    /// The destination port (TCP and UDP only).
    pub port: Option<u16>,
    /// Source networks in CIDR notation (`0.0.0.0/0` and `::/0` for any).
    pub sources: Vec<String>,
    /// Why the rule exists, shown in the provider's console.
    pub description: String,
}

impl InboundRule {
    /// The rule with its sources sorted and deduplicated, so two rules that
    /// admit the same traffic compare equal.
    pub fn normalized(&self) -> Self {
        let mut sources = self.sources.clone();
        sources.sort();
        sources.dedup();
        Self { sources, ..self.clone() }
    }
}

/// The firewall one deployment keeps in a user's cloud project: it applies
/// to every server carrying the deployment's label.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FirewallPolicy {
    /// The deployment whose servers it covers (and whose label it carries).
    pub deployment: DeploymentId,
    /// What it lets in.
    pub rules: Vec<InboundRule>,
}

impl FirewallPolicy {
    /// The firewall's name in the project: one per deployment.
    pub fn name(&self) -> String {
        Self::name_for(&self.deployment)
    }

    /// The name of `deployment`'s firewall (`sam-<deployment>`).
    pub fn name_for(deployment: &DeploymentId) -> String {
        format!("sam-{deployment}")
    }

    /// The rules in a canonical order (for comparing with what a provider
    /// reports).
    pub fn normalized_rules(&self) -> Vec<InboundRule> {
        normalized(&self.rules)
    }
}

/// Whether `text` is an address and a prefix length that fits its family
/// (`192.0.2.0/24`, `2001:db8::/32`): the form firewall rules and edge
/// ranges use.
///
/// ```
/// use sam_core::ports::is_cidr;
/// assert!(is_cidr("192.0.2.0/24") && is_cidr("::/0"));
/// assert!(!is_cidr("192.0.2.1") && !is_cidr("192.0.2.0/33"));
/// ```
pub fn is_cidr(text: &str) -> bool {
    let Some((addr, len)) = text.split_once('/') else { return false };
    match (addr.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(n)) => n <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(n)) => n <= 128,
        _ => false,
    }
}

/// `rules` normalized and sorted.
pub fn normalized(rules: &[InboundRule]) -> Vec<InboundRule> {
    let mut rules: Vec<InboundRule> = rules.iter().map(InboundRule::normalized).collect();
    rules.sort_by(|a, b| (a.protocol, a.port, &a.sources).cmp(&(b.protocol, b.port, &b.sources)));
    rules
}

/// A deployment's firewall as the provider reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Firewall {
    /// Provider id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Inbound rules.
    pub rules: Vec<InboundRule>,
    /// Whether it applies to every server with the deployment's label.
    pub covers_deployment: bool,
    /// Servers it is applied to, directly or through the label.
    pub servers: Vec<ServerId>,
}

/// Source ranges of the proxy in front of workspaces (Cloudflare's edge):
/// the only addresses a workspace's agent port needs to admit.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct EdgeRanges {
    /// IPv4 networks, CIDR notation.
    pub ipv4: Vec<String>,
    /// IPv6 networks, CIDR notation.
    pub ipv6: Vec<String>,
}

impl EdgeRanges {
    /// Both families, IPv4 first.
    pub fn all(&self) -> Vec<String> {
        self.ipv4.iter().chain(&self.ipv6).cloned().collect()
    }
}

/// The proxy in front of the workspaces, as far as a firewall needs to know it.
///
/// Contract (checked by `testkit::conformance::edge`): `source_ranges`
/// returns at least one network, each in CIDR notation.
#[async_trait]
pub trait EdgeNetwork: Send + Sync + std::fmt::Debug {
    /// The networks the edge connects to origins from (published by the
    /// provider, and changing now and then: fetch it again from time to time).
    async fn source_ranges(&self) -> Result<EdgeRanges, ProviderError>;
}
