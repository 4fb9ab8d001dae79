//! The [`ComputeProvider`] contract.

use std::collections::BTreeMap;

use crate::domain::{DeploymentId, VmSize, WorkspaceId, choose_server_type};
use crate::ports::{
    ComputeProvider, FirewallPolicy, FirewallProtocol, InboundRule, LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_WORKSPACE,
    ProviderErrorKind, ServerSpec, ServerStatus,
};
use crate::secret::SecretString;

/// A spec for `workspace` in `location`, as the engine would build it.
pub fn spec(workspace: WorkspaceId, location: &str) -> ServerSpec {
    ServerSpec {
        workspace_id: workspace,
        deployment: conformance_deployment(),
        name: workspace.dns_label(),
        size: VmSize::Small,
        architectures: crate::domain::arch::X86_ONLY,
        location: location.to_owned(),
        image: "ubuntu-24.04".into(),
        user_data: "#cloud-config\n{}\n".into(),
        labels: BTreeMap::from([("sam-test".to_owned(), "conformance".to_owned())]),
        firewall: None,
    }
}

fn conformance_deployment() -> DeploymentId {
    DeploymentId::new("conformance.sam.test").expect("a valid deployment id")
}

/// Runs the whole suite. `token` must be valid for the provider's account and
/// `location` one it offers. Leaves no server behind.
pub async fn run(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    credentials(provider, token).await;
    catalogue(provider, token, location).await;
    create_is_idempotent_by_label(provider, token, location).await;
    delete_of_absent_server_succeeds(provider, token, location).await;
    power_cycle(provider, token, location).await;
    listing_returns_only_managed_servers(provider, token, location).await;
    labels_are_added_not_replaced(provider, token, location).await;
    firewalls(provider, token, location).await;
}

fn firewall_policy(port: u16) -> FirewallPolicy {
    FirewallPolicy {
        deployment: conformance_deployment(),
        rules: vec![
            InboundRule {
                protocol: FirewallProtocol::Tcp,
                port: Some(port),
                sources: vec!["198.51.100.0/24".into(), "2001:db8::/32".into(), "192.0.2.0/24".into()],
                description: "the agent, from the edge".into(),
            },
            InboundRule {
                protocol: FirewallProtocol::Icmp,
                port: None,
                sources: vec!["0.0.0.0/0".into(), "::/0".into()],
                description: "ping".into(),
            },
        ],
    }
}

/// The deployment's firewall: one, with exactly the policy's rules, on every
/// server of the deployment; idempotent; rules replaced; deleted cleanly.
async fn firewalls(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let deployment = conformance_deployment();
    let policy = firewall_policy(443);
    let Some(id) = provider.ensure_firewall(token, &policy).await.expect("ensure_firewall") else {
        assert_eq!(provider.find_firewall(token, &deployment).await.expect("find_firewall"), None);
        return;
    };
    assert_eq!(
        provider.ensure_firewall(token, &policy).await.expect("ensure_firewall again"),
        Some(id.clone()),
        "a second ensure keeps the same firewall"
    );
    let found = provider.find_firewall(token, &deployment).await.expect("find_firewall").expect("the firewall");
    assert_eq!(found.id, id);
    assert_eq!(found.name, policy.name());
    assert!(found.covers_deployment, "applied to the deployment's label");
    assert_eq!(crate::ports::normalized_rules(&found.rules), policy.normalized_rules());

    // A server created with it carries it from the start.
    let ws = WorkspaceId::new();
    let mut with_firewall = spec(ws, location);
    with_firewall.firewall = Some(id.clone());
    let server = provider.create_server(token, &with_firewall).await.expect("create with firewall");
    let found = provider.find_firewall(token, &deployment).await.expect("find_firewall").expect("the firewall");
    assert!(found.servers.contains(&server.id), "the new server is behind the firewall: {found:?}");

    // Other rules replace the old ones, in place.
    let changed = firewall_policy(8443);
    assert_eq!(provider.ensure_firewall(token, &changed).await.expect("ensure changed"), Some(id.clone()));
    let found = provider.find_firewall(token, &deployment).await.expect("find_firewall").expect("the firewall");
    assert_eq!(crate::ports::normalized_rules(&found.rules), changed.normalized_rules());

    provider.delete_server(token, &server.id).await.expect("delete server");
    provider.delete_firewall(token, &deployment).await.expect("delete_firewall");
    assert_eq!(provider.find_firewall(token, &deployment).await.expect("find_firewall"), None);
    provider.delete_firewall(token, &deployment).await.expect("delete of an absent firewall succeeds");
}

/// A valid token validates; a bogus one is `Unauthorized`.
pub async fn credentials(provider: &dyn ComputeProvider, token: &SecretString) {
    provider.validate_credential(token).await.expect("a valid token validates");
    let bogus = SecretString::new("conformance-invalid-token");
    let err = provider.validate_credential(&bogus).await.expect_err("an invalid token is refused");
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized, "invalid token: {err}");
    assert!(!err.to_string().contains("conformance-invalid-token"), "errors must not echo the token");
    let err = provider.list_servers(&bogus).await.expect_err("listing with an invalid token fails");
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);
}

