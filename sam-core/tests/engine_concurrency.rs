//! Races: two engines on one store, concurrent creates against the quota,
//! concurrent bootstrap redemptions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, test_config};
use sam_core::domain::{InstallationId, Location, ServerId, ServerTypeOffer, WorkspaceId};
use sam_core::engine::{AgentReport, Engine, EngineErrorKind};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{ComputeProvider, ProviderError, Server, ServerSpec, Store};
use sam_core::secret::SecretString;
use sam_core::testkit::fakes::FakeCloud;
use sam_core::testkit::sample_spec;

/// Wraps the fake cloud and fails the test if two calls that change one
/// workspace's servers overlap in time: that would mean two engines drive it.
#[derive(Debug)]
struct ExclusiveCloud {
    inner: Arc<FakeCloud>,
    in_flight: Mutex<HashMap<WorkspaceId, &'static str>>,
    server_owner: Mutex<BTreeMap<ServerId, WorkspaceId>>,
    violations: Mutex<Vec<String>>,
}

impl ExclusiveCloud {
    fn enter(&self, ws: WorkspaceId, op: &'static str) {
        let mut in_flight = self.in_flight.lock().unwrap();
        if let Some(other) = in_flight.insert(ws, op) {
            self.violations.lock().unwrap().push(format!("{op} overlapped {other} on {ws}"));
        }
    }

    fn leave(&self, ws: WorkspaceId) {
        self.in_flight.lock().unwrap().remove(&ws);
    }
}

