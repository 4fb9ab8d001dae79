//! The `Store` contract and the storage-specific guarantees on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::sync::Arc;

use sam_core::ports::{UserStore, WorkspaceStore};
use sam_core::testkit::conformance;
use sam_providers::store::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    let store = SqliteStore::in_memory().await.unwrap();
    conformance::store::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory_by_url() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    assert!(store.path().is_none());
    conformance::store::run(Arc::new(store)).await;
    assert!(SqliteStore::connect("sqlite://").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_file_with_a_pool() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path().join("sam.db"), SqliteOptions::default()).await.unwrap();
    conformance::store::run(Arc::new(store.clone())).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_file_with_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { max_connections: 1, ..SqliteOptions::default() };
    let store = SqliteStore::open_with(dir.path().join("sam.db"), options).await.unwrap();
    conformance::store::run(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_survives_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sam.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let user =
        store.upsert_user(&sam_core::testkit::sample_new_user(42), time::OffsetDateTime::UNIX_EPOCH).await.unwrap();
    store.close().await;
    let reopened = SqliteStore::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    reopened.migrate().await.unwrap();
    assert_eq!(reopened.get_user(user.id).await.unwrap(), Some(user));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(reopened.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(reopened.pool()).await.unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_unavailable_and_bad_rows_are_corrupt() {
    use sam_core::ports::{StoreErrorKind, WorkspaceLimits};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sam.db");
    let options = SqliteOptions { max_connections: 2, busy_timeout: std::time::Duration::from_millis(50) };
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let owner = store.upsert_user(&sam_core::testkit::sample_new_user(5), now).await.unwrap().id;
    let ws = sam_core::testkit::sample_workspace(owner, "locked", now);
    let ws = store.insert_workspace(&ws, None, WorkspaceLimits::default()).await.unwrap();

    // Another process holds the write lock: writes fail as retryable.
    let other = SqliteStore::open(&path).await.unwrap();
    let mut tx = other.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE users SET login = 'x' WHERE 0").execute(&mut *tx).await.unwrap();
    let err = store.record_heartbeat(owner, ws.id, now, now).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    // Readers are not blocked by a writer (WAL).
    assert!(store.get_workspace(owner, ws.id).await.unwrap().is_some());
    tx.rollback().await.unwrap();
    assert!(store.record_heartbeat(owner, ws.id, now, now).await.unwrap());

    // A value edited by hand into something invalid is reported, not guessed.
    sqlx::query("UPDATE workspaces SET status = 'exploded'").execute(store.pool()).await.unwrap();
    let err = store.get_workspace(owner, ws.id).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
}
