//! Leases ([`LeaseStore`](crate::ports::LeaseStore)).

use std::time::Duration;

use crate::domain::WorkspaceId;
use crate::ports::Store;

use super::{T0, at};

/// One holder at a time; renewal by the holder; takeover after expiry.
pub async fn leases(store: &dyn Store) {
    let key = format!("workspace:{}", WorkspaceId::new());
    let ttl = Duration::from_secs(30);
    assert!(store.try_acquire_lease(&key, "a", ttl, T0).await.expect("acquire"));
    assert!(!store.try_acquire_lease(&key, "b", ttl, at(10)).await.expect("contended"));
    assert!(store.try_acquire_lease(&key, "a", ttl, at(20)).await.expect("renew"));
    assert!(!store.try_acquire_lease(&key, "b", ttl, at(45)).await.expect("renewed lease still held"));
    assert!(store.try_acquire_lease(&key, "b", ttl, at(50)).await.expect("expired lease taken over"));
    store.release_lease(&key, "a").await.expect("release by non-holder is a no-op");
    assert!(!store.try_acquire_lease(&key, "a", ttl, at(51)).await.expect("still b's"));
    store.release_lease(&key, "b").await.expect("release");
    assert!(store.try_acquire_lease(&key, "a", ttl, at(52)).await.expect("free after release"));
}
