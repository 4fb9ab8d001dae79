//! The change feed ([`ChangeFeed`](crate::ports::ChangeFeed)).

use std::time::Duration;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::domain::{NewSession, UserId};
use crate::ports::{Store, StoreChange, WorkspaceLimits};
use crate::testkit::sample_workspace;

use super::{T0, at, new_user, unique_github_id};

/// How long a committed change may take to arrive (PostgreSQL delivers it
/// through the database).
const DELIVERY: Duration = Duration::from_secs(10);

/// Waits for `expected`, skipping other users' changes (suites may share a
/// store). A lag or a resync would hide whether the change was announced,
/// so both fail the test.
async fn announced(feed: &mut Receiver<StoreChange>, expected: StoreChange, what: &str) {
    let user = match expected {
        StoreChange::Workspaces(u) | StoreChange::SignIns(u) => u,
        other => panic!("expected a change of one user, not {other:?}"),
    };
    let wait = async {
        loop {
            match feed.recv().await {
                Ok(change) if change == expected => return,
                Ok(StoreChange::Workspaces(u) | StoreChange::SignIns(u)) if u != user => {}
                Ok(change) => panic!("{what}: expected {expected:?}, got {change:?}"),
                Err(RecvError::Lagged(n)) => panic!("{what}: the feed lagged by {n}"),
                Err(RecvError::Closed) => panic!("{what}: the feed closed"),
            }
        }
    };
    if tokio::time::timeout(DELIVERY, wait).await.is_err() {
        panic!("{what}: {expected:?} was not announced within {DELIVERY:?}");
    }
}

/// Nothing of `user`'s arrives for a moment.
async fn quiet(feed: &mut Receiver<StoreChange>, user: UserId, what: &str) {
    let wait = async {
        loop {
            match feed.recv().await {
                Ok(StoreChange::Workspaces(u) | StoreChange::SignIns(u)) if u != user => {}
                other => return other,
            }
        }
    };
    if let Ok(change) = tokio::time::timeout(Duration::from_millis(300), wait).await {
        panic!("{what}: nothing expected, got {change:?}");
    }
}

/// Every committed write a live view shows is announced with its owner:
/// a workspace inserted, updated, active again and deleted, a sign-in ended
/// and all of them ended; a failed write is not announced.
pub async fn change_feed(store: &dyn Store) {
    let alice = new_user(store, unique_github_id()).await;
    let mut feed = store.subscribe_changes().await;
    let limits = WorkspaceLimits { max_active_per_user: 5, required_credential: None };

    let ws = store.insert_workspace(&sample_workspace(alice, "live", T0), None, limits).await.expect("insert");
    announced(&mut feed, StoreChange::Workspaces(alice), "insert").await;

    let mut changed = ws.clone();
    changed.updated_at = at(5);
    let changed = store.update_workspace(&changed, &[]).await.expect("update");
    announced(&mut feed, StoreChange::Workspaces(alice), "update").await;

    let stale = store.update_workspace(&ws, &[]).await;
    assert!(stale.is_err(), "a stale update fails");
    quiet(&mut feed, alice, "a refused update").await;

    assert!(store.record_heartbeat(alice, ws.id, at(10), at(9)).await.expect("heartbeat"));
    announced(&mut feed, StoreChange::Workspaces(alice), "new activity").await;

    store.delete_workspace(alice, ws.id, changed.version).await.expect("delete");
    announced(&mut feed, StoreChange::Workspaces(alice), "delete").await;

    let hash = |n: u8| format!("{:064x}", u128::from(n) + u128::from(alice.as_uuid().as_u128() as u64));
    for n in 1..=3 {
        let session = NewSession { id_hash: hash(n), user_id: alice, expires_at: at(1000) };
        store.create_session(&session, T0).await.expect("create session");
    }
    store.delete_session(&hash(1)).await.expect("sign out");
    announced(&mut feed, StoreChange::SignIns(alice), "sign-out").await;
    store.delete_session(&hash(1)).await.expect("sign out again");
    quiet(&mut feed, alice, "signing out of an ended sign-in").await;
    store.delete_user_sessions(alice).await.expect("sign out everywhere");
    announced(&mut feed, StoreChange::SignIns(alice), "sign-out everywhere").await;
}