#[async_trait]
impl ComputeProvider for ExclusiveCloud {
    fn name(&self) -> &'static str {
        "exclusive"
    }
    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError> {
        self.inner.validate_credential(token).await
    }
    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        self.enter(spec.workspace_id, "create");
        tokio::time::sleep(Duration::from_micros(300)).await;
        let result = self.inner.create_server(token, spec).await;
        if let Ok(server) = &result {
            self.server_owner.lock().unwrap().insert(server.id.clone(), spec.workspace_id);
            if self.inner.servers_of(spec.workspace_id).len() > 1 {
                self.violations.lock().unwrap().push(format!("two servers for {}", spec.workspace_id));
            }
        }
        self.leave(spec.workspace_id);
        result
    }
    async fn get_server(&self, token: &SecretString, id: &ServerId) -> Result<Option<Server>, ProviderError> {
        self.inner.get_server(token, id).await
    }
    async fn find_servers(&self, token: &SecretString, ws: WorkspaceId) -> Result<Vec<Server>, ProviderError> {
        self.inner.find_servers(token, ws).await
    }
    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        self.inner.list_servers(token).await
    }
    async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        let ws = self.server_owner.lock().unwrap().get(id).copied();
        if let Some(ws) = ws {
            self.enter(ws, "delete");
        }
        tokio::time::sleep(Duration::from_micros(300)).await;
        let result = self.inner.delete_server(token, id).await;
        if let Some(ws) = ws {
            self.leave(ws);
        }
        result
    }
    async fn power_off(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.inner.power_off(token, id).await
    }
    async fn power_on(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.inner.power_on(token, id).await
    }
    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        self.inner.list_server_types(token).await
    }
    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        self.inner.list_locations(token).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_share_200_workspaces() {
    let mut config = test_config();
    config.max_active_per_user = 1000;
    let h = Harness::with_config(config).await;
    let cloud = Arc::new(ExclusiveCloud {
        inner: h.cloud.clone(),
        in_flight: Mutex::default(),
        server_owner: Mutex::default(),
        violations: Mutex::default(),
    });
    let engine_for = |h: &Harness| {
        let mut ports = h.ports();
        ports.compute = cloud.clone();
        Arc::new(Engine::new(ports, h.config.clone()))
    };
    let a = engine_for(&h);
    let b = engine_for(&h);

    let mut ids = Vec::new();
    for n in 0..200 {
        ids.push(h.create(&a, &format!("ws-{n}")).await.id);
    }

    // Both engines reconcile and drive every workspace at once.
    let mut tasks = Vec::new();
    for (engine, order) in [(a.clone(), ids.clone()), (b.clone(), ids.iter().rev().copied().collect::<Vec<_>>())] {
        let user = h.user;
        tasks.push(tokio::spawn(async move {
            for chunk in order.chunks(20) {
                for id in chunk {
                    engine.drive(user, *id).await.unwrap();
                }
                engine.reconcile_once().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Boot every agent, then stop half and delete a quarter through both engines at once.
    for id in &ids {
        if let Some(token) = h.bootstrap_token(*id)
            && a.redeem_bootstrap(&token).await.is_ok()
        {
            a.report_agent(h.user, *id, &AgentReport::Ready).await.unwrap();
        }
    }
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (engine, other) = if i % 2 == 0 { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
        let (user, id) = (h.user, *id);
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => {
                    engine.delete(user, id).await.unwrap();
                }
                1 => {
                    engine.stop(user, id).await.unwrap();
                }
                _ => {}
            }
            engine.drive(user, id).await.unwrap();
            other.drive(user, id).await.unwrap();
        }));
        if i % 50 == 0 {
            let (a, b) = (a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                a.reconcile_once().await.unwrap();
                b.reconcile_once().await.unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    h.quiesce(&a).await;
    h.quiesce(&b).await;

    let violations = cloud.violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{} violations, e.g. {:?}", violations.len(), violations.first());
    let live = h.store.list_workspaces(h.user, None).await.unwrap();
    assert_eq!(live.len(), 150, "a quarter deleted");
    assert_eq!(live.iter().filter(|w| w.status() == WorkspaceStatus::Stopped).count(), 50);
    assert_eq!(live.iter().filter(|w| w.status() == WorkspaceStatus::Running).count(), 100);
    assert_eq!(h.cloud.create_count(), 200, "exactly one server ever created per workspace");
    h.assert_converged(&[h.user]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_quota_ten() {
    let h = Harness::new().await;
    let engine = Arc::new(h.engine());
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (engine, user) = (engine.clone(), h.user);
        tasks.push(tokio::spawn(
            async move { engine.create(user, sample_spec(&format!("q{n}")), InstallationId(1)).await },
        ));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind, EngineErrorKind::QuotaExceeded);
                assert!(e.message.contains("at most 10"), "{}", e.message);
            }
        }
    }
    assert_eq!(accepted, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstrap_tokens_are_single_use_expire_and_die_with_their_workspace() {
    let h = Harness::new().await;
    let engine = Arc::new(h.engine());
    let ws = h.create(&engine, "boot").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).unwrap();

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (engine, token) = (engine.clone(), token.clone());
        tasks.push(tokio::spawn(async move { engine.redeem_bootstrap(&token).await }));
    }
    let mut grants = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(grant) => grants.push(grant),
            Err(e) => assert_eq!(e.kind, EngineErrorKind::Unauthorized),
        }
    }
    assert_eq!(grants.len(), 1, "exactly one redemption wins");
    let grant = &grants[0];
    assert_eq!(grant.workspace_id, ws.id);
    assert_eq!(grant.repository.as_str(), "octo-org/hello-world");
    assert!(grant.clone_token.expose().starts_with("ghs_fake_1_"));
    let callback = sam_core::ports::TokenVerifier::verify(
        &*h.tokens,
        grant.callback_token.expose(),
        sam_core::ports::Audience::WorkspaceCallback,
        sam_core::ports::Clock::now(&h.clock),
    )
    .await
    .unwrap();
    assert_eq!(callback.workspace, ws.id, "the callback credential names this workspace only");
    assert_eq!(callback.subject, h.user);

    // Expiry: a second workspace's token, redeemed too late.
    let late = h.create(&engine, "late").await;
    engine.drive(h.user, late.id).await.unwrap();
    let late_token = h.bootstrap_token(late.id).unwrap();
    h.clock.advance(h.config.bootstrap_token_ttl);
    assert_eq!(engine.redeem_bootstrap(&late_token).await.unwrap_err().kind, EngineErrorKind::Unauthorized);

    // A workspace that is being deleted no longer bootstraps.
    let gone = h.create(&engine, "gone").await;
    engine.drive(h.user, gone.id).await.unwrap();
    let gone_token = h.bootstrap_token(gone.id).unwrap();
    engine.delete(h.user, gone.id).await.unwrap();
    assert_eq!(engine.redeem_bootstrap(&gone_token).await.unwrap_err().kind, EngineErrorKind::Unauthorized);

    for garbage in ["", "x", "a b", &"a".repeat(500), "../../etc"] {
        assert_eq!(engine.redeem_bootstrap(garbage).await.unwrap_err().kind, EngineErrorKind::Unauthorized);
    }
}
