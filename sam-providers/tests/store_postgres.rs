//! The `Store` contract on PostgreSQL, against the throw-away cluster that
//! `scripts/test.d/10-postgres.sh` starts (`SAM_TEST_POSTGRES_URL`). Each test
//! gets its own database, so tests run in parallel.
//!
//! Without `SAM_TEST_POSTGRES_URL` these tests fail, unless
//! `SAM_SKIP_POSTGRES=1` says explicitly to skip them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::str::FromStr;
use std::sync::Arc;

use sam_core::ports::Store;
use sam_core::testkit::conformance;
use sam_providers::store::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _};

/// A store on a fresh, empty database; `None` only when skipping was asked for.
async fn fresh_store(max_connections: u32) -> Option<PostgresStore> {
    let Ok(url) = std::env::var("SAM_TEST_POSTGRES_URL") else {
        if std::env::var("SAM_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("SAM_SKIP_POSTGRES=1: skipping a PostgreSQL test");
            return None;
        }
        panic!(
            "SAM_TEST_POSTGRES_URL is not set: run the tests through ./scripts/test, or \
             `source scripts/test.d/10-postgres.sh` first (set SAM_SKIP_POSTGRES=1 to skip explicitly)"
        );
    };
    let admin = PgConnectOptions::from_str(&url).expect("SAM_TEST_POSTGRES_URL is a PostgreSQL URL");
    let name = format!("sam_test_{}", uuid_simple());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.expect("connect to the test cluster");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create database");
    conn.close().await.expect("close");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(admin.database(&name))
        .await
        .expect("connect to the test database");
    Some(PostgresStore::from_pool(pool).await.expect("migrate"))
}

fn uuid_simple() -> String {
    sam_core::domain::WorkspaceId::new().as_uuid().simple().to_string()
}

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
