//! Workspaces and their history ([`WorkspaceStore`](crate::ports::WorkspaceStore)).

use std::sync::Arc;

use crate::domain::{UserId, WorkspaceEvent, WorkspaceId};
use crate::lifecycle::{Event, Reason, WorkspaceStatus};
use crate::ports::{Store, StoreErrorKind, WorkspaceLimits, WorkspaceScan};
use crate::testkit::sample_workspace;

use super::{T0, at, new_user, unique_github_id};

/// Insert, get, list and ownership scoping of workspaces.
pub async fn workspaces(store: &dyn Store) {
    let alice = new_user(store, unique_github_id()).await;
    let bob = new_user(store, unique_github_id()).await;
    let limits = WorkspaceLimits { max_active_per_user: 2, required_credential: None };

    let a = sample_workspace(alice, "first", T0);
    let stored = store.insert_workspace(&a, None, limits).await.expect("insert");
    assert_eq!(stored.version, 1, "versions start at 1");
    let mut expected = a.clone();
    expected.version = 1;
    assert_eq!(stored, expected);
    assert_eq!(store.get_workspace(alice, a.id).await.expect("get"), Some(expected.clone()), "every field round-trips");
    assert_eq!(store.get_workspace(bob, a.id).await.expect("get as other"), None, "no access to another user's row");

    let dup = sample_workspace(alice, "first", at(1));
    let err = store.insert_workspace(&dup, None, limits).await.expect_err("same name");
    assert_eq!(err.kind(), StoreErrorKind::NameTaken);
    store.insert_workspace(&sample_workspace(bob, "first", at(1)), None, limits).await.expect("names are per user");

    let b = sample_workspace(alice, "second", at(2));
    store.insert_workspace(&b, None, limits).await.expect("insert second");
    let err = store.insert_workspace(&sample_workspace(alice, "third", at(3)), None, limits).await.expect_err("quota");
    assert_eq!(err.kind(), StoreErrorKind::QuotaExceeded);

    // A stopped workspace no longer counts towards the quota.
    let mut b2 = store.get_workspace(alice, b.id).await.expect("get").expect("exists");
    b2.apply(&Event::StopRequested, at(4)).expect("pending can stop");
    assert_eq!(b2.status(), WorkspaceStatus::Stopped);
    store.update_workspace(&b2, &[]).await.expect("update");
    store.insert_workspace(&sample_workspace(alice, "third", at(5)), None, limits).await.expect("quota freed");

    let listed = store.list_workspaces(alice, None).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|w| w.spec.name.as_str()).collect();
    assert_eq!(names, ["third", "second", "first"], "newest first");
    let stopped = store.list_workspaces(alice, Some(WorkspaceStatus::Stopped)).await.expect("filter");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].id, b.id);
    assert_eq!(store.list_workspaces(bob, None).await.expect("list bob").len(), 1);
}

/// A stale version is refused and nothing is overwritten.
pub async fn optimistic_concurrency(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "occ", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");

    let mut first = ws.clone();
    let (event, _) = first.apply(&Event::CreateRequested, at(1)).expect("legal");
    let updated = store.update_workspace(&first, &[event]).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.status(), WorkspaceStatus::Creating);
    // Every lifecycle field survives a round trip (here the origin
    // certificate and the agent's credential, which only an update writes).
    let mut certified = updated.clone();
    certified.lifecycle.origin_certificate = Some("4711".into());
    certified.lifecycle.agent_credential = Some("jti-4711".into());
    let certified = store.update_workspace(&certified, &[]).await.expect("update");
    let read = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(read.lifecycle.origin_certificate.as_deref(), Some("4711"));
    assert_eq!(read.lifecycle.agent_credential.as_deref(), Some("jti-4711"));
    assert_eq!(read, certified);

    let mut stale = ws.clone();
    stale.apply(&Event::StopRequested, at(2)).expect("legal on the old copy");
    let err = store.update_workspace(&stale, &[]).await.expect_err("stale");
    assert_eq!(err.kind(), StoreErrorKind::StaleVersion);
    let current = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(current.status(), WorkspaceStatus::Creating, "the stale write changed nothing");
    assert_eq!(current.version, 3);

    let other = new_user(store, unique_github_id()).await;
    let mut foreign = current.clone();
    foreign.owner = other;
    let err = store.update_workspace(&foreign, &[]).await.expect_err("wrong owner");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
}

/// Heartbeats do not bump the version, and updates do not roll them back.
pub async fn heartbeats(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "hb", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");
    assert!(store.record_heartbeat(owner, ws.id, at(10), at(8)).await.expect("heartbeat"));
    let got = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(got.version, 1, "heartbeats leave the version alone");
    assert_eq!(got.last_heartbeat_at, Some(at(10)));
    assert_eq!(got.last_activity_at, Some(at(8)));

    let mut update = ws.clone(); // read before the heartbeat
    update.idle_timeout_secs = Some(600);
    let updated = store.update_workspace(&update, &[]).await.expect("update from an older read");
    assert_eq!(updated.last_heartbeat_at, Some(at(10)), "update keeps the stored heartbeat");
    let got = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(got.last_activity_at, Some(at(8)));
    assert_eq!(got.idle_timeout_secs, Some(600));

    assert!(!store.record_heartbeat(UserId::new(), ws.id, at(11), at(11)).await.expect("other owner"));
    assert!(!store.record_heartbeat(owner, WorkspaceId::new(), at(11), at(11)).await.expect("unknown"));
}

