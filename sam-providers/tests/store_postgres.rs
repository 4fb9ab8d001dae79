//! The `Store` contract on PostgreSQL, against the throw-away cluster that
//! `scripts/test.d/10-postgres.sh` starts (`SAM_TEST_POSTGRES_URL`). Each test
//! gets its own database, so tests run in parallel.
//!
//! Without `SAM_TEST_POSTGRES_URL` these tests fail, unless
//! `SAM_SKIP_POSTGRES=1` says explicitly to skip them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use postgres::fresh_store;

use sam_core::ports::{UserStore, WorkspaceStore};
use sam_core::testkit::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(store) = fresh_store(10).await else { return };
    conformance::store::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_with_one_connection() {
    let Some(store) = fresh_store(1).await else { return };
    conformance::store::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_timestamps_keep_nanoseconds() {
    let Some(store) = fresh_store(2).await else { return };
    store.migrate().await.unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
    let user = store.upsert_user(&sam_core::testkit::sample_new_user(7), now).await.unwrap();
    let ws = sam_core::testkit::sample_workspace(user.id, "nanos", now);
    let stored = store.insert_workspace(&ws, None, Default::default()).await.unwrap();
    assert_eq!(stored.created_at, now);
    assert_eq!(store.get_workspace(user.id, ws.id).await.unwrap().unwrap().created_at, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_append_only() {
    let Some(store) = fresh_store(2).await else { return };
    let err = sqlx::query("UPDATE workspace_events SET reason = 'user'").execute(store.pool()).await;
    assert!(err.is_ok(), "no rows: the trigger fires per row");
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let user = store.upsert_user(&sam_core::testkit::sample_new_user(8), now).await.unwrap();
    let ws = sam_core::testkit::sample_workspace(user.id, "append", now);
    let event = sam_core::domain::WorkspaceEvent {
        workspace_id: ws.id,
        from: sam_core::lifecycle::WorkspaceStatus::Pending,
        to: sam_core::lifecycle::WorkspaceStatus::Pending,
        event: "created".into(),
        reason: sam_core::lifecycle::Reason::User,
        message: None,
        at: now,
    };
    store.insert_workspace(&ws, Some(&event), Default::default()).await.unwrap();
    let err = sqlx::query("UPDATE workspace_events SET reason = 'idle_timeout'").execute(store.pool()).await;
    assert!(err.is_err(), "history cannot be rewritten");
}

/// Two replicas on one database: a write through one is announced to the
/// other's subscribers (through the database, not the process), and a
/// listener whose connection is killed resynchronises its subscribers and
/// goes on announcing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_reach_every_replica_and_survive_a_lost_connection() {
    use sam_core::ports::{ChangeFeed, StoreChange};
    use std::time::Duration;
    async fn next(feed: &mut tokio::sync::broadcast::Receiver<StoreChange>) -> StoreChange {
        tokio::time::timeout(Duration::from_secs(10), feed.recv()).await.expect("announced in time").unwrap()
    }
    let Some(options) = postgres::fresh_database().await else { return };
    let replica = |options: sqlx::postgres::PgConnectOptions| async move {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
        sam_providers::store::PostgresStore::from_pool(pool).await.unwrap()
    };
    let (a, b) = (replica(options.clone()).await, replica(options).await);
    let mut feed = a.subscribe_changes().await;
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let user = b.upsert_user(&sam_core::testkit::sample_new_user(9), now).await.unwrap();
    let ws = sam_core::testkit::sample_workspace(user.id, "replicated", now);
    b.insert_workspace(&ws, None, Default::default()).await.unwrap();
    assert_eq!(next(&mut feed).await, StoreChange::Workspaces(user.id), "b's insert reaches a's subscriber");

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(b.pool())
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one listener: a's");
    assert_eq!(next(&mut feed).await, StoreChange::Resync, "subscribers re-read what they may have missed");
    b.record_heartbeat(user.id, ws.id, now, now).await.unwrap();
    assert_eq!(next(&mut feed).await, StoreChange::Workspaces(user.id), "announcing again after the reconnection");
}
