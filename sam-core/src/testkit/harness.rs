//! A harness for engine tests: the testkit fakes wired into an engine over
//! any [`Store`], a manual clock, a signed-in user with a sealed cloud token
//! and a GitHub App installation, and the invariants every converged world must
//! satisfy. The engine's own tests run it on the in-memory store;
//! `sam-providers` runs the same scenarios on SQLite and PostgreSQL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::accounts::{Accounts, AccountsConfig};
use crate::domain::{
    CredentialProvider, GithubInstallation, GithubUserId, InstallationId, UserId, Workspace, WorkspaceId,
};
use crate::domain::{Location, ServerTypeOffer};
use crate::engine::{AgentReport, DriveOutcome, Engine, EngineConfig, Ports, RetryPolicy};
use crate::lifecycle::WorkspaceStatus;
use crate::ports::{Clock, ComputeProvider, InstallationInfo, ProviderError, Server, ServerSpec, Store};
use crate::secret::SecretString;
use crate::testkit::fakes::{
    FakeAgents, FakeCipher, FakeCloud, FakeDnsZone, FakeGithub, FakeOriginCa, FakeTokenAuthority, ManualClock,
    MemoryStore,
};
use crate::testkit::{sample_new_user, sample_spec};

/// The base domain of harness workspaces.
pub const BASE_DOMAIN: &str = "ws.sam.test";
/// The DNS zone the base domain is in (the origin CA signs names in it).
pub const ZONE: &str = "sam.test";
/// The harness user's cloud token.
pub const CLOUD_TOKEN: &str = "hcloud-valid-token";

/// A world of fakes around one engine configuration.
#[allow(missing_docs)]
#[derive(Debug)]
pub struct Harness {
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
    pub cloud: Arc<FakeCloud>,
    pub dns: Arc<FakeDnsZone>,
    pub github: Arc<FakeGithub>,
    pub cipher: Arc<FakeCipher>,
    pub tokens: Arc<FakeTokenAuthority>,
    /// The agents a probe reaches (none answers unless told to).
    pub agents: Arc<FakeAgents>,
    /// The origin CA agents' certificate requests go to.
    pub origin_ca: Arc<FakeOriginCa>,
    pub config: EngineConfig,
    pub user: UserId,
}

/// An engine configuration for tests: no waiting between retries.
pub fn test_config() -> EngineConfig {
    let mut config = EngineConfig::new(BASE_DOMAIN, "https://sam.test");
    config.retry = RetryPolicy::immediate(3);
    config
}