/// Events are appended in order with their transitions; delete removes the
/// row and its history, only at the expected version.
pub async fn events_and_delete(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let ws = sample_workspace(owner, "events", T0);
    let first_event = WorkspaceEvent {
        workspace_id: ws.id,
        from: WorkspaceStatus::Pending,
        to: WorkspaceStatus::Pending,
        event: "created".into(),
        reason: Reason::User,
        message: None,
        at: T0,
    };
    let mut ws =
        store.insert_workspace(&ws, Some(&first_event), WorkspaceLimits::default()).await.expect("insert with event");
    let (e1, _) = ws.apply(&Event::CreateRequested, at(1)).expect("legal");
    ws = store.update_workspace(&ws, std::slice::from_ref(&e1)).await.expect("update");
    let (e2, _) =
        ws.apply(&Event::ProvisioningFailed { message: "Hetzner has no capacity".into() }, at(2)).expect("legal");
    let (e3, _) = ws.apply(&Event::StopFinished, at(3)).expect("legal");
    ws = store.update_workspace(&ws, &[e2.clone(), e3.clone()]).await.expect("update with two events");

    let history = store.list_workspace_events(owner, ws.id).await.expect("events");
    assert_eq!(history, vec![first_event, e1, e2.clone(), e3], "events kept in order with every field");
    assert_eq!(history[2].message.as_deref(), Some("Hetzner has no capacity"));
    let err = store.list_workspace_events(UserId::new(), ws.id).await.expect_err("other owner");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);

    let err = store.delete_workspace(owner, ws.id, ws.version - 1).await.expect_err("stale delete");
    assert_eq!(err.kind(), StoreErrorKind::StaleVersion);
    let err = store.delete_workspace(UserId::new(), ws.id, ws.version).await.expect_err("other owner delete");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
    store.delete_workspace(owner, ws.id, ws.version).await.expect("delete");
    assert!(store.get_workspace(owner, ws.id).await.expect("get").is_none());
    let err = store.delete_workspace(owner, ws.id, ws.version).await.expect_err("already gone");
    assert_eq!(err.kind(), StoreErrorKind::NotFound);
}

/// The reconciler's scan pages through every user's workspaces in id order.
pub async fn scan(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let limits = WorkspaceLimits { max_active_per_user: 100, required_credential: None };
    let pending = |counts: Vec<(WorkspaceStatus, u64)>| {
        counts.into_iter().find(|(s, _)| *s == WorkspaceStatus::Pending).map_or(0, |(_, n)| n)
    };
    let pending_before = pending(store.count_workspaces_by_status().await.expect("count"));
    let mut ids = Vec::new();
    for n in 0..7 {
        let ws = store
            .insert_workspace(&sample_workspace(owner, &format!("scan-{n}"), T0), None, limits)
            .await
            .expect("insert");
        ids.push(ws.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_workspaces(&WorkspaceScan { statuses: vec![WorkspaceStatus::Pending], after, limit: 3 })
            .await
            .expect("scan");
        assert!(page.len() <= 3);
        assert!(page.iter().all(|w| w.status() == WorkspaceStatus::Pending));
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.iter().map(|w| w.id));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "scan is in id order");
    for id in &ids {
        assert!(seen.contains(id), "scan reaches every workspace");
    }
    let none = store
        .scan_workspaces(&WorkspaceScan { statuses: vec![WorkspaceStatus::Deleting], after: None, limit: 1000 })
        .await
        .expect("scan");
    assert!(none.iter().all(|w| !ids.contains(&w.id)));

    // The counts agree with a scan of everything.
    let counts = store.count_workspaces_by_status().await.expect("count");
    let everything =
        store.scan_workspaces(&WorkspaceScan { statuses: vec![], after: None, limit: 100_000 }).await.expect("scan");
    for status in WorkspaceStatus::ALL {
        let counted = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
        let scanned = everything.iter().filter(|w| w.status() == status).count() as u64;
        assert_eq!(counted, scanned, "{status}");
    }
    assert_eq!(pending(counts), pending_before + 7);
}

/// `tasks` concurrent read-modify-write loops on one workspace: every
/// increment lands exactly once (no lost update).
pub async fn concurrent_updates_lose_nothing(store: Arc<dyn Store>, tasks: u32) {
    let owner = new_user(&*store, unique_github_id()).await;
    let mut ws = sample_workspace(owner, "contended", T0);
    ws.idle_timeout_secs = Some(0);
    let ws = store.insert_workspace(&ws, None, WorkspaceLimits::default()).await.expect("insert");
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let mut current = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
                current.idle_timeout_secs = current.idle_timeout_secs.map(|n| n + 1);
                match store.update_workspace(&current, &[]).await {
                    Ok(_) => return conflicts,
                    Err(e) if e.kind() == StoreErrorKind::StaleVersion => conflicts += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let done = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(done.idle_timeout_secs, Some(tasks), "every increment applied once");
    assert_eq!(done.version, 1 + u64::from(tasks));
}

/// 20 concurrent inserts against a quota of 10: exactly 10 succeed.
pub async fn concurrent_inserts_respect_quota(store: Arc<dyn Store>) {
    let owner = new_user(&*store, unique_github_id()).await;
    let limits = WorkspaceLimits { max_active_per_user: 10, required_credential: None };
    let mut handles = Vec::new();
    for n in 0..20 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.insert_workspace(&sample_workspace(owner, &format!("q{n}"), T0), None, limits).await
        }));
    }
    let mut ok = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind(), StoreErrorKind::QuotaExceeded, "{e}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(store.list_workspaces(owner, None).await.expect("list").len(), 10);
}
