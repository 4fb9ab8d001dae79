//! The [`DnsProvider`] contract.

use std::net::Ipv4Addr;

use async_trait::async_trait;

use crate::domain::{DeploymentId, WorkspaceId};
use crate::ports::DnsProvider;

/// Direct access to the zone behind a provider, bypassing the adapter, so the
/// suite can plant the duplicates a careless "create" would leave.
#[async_trait]
pub trait RawZone: Send + Sync {
    /// Creates an A record without looking for existing ones.
    async fn create_raw(&self, name: &str, ipv4: Ipv4Addr);
}

#[async_trait]
impl RawZone for crate::testkit::fakes::FakeDnsZone {
    async fn create_raw(&self, name: &str, ipv4: Ipv4Addr) {
        crate::testkit::fakes::FakeDnsZone::create_raw(self, name, ipv4);
    }
}

/// Runs the whole suite on names `ws-<uuid>.<zone>`. Leaves no record behind.
pub async fn run(provider: &dyn DnsProvider, raw: &dyn RawZone, zone: &str) {
    provider.verify().await.expect("the configured credential verifies");
    upsert_never_duplicates(provider, zone).await;
    upsert_collapses_existing_duplicates(provider, raw, zone).await;
    delete_is_idempotent(provider, zone).await;
    list_by_prefix(provider, zone).await;
    records_carry_their_owner(provider, raw, zone).await;
}

fn name(zone: &str) -> String {
    format!("{}.{zone}", WorkspaceId::new().dns_label())
}

async fn count(provider: &dyn DnsProvider, name: &str) -> usize {
    provider.list_records(name).await.expect("list").iter().filter(|r| r.name == name).count()
}

/// Upserting the same name repeatedly leaves exactly one record, pointing at
/// the latest address, with a stable id.
pub async fn upsert_never_duplicates(provider: &dyn DnsProvider, zone: &str) {
    let name = name(zone);
    let a = provider.upsert_a_record(&name, Ipv4Addr::new(192, 0, 2, 1), None).await.expect("upsert");
    let b = provider.upsert_a_record(&name, Ipv4Addr::new(192, 0, 2, 2), None).await.expect("upsert again");
    let c = provider.upsert_a_record(&name, Ipv4Addr::new(192, 0, 2, 2), None).await.expect("upsert unchanged");
    assert_eq!(a.id, b.id, "an upsert updates in place");
    assert_eq!(b.id, c.id);
    assert_eq!(c.ipv4, Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(count(provider, &name).await, 1, "one record per name");
    provider.delete_records(&name).await.expect("delete");
}

/// When the zone already holds duplicates (from an earlier bug or a race), an
/// upsert leaves one.
pub async fn upsert_collapses_existing_duplicates(provider: &dyn DnsProvider, raw: &dyn RawZone, zone: &str) {
    let name = name(zone);
    raw.create_raw(&name, Ipv4Addr::new(192, 0, 2, 7)).await;
    raw.create_raw(&name, Ipv4Addr::new(192, 0, 2, 8)).await;
    assert_eq!(count(provider, &name).await, 2, "the zone accepts duplicates (as Cloudflare does)");
    let record = provider.upsert_a_record(&name, Ipv4Addr::new(192, 0, 2, 9), None).await.expect("upsert");
    let records: Vec<_> =
        provider.list_records(&name).await.expect("list").into_iter().filter(|r| r.name == name).collect();
    assert_eq!(records.len(), 1, "the upsert removed the duplicate");
    assert_eq!(records[0].id, record.id);
    assert_eq!(records[0].ipv4, Ipv4Addr::new(192, 0, 2, 9));
    provider.delete_records(&name).await.expect("delete");
}

/// Deleting removes every record of the name; deleting again succeeds.
pub async fn delete_is_idempotent(provider: &dyn DnsProvider, zone: &str) {
    let name = name(zone);
    provider.upsert_a_record(&name, Ipv4Addr::new(192, 0, 2, 3), None).await.expect("upsert");
    provider.delete_records(&name).await.expect("delete");
    assert_eq!(count(provider, &name).await, 0);
    provider.delete_records(&name).await.expect("deleting an absent name succeeds");
}

/// Listing by prefix finds the workspace records and nothing outside it.
pub async fn list_by_prefix(provider: &dyn DnsProvider, zone: &str) {
    let names: Vec<String> = (0..3).map(|_| name(zone)).collect();
    for n in &names {
        provider.upsert_a_record(n, Ipv4Addr::new(192, 0, 2, 4), None).await.expect("upsert");
    }
    let listed = provider.list_records("ws-").await.expect("list");
    for n in &names {
        assert!(listed.iter().any(|r| &r.name == n), "{n} listed under ws-");
    }
    assert!(listed.iter().all(|r| r.name.starts_with("ws-")));
    for n in &names {
        provider.delete_records(n).await.expect("delete");
    }
}

/// A record made for a deployment is listed as that deployment's; one made
/// without a mark (by hand, or before marks) is listed without an owner and
/// is marked by an upsert with one; an upsert without an owner leaves the
/// mark alone.
pub async fn records_carry_their_owner(provider: &dyn DnsProvider, raw: &dyn RawZone, zone: &str) {
    let ours = DeploymentId::new("conformance.sam.test").expect("valid id");
    let owned = name(zone);
    let record = provider.upsert_a_record(&owned, Ipv4Addr::new(192, 0, 2, 10), Some(&ours)).await.expect("upsert");
    assert_eq!(record.owner.as_ref(), Some(&ours), "the upsert answers with the mark");
    let unmarked = name(zone);
    raw.create_raw(&unmarked, Ipv4Addr::new(192, 0, 2, 11)).await;
    let listed = provider.list_records("ws-").await.expect("list");
    let find = |n: &str| listed.iter().find(|r| r.name == n).cloned();
    assert_eq!(find(&owned).and_then(|r| r.owner), Some(ours.clone()), "listed with its owner");
    assert_eq!(find(&unmarked).map(|r| r.owner), Some(None), "a record without a mark has no owner");
    provider.upsert_a_record(&unmarked, Ipv4Addr::new(192, 0, 2, 11), Some(&ours)).await.expect("adopt");
    provider.upsert_a_record(&owned, Ipv4Addr::new(192, 0, 2, 12), None).await.expect("upsert without owner");
    let listed = provider.list_records("ws-").await.expect("list");
    for n in [&owned, &unmarked] {
        let record = listed.iter().find(|r| &r.name == n).expect("still there");
        assert_eq!(record.owner.as_ref(), Some(&ours), "{n} carries the mark");
    }
    provider.delete_records(&owned).await.expect("delete");
    provider.delete_records(&unmarked).await.expect("delete");
}
