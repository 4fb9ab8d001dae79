use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Firewall, FirewallPolicy, ProviderError};
use crate::domain::{
    CredentialProvider, DeploymentId, Location, ServerId, ServerTypeOffer, Timestamp, VmSize, WorkspaceId,
};
use crate::secret::SecretString;

/// Label every SAM server carries, so orphans can be found.
pub const LABEL_MANAGED: &str = "sam-managed";
/// Label naming the workspace a server belongs to; create is idempotent by it.
pub const LABEL_WORKSPACE: &str = "sam-workspace";
/// Label naming the deployment that created a server: a deployment's orphan
/// sweep and teardown touch only servers carrying its own id.
pub const LABEL_DEPLOYMENT: &str = "sam-deployment";

/// What to create.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ServerSpec {
    /// Workspace the server is for; becomes the `sam-workspace` label.
    pub workspace_id: WorkspaceId,
    /// The deployment creating it; becomes the `sam-deployment` label.
    pub deployment: DeploymentId,
    /// Server name (`ws-<id>`).
    pub name: String,
    /// Size; the provider maps it to one of its live server types.
    pub size: VmSize,
    /// The CPU architectures the server may have ([`crate::domain::arch`]):
    /// the ones an agent is served for (and the image exists in). The
    /// provider picks the cheapest type of these for the size
    /// ([`crate::domain::choose_server_type_of`]).
    pub architectures: &'static [&'static str],
    /// Location code.
    pub location: String,
    /// OS image, e.g. `ubuntu-24.04`.
    pub image: String,
    /// cloud-init user data (≤ 32 KiB on Hetzner). Holds no long-lived secret:
    /// it is readable from inside the VM.
    pub user_data: String,
    /// Extra labels; the provider adds `sam-managed`, `sam-workspace` and
    /// `sam-deployment`.
    pub labels: BTreeMap<String, String>,
    /// A firewall (from [`ComputeProvider::ensure_firewall`]) to apply as
    /// the server is created, so it is never reachable unfiltered.
    pub firewall: Option<String>,
}

impl ServerSpec {
    /// All labels the server must carry, including SAM's own.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_WORKSPACE.into(), self.workspace_id.to_string());
        labels.insert(LABEL_DEPLOYMENT.into(), self.deployment.to_string());
        labels
    }
}

/// A provider's server status, reduced to what SAM acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    /// Being created or booting.
    Starting,
    /// Powered on.
    Running,
    /// Powering off.
    Stopping,
    /// Powered off.
    Off,
    /// Being deleted.
    Deleting,
    /// Anything else the provider reports.
    Unknown,
}

/// A server as the provider reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Server {
    /// Provider id.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: ServerStatus,
    /// Public IPv4, once assigned.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Server type the provider chose for the size.
    pub server_type: String,
    /// Location code.
    pub location: String,
    /// Creation time at the provider.
    pub created_at: Timestamp,
}

impl Server {
    /// The workspace this server belongs to, from its label.
    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        self.labels.get(LABEL_WORKSPACE).and_then(|v| v.parse().ok())
    }

    /// The deployment that created it, from its label (`None`: a server
    /// made before deployments were labelled, or by hand).
    pub fn deployment(&self) -> Option<&str> {
        self.labels.get(LABEL_DEPLOYMENT).map(String::as_str)
    }

    /// Whether it carries SAM's `sam-managed=true` label.
    pub fn is_managed(&self) -> bool {
        self.labels.get(LABEL_MANAGED).is_some_and(|v| v == "true")
    }
}

/// A cloud that runs workspace servers on the user's own account. Every call
/// takes the user's token; adapters hold no per-user state.
///
/// Contract (checked by `testkit::conformance::compute`):
/// - `create_server` is idempotent by the `sam-workspace` label: if a server
///   with the label exists it is returned and nothing new is created;
/// - `delete_server` of an absent server succeeds;
/// - `list_servers` returns only servers labelled `sam-managed=true`;
/// - `add_labels` keeps the labels a server has and adds or overwrites the
///   given ones;
/// - a cloud with firewalls: after `ensure_firewall` the deployment has
///   exactly one firewall, with exactly the policy's rules, covering every
///   server with its label (also one created with the returned id in
///   [`ServerSpec::firewall`]); a second call with the same policy changes
///   nothing, one with other rules replaces them; `delete_firewall` leaves
///   none, and of an absent one succeeds;
/// - an invalid token fails with [`ProviderErrorKind::Unauthorized`](super::ProviderErrorKind::Unauthorized).
#[async_trait]
pub trait ComputeProvider: Send + Sync + std::fmt::Debug {
    /// Short provider name, e.g. `hetzner`.
    fn name(&self) -> &'static str;

    /// The kind of credential the user connects for this cloud: the engine
    /// stores, looks up and sweeps with this kind, so an adapter for another
    /// cloud needs no change to `sam-core`.
    fn credential_kind(&self) -> CredentialProvider;

    /// Checks the token with a cheap authenticated call.
    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError>;

    /// Creates the workspace's server, or returns the one it already has.
    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError>;

    /// One server by id; `None` when it does not exist.
    async fn get_server(&self, token: &SecretString, id: &ServerId) -> Result<Option<Server>, ProviderError>;

    /// The servers labelled for `workspace` (normally zero or one).
    async fn find_servers(&self, token: &SecretString, workspace: WorkspaceId) -> Result<Vec<Server>, ProviderError>;

    /// Every SAM-managed server of the account (all pages).
    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError>;

    /// Adds `labels` to a server's labels (overwriting those with the same
    /// key, keeping the rest): how a deployment marks a server made before
    /// servers carried its id.
    async fn add_labels(
        &self,
        token: &SecretString,
        id: &ServerId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError>;

    /// Deletes a server; absent counts as success.
    async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError>;

    /// Powers a server off (hard).
    async fn power_off(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError>;

    /// Powers a server on.
    async fn power_on(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError>;

    /// The live catalogue of server types with prices.
    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError>;

    /// The locations the account can use.
    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError>;

    /// Makes the deployment's firewall in the token's project match `policy`
    /// (creating it, or replacing rules that differ) and apply to every
    /// server labelled with the deployment; returns its id, or `None` when
    /// this cloud has no firewalls (the default).
    async fn ensure_firewall(
        &self,
        _token: &SecretString,
        _policy: &FirewallPolicy,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// The deployment's firewall in the token's project, if there is one.
    async fn find_firewall(
        &self,
        _token: &SecretString,
        _deployment: &DeploymentId,
    ) -> Result<Option<Firewall>, ProviderError> {
        Ok(None)
    }

    /// Removes the deployment's firewall from everything it applies to and
    /// deletes it; absent counts as success.
    async fn delete_firewall(&self, _token: &SecretString, _deployment: &DeploymentId) -> Result<(), ProviderError> {
        Ok(())
    }
}