impl Harness {
    /// In-memory store, test configuration.
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    /// In-memory store, `config`.
    pub async fn with_config(config: EngineConfig) -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), config).await
    }

    /// `store` (empty or not), `config`.
    pub async fn with_store(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        let clock = ManualClock::new();
        let cloud = Arc::new(FakeCloud::with_clock(Arc::new(clock.clone())));
        cloud.add_token(CLOUD_TOKEN);
        Self::world(clock, store, cloud, Arc::new(FakeDnsZone::new()), config).await
    }

    /// A second deployment beside `other`: its own database and `config`, the
    /// same cloud project (the same user token), DNS zone and clock.
    pub async fn beside(other: &Harness, config: EngineConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::world(other.clock.clone(), store, other.cloud.clone(), other.dns.clone(), config).await
    }

    /// A world around `clock`, `store`, `cloud` and `dns`, with fresh fakes
    /// for the rest and the harness user signed in.
    async fn world(
        clock: ManualClock,
        store: Arc<dyn Store>,
        cloud: Arc<FakeCloud>,
        dns: Arc<FakeDnsZone>,
        config: EngineConfig,
    ) -> Self {
        let tokens = Arc::new(FakeTokenAuthority::new("https://sam.test", "k1"));
        let h = Self {
            agents: Arc::new(FakeAgents::new(tokens.clone(), Arc::new(clock.clone()))),
            tokens,
            clock,
            store,
            cloud,
            dns,
            github: Arc::new(FakeGithub::new(30)),
            cipher: Arc::new(FakeCipher::new(1, "test key")),
            origin_ca: Arc::new(FakeOriginCa::new(ZONE)),
            config,
            user: UserId::new(),
        };
        let user = h.add_user(4242).await;
        Self { user, ..h }
    }

    /// A signed-in user with a sealed cloud token and installation 1.
    pub async fn add_user(&self, github_id: i64) -> UserId {
        let now = self.clock.now();
        let user = self.store.upsert_user(&sample_new_user(github_id), now).await.unwrap();
        self.accounts()
            .store_credential(user.id, CredentialProvider::HETZNER, &SecretString::new(CLOUD_TOKEN))
            .await
            .unwrap();
        self.store
            .upsert_installation(&GithubInstallation {
                id: InstallationId(1),
                account_login: "octo-org".into(),
                account_type: "Organization".into(),
                account_id: GithubUserId(99),
                suspended: false,
                removed_at: None,
                updated_at: now,
            })
            .await
            .unwrap();
        self.github.add_installation(
            InstallationInfo {
                id: InstallationId(1),
                account_login: "octo-org".into(),
                account_type: "Organization".into(),
                account_id: GithubUserId(99),
                suspended: false,
            },
            github_id,
            &["octo-org/hello-world"],
        );
        user.id
    }

    /// The ports of this world.
    pub fn ports(&self) -> Ports {
        Ports {
            store: self.store.clone(),
            compute: self.cloud.clone(),
            dns: self.dns.clone(),
            repos: self.github.clone(),
            cipher: self.cipher.clone(),
            tokens: self.tokens.clone(),
            clock: Arc::new(self.clock.clone()),
        }
    }

    /// The accounts of this world, signing in through its fake GitHub.
    pub fn accounts(&self) -> Accounts {
        Accounts::new(self.ports(), self.github.clone(), AccountsConfig::default())
    }

    /// A fresh engine on the same world: building a second one after dropping
    /// the first is how tests simulate a process crash and restart.
    pub fn engine(&self) -> Engine {
        Engine::new(self.ports(), self.config.clone())
            .with_agent_probe(self.agents.clone())
            .with_origin_ca(self.origin_ca.clone())
    }

    /// Creates workspace `name` for the harness user.
    pub async fn create(&self, engine: &Engine, name: &str) -> Workspace {
        engine.create(self.user, sample_spec(name), InstallationId(1)).await.unwrap()
    }

    /// One of the harness user's workspaces.
    pub async fn get(&self, id: WorkspaceId) -> Option<Workspace> {
        self.store.get_workspace(self.user, id).await.unwrap()
    }

    /// The status of one of the harness user's workspaces.
    pub async fn status(&self, id: WorkspaceId) -> Option<WorkspaceStatus> {
        self.get(id).await.map(|w| w.status())
    }

    /// The bootstrap token cloud-init carries for the workspace's server.
    pub fn bootstrap_token(&self, id: WorkspaceId) -> Option<String> {
        let data = self.cloud.user_data_of(id)?;
        data.lines().find_map(|l| l.trim().strip_prefix("SAM_AGENT_BOOTSTRAP_TOKEN=").map(str::to_owned))
    }

    /// Plays the agent: redeem the bootstrap token and report ready.
    pub async fn boot_agent(&self, engine: &Engine, id: WorkspaceId) -> Workspace {
        let token = self.bootstrap_token(id).expect("the server carries a bootstrap token");
        let grant = engine.redeem_bootstrap(&token).await.expect("redeem");
        assert_eq!(grant.workspace_id, id);
        engine.report_agent(self.user, id, &AgentReport::Ready).await.expect("ready")
    }

    /// Create, drive and boot: a running workspace.
    pub async fn running(&self, engine: &Engine, name: &str) -> Workspace {
        let ws = self.create(engine, name).await;
        assert!(matches!(engine.drive(self.user, ws.id).await.unwrap(), DriveOutcome::Settled(_)));
        let ws = self.boot_agent(engine, ws.id).await;
        assert_eq!(ws.status(), WorkspaceStatus::Running);
        ws
    }

    /// Runs reconciler passes until one changes nothing (bounded).
    pub async fn quiesce(&self, engine: &Engine) {
        for _ in 0..20 {
            let report = engine.reconcile_once().await.unwrap();
            if !report.changed_anything() && report.failures == 0 {
                return;
            }
        }
        panic!("the reconciler did not quiesce in 20 passes");
    }

    /// Moves time past every grace period and deadline and quiesces.
    pub async fn settle_everything(&self, engine: &Engine) {
        self.cloud.faults.clear();
        self.dns.faults.clear();
        self.quiesce(engine).await;
        self.clock.advance(self.config.orphan_grace + Duration::from_secs(1));
        self.quiesce(engine).await;
        self.clock.advance(self.config.provision_timeout + Duration::from_secs(1));
        self.quiesce(engine).await;
        self.clock.advance(self.config.orphan_grace + Duration::from_secs(1));
        self.quiesce(engine).await;
    }

    /// The invariants of a converged world: no server or DNS record without a
    /// live workspace that records it, at most one server per workspace, every
    /// workspace in a settled state with a reason.
    pub async fn assert_converged(&self, users: &[UserId]) {
        let live = self.assert_no_leaks(users).await;
        for ws in &live {
            assert_eq!(ws.lifecycle.check_invariants(), Ok(()), "{}", ws.id);
            match ws.status() {
                WorkspaceStatus::Running | WorkspaceStatus::Stopped => {}
                WorkspaceStatus::Error => {
                    assert!(ws.lifecycle.error_message.is_some());
                    assert!(!ws.lifecycle.holds_resources(), "error workspace still holds resources");
                }
                other => panic!("workspace {} not settled: {other}", ws.id),
            }
        }
    }

    /// Every server and DNS record belongs to a live `creating` or `running`
    /// workspace that records it, and no workspace has two servers. Returns the
    /// live workspaces.
    pub async fn assert_no_leaks(&self, users: &[UserId]) -> Vec<Workspace> {
        let mut live = Vec::new();
        for user in users {
            live.extend(self.store.list_workspaces(*user, None).await.unwrap());
        }
        for server in self.cloud.servers() {
            let owner = live.iter().find(|w| Some(w.id) == server.workspace_id());
            let ws = owner.unwrap_or_else(|| panic!("server {} belongs to no live workspace", server.id));
            assert!(
                matches!(ws.status(), WorkspaceStatus::Running | WorkspaceStatus::Creating),
                "server {} kept for a {} workspace",
                server.id,
                ws.status()
            );
            assert_eq!(
                ws.lifecycle.server.as_ref().map(|s| &s.id),
                Some(&server.id),
                "server {} is recorded",
                server.id
            );
        }
        for ws in &live {
            assert!(self.cloud.servers_of(ws.id).len() <= 1, "at most one server for {}", ws.id);
        }
        let hosts = self.config.hosts();
        for record in self.dns.records() {
            let ws = live
                .iter()
                .find(|w| hosts.owner_of(&record.name) == Some(w.id))
                .unwrap_or_else(|| panic!("DNS record {} belongs to no live workspace", record.name));
            assert!(
                matches!(ws.status(), WorkspaceStatus::Running | WorkspaceStatus::Creating),
                "record kept for {}",
                ws.status()
            );
            // A preview's record is in the zone only (no id to record).
            if hosts.preview_of(&record.name).is_none() {
                assert_eq!(ws.lifecycle.dns_record.as_deref(), Some(record.id.as_str()));
            }
        }
        live
    }

    /// Now, on the harness clock.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.clock.now()
    }

    /// Writes a workspace as it is (test setup).
    pub async fn store_update(&self, ws: &Workspace) {
        self.store.update_workspace(ws, &[]).await.unwrap();
    }

    /// Every stored workspace of the harness user obeys the lifecycle invariants.
    pub async fn assert_lifecycle_invariants(&self) {
        for ws in self.store.list_workspaces(self.user, None).await.unwrap() {
            assert_eq!(ws.lifecycle.check_invariants(), Ok(()), "{}", ws.id);
        }
    }
}

