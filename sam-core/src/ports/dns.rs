use std::net::Ipv4Addr;

use async_trait::async_trait;

use super::ProviderError;
use crate::domain::DeploymentId;

/// An A record in the operator's zone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DnsRecord {
    /// Provider's record id.
    pub id: String,
    /// Fully qualified name, e.g. `ws-<id>.example.dev`.
    pub name: String,
    /// Address.
    pub ipv4: Ipv4Addr,
    /// The deployment that made it, as marked on the record (Cloudflare: the
    /// comment `sam-deployment=<id>`); `None` for a record without the mark
    /// (made by hand, or by a SAM version before the mark).
    pub owner: Option<DeploymentId>,
}

/// The DNS zone that holds `ws-<id>` names. Uses the operator's credential,
/// configured in the adapter.
///
/// Contract (checked by `testkit::conformance::dns`):
/// - `upsert_a_record` lists by name first and updates in place: after any
///   number of upserts there is exactly one record for the name, even when
///   the zone accepts duplicates (Cloudflare does), and if duplicates already
///   exist the extras are removed; with an `owner` the record carries it
///   (an existing record is marked), without one its mark is left as it is;
/// - `delete_records` removes every record with the name; absent is success;
/// - `list_records` returns the records whose name starts with the prefix.
#[async_trait]
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    /// Short provider name, e.g. `cloudflare`.
    fn name(&self) -> &'static str;

    /// Checks the configured credential and zone.
    async fn verify(&self) -> Result<(), ProviderError>;

    /// Points `name` at `ipv4`, creating or updating, marked as `owner`'s
    /// when given; never leaves two records.
    async fn upsert_a_record(
        &self,
        name: &str,
        ipv4: Ipv4Addr,
        owner: Option<&DeploymentId>,
    ) -> Result<DnsRecord, ProviderError>;

    /// Deletes every A record named `name`; absent counts as success.
    async fn delete_records(&self, name: &str) -> Result<(), ProviderError>;

    /// A records whose fully qualified name starts with `prefix` (all pages).
    async fn list_records(&self, prefix: &str) -> Result<Vec<DnsRecord>, ProviderError>;
}
