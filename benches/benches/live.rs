//! Live status at scale: 1,000 open dashboard streams (`GET
//! /api/workspaces/stream`, 125 users with 8 each, the per-user limit), on
//! the real router over loopback, each read by a plain HTTP/1.1 client.
//! Measured: what the open streams cost the database while nothing changes
//! (queries per second, from PostgreSQL's own transaction counter), and the
//! time from a workspace's write to its arrival at every stream of its
//! owner (p50/p99 over all streams and rounds), with the queries each
//! change costs. On SQLite only the times (it has no query counter).
//!
//! The baseline is the same write read back through the store by the
//! writer (what any change costs before anyone is told).
//!
//! `cargo bench -p sam-benches --bench live` (PostgreSQL when
//! `SAM_TEST_POSTGRES_URL` is set). `SAM_BENCH_USERS` (125) and
//! `SAM_BENCH_ROUNDS` (10) tune a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark reports failure by panicking

use std::sync::Arc;
use std::time::{Duration, Instant};

use sam_core::domain::{NewSession, UserId, Workspace};
use sam_core::lifecycle::{ServerRef, WorkspaceStatus};
use sam_core::ports::{Store, WorkspaceLimits};
use sam_core::secret::sha256_hex;
use sam_core::testkit::{sample_new_user, sample_workspace};
use sam_providers::store::{PostgresStore, SqliteStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const STREAMS_PER_USER: usize = 8;
/// How long PostgreSQL may take to publish a backend's counts.
const STATS_FLUSH: Duration = Duration::from_secs(11);
const MARKER: &[u8] = b"\"errorMessage\":\"round-";

/// One stream's arrivals: (user, round, when).
type Arrival = (usize, u32, Instant);

/// Reads one stream until the server closes it, reporting every round
/// marker it carries.
async fn read_stream(
    base: std::net::SocketAddr,
    secret: String,
    user: usize,
    tx: tokio::sync::mpsc::UnboundedSender<Arrival>,
) {
    let mut tcp = tokio::net::TcpStream::connect(base).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let request = format!(
        "GET /api/workspaces/stream HTTP/1.1\r\nHost: {base}\r\nCookie: sam_session={secret}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Some(at) = buf.windows(MARKER.len()).position(|w| w == MARKER) {
            let digits: Vec<u8> = buf[at + MARKER.len()..].iter().copied().take_while(u8::is_ascii_digit).collect();
            if at + MARKER.len() + digits.len() >= buf.len() {
                break; // the number continues in the next read
            }
            let round = std::str::from_utf8(&digits).unwrap().parse().unwrap();
            let _ = tx.send((user, round, now));
            buf.drain(..at + MARKER.len() + digits.len());
        }
        if buf.len() > MARKER.len() {
            let keep = buf.len() - MARKER.len();
            buf.drain(..keep);
        }
    }
}

