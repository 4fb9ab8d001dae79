//! The deployment's firewall in a user's Hetzner project: one per deployment,
//! named `sam-<deployment>`, labelled `sam-managed=true` and
//! `sam-deployment=<id>`, applied to the label selector
//! `sam-managed=true,sam-deployment=<id>` (every server of the deployment,
//! including ones made before it existed) and, by the engine, to each new
//! server as it is created (so no server boots unfiltered while Hetzner
//! processes the selector).
//!
//! Calls: `GET /firewalls?name=`, `POST /firewalls`,
//! `POST /firewalls/{id}/actions/{set_rules,apply_to_resources,remove_from_resources}`,
//! `DELETE /firewalls/{id}` (retried while Hetzner still reports
//! `resource_in_use` after the removal).

use std::collections::BTreeMap;

use reqwest::Method;
use sam_core::domain::{DeploymentId, ServerId};
use sam_core::ports::{
    Firewall, FirewallPolicy, FirewallProtocol, InboundRule, LABEL_DEPLOYMENT, LABEL_MANAGED, ProviderError,
    ProviderErrorKind, normalized_rules,
};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{HetznerProvider, PROVIDER, classify};
use crate::http::Request;

/// The selector of every server of `deployment`.
pub(super) fn deployment_selector(deployment: &DeploymentId) -> String {
    format!("{LABEL_MANAGED}=true,{LABEL_DEPLOYMENT}={deployment}")
}

fn rule_json(rule: &InboundRule) -> Value {
    let protocol = match rule.protocol {
        FirewallProtocol::Tcp => "tcp",
        FirewallProtocol::Udp => "udp",
        FirewallProtocol::Icmp => "icmp",
    };
    let mut value = json!({"direction": "in", "protocol": protocol, "source_ips": rule.sources,
                           "description": rule.description});
    if let Some(port) = rule.port {
        value["port"] = json!(port.to_string());
    }
    value
}

impl HRule {
    /// The rule as SAM writes them; `None` for one SAM never writes (an
    /// outbound rule, a port range), which makes the set differ.
    fn to_inbound(&self) -> Option<InboundRule> {
        if self.direction != "in" {
            return None;
        }
        let protocol = match self.protocol.as_str() {
            "tcp" => FirewallProtocol::Tcp,
            "udp" => FirewallProtocol::Udp,
            "icmp" => FirewallProtocol::Icmp,
            _ => return None,
        };
        let port = match &self.port {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        Some(InboundRule {
            protocol,
            port,
            sources: self.source_ips.clone(),
            description: self.description.clone().unwrap_or_default(),
        })
    }
}

impl HFirewall {
    fn covers(&self, selector: &str) -> bool {
        self.applied_to.iter().any(|a| a.label_selector.as_ref().is_some_and(|s| s.selector == selector))
    }

    fn into_firewall(self, selector: &str) -> Firewall {
        let covers_deployment = self.covers(selector);
        let mut servers: Vec<ServerId> = Vec::new();
        for applied in self.applied_to.iter().flat_map(|a| std::iter::once(a).chain(&a.applied_to_resources)) {
            if let Some(server) = &applied.server {
                let id = ServerId(server.id.to_string());
                if !servers.contains(&id) {
                    servers.push(id);
                }
            }
        }
        Firewall {
            id: self.id.to_string(),
            name: self.name,
            rules: self.rules.iter().filter_map(HRule::to_inbound).collect(),
            covers_deployment,
            servers,
        }
    }

    fn rules_match(&self, policy: &FirewallPolicy) -> bool {
        let ours: Option<Vec<InboundRule>> = self.rules.iter().map(HRule::to_inbound).collect();
        ours.is_some_and(|rules| normalized_rules(&rules) == policy.normalized_rules())
    }
}

impl HetznerProvider {
    async fn firewall_named(&self, token: &SecretString, name: &str) -> Result<Option<HFirewall>, ProviderError> {
        let response = self.get(token, "firewalls", &[("name", name.to_owned())]).await?;
        let body: FirewallsBody = response.json(PROVIDER)?;
        Ok(body.firewalls.into_iter().find(|f| f.name == name))
    }

    async fn firewall_action(
        &self,
        token: &SecretString,
        id: u64,
        action: &str,
        body: Value,
    ) -> Result<(), ProviderError> {
        let url = self.url(&format!("firewalls/{id}/actions/{action}"), &[])?;
        self.http.send(&Request::new(Method::POST, url).bearer(token).json(body), classify).await?;
        Ok(())
    }

