//! The [`Store`] contract. Run it against a fresh, empty store.

use std::sync::Arc;
use std::time::Duration;

use time::macros::datetime;

use crate::domain::{
    Credential, CredentialProvider, GithubInstallation, GithubUserId, InstallationId, NewSession, Timestamp, UserId,
    WorkspaceEvent, WorkspaceId,
};
use crate::lifecycle::{Event, Reason, WorkspaceStatus};
use crate::ports::{BootstrapToken, CredentialRemoval, Store, StoreErrorKind, WorkspaceLimits, WorkspaceScan};
use crate::testkit::{sample_new_user, sample_workspace, typical_lifecycle};

const T0: Timestamp = datetime!(2026-01-01 00:00:00 UTC);

fn at(secs: i64) -> Timestamp {
    T0 + time::Duration::seconds(secs)
}

/// Runs the whole suite against an empty store.
pub async fn run(store: Arc<dyn Store>) {
    users(&*store).await;
    sessions(&*store).await;
    credentials(&*store).await;
    credentials_in_use(&*store).await;
    installations(&*store).await;
    workspaces(&*store).await;
    optimistic_concurrency(&*store).await;
    heartbeats(&*store).await;
    events_and_delete(&*store).await;
    scan(&*store).await;
    bootstrap_tokens(&*store).await;
    leases(&*store).await;
    webhook_deliveries(&*store).await;
    concurrent_updates_lose_nothing(store.clone(), 50).await;
    concurrent_inserts_respect_quota(store.clone()).await;
    concurrent_redemptions_succeed_once(store).await;
}

async fn new_user(store: &dyn Store, github_id: i64) -> UserId {
    store.upsert_user(&sample_new_user(github_id), T0).await.expect("upsert user").id
}

fn unique_github_id() -> i64 {
    // Distinct per call within one run, so suites can share a store.
    i64::from_be_bytes(WorkspaceId::new().as_uuid().as_bytes()[8..16].try_into().unwrap_or([1; 8])).abs()
        % 1_000_000_000
        + 1
}

/// Users are bound to the GitHub id; a second sign-in refreshes the profile.
pub async fn users(store: &dyn Store) {
    let gid = unique_github_id();
    let first = store.upsert_user(&sample_new_user(gid), T0).await.expect("create");
    let mut renamed = sample_new_user(gid);
    renamed.login = "renamed-login".into();
    renamed.email = None;
    let second = store.upsert_user(&renamed, at(60)).await.expect("refresh");
    assert_eq!(first.id, second.id, "same GitHub id, same user");
    assert_eq!(second.login, "renamed-login");
    assert_eq!(second.email, None);
    assert_eq!(second.created_at, T0);
    assert_eq!(second.updated_at, at(60));
    assert_eq!(store.get_user(first.id).await.expect("get"), Some(second.clone()));
    assert_eq!(store.get_user_by_github_id(GithubUserId(gid)).await.expect("by github id"), Some(second));
    assert_eq!(store.get_user(UserId::new()).await.expect("get unknown"), None);
}

/// Sessions expire, slide, and end one by one or all at once.
pub async fn sessions(store: &dyn Store) {
    let user = new_user(store, unique_github_id()).await;
    let hash = |n: u8| format!("{:064x}", u128::from(n) + u128::from(user.as_uuid().as_u128() as u64));
    let s1 = NewSession { id_hash: hash(1), user_id: user, expires_at: at(100) };
    let created = store.create_session(&s1, T0).await.expect("create");
    assert_eq!(created.user_id, user);
    assert_eq!(store.get_session(&hash(1), at(50)).await.expect("get").map(|s| s.user_id), Some(user));
    assert!(store.get_session(&hash(1), at(100)).await.expect("get expired").is_none(), "expired at expires_at");
    assert!(store.touch_session(&hash(1), at(90), at(200)).await.expect("touch"));
    let touched = store.get_session(&hash(1), at(150)).await.expect("get").expect("slid");
    assert_eq!(touched.expires_at, at(200));
    assert_eq!(touched.last_seen_at, at(90));
    assert!(
        !store.touch_session(&hash(1), at(300), at(400)).await.expect("touch expired"),
        "an expired session cannot be revived"
    );
    assert!(!store.touch_session("unknown", at(1), at(2)).await.expect("touch unknown"));

    for n in 2..5 {
        store
            .create_session(&NewSession { id_hash: hash(n), user_id: user, expires_at: at(1000) }, T0)
            .await
            .expect("create");
    }
    store.delete_session(&hash(2)).await.expect("delete one");
    assert!(store.get_session(&hash(2), at(1)).await.expect("get").is_none());
    store.delete_session(&hash(2)).await.expect("deleting again is fine");
    assert!(store.delete_user_sessions(user).await.expect("delete all") >= 2);
    assert!(store.get_session(&hash(3), at(1)).await.expect("get").is_none());
}