/// Transactions PostgreSQL committed in this database so far. A backend
/// flushes its counts at most once a second while busy and within 10 s once
/// idle (PostgreSQL 15), so a window starts and ends after 11 quiet seconds.
async fn pg_transactions(store: &PostgresStore) -> i64 {
    sqlx::query_scalar("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(label: &str, store: Arc<dyn Store>, postgres: Option<PostgresStore>) {
    let users: usize = std::env::var("SAM_BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(125);
    let rounds: u32 = std::env::var("SAM_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let control_plane = sam_benches::ControlPlane::start(store.clone()).await;
    let addr = control_plane.addr;
    let now = time::OffsetDateTime::now_utc();
    let mut owners: Vec<(UserId, String, Workspace)> = Vec::new();
    for u in 0..users {
        let user = store.upsert_user(&sample_new_user(u as i64 + 1), now).await.unwrap().id;
        let secret = format!("bench-live-{u}");
        let session = NewSession {
            id_hash: sha256_hex(secret.as_bytes()),
            user_id: user,
            expires_at: now + Duration::from_secs(3600),
        };
        store.create_session(&session, now).await.unwrap();
        let mut ws = sample_workspace(user, "live", now);
        ws.lifecycle.status = WorkspaceStatus::Running;
        ws.lifecycle.server =
            Some(ServerRef { id: sam_core::domain::ServerId(u.to_string()), ipv4: [10, 0, 0, 1].into() });
        ws.lifecycle.agent_ready = true;
        ws.lifecycle.error_message = Some("round-0".into());
        let ws = store.insert_workspace(&ws, None, WorkspaceLimits::default()).await.unwrap();
        owners.push((user, secret, ws));
    }
    // Open every stream and wait for each one's first event.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Arrival>();
    let streams = users * STREAMS_PER_USER;
    let mut clients = Vec::new();
    for (u, (_, secret, _)) in owners.iter().enumerate() {
        for _ in 0..STREAMS_PER_USER {
            clients.push(tokio::spawn(read_stream(addr, secret.clone(), u, tx.clone())));
        }
    }
    let opened = Instant::now();
    let mut first = 0;
    while first < streams {
        let (_, round, _) =
            tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("streams open").unwrap();
        if round == 0 {
            first += 1;
        }
    }
    let open_secs = opened.elapsed().as_secs_f64();

    // Idle: what the open streams cost the database, over a window as long
    // as a stream's sign-in check period (each stream checks once in it).
    let idle_window = Duration::from_secs(30);
    let idle_qps = match &postgres {
        Some(pg) => {
            tokio::time::sleep(STATS_FLUSH).await;
            let before = pg_transactions(pg).await;
            tokio::time::sleep(idle_window).await;
            Some((pg_transactions(pg).await - before - 1) as f64 / idle_window.as_secs_f64())
        }
        None => None,
    };

    // Rounds: every owner's workspace changes once; each stream of the
    // owner reports the change.
    let mut latencies = Vec::with_capacity(streams * rounds as usize);
    let mut writes = Vec::new();
    let tx_before = match &postgres {
        Some(pg) => Some(pg_transactions(pg).await),
        None => None,
    };
    let rounds_started = Instant::now();
    for round in 1..=rounds {
        let mut written = vec![Instant::now(); users];
        for (u, (user, _, ws)) in owners.iter_mut().enumerate() {
            let mut next = ws.clone();
            next.lifecycle.error_message = Some(format!("round-{round}"));
            written[u] = Instant::now();
            *ws = store.update_workspace(&next, &[]).await.unwrap();
            // The baseline: the writer reading its own change back.
            store.get_workspace(*user, ws.id).await.unwrap().unwrap();
            writes.push(written[u].elapsed().as_secs_f64() * 1e3);
        }
        let mut arrived = 0;
        while arrived < streams {
            let (u, r, at) =
                tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("every stream hears").unwrap();
            if r == round {
                arrived += 1;
                latencies.push((at - written[u]).as_secs_f64() * 1e3);
            }
        }
    }
    let rounds_secs = rounds_started.elapsed().as_secs_f64();
    let per_change = match (&postgres, tx_before) {
        (Some(pg), Some(before)) => {
            // Let the statistics of the last round's reads be flushed.
            tokio::time::sleep(STATS_FLUSH).await;
            let idle_share = idle_qps.unwrap_or(0.0) * (rounds_secs + STATS_FLUSH.as_secs_f64());
            let changes = (users * rounds as usize) as f64;
            // Each change is one write and one read-back by the bench itself.
            Some(((pg_transactions(pg).await - before) as f64 - idle_share) / changes - 2.0)
        }
        _ => None,
    };
    for c in clients {
        c.abort();
    }
    drop(control_plane);

    latencies.sort_by(f64::total_cmp);
    writes.sort_by(f64::total_cmp);
    println!("{label}: {streams} streams ({users} users x {STREAMS_PER_USER}) open in {open_secs:.2} s");
    match idle_qps {
        Some(q) => println!("{label}:   database queries/s with every stream open, nothing changing: {q:.1}"),
        None => println!("{label}:   database queries/s: not counted (SQLite has no counter; run on PostgreSQL)"),
    }
    if let Some(q) = per_change {
        println!("{label}:   database queries per change, for all {STREAMS_PER_USER} streams of its owner: {q:.1}");
    }
    println!(
        "{label}:   write + read back (baseline) p50/p99: {:.2} / {:.2} ms",
        percentile(&writes, 0.5),
        percentile(&writes, 0.99)
    );
    println!(
        "{label}:   change -> arrival at every stream p50/p99: {:.2} / {:.2} ms  = {:.1}x / {:.1}x the baseline ({} arrivals)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.5) / percentile(&writes, 0.5),
        percentile(&latencies, 0.99) / percentile(&writes, 0.99),
        latencies.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("sam-live-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = SqliteStore::open(dir.join("bench.db")).await.unwrap();
        measure("SQLite", Arc::new(sqlite), None).await;
        let _ = std::fs::remove_dir_all(&dir);
        match std::env::var("SAM_TEST_POSTGRES_URL") {
            Ok(url) => {
                let pg = sam_benches::fresh_postgres(&url, "sam_live_bench").await;
                measure("PostgreSQL", Arc::new(pg.clone()), Some(pg)).await;
            }
            Err(_) => {
                println!("PostgreSQL: skipped (set SAM_TEST_POSTGRES_URL, e.g. source scripts/test.d/10-postgres.sh)")
            }
        }
    });
}
