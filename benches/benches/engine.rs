//! Engine overhead with zero-latency fakes: a full create → running and a
//! stop, and one reconciler pass over 100,000 workspaces, each reported next
//! to a baseline measured in the same run (the bare store calls the engine
//! cannot avoid).
//!
//! `cargo bench -p sam-benches --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is the failure report

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sam_core::domain::{CredentialProvider, GithubInstallation, GithubUserId, InstallationId, UserId};
use sam_core::engine::{AgentReport, Engine, EngineConfig, Ports, RetryPolicy, credential_context};
use sam_core::lifecycle::{Event, WorkspaceStatus};
use sam_core::ports::{Cipher, InstallationInfo, Store, WorkspaceLimits};
use sam_core::testkit::fakes::*;
use sam_core::testkit::{sample_new_user, sample_spec, sample_workspace};
use sam_providers::store::SqliteStore;

struct World {
    engine: Engine,
    store: Arc<dyn Store>,
    cloud: Arc<FakeCloud>,
    clock: ManualClock,
    user: UserId,
    cipher: FakeCipher,
}

async fn world(max_active: u32) -> World {
    world_on(Arc::new(MemoryStore::new()), max_active).await
}

/// Seals the bench cloud token for `user`.
async fn give_credential(store: &dyn Store, cipher: &FakeCipher, user: UserId, now: sam_core::domain::Timestamp) {
    let sealed = cipher.seal(b"t", credential_context(user, CredentialProvider::HETZNER)).unwrap();
    store
        .put_credential(&sam_core::domain::Credential {
            user_id: user,
            provider: CredentialProvider::HETZNER,
            ciphertext: sealed,
            validated_at: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
}

async fn world_on(store: Arc<dyn Store>, max_active: u32) -> World {
    let clock = ManualClock::new();
    let cloud = Arc::new(FakeCloud::with_clock(Arc::new(clock.clone())));
    cloud.add_token("t");
    let cipher = FakeCipher::new(1, "k");
    let github = Arc::new(FakeGithub::new(30));
    let now = sam_core::ports::Clock::now(&clock);
    let user = store.upsert_user(&sample_new_user(1), now).await.unwrap().id;
    give_credential(&*store, &cipher, user, now).await;
    let installation = GithubInstallation {
        id: InstallationId(1),
        account_login: "o".into(),
        account_type: "User".into(),
        account_id: GithubUserId(1),
        suspended: false,
        removed_at: None,
        updated_at: now,
    };
    store.upsert_installation(&installation).await.unwrap();
    github.add_installation(
        InstallationInfo {
            id: InstallationId(1),
            account_login: "o".into(),
            account_type: "User".into(),
            account_id: GithubUserId(1),
            suspended: false,
        },
        1,
        &["octo-org/hello-world"],
    );
    let mut config = EngineConfig::new("ws.bench.test", "https://sam.bench.test");
    config.retry = RetryPolicy::immediate(1);
    config.max_active_per_user = max_active;
    let ports = Ports {
        store: store.clone(),
        compute: cloud.clone(),
        dns: Arc::new(FakeDnsZone::new()),
        repos: github,
        cipher: Arc::new(cipher.clone()),
        tokens: Arc::new(FakeTokenAuthority::new("https://sam.bench.test", "k1")),
        clock: Arc::new(clock.clone()),
    };
    World { engine: Engine::new(ports, config), store, cloud, clock, user, cipher }
}

fn token_of(cloud: &FakeCloud, id: sam_core::domain::WorkspaceId) -> String {
    let data = cloud.user_data_of(id).unwrap();
    data.lines().find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=").map(str::to_owned)).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        // --- create → running, and stop ---
        let w = world(1_000_000).await;
        let (mut create, mut stop, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
        for n in 0..2000 {
            let t = Instant::now();
            let ws = w.engine.create(w.user, sample_spec(&format!("b{n}")), InstallationId(1)).await.unwrap();
            w.engine.drive(w.user, ws.id).await.unwrap();
            let token = token_of(&w.cloud, ws.id);
            w.engine.redeem_bootstrap(&token).await.unwrap();
            let ws = w.engine.report_agent(w.user, ws.id, &AgentReport::Ready).await.unwrap();
            create.push(t.elapsed());
            assert_eq!(ws.status(), WorkspaceStatus::Running);

            let t = Instant::now();
            w.engine.stop(w.user, ws.id).await.unwrap();
            w.engine.drive(w.user, ws.id).await.unwrap();
            stop.push(t.elapsed());

            // Baseline: the unavoidable store work of a create → running (one
            // insert, four versioned updates) without any engine logic.
            let now = sam_core::ports::Clock::now(&w.clock);
            let t = Instant::now();
            let mut raw = sample_workspace(w.user, &format!("raw{n}"), now);
            raw = w
                .store
                .insert_workspace(
                    &raw,
                    None,
                    WorkspaceLimits { max_active_per_user: 1_000_000, required_credential: None },
                )
                .await
                .unwrap();
            for event in [Event::CreateRequested, Event::StopRequested, Event::StopFinished, Event::DeleteRequested] {
                let (entry, _) = raw.apply(&event, now).unwrap();
                raw = w.store.update_workspace(&raw, &[entry]).await.unwrap();
            }
            baseline.push(t.elapsed());
            black_box(&raw);
        }
        let (c, s, b) = (median(create), median(stop), median(baseline));
        println!(
            "engine create→running: median {c:?} per workspace (target < 5 ms); {:.1}x the bare store work ({b:?})",
            c.as_secs_f64() / b.as_secs_f64()
        );
        println!(
            "engine stop: median {s:?} per workspace; {:.1}x the bare store work",
            s.as_secs_f64() / b.as_secs_f64()
        );

        // --- reconciler pass over 100,000 workspaces ---
        reconciler_pass("in-memory", Arc::new(MemoryStore::new())).await;
        let dir = std::env::temp_dir().join(format!("sam-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = SqliteStore::open(dir.join("bench.db")).await.unwrap();
        reconciler_pass("SQLite", Arc::new(sqlite)).await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// 1,000 users × 100 running workspaces with fresh heartbeats: one pass with
/// nothing to do, then one with 1% of them past the idle deadline.
async fn reconciler_pass(label: &str, store: Arc<dyn Store>) {
    let w = world_on(store, 1_000_000).await;
    let now = sam_core::ports::Clock::now(&w.clock);
    let limits = WorkspaceLimits { max_active_per_user: 1_000_000, required_credential: None };
    let mut idle_candidates = Vec::new();
    for u in 0..1000i64 {
        let user = w.store.upsert_user(&sample_new_user(10_000 + u), now).await.unwrap().id;
        give_credential(&*w.store, &w.cipher, user, now).await;
        for n in 0..100u32 {
            let mut ws = sample_workspace(user, &format!("r{n}"), now);
            ws.lifecycle.status = WorkspaceStatus::Running;
            ws.lifecycle.server = Some(sam_core::lifecycle::ServerRef {
                id: sam_core::domain::ServerId(format!("{u}-{n}")),
                ipv4: [10, 0, 0, 1].into(),
            });
            ws.lifecycle.dns_record = Some(format!("rec{u}-{n}"));
            ws.lifecycle.agent_ready = true;
            let ws = w.store.insert_workspace(&ws, None, limits).await.unwrap();
            if n == 0 {
                idle_candidates.push((user, ws.id));
            }
        }
    }
    let scan_start = Instant::now();
    let mut after = None;
    let mut scanned = 0;
    loop {
        let page = w
            .store
            .scan_workspaces(&sam_core::ports::WorkspaceScan {
                statuses: vec![WorkspaceStatus::Running],
                after,
                limit: 1000,
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        scanned += page.len();
    }
    let scan_only = scan_start.elapsed();
    let fresh = |w: &World| {
        let now = sam_core::ports::Clock::now(&w.clock);
        (now, now)
    };
    // Every workspace heartbeated just now.
    let (now, activity) = fresh(&w);
    for (user, id) in &idle_candidates {
        w.store.record_heartbeat(*user, *id, now, activity).await.unwrap();
    }
    let t = Instant::now();
    let report = w.engine.reconcile_once().await.unwrap();
    let quiet = t.elapsed();
    assert_eq!(report.scanned, 100_000);
    assert_eq!(report.driven, 0, "{report:?}");
    println!(
        "reconciler pass on {label}, 100k workspaces, nothing to do: {quiet:?} (target < 1 s); {:.2}x one bare paged scan of {scanned} rows ({scan_only:?})",
        quiet.as_secs_f64() / scan_only.as_secs_f64()
    );

    // 31 minutes later, 1% (one per user) has been idle the whole time; the
    // other 99% were active a minute ago.
    w.clock.advance(Duration::from_secs(31 * 60));
    let now = sam_core::ports::Clock::now(&w.clock);
    for &(user, _) in &idle_candidates {
        for ws in w.store.list_workspaces(user, None).await.unwrap() {
            if !idle_candidates.iter().any(|(_, id)| *id == ws.id) {
                w.store.record_heartbeat(user, ws.id, now, now - Duration::from_secs(60)).await.unwrap();
            } else {
                w.store.record_heartbeat(user, ws.id, now, ws.created_at).await.unwrap();
            }
        }
    }
    let t = Instant::now();
    let report = w.engine.reconcile_once().await.unwrap();
    let busy = t.elapsed();
    assert_eq!(report.idle_stops, 1000, "{report:?}");
    println!(
        "reconciler pass on {label}, 100k workspaces, 1% idle timeouts due: {busy:?} ({} stopped); {:.2}x the quiet pass",
        report.idle_stops,
        busy.as_secs_f64() / quiet.as_secs_f64()
    );
}