/// Wraps a [`FakeCloud`] and records a violation whenever two calls that change
/// one workspace's servers overlap in time (that would mean two engines drive
/// it at once) or a workspace ever has two servers.
#[derive(Debug)]
pub struct ExclusiveCloud {
    inner: Arc<FakeCloud>,
    in_flight: Mutex<HashMap<WorkspaceId, &'static str>>,
    server_owner: Mutex<BTreeMap<crate::domain::ServerId, WorkspaceId>>,
    violations: Mutex<Vec<String>>,
}

impl ExclusiveCloud {
    /// Wraps `inner`.
    pub fn new(inner: Arc<FakeCloud>) -> Self {
        Self { inner, in_flight: Mutex::default(), server_owner: Mutex::default(), violations: Mutex::default() }
    }

    /// What went wrong so far.
    pub fn violations(&self) -> Vec<String> {
        crate::sync::lock(&self.violations).clone()
    }

    fn enter(&self, ws: WorkspaceId, op: &'static str) {
        if let Some(other) = crate::sync::lock(&self.in_flight).insert(ws, op) {
            crate::sync::lock(&self.violations).push(format!("{op} overlapped {other} on {ws}"));
        }
    }

    fn leave(&self, ws: WorkspaceId) {
        crate::sync::lock(&self.in_flight).remove(&ws);
    }
}

/// How long an exclusive call stays in flight, to widen the window in which an
/// overlap would show.
const OVERLAP_WINDOW: Duration = Duration::from_micros(300);