    pub(super) async fn ensure_firewall_now(
        &self,
        token: &SecretString,
        policy: &FirewallPolicy,
    ) -> Result<String, ProviderError> {
        let name = policy.name();
        let selector = deployment_selector(&policy.deployment);
        let rules: Vec<Value> = policy.rules.iter().map(rule_json).collect();
        let existing = match self.firewall_named(token, &name).await? {
            Some(existing) => existing,
            None => {
                let labels = BTreeMap::from([
                    (LABEL_MANAGED.to_owned(), "true".to_owned()),
                    (LABEL_DEPLOYMENT.to_owned(), policy.deployment.to_string()),
                ]);
                let body = json!({"name": name, "labels": labels, "rules": rules,
                                  "apply_to": [{"type": "label_selector", "label_selector": {"selector": selector}}]});
                let request = Request::new(Method::POST, self.url("firewalls", &[])?).bearer(token).json(body);
                match self.http.send(&request, classify).await {
                    Ok(response) => {
                        let created: FirewallBody = response.json(PROVIDER)?;
                        return Ok(created.firewall.id.to_string());
                    }
                    // Made concurrently (another replica, another workspace):
                    // check that one like any existing firewall.
                    Err(e) if e.message().contains("uniqueness_error") => {
                        self.firewall_named(token, &name).await?.ok_or(e)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if !existing.rules_match(policy) {
            tracing::info!(firewall = existing.id, "firewall rules differ from the policy; replacing them");
            self.firewall_action(token, existing.id, "set_rules", json!({"rules": rules})).await?;
        }
        if !existing.covers(&selector) {
            let apply = json!({"apply_to": [{"type": "label_selector", "label_selector": {"selector": selector}}]});
            match self.firewall_action(token, existing.id, "apply_to_resources", apply).await {
                Ok(()) => {}
                Err(e) if e.message().contains("firewall_already_applied") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(existing.id.to_string())
    }

    pub(super) async fn find_firewall_now(
        &self,
        token: &SecretString,
        deployment: &DeploymentId,
    ) -> Result<Option<Firewall>, ProviderError> {
        let selector = deployment_selector(deployment);
        Ok(self.firewall_named(token, &FirewallPolicy::name_for(deployment)).await?.map(|f| f.into_firewall(&selector)))
    }

    pub(super) async fn delete_firewall_now(
        &self,
        token: &SecretString,
        deployment: &DeploymentId,
    ) -> Result<(), ProviderError> {
        let Some(firewall) = self.firewall_named(token, &FirewallPolicy::name_for(deployment)).await? else {
            return Ok(());
        };
        let targets: Vec<Value> = firewall
            .applied_to
            .iter()
            .filter_map(|a| match (a.kind.as_str(), &a.server, &a.label_selector) {
                ("server", Some(server), _) => Some(json!({"type": "server", "server": {"id": server.id}})),
                ("label_selector", _, Some(sel)) => {
                    Some(json!({"type": "label_selector", "label_selector": {"selector": sel.selector}}))
                }
                _ => None,
            })
            .collect();
        if !targets.is_empty() {
            match self
                .firewall_action(token, firewall.id, "remove_from_resources", json!({"remove_from": targets}))
                .await
            {
                Ok(()) => {}
                Err(e) if e.message().contains("firewall_already_removed") => {}
                Err(e) => return Err(e),
            }
        }
        let url = self.url(&format!("firewalls/{}", firewall.id), &[])?;
        match self.http.send(&Request::new(Method::DELETE, url).bearer(token), classify).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ProviderErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[derive(Deserialize)]
struct FirewallsBody {
    firewalls: Vec<HFirewall>,
}

#[derive(Deserialize)]
struct FirewallBody {
    firewall: HFirewall,
}

#[derive(Deserialize)]
struct HFirewall {
    id: u64,
    name: String,
    #[serde(default)]
    rules: Vec<HRule>,
    #[serde(default)]
    applied_to: Vec<HApplied>,
}

#[derive(Deserialize)]
struct HRule {
    direction: String,
    protocol: String,
    port: Option<String>,
    #[serde(default)]
    source_ips: Vec<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct HApplied {
    #[serde(rename = "type")]
    kind: String,
    server: Option<HId>,
    label_selector: Option<HSelector>,
    #[serde(default)]
    applied_to_resources: Vec<HApplied>,
}

#[derive(Deserialize)]
struct HId {
    id: u64,
}

#[derive(Deserialize)]
struct HSelector {
    selector: String,
}
