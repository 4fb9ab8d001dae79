//! The engine's two-replica scenario on the real stores: two engines share one
//! SQLite file or one PostgreSQL database and drive 200 workspaces at once;
//! leases keep them from ever driving the same workspace together, and the
//! world converges with one server per workspace.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use sam_core::testkit::harness::two_engines_share_workspaces;
use sam_providers::store::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("sam.db")).await.unwrap();
    two_engines_share_workspaces(Arc::new(store), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_on_postgres() {
    let Some(store) = postgres::fresh_store(10).await else { return };
    two_engines_share_workspaces(Arc::new(store), 200).await;
}
