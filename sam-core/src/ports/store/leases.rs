//! Leases: which replica runs a singleton job.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// Time-bounded leases on named keys. A lease has at most one holder at any
/// instant (checked by `testkit::conformance::store::leases`).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews the lease on `key` for `holder` until `now + ttl`.
    /// Succeeds when the lease is free, expired, or already held by `holder`.
    async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Gives a lease up, if `holder` has it.
    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError>;
}
