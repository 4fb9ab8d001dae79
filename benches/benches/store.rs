//! Store throughput: workspace reads (`Store::get_workspace`) and heartbeat
//! updates (`Store::record_heartbeat`) per second, on SQLite with a single
//! connection and with a pool, and on PostgreSQL (loopback) when
//! `SAM_TEST_POSTGRES_URL` is set (`source scripts/test.d/10-postgres.sh`).
//!
//! Two baselines are measured in the same run: the in-memory `MemoryStore`
//! (the cost of the store interface without a database) and a raw `SELECT 1`
//! on the same pool (the cost of one database round trip). Each figure is
//! printed as operations per second and as the ratio of its time per
//! operation to the `SELECT 1` round trip. Target: at least 5,000 heartbeat
//! updates per second on SQLite.
//!
//! Run with `cargo bench -p sam-benches --bench store`; set
//! `SAM_BENCH_SECONDS` to change the time per measurement (default 2).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark reports failure by panicking

use std::future::Future;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sam_core::domain::{UserId, WorkspaceId};
use sam_core::ports::{Store, WorkspaceLimits};
use sam_core::testkit::fakes::MemoryStore;
use sam_core::testkit::{sample_new_user, sample_workspace};
use sam_providers::store::{PostgresStore, SqliteOptions, SqliteStore};
use sqlx::{AssertSqlSafe, Connection as _};

const WORKSPACES: usize = 200;

/// Runs `op` from `tasks` concurrent tasks for `duration`; operations per second.
async fn throughput<F, Fut>(tasks: usize, duration: Duration, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (op, done) = (op.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let mut n = t as u64 * 1_000_003;
            while Instant::now() < deadline {
                op(n).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

struct Fixture {
    store: Arc<dyn Store>,
    owner: UserId,
    ids: Arc<Vec<WorkspaceId>>,
}

async fn fixture(store: Arc<dyn Store>) -> Fixture {
    let now = time::OffsetDateTime::now_utc();
    let owner = store.upsert_user(&sample_new_user(1), now).await.unwrap().id;
    let limits = WorkspaceLimits { max_active_per_user: u32::MAX, required_credential: None };
    let mut ids = Vec::new();
    for n in 0..WORKSPACES {
        let ws = store.insert_workspace(&sample_workspace(owner, &format!("bench-{n}"), now), None, limits).await;
        ids.push(ws.unwrap().id);
    }
    Fixture { store, owner, ids: Arc::new(ids) }
}

struct Figures {
    reads: f64,
    heartbeats: f64,
}

async fn measure(fx: &Fixture, tasks: usize, duration: Duration) -> Figures {
    let (store, owner, ids) = (fx.store.clone(), fx.owner, fx.ids.clone());
    let reads = throughput(tasks, duration, move |n| {
        let (store, ids) = (store.clone(), ids.clone());
        async move {
            let id = ids[n as usize % ids.len()];
            assert!(store.get_workspace(owner, id).await.unwrap().is_some());
        }
    })
    .await;
    let (store, ids) = (fx.store.clone(), fx.ids.clone());
    let heartbeats = throughput(tasks, duration, move |n| {
        let (store, ids) = (store.clone(), ids.clone());
        async move {
            let id = ids[n as usize % ids.len()];
            let now = time::OffsetDateTime::now_utc();
            assert!(store.record_heartbeat(owner, id, now, now).await.unwrap());
        }
    })
    .await;
    Figures { reads, heartbeats }
}

fn report(label: &str, tasks: usize, f: &Figures, select1: f64, memory: &Figures) {
    println!(
        "{label:<28} tasks={tasks:<2} reads/s={:>9.0} ({:>5.2}x SELECT 1 time, {:>7.1}x MemoryStore time)   \
         heartbeats/s={:>9.0} ({:>5.2}x SELECT 1 time, {:>7.1}x MemoryStore time)   [SELECT 1/s={select1:.0}]",
        f.reads,
        select1 / f.reads,
        memory.reads / f.reads,
        f.heartbeats,
        select1 / f.heartbeats,
        memory.heartbeats / f.heartbeats,
    );
}

async fn sqlite_select1(pool: &sqlx::SqlitePool, tasks: usize, duration: Duration) -> f64 {
    let pool = pool.clone();
    throughput(tasks, duration, move |_| {
        let pool = pool.clone();
        async move {
            let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
            assert_eq!(one, 1);
        }
    })
    .await
}

async fn pg_select1(pool: &sqlx::PgPool, tasks: usize, duration: Duration) -> f64 {
    let pool = pool.clone();
    throughput(tasks, duration, move |_| {
        let pool = pool.clone();
        async move {
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await.unwrap();
            assert_eq!(one, 1);
        }
    })
    .await
}

async fn postgres_store(url: &str, connections: u32) -> PostgresStore {
    let admin = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
    let name = format!("sam_bench_{}", WorkspaceId::new().as_uuid().simple());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    PostgresStore::connect_with(admin.database(&name), connections).await.unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::var("SAM_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let duration = Duration::from_secs_f64(secs);
    println!("store throughput, {secs} s per figure, {WORKSPACES} workspaces, 2 tokio worker threads");

    let memory = fixture(Arc::new(MemoryStore::new())).await;
    let memory_figures = measure(&memory, 1, duration).await;
    println!(
        "{:<28} tasks=1  reads/s={:>9.0}   heartbeats/s={:>9.0}   (baseline: no database)",
        "MemoryStore", memory_figures.reads, memory_figures.heartbeats
    );

    // The database file lives on the real disk (not a tmpfs), next to the bench.
    let dir = tempfile::tempdir_in(".").unwrap();
    for (label, connections, tasks) in [("SQLite, 1 connection", 1u32, 1usize), ("SQLite, pool of 4", 4, 8)] {
        let path = dir.path().join(format!("bench-{connections}.db"));
        let options = SqliteOptions { max_connections: connections, ..SqliteOptions::default() };
        let store = SqliteStore::open_with(&path, options).await.unwrap();
        sqlite_select1(store.pool(), tasks, duration / 4).await; // warm-up
        let select1 = sqlite_select1(store.pool(), tasks, duration).await;
        let fx = fixture(Arc::new(store.clone())).await;
        let figures = measure(&fx, tasks, duration).await;
        report(label, tasks, &figures, select1, &memory_figures);
        if figures.heartbeats < 5_000.0 {
            println!("  NOTE: below the target of 5,000 heartbeat updates/s");
        }
        store.close().await;
    }

    match std::env::var("SAM_TEST_POSTGRES_URL") {
        Ok(url) => {
            for (label, connections, tasks) in
                [("PostgreSQL, 1 connection", 1u32, 1usize), ("PostgreSQL, pool of 10", 10, 16)]
            {
                let store = postgres_store(&url, connections).await;
                pg_select1(store.pool(), tasks, duration / 4).await; // warm-up: connections, statement cache
                let select1 = pg_select1(store.pool(), tasks, duration).await;
                let fx = fixture(Arc::new(store.clone())).await;
                let figures = measure(&fx, tasks, duration).await;
                report(label, tasks, &figures, select1, &memory_figures);
                store.close().await;
            }
        }
        Err(_) => println!("PostgreSQL: skipped (SAM_TEST_POSTGRES_URL is not set)"),
    }
}
