//! Two "replicas" (two independent stores on one database, like two server
//! processes) compete for the leases of 1,000 workspaces: at any moment each
//! lease has at most one holder. Runs on SQLite (two pools on one file) and on
//! PostgreSQL (two pools on one database; see `store_postgres.rs` for how the
//! cluster is found).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sam_core::ports::Store;
use sam_providers::store::{SqliteOptions, SqliteStore};

const WORKSPACES: usize = 1_000;
const ROUNDS: usize = 2;
const HELD: usize = 100;

/// Who holds which key according to the replicas themselves.
type Holders = Arc<Mutex<HashMap<String, &'static str>>>;

async fn replica(store: Arc<dyn Store>, name: &'static str, keys: Arc<Vec<String>>, holders: Holders) -> (u32, u32) {
    let ttl = Duration::from_secs(300);
    let (mut won, mut lost) = (0u32, 0u32);
    for round in 0..ROUNDS {
        // The replicas walk the keys in opposite directions and keep up to
        // HELD leases at a time (like reconcilers working on a batch), so they
        // meet in the middle and contend for real.
        let order: Vec<&String> =
            if (name == "a") ^ (round % 2 == 1) { keys.iter().collect() } else { keys.iter().rev().collect() };
        let mut held = std::collections::VecDeque::new();
        for key in order {
            let now = time::OffsetDateTime::now_utc();
            if store.try_acquire_lease(key, name, ttl, now).await.expect("acquire") {
                won += 1;
                if let Some(other) = holders.lock().unwrap().insert(key.clone(), name) {
                    panic!("{key} granted to {name} while {other} holds it");
                }
                held.push_back(key.clone());
                if held.len() > HELD {
                    release(&*store, name, &holders, held.pop_front()).await;
                }
            } else {
                lost += 1;
            }
            tokio::task::yield_now().await;
        }
        while let Some(key) = held.pop_front() {
            release(&*store, name, &holders, Some(key)).await;
        }
    }
    (won, lost)
}

/// Forgets the lease locally first, then gives it up in the store: a grant to
/// the other replica can only be seen after this replica stopped claiming it.
async fn release(store: &dyn Store, name: &'static str, holders: &Holders, key: Option<String>) {
    let Some(key) = key else { return };
    assert_eq!(holders.lock().unwrap().remove(&key), Some(name));
    store.release_lease(&key, name).await.expect("release");
}

async fn compete(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let keys: Arc<Vec<String>> =
        Arc::new((0..WORKSPACES).map(|_| format!("workspace:{}", sam_core::domain::WorkspaceId::new())).collect());
    let holders: Holders = Arc::default();
    let ra = tokio::spawn(replica(a.clone(), "a", keys.clone(), holders.clone()));
    let rb = tokio::spawn(replica(b, "b", keys.clone(), holders.clone()));
    let (won_a, lost_a) = ra.await.unwrap();
    let (won_b, lost_b) = rb.await.unwrap();
    eprintln!("replica a: {won_a} won, {lost_a} lost; replica b: {won_b} won, {lost_b} lost");
    assert_eq!((won_a + lost_a) as usize, WORKSPACES * ROUNDS);
    assert_eq!((won_b + lost_b) as usize, WORKSPACES * ROUNDS);
    assert!(won_a > 0 && won_b > 0, "both replicas got work");
    assert!(lost_a + lost_b > 0, "the replicas contended");
    assert!(holders.lock().unwrap().is_empty());
    // Every lease was released: a third holder gets each one.
    let now = time::OffsetDateTime::now_utc();
    for key in keys.iter() {
        assert!(a.try_acquire_lease(key, "c", Duration::from_secs(1), now).await.unwrap(), "{key} was left held");
    }
}

/// Leases held by a replica that died expire and are taken over.
async fn takeover_after_expiry(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let key = format!("workspace:{}", sam_core::domain::WorkspaceId::new());
    let t0 = time::OffsetDateTime::now_utc();
    assert!(a.try_acquire_lease(&key, "a", Duration::from_secs(30), t0).await.unwrap());
    assert!(!b.try_acquire_lease(&key, "b", Duration::from_secs(30), t0 + Duration::from_secs(29)).await.unwrap());
    assert!(b.try_acquire_lease(&key, "b", Duration::from_secs(30), t0 + Duration::from_secs(30)).await.unwrap());
    assert!(!a.try_acquire_lease(&key, "a", Duration::from_secs(30), t0 + Duration::from_secs(31)).await.unwrap());
}

/// 50 tasks all read the same version and write once: exactly one wins, the
/// other 49 get `StaleVersion`, and the winner's write is the one stored.
async fn one_of_fifty_stale_writers_wins(store: Arc<dyn Store>) {
    use sam_core::ports::{StoreErrorKind, WorkspaceLimits};
    let now = time::OffsetDateTime::now_utc();
    let owner = store.upsert_user(&sam_core::testkit::sample_new_user(4242), now).await.unwrap().id;
    let ws = sam_core::testkit::sample_workspace(owner, "fifty", now);
    let ws = store.insert_workspace(&ws, None, WorkspaceLimits::default()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut handles = Vec::new();
    for n in 0..50u32 {
        let (store, barrier, mut mine) = (store.clone(), barrier.clone(), ws.clone());
        handles.push(tokio::spawn(async move {
            mine.idle_timeout_secs = Some(1000 + n);
            barrier.wait().await;
            (n, store.update_workspace(&mine, &[]).await)
        }));
    }
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await.unwrap() {
            (n, Ok(stored)) => {
                assert_eq!(stored.version, 2);
                winners.push(n);
            }
            (_, Err(e)) => assert_eq!(e.kind(), StoreErrorKind::StaleVersion, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one write lands");
    let stored = store.get_workspace(owner, ws.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.idle_timeout_secs, Some(1000 + winners[0]), "the winner's write, not a later loser's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_of_fifty_stale_writers_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path().join("sam.db"), SqliteOptions::default()).await.unwrap();
    one_of_fifty_stale_writers_wins(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_replicas_never_share_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sam.db");
    let a = SqliteStore::open_with(&path, SqliteOptions::default()).await.unwrap();
    let b = SqliteStore::open_with(&path, SqliteOptions::default()).await.unwrap();
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    compete(a.clone(), b.clone()).await;
    takeover_after_expiry(a, b).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_replicas_never_share_a_lease() {
    use sam_providers::store::PostgresStore;

    let Some(options) = postgres::fresh_database().await else { return };
    let a = PostgresStore::connect_with(options.clone(), 5).await.unwrap();
    let b = PostgresStore::connect_with(options.clone(), 5).await.unwrap();
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));
    compete(a.clone(), b.clone()).await;
    takeover_after_expiry(a, b).await;
    // The same database, a pool wide enough for 50 writers at once.
    let wide = PostgresStore::connect_with(options, 50).await.unwrap();
    one_of_fifty_stale_writers_wins(Arc::new(wide)).await;
}