#[async_trait]
impl ComputeProvider for ExclusiveCloud {
    fn name(&self) -> &'static str {
        "exclusive"
    }

    fn credential_kind(&self) -> CredentialProvider {
        CredentialProvider::HETZNER
    }
    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError> {
        self.inner.validate_credential(token).await
    }
    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        self.enter(spec.workspace_id, "create");
        tokio::time::sleep(OVERLAP_WINDOW).await;
        let result = self.inner.create_server(token, spec).await;
        if let Ok(server) = &result {
            crate::sync::lock(&self.server_owner).insert(server.id.clone(), spec.workspace_id);
            if self.inner.servers_of(spec.workspace_id).len() > 1 {
                crate::sync::lock(&self.violations).push(format!("two servers for {}", spec.workspace_id));
            }
        }
        self.leave(spec.workspace_id);
        result
    }
    async fn get_server(
        &self,
        token: &SecretString,
        id: &crate::domain::ServerId,
    ) -> Result<Option<Server>, ProviderError> {
        self.inner.get_server(token, id).await
    }
    async fn find_servers(&self, token: &SecretString, ws: WorkspaceId) -> Result<Vec<Server>, ProviderError> {
        self.inner.find_servers(token, ws).await
    }
    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        self.inner.list_servers(token).await
    }
    async fn add_labels(
        &self,
        token: &SecretString,
        id: &crate::domain::ServerId,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        self.inner.add_labels(token, id, labels).await
    }
    async fn delete_server(&self, token: &SecretString, id: &crate::domain::ServerId) -> Result<(), ProviderError> {
        let ws = crate::sync::lock(&self.server_owner).get(id).copied();
        if let Some(ws) = ws {
            self.enter(ws, "delete");
        }
        tokio::time::sleep(OVERLAP_WINDOW).await;
        let result = self.inner.delete_server(token, id).await;
        if let Some(ws) = ws {
            self.leave(ws);
        }
        result
    }
    async fn power_off(&self, token: &SecretString, id: &crate::domain::ServerId) -> Result<(), ProviderError> {
        self.inner.power_off(token, id).await
    }
    async fn power_on(&self, token: &SecretString, id: &crate::domain::ServerId) -> Result<(), ProviderError> {
        self.inner.power_on(token, id).await
    }
    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        self.inner.list_server_types(token).await
    }
    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        self.inner.list_locations(token).await
    }
    async fn ensure_firewall(
        &self,
        token: &SecretString,
        policy: &crate::ports::FirewallPolicy,
    ) -> Result<Option<String>, ProviderError> {
        self.inner.ensure_firewall(token, policy).await
    }
    async fn find_firewall(
        &self,
        token: &SecretString,
        deployment: &crate::domain::DeploymentId,
    ) -> Result<Option<crate::ports::Firewall>, ProviderError> {
        self.inner.find_firewall(token, deployment).await
    }
    async fn delete_firewall(
        &self,
        token: &SecretString,
        deployment: &crate::domain::DeploymentId,
    ) -> Result<(), ProviderError> {
        self.inner.delete_firewall(token, deployment).await
    }
}

/// Two engines on one store drive `count` workspaces at once (creates, agent
/// boots, stops of a quarter, deletes of a quarter), then the world must have
/// converged with exactly one server ever created per workspace and no call
/// of one engine overlapping another's on the same workspace. Needs a
/// multi-threaded runtime to be meaningful.
pub async fn two_engines_share_workspaces(store: Arc<dyn Store>, count: usize) {
    let mut config = test_config();
    config.max_active_per_user = u32::try_from(count).unwrap_or(u32::MAX).saturating_mul(2);
    let h = Harness::with_store(store, config).await;
    let cloud = Arc::new(ExclusiveCloud::new(h.cloud.clone()));
    let engine_for = |h: &Harness| {
        let mut ports = h.ports();
        ports.compute = cloud.clone();
        Arc::new(Engine::new(ports, h.config.clone()))
    };
    let a = engine_for(&h);
    let b = engine_for(&h);

    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(h.create(&a, &format!("ws-{n}")).await.id);
    }
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

    let violations = cloud.violations();
    assert!(violations.is_empty(), "{} violations, e.g. {:?}", violations.len(), violations.first());
    let live = h.store.list_workspaces(h.user, None).await.unwrap();
    let deleted = ids.len().div_ceil(4);
    let stopped = ids.iter().enumerate().filter(|(i, _)| i % 4 == 1).count();
    assert_eq!(live.len(), ids.len() - deleted, "a quarter deleted");
    assert_eq!(live.iter().filter(|w| w.status() == WorkspaceStatus::Stopped).count(), stopped);
    assert_eq!(live.iter().filter(|w| w.status() == WorkspaceStatus::Running).count(), ids.len() - deleted - stopped);
    assert_eq!(h.cloud.create_count(), ids.len() as u64, "exactly one server ever created per workspace");
    h.assert_converged(&[h.user]).await;
}
