//! A harness for engine tests: the testkit fakes wired into an engine, a
//! manual clock, a signed-in user with a sealed cloud token and a GitHub App
//! installation, and the invariants every converged world must satisfy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use sam_core::domain::{
    CredentialProvider, GithubInstallation, GithubUserId, InstallationId, UserId, Workspace, WorkspaceId,
};
use sam_core::engine::{AgentReport, DriveOutcome, Engine, EngineConfig, Ports, RetryPolicy, credential_context};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{Cipher, Clock, InstallationInfo, Store};
use sam_core::testkit::fakes::{
    FakeCipher, FakeCloud, FakeDnsZone, FakeGithub, FakeTokenAuthority, ManualClock, MemoryStore,
};
use sam_core::testkit::{sample_new_user, sample_spec};

pub const BASE_DOMAIN: &str = "ws.sam.test";
pub const CLOUD_TOKEN: &str = "hcloud-valid-token";

pub struct Harness {
    pub clock: ManualClock,
    pub store: Arc<MemoryStore>,
    pub cloud: Arc<FakeCloud>,
    pub dns: Arc<FakeDnsZone>,
    pub github: Arc<FakeGithub>,
    pub cipher: Arc<FakeCipher>,
    pub tokens: Arc<FakeTokenAuthority>,
    pub config: EngineConfig,
    pub user: UserId,
}

pub fn test_config() -> EngineConfig {
    let mut config = EngineConfig::new(BASE_DOMAIN, "https://sam.test");
    config.retry = RetryPolicy::immediate(3);
    config
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: EngineConfig) -> Self {
        let clock = ManualClock::new();
        let store = Arc::new(MemoryStore::new());
        let cloud = Arc::new(FakeCloud::with_clock(Arc::new(clock.clone())));
        cloud.add_token(CLOUD_TOKEN);
        let h = Self {
            clock,
            store,
            cloud,
            dns: Arc::new(FakeDnsZone::new()),
            github: Arc::new(FakeGithub::new(30)),
            cipher: Arc::new(FakeCipher::new(1, "test key")),
            tokens: Arc::new(FakeTokenAuthority::new("https://sam.test", "k1")),
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
        let sealed =
            self.cipher.seal(CLOUD_TOKEN.as_bytes(), credential_context(user.id, CredentialProvider::Hetzner)).unwrap();
        self.store
            .put_credential(&sam_core::domain::Credential {
                user_id: user.id,
                provider: CredentialProvider::Hetzner,
                ciphertext: sealed,
                validated_at: Some(now),
                created_at: now,
                updated_at: now,
            })
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

    /// A fresh engine on the same world: building a second one after dropping
    /// the first is how tests simulate a process crash and restart.
    pub fn engine(&self) -> Engine {
        Engine::new(self.ports(), self.config.clone())
    }

    pub async fn create(&self, engine: &Engine, name: &str) -> Workspace {
        engine.create(self.user, sample_spec(name), InstallationId(1)).await.unwrap()
    }

    pub async fn get(&self, id: WorkspaceId) -> Option<Workspace> {
        self.store.get_workspace(self.user, id).await.unwrap()
    }

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
        for record in self.dns.records() {
            let ws = live
                .iter()
                .find(|w| w.hostname(BASE_DOMAIN) == record.name)
                .unwrap_or_else(|| panic!("DNS record {} belongs to no live workspace", record.name));
            assert!(
                matches!(ws.status(), WorkspaceStatus::Running | WorkspaceStatus::Creating),
                "record kept for {}",
                ws.status()
            );
            assert_eq!(ws.lifecycle.dns_record.as_deref(), Some(record.id.as_str()));
        }
        live
    }
}
