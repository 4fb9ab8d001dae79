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

struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    cloud: Arc<FakeCloud>,
    clock: ManualClock,
    user: UserId,
}

async fn world(max_active: u32) -> World {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryStore::new());
    let cloud = Arc::new(FakeCloud::with_clock(Arc::new(clock.clone())));
    cloud.add_token("t");
    let cipher = Arc::new(FakeCipher::new(1, "k"));
    let github = Arc::new(FakeGithub::new(30));
    let now = sam_core::ports::Clock::now(&clock);
    let user = store.upsert_user(&sample_new_user(1), now).await.unwrap().id;
    let sealed = cipher.seal(b"t", credential_context(user, CredentialProvider::Hetzner)).unwrap();
    store
        .put_credential(&sam_core::domain::Credential {
            user_id: user,
            provider: CredentialProvider::Hetzner,
            ciphertext: sealed,
            validated_at: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
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
        cipher,
        tokens: Arc::new(FakeTokenAuthority::new("https://sam.bench.test", "k1")),
        clock: Arc::new(clock.clone()),
    };
    World { engine: Engine::new(ports, config), store, cloud, clock, user }
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
            raw = w.store.insert_workspace(&raw, None, WorkspaceLimits { max_active_per_user: 1_000_000 }).await.unwrap();
            for event in [Event::CreateRequested, Event::StopRequested, Event::StopFinished, Event::DeleteRequested] {
                let (entry, _) = raw.apply(&event, now).unwrap();
                raw = w.store.update_workspace(&raw, &[entry]).await.unwrap();
            }
            baseline.push(t.elapsed());
            black_box(&raw);
        }
        let (c, s, b) = (median(create), median(stop), median(baseline));
        println!("engine create→running: median {c:?} per workspace (target < 5 ms); {:.1}x the bare store work ({b:?})", c.as_secs_f64() / b.as_secs_f64());
        println!("engine stop: median {s:?} per workspace; {:.1}x the bare store work", s.as_secs_f64() / b.as_secs_f64());

        // --- reconciler pass over 100,000 workspaces (in-memory store) ---
        let w = world(1_000_000).await;
        let now = sam_core::ports::Clock::now(&w.clock);
        for n in 0..100_000u32 {
            let mut ws = sample_workspace(w.user, &format!("r{n}"), now);
            // Running with a fresh heartbeat: nothing to do.
            ws.lifecycle.status = WorkspaceStatus::Running;
            ws.lifecycle.server = Some(sam_core::lifecycle::ServerRef { id: sam_core::domain::ServerId(n.to_string()), ipv4: [10, 0, 0, 1].into() });
            ws.lifecycle.dns_record = Some(format!("rec{n}"));
            ws.lifecycle.agent_ready = true;
            w.store.insert_workspace(&ws, None, WorkspaceLimits { max_active_per_user: 1_000_000 }).await.unwrap();
        }
        let t = Instant::now();
        let scanned = w
            .store
            .scan_workspaces(&sam_core::ports::WorkspaceScan { statuses: vec![WorkspaceStatus::Running], after: None, limit: 200_000 })
            .await
            .unwrap()
            .len();
        let scan_only = t.elapsed();
        let t = Instant::now();
        let report = w.engine.reconcile_once().await.unwrap();
        let pass = t.elapsed();
        assert_eq!(report.scanned, 100_000);
        assert_eq!(report.driven, 0);
        println!(
            "reconciler pass, 100k workspaces, nothing to do: {pass:?} (target < 1 s); {:.1}x one bare scan of {scanned} rows ({scan_only:?})",
            pass.as_secs_f64() / scan_only.as_secs_f64()
        );
        let _ = UserId::new();
    });
}
