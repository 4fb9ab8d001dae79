//! The [`Store`] contract, one module per concern. Run [`run`] against a
//! fresh, empty store; an implementation of only some concerns can run their
//! modules.

use std::sync::Arc;

use time::macros::datetime;

use crate::domain::{Timestamp, UserId, WorkspaceId};
use crate::ports::{Store, UserStore};
use crate::testkit::sample_new_user;

mod access_tokens;
mod bootstrap;
mod changes;
mod credentials;
mod installations;
mod leases;
mod users;
mod webhooks;
mod workspaces;

pub use access_tokens::access_tokens;
pub use bootstrap::{bootstrap_tokens, concurrent_redemptions_succeed_once};
pub use changes::change_feed;
pub use credentials::{credential_compare_and_swap, credentials, credentials_in_use};
pub use installations::installations;
pub use leases::leases;
pub use users::{sessions, users};
pub use webhooks::webhook_deliveries;
pub use workspaces::{
    concurrent_inserts_respect_quota, concurrent_updates_lose_nothing, events_and_delete, heartbeats,
    optimistic_concurrency, scan, workspaces,
};

const T0: Timestamp = datetime!(2026-01-01 00:00:00 UTC);

fn at(secs: i64) -> Timestamp {
    T0 + time::Duration::seconds(secs)
}

/// Runs the whole suite against an empty store.
pub async fn run(store: Arc<dyn Store>) {
    users(&*store).await;
    sessions(&*store).await;
    access_tokens(&*store).await;
    credentials(&*store).await;
    credentials_in_use(&*store).await;
    credential_compare_and_swap(&*store).await;
    installations(&*store).await;
    workspaces(&*store).await;
    optimistic_concurrency(&*store).await;
    heartbeats(&*store).await;
    events_and_delete(&*store).await;
    scan(&*store).await;
    bootstrap_tokens(&*store).await;
    leases(&*store).await;
    webhook_deliveries(&*store).await;
    change_feed(&*store).await;
    concurrent_updates_lose_nothing(store.clone(), 50).await;
    concurrent_inserts_respect_quota(store.clone()).await;
    concurrent_redemptions_succeed_once(store).await;
}

async fn new_user(store: &dyn UserStore, github_id: i64) -> UserId {
    store.upsert_user(&sample_new_user(github_id), T0).await.expect("upsert user").id
}

fn unique_github_id() -> i64 {
    // Distinct per call within one run, so suites can share a store.
    i64::from_be_bytes(WorkspaceId::new().as_uuid().as_bytes()[8..16].try_into().unwrap_or([1; 8])).abs()
        % 1_000_000_000
        + 1
}