fn credential(user: UserId, bytes: &[u8], now: Timestamp) -> Credential {
    Credential {
        user_id: user,
        provider: CredentialProvider::Hetzner,
        ciphertext: bytes.to_vec(),
        validated_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

/// Credentials are per user and provider, replaceable, and invisible to others.
pub async fn credentials(store: &dyn Store) {
    let alice = new_user(store, unique_github_id()).await;
    let bob = new_user(store, unique_github_id()).await;
    store.put_credential(&credential(alice, &[1, 2, 3], T0)).await.expect("put");
    store.put_credential(&credential(alice, &[4, 5, 6, 0, 255], at(5))).await.expect("replace");
    let got = store.get_credential(alice, CredentialProvider::Hetzner).await.expect("get").expect("stored");
    assert_eq!(got.ciphertext, vec![4, 5, 6, 0, 255], "binary ciphertext round-trips and replace wins");
    assert_eq!(got.validated_at, Some(at(5)));
    assert_eq!(store.list_credentials(alice).await.expect("list").len(), 1);
    assert!(store.get_credential(bob, CredentialProvider::Hetzner).await.expect("get other").is_none());
    assert!(store.list_credentials(bob).await.expect("list other").is_empty());
    let all = store.list_all_credentials(CredentialProvider::Hetzner).await.expect("list all");
    assert!(all.iter().any(|c| c.user_id == alice));
    assert!(!store.delete_credential(bob, CredentialProvider::Hetzner).await.expect("delete none"));
    assert!(store.delete_credential(alice, CredentialProvider::Hetzner).await.expect("delete"));
    assert!(store.get_credential(alice, CredentialProvider::Hetzner).await.expect("get").is_none());
}

/// A credential is not removed while a workspace could need it to clean up,
/// and a workspace that needs one is not inserted without it.
pub async fn credentials_in_use(store: &dyn Store) {
    let hetzner = CredentialProvider::Hetzner;
    let limits = WorkspaceLimits { max_active_per_user: 100, required_credential: None };
    for status in WorkspaceStatus::ALL {
        let owner = new_user(store, unique_github_id()).await;
        store.put_credential(&credential(owner, &[1], T0)).await.expect("put");
        let mut ws = sample_workspace(owner, "uses-token", T0);
        ws.lifecycle = typical_lifecycle(status);
        let blocks = status.is_active() || ws.lifecycle.holds_resources();
        store.insert_workspace(&ws, None, limits).await.expect("insert");
        let outcome = store.delete_credential_unless_in_use(owner, hetzner).await.expect("delete unless in use");
        if blocks {
            assert_eq!(outcome, CredentialRemoval::InUse { workspaces: 1 }, "{status}");
            assert!(store.get_credential(owner, hetzner).await.expect("get").is_some(), "{status}: kept");
        } else {
            assert_eq!(outcome, CredentialRemoval::Removed, "{status}");
            assert!(store.get_credential(owner, hetzner).await.expect("get").is_none(), "{status}: removed");
        }
    }

    // Another user's workspaces do not count; a second removal finds nothing.
    let alice = new_user(store, unique_github_id()).await;
    let bob = new_user(store, unique_github_id()).await;
    store.put_credential(&credential(alice, &[1], T0)).await.expect("put");
    let mut busy = sample_workspace(bob, "busy", T0);
    busy.lifecycle = typical_lifecycle(WorkspaceStatus::Running);
    store.insert_workspace(&busy, None, limits).await.expect("insert");
    assert_eq!(
        store.delete_credential_unless_in_use(alice, hetzner).await.expect("delete"),
        CredentialRemoval::Removed
    );
    assert_eq!(
        store.delete_credential_unless_in_use(alice, hetzner).await.expect("again"),
        CredentialRemoval::NotFound
    );

    // The insert side of the same rule.
    let needs = WorkspaceLimits { required_credential: Some(hetzner), ..limits };
    let err = store.insert_workspace(&sample_workspace(alice, "needs-token", T0), None, needs).await.expect_err("none");
    assert_eq!(err.kind(), StoreErrorKind::CredentialMissing);
    store.put_credential(&credential(alice, &[2], T0)).await.expect("put");
    store.insert_workspace(&sample_workspace(alice, "needs-token", T0), None, needs).await.expect("now it has one");
}

/// Installations are upserted and marked removed.
pub async fn installations(store: &dyn Store) {
    let id = InstallationId(unique_github_id());
    let mut inst = GithubInstallation {
        id,
        account_login: "octo-org".into(),
        account_type: "Organization".into(),
        account_id: GithubUserId(77),
        suspended: false,
        removed_at: None,
        updated_at: T0,
    };
    store.upsert_installation(&inst).await.expect("upsert");
    inst.suspended = true;
    store.upsert_installation(&inst).await.expect("upsert again");
    assert_eq!(store.get_installation(id).await.expect("get"), Some(inst.clone()));
    assert!(store.mark_installation_removed(id, at(9)).await.expect("remove"));
    let removed = store.get_installation(id).await.expect("get").expect("kept");
    assert_eq!(removed.removed_at, Some(at(9)));
    assert!(!removed.is_usable());
    assert!(!store.mark_installation_removed(InstallationId(-5), at(9)).await.expect("remove unknown"));
}

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

    let mut stale = ws.clone();
    stale.apply(&Event::StopRequested, at(2)).expect("legal on the old copy");
    let err = store.update_workspace(&stale, &[]).await.expect_err("stale");
    assert_eq!(err.kind(), StoreErrorKind::StaleVersion);
    let current = store.get_workspace(owner, ws.id).await.expect("get").expect("exists");
    assert_eq!(current.status(), WorkspaceStatus::Creating, "the stale write changed nothing");
    assert_eq!(current.version, 2);

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

/// Bootstrap tokens are single use and expire.
pub async fn bootstrap_tokens(store: &dyn Store) {
    let owner = new_user(store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "boot", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");
    let token = |hash: &str, expires: i64| BootstrapToken {
        token_hash: hash.into(),
        workspace_id: ws.id,
        owner,
        created_at: T0,
        expires_at: at(expires),
    };
    let h1 = format!("{}-a", ws.id);
    let h2 = format!("{}-b", ws.id);
    store.create_bootstrap_token(&token(&h1, 900)).await.expect("create");
    store.create_bootstrap_token(&token(&h2, 900)).await.expect("create");
    let redeemed = store.redeem_bootstrap_token(&h1, at(10)).await.expect("redeem").expect("valid");
    assert_eq!(redeemed.workspace_id, ws.id);
    assert_eq!(redeemed.owner, owner);
    assert!(store.redeem_bootstrap_token(&h1, at(11)).await.expect("again").is_none(), "single use");
    assert!(store.redeem_bootstrap_token(&h2, at(900)).await.expect("expired").is_none(), "not at or after expiry");
    assert!(store.redeem_bootstrap_token("unknown", at(1)).await.expect("unknown").is_none());
}

/// One holder at a time; renewal by the holder; takeover after expiry.
pub async fn leases(store: &dyn Store) {
    let key = format!("workspace:{}", WorkspaceId::new());
    let ttl = Duration::from_secs(30);
    assert!(store.try_acquire_lease(&key, "a", ttl, T0).await.expect("acquire"));
    assert!(!store.try_acquire_lease(&key, "b", ttl, at(10)).await.expect("contended"));
    assert!(store.try_acquire_lease(&key, "a", ttl, at(20)).await.expect("renew"));
    assert!(!store.try_acquire_lease(&key, "b", ttl, at(45)).await.expect("renewed lease still held"));
    assert!(store.try_acquire_lease(&key, "b", ttl, at(50)).await.expect("expired lease taken over"));
    store.release_lease(&key, "a").await.expect("release by non-holder is a no-op");
    assert!(!store.try_acquire_lease(&key, "a", ttl, at(51)).await.expect("still b's"));
    store.release_lease(&key, "b").await.expect("release");
    assert!(store.try_acquire_lease(&key, "a", ttl, at(52)).await.expect("free after release"));
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

/// 20 concurrent redemptions of one token: exactly one succeeds.
pub async fn concurrent_redemptions_succeed_once(store: Arc<dyn Store>) {
    let owner = new_user(&*store, unique_github_id()).await;
    let ws = store
        .insert_workspace(&sample_workspace(owner, "race", T0), None, WorkspaceLimits::default())
        .await
        .expect("insert");
    let hash = format!("{}-race", ws.id);
    store
        .create_bootstrap_token(&BootstrapToken {
            token_hash: hash.clone(),
            workspace_id: ws.id,
            owner,
            created_at: T0,
            expires_at: at(900),
        })
        .await
        .expect("create");
    let mut handles = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let hash = hash.clone();
        handles.push(tokio::spawn(async move { store.redeem_bootstrap_token(&hash, at(1)).await }));
    }
    let mut wins = 0;
    for handle in handles {
        if handle.await.expect("task").expect("redeem").is_some() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "a bootstrap token is redeemed exactly once");
}

/// A delivery id is new once; forgotten ids may be seen again.
pub async fn webhook_deliveries(store: &dyn Store) {
    let id = format!("delivery-{}", WorkspaceId::new());
    let other = format!("delivery-{}", WorkspaceId::new());
    assert!(store.record_webhook_delivery(&id, at(100), at(0)).await.expect("first"));
    assert!(!store.record_webhook_delivery(&id, at(110), at(10)).await.expect("replay"));
    assert!(store.record_webhook_delivery(&other, at(120), at(20)).await.expect("another id"));
    assert!(!store.record_webhook_delivery(&other, at(130), at(30)).await.expect("replay of another id"));
    assert!(
        store.record_webhook_delivery(&id, at(300), at(200)).await.expect("after retention"),
        "an id older than the retention window is forgotten"
    );
    assert!(!store.record_webhook_delivery(&id, at(310), at(210)).await.expect("recorded again"));
}
