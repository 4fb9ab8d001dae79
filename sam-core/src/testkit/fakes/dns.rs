use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::faults::{FaultPlan, after};
use crate::domain::DeploymentId;
use crate::ports::{DnsProvider, DnsRecord, ProviderError};
use crate::testkit::lock;

/// An in-memory DNS zone that, like Cloudflare, accepts any number of A
/// records with the same name; only the [`DnsProvider`] implementation
/// upserts. Code that "creates where it should upsert" leaves duplicates here,
/// and the conformance suite catches it.
#[derive(Debug, Default)]
pub struct FakeDnsZone {
    records: Mutex<Vec<DnsRecord>>,
    next_id: AtomicU64,
    /// Faults by operation (`upsert_a_record`, `delete_records`, `list_records`).
    pub faults: FaultPlan,
}

impl FakeDnsZone {
    /// An empty zone.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record without looking for existing ones (the raw API).
    pub fn create_raw(&self, name: &str, ipv4: Ipv4Addr) -> DnsRecord {
        let record = DnsRecord {
            id: format!("rec-{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
            name: name.to_owned(),
            ipv4,
            owner: None,
        };
        lock(&self.records).push(record.clone());
        record
    }

    /// Removes the deployment mark of the records named `name` (as on
    /// records made before records carried one).
    pub fn remove_owner(&self, name: &str) {
        for record in lock(&self.records).iter_mut().filter(|r| r.name == name) {
            record.owner = None;
        }
    }

    /// Every record in the zone.
    pub fn records(&self) -> Vec<DnsRecord> {
        lock(&self.records).clone()
    }

    /// Records named `name`.
    pub fn records_named(&self, name: &str) -> Vec<DnsRecord> {
        lock(&self.records).iter().filter(|r| r.name == name).cloned().collect()
    }
}

#[async_trait]
impl DnsProvider for FakeDnsZone {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn verify(&self) -> Result<(), ProviderError> {
        let pending = self.faults.before("verify")?;
        after("verify", pending, ())
    }

    async fn upsert_a_record(
        &self,
        name: &str,
        ipv4: Ipv4Addr,
        owner: Option<&DeploymentId>,
    ) -> Result<DnsRecord, ProviderError> {
        let pending = self.faults.before("upsert_a_record")?;
        let mut record = {
            let mut records = lock(&self.records);
            let mut same_name = records.iter().enumerate().filter(|(_, r)| r.name == name).map(|(i, _)| i);
            match same_name.next() {
                Some(first) => {
                    let extras: Vec<usize> = same_name.collect();
                    records[first].ipv4 = ipv4;
                    if let Some(owner) = owner {
                        records[first].owner = Some(owner.clone());
                    }
                    let kept = records[first].clone();
                    for index in extras.into_iter().rev() {
                        records.remove(index);
                    }
                    kept
                }
                None => {
                    drop(records);
                    self.create_raw(name, ipv4)
                }
            }
        };
        if let Some(owner) = owner
            && record.owner.as_ref() != Some(owner)
        {
            record.owner = Some(owner.clone());
            if let Some(stored) = lock(&self.records).iter_mut().find(|r| r.id == record.id) {
                stored.owner = Some(owner.clone());
            }
        }
        after("upsert_a_record", pending, record)
    }

    async fn delete_records(&self, name: &str) -> Result<(), ProviderError> {
        let pending = self.faults.before("delete_records")?;
        lock(&self.records).retain(|r| r.name != name);
        after("delete_records", pending, ())
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let pending = self.faults.before("list_records")?;
        let found = lock(&self.records).iter().filter(|r| r.name.starts_with(prefix)).cloned().collect();
        after("list_records", pending, found)
    }
}
