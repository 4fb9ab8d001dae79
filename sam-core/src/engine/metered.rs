//! The engine's view of the compute and DNS ports: every call is timed and its
//! failures counted (see [`crate::metrics`]). The ports handed to
//! [`Engine::new`](super::Engine::new) are kept as they are; only the engine's
//! own calls go through these wrappers.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use crate::domain::{DeploymentId, Location, ServerId, WorkspaceId};
use crate::metrics::provider_call;
use crate::ports::{ComputeProvider, DnsProvider, DnsRecord, ProviderError, Server, ServerSpec};
use crate::secret::SecretString;

/// Times `call` and records it under the provider's name and `operation`.
pub(crate) async fn metered<T>(
    provider: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let started = Instant::now();
    let result = call.await;
    provider_call(provider, operation, started, &result);
    result
}

/// A [`ComputeProvider`] whose calls are measured.
#[derive(Clone, Debug)]
pub(crate) struct MeteredCompute(pub(crate) Arc<dyn ComputeProvider>);

impl MeteredCompute {
    pub(crate) async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        metered(self.0.name(), "create_server", self.0.create_server(token, spec)).await
    }

    pub(crate) async fn get_server(
        &self,
        token: &SecretString,
        id: &ServerId,
    ) -> Result<Option<Server>, ProviderError> {
        metered(self.0.name(), "get_server", self.0.get_server(token, id)).await
    }

    pub(crate) async fn find_servers(
        &self,
        token: &SecretString,
        workspace: WorkspaceId,
    ) -> Result<Vec<Server>, ProviderError> {
        metered(self.0.name(), "find_servers", self.0.find_servers(token, workspace)).await
    }

    pub(crate) async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        metered(self.0.name(), "list_servers", self.0.list_servers(token)).await
    }

    pub(crate) async fn add_labels(
        &self,
        token: &SecretString,
        id: &ServerId,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        metered(self.0.name(), "add_labels", self.0.add_labels(token, id, labels)).await
    }

    pub(crate) async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        metered(self.0.name(), "delete_server", self.0.delete_server(token, id)).await
    }

    pub(crate) async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        metered(self.0.name(), "list_locations", self.0.list_locations(token)).await
    }
}

/// A [`DnsProvider`] whose calls are measured.
#[derive(Clone, Debug)]
pub(crate) struct MeteredDns(pub(crate) Arc<dyn DnsProvider>);

impl MeteredDns {
    pub(crate) async fn upsert_a_record(
        &self,
        name: &str,
        ipv4: Ipv4Addr,
        owner: &DeploymentId,
    ) -> Result<DnsRecord, ProviderError> {
        metered(self.0.name(), "upsert_a_record", self.0.upsert_a_record(name, ipv4, Some(owner))).await
    }

    pub(crate) async fn delete_records(&self, name: &str) -> Result<(), ProviderError> {
        metered(self.0.name(), "delete_records", self.0.delete_records(name)).await
    }

    pub(crate) async fn list_records(&self, prefix: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        metered(self.0.name(), "list_records", self.0.list_records(prefix)).await
    }
}
