//! Crash safety: a process writing to a SQLite store is killed with SIGKILL in
//! the middle of its writes; the database reopens intact, with every
//! transaction the child reported committed.
//!
//! The test re-executes its own binary as the child (selected by an
//! environment variable), so no extra binary is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use sam_core::domain::{UserId, WorkspaceId};
use sam_core::lifecycle::{Reason, WorkspaceStatus};
use sam_core::ports::{UserStore, WorkspaceLimits, WorkspaceStore};
use sam_providers::store::SqliteStore;

const CHILD_ENV: &str = "SAM_CRASH_TEST_CHILD_DB";
const TEST_NAME: &str = "sqlite_survives_sigkill_mid_write";
/// Commits the parent waits for before it kills the child.
const KILL_AFTER: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_mid_write() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(&path).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let db_for_child = db.clone();
    let (owner, committed) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db_for_child)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut owner = None;
        let mut committed = Vec::new();
        let mut killed = false;
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            // libtest may print its own text before ours on the same line.
            if let Some((_, id)) = line.split_once("owner ") {
                owner = Some(id.trim().parse::<UserId>().unwrap());
            } else if let Some((_, id)) = line.split_once("committed ") {
                committed.push(id.trim().parse::<WorkspaceId>().unwrap());
                if committed.len() == KILL_AFTER && !killed {
                    child.kill().unwrap(); // SIGKILL: no destructor, no checkpoint, mid-transaction
                    killed = true;
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(killed, "the child stopped before it was killed: {status:?}");
        assert!(!status.success(), "killed, not exited");
        (owner.expect("the child reported its user"), committed)
    })
    .await
    .unwrap();
    assert!(committed.len() >= KILL_AFTER);

    let store = SqliteStore::open(&db).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(store.pool()).await.unwrap();
    assert_eq!(check, "ok");
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(migrations, 5, "the schema is intact (every migration applied once)");
    for id in &committed {
        let ws = store.get_workspace(owner, *id).await.unwrap();
        assert!(ws.is_some(), "committed workspace {id} survived");
        let events = store.list_workspace_events(owner, *id).await.unwrap();
        assert_eq!(events.len(), 1, "its event was committed in the same transaction");
    }
    // Whatever was in flight is either fully there or fully absent.
    let workspaces: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workspaces").fetch_one(store.pool()).await.unwrap();
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM workspace_events").fetch_one(store.pool()).await.unwrap();
    assert_eq!(workspaces, events, "no half-written transaction");
    assert!(workspaces as usize >= committed.len());
    // The store still accepts writes.
    let ws = sam_core::testkit::sample_workspace(owner, "after-crash", time::OffsetDateTime::now_utc());
    store
        .insert_workspace(&ws, None, WorkspaceLimits { max_active_per_user: u32::MAX, required_credential: None })
        .await
        .unwrap();
}

/// Writes workspaces (each with an event, in one transaction) as fast as it
/// can, reporting each commit on stdout, until it is killed.
async fn child(path: &str) {
    let store = SqliteStore::open(path).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let owner = store.upsert_user(&sam_core::testkit::sample_new_user(1), now).await.unwrap().id;
    println!("owner {owner}");
    let limits = WorkspaceLimits { max_active_per_user: u32::MAX, required_credential: None };
    for n in 0u64.. {
        let ws = sam_core::testkit::sample_workspace(owner, &format!("crash-{n}"), now);
        let event = sam_core::domain::WorkspaceEvent {
            workspace_id: ws.id,
            from: WorkspaceStatus::Pending,
            to: WorkspaceStatus::Pending,
            event: "created".into(),
            reason: Reason::User,
            message: Some("x".repeat(512)),
            at: now,
        };
        store.insert_workspace(&ws, Some(&event), limits).await.unwrap();
        println!("committed {}", ws.id);
        if n > 1_000_000 {
            break;
        }
    }
}