/// Server types with prices and locations are listed, and every size maps to
/// a type in `location`.
pub async fn catalogue(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let types = provider.list_server_types(token).await.expect("server types");
    assert!(!types.is_empty(), "server types listed");
    for size in VmSize::ALL {
        assert!(choose_server_type(size, location, &types).is_some(), "a {size} type is offered in {location}");
    }
    let locations = provider.list_locations(token).await.expect("locations");
    assert!(locations.iter().any(|l| l.code.as_str() == location), "{location} is listed");
}

/// Creating twice for one workspace returns the same server; it carries SAM's
/// labels; `find_servers` and `get_server` see it; deleting removes it.
pub async fn create_is_idempotent_by_label(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let workspace = WorkspaceId::new();
    let spec = spec(workspace, location);
    let first = provider.create_server(token, &spec).await.expect("create");
    let second = provider.create_server(token, &spec).await.expect("create again");
    assert_eq!(first.id, second.id, "a second create for the same workspace returns the same server");
    assert_eq!(first.labels.get(LABEL_MANAGED).map(String::as_str), Some("true"));
    assert_eq!(first.labels.get(LABEL_WORKSPACE), Some(&workspace.to_string()));
    assert_eq!(first.labels.get("sam-test").map(String::as_str), Some("conformance"));
    assert_eq!(first.workspace_id(), Some(workspace));
    assert_eq!(first.deployment(), Some("conformance.sam.test"), "the deployment is a label");
    assert!(first.public_ipv4.is_some(), "a created server has a public IPv4");
    assert_eq!(first.location, location);

    let found = provider.find_servers(token, workspace).await.expect("find");
    assert_eq!(found.len(), 1, "exactly one server per workspace");
    let got = provider.get_server(token, &first.id).await.expect("get").expect("server exists");
    assert_eq!(got.id, first.id);
    assert!(provider.find_servers(token, WorkspaceId::new()).await.expect("find other").is_empty());

    provider.delete_server(token, &first.id).await.expect("delete");
    let after = provider.find_servers(token, workspace).await.expect("find after delete");
    assert!(after.iter().all(|s| s.status == ServerStatus::Deleting), "a deleted server is gone (or at most deleting)");
}

/// Deleting a server that does not exist (any more) succeeds, and getting it
/// returns `None`.
pub async fn delete_of_absent_server_succeeds(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let server = provider.create_server(token, &spec(WorkspaceId::new(), location)).await.expect("create");
    provider.delete_server(token, &server.id).await.expect("delete");
    provider.delete_server(token, &server.id).await.expect("deleting again succeeds");
    let missing = crate::domain::ServerId("999999999".into());
    provider.delete_server(token, &missing).await.expect("deleting an unknown id succeeds");
    assert!(provider.get_server(token, &missing).await.expect("get unknown").is_none());
}

/// Power off and on are accepted for an existing server.
pub async fn power_cycle(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let server = provider.create_server(token, &spec(WorkspaceId::new(), location)).await.expect("create");
    provider.power_off(token, &server.id).await.expect("power off");
    provider.power_on(token, &server.id).await.expect("power on");
    provider.delete_server(token, &server.id).await.expect("delete");
}

/// `list_servers` returns SAM's servers (all pages) and nothing unlabelled.
pub async fn listing_returns_only_managed_servers(
    provider: &dyn ComputeProvider,
    token: &SecretString,
    location: &str,
) {
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(provider.create_server(token, &spec(WorkspaceId::new(), location)).await.expect("create"));
    }
    let listed = provider.list_servers(token).await.expect("list");
    for server in &created {
        assert!(listed.iter().any(|s| s.id == server.id), "created server {} is listed", server.id);
    }
    assert!(listed.iter().all(|s| s.is_managed()), "only sam-managed servers are listed");
    for server in created {
        provider.delete_server(token, &server.id).await.expect("delete");
    }
}

/// Adding labels keeps the server's other labels, overwrites a label with
/// the same key, and shows in every later read.
pub async fn labels_are_added_not_replaced(provider: &dyn ComputeProvider, token: &SecretString, location: &str) {
    let server = provider.create_server(token, &spec(WorkspaceId::new(), location)).await.expect("create");
    let labels = BTreeMap::from([
        (LABEL_DEPLOYMENT.to_owned(), "adopted.sam.test".to_owned()),
        ("sam-extra".to_owned(), "1".to_owned()),
    ]);
    provider.add_labels(token, &server.id, &labels).await.expect("add labels");
    let got = provider.get_server(token, &server.id).await.expect("get").expect("server exists");
    assert_eq!(got.deployment(), Some("adopted.sam.test"), "a label with the same key is overwritten");
    assert_eq!(got.labels.get("sam-extra").map(String::as_str), Some("1"));
    assert_eq!(got.labels.get("sam-test").map(String::as_str), Some("conformance"), "other labels are kept");
    assert!(got.is_managed());
    let missing = crate::domain::ServerId("999999999".into());
    let err = provider.add_labels(token, &missing, &labels).await.expect_err("labelling an unknown server fails");
    assert_eq!(err.kind(), ProviderErrorKind::NotFound, "{err}");
    provider.delete_server(token, &server.id).await.expect("delete");
}
