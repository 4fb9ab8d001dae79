//! A cloud SAM has never heard of, implemented in this file as a
//! [`ComputeProvider`] and plugged into the engine: supporting a new cloud
//! needs an adapter, not a change to `sam-core`.
//!
//! [`RackCloud`] stands for a small private cloud (a rack of machines behind
//! an API): projects are identified by API tokens, servers get addresses from
//! the rack's 10.42.0.0/16 network, boot for a moment before they run, names
//! are unique per project, the catalogue has server types priced per rack, and
//! each project has a server limit. Its behaviour follows the port's contract,
//! which `sam-core`'s conformance suite checks (see `examples/tests`).
//!
//! `cargo run -p sam-examples --example custom_provider`

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sam_core::domain::{
    Location, LocationCode, LocationPrice, ServerId, ServerTypeOffer, Timestamp, WorkspaceId, choose_server_type,
};
use sam_core::engine::{DriveOutcome, Engine, EngineConfig, Ports};
use sam_core::ports::{
    ComputeProvider, LABEL_WORKSPACE, ProviderError, ProviderErrorKind, Server, ServerSpec, ServerStatus, SystemClock,
};
use sam_core::secret::SecretString;
use sam_core::testkit::fakes::{FakeCipher, FakeDnsZone, FakeGithub, FakeTokenAuthority, MemoryStore};

use crate::{Error, demo};

/// The kind of credential a rack project's API token is stored as.
pub const RACK_CREDENTIAL: sam_core::domain::CredentialProvider = sam_core::domain::CredentialProvider::known("rack");

/// The racks (locations) of the cloud.
pub const RACKS: [&str; 2] = ["lab1", "lab2"];

/// Settings of a [`RackCloud`].
#[derive(Clone, Debug)]
pub struct RackCloudConfig {
    /// How long a new or powered-on server reports `starting`.
    pub boot_time: Duration,
    /// Most servers one project may have.
    pub max_servers_per_project: usize,
}

impl Default for RackCloudConfig {
    fn default() -> Self {
        Self { boot_time: Duration::from_millis(20), max_servers_per_project: 10 }
    }
}

/// A server as the rack keeps it.
#[derive(Clone, Debug)]
struct RackServer {
    project: String,
    server: Server,
    /// When the server last began booting; `None` while powered off.
    booted_at: Option<Instant>,
    /// cloud-init user data, served to the machine by the rack's metadata
    /// service.
    user_data: String,
}

#[derive(Debug, Default)]
struct Rack {
    servers: BTreeMap<u64, RackServer>,
    next_id: u64,
    /// Addresses in use (host part of 10.42.x.y).
    leased: HashSet<u16>,
}

/// A [`ComputeProvider`] for the rack cloud. Cheap to share; all state is
/// behind one lock.
#[derive(Debug)]
pub struct RackCloud {
    config: RackCloudConfig,
    /// Project per API token.
    projects: Mutex<HashMap<String, String>>,
    rack: Mutex<Rack>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RackCloud {
    /// An empty rack cloud.
    pub fn new(config: RackCloudConfig) -> Self {
        Self { config, projects: Mutex::default(), rack: Mutex::new(Rack { next_id: 1, ..Rack::default() }) }
    }

    /// Creates a project and returns its API token.
    pub fn add_project(&self, name: &str) -> SecretString {
        let token = format!("rack-{name}-token");
        lock(&self.projects).insert(token.clone(), name.to_owned());
        SecretString::new(token)
    }

    /// Every server of every project (for inspection).
    pub fn servers(&self) -> Vec<Server> {
        let rack = lock(&self.rack);
        rack.servers.values().map(|s| self.observed(s)).collect()
    }

    /// What the metadata service hands server `id` at boot (its cloud-init).
    pub fn metadata_user_data(&self, id: &ServerId) -> Option<String> {
        let rack = lock(&self.rack);
        Self::parse_id(id).and_then(|n| rack.servers.get(&n)).map(|s| s.user_data.clone())
    }

    /// The project a token belongs to; never echoes the token.
    fn project(&self, token: &SecretString) -> Result<String, ProviderError> {
        lock(&self.projects)
            .get(token.expose())
            .cloned()
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::Unauthorized, "rack cloud: invalid API token"))
    }

    /// A server as a client sees it now: `starting` until it has booted.
    fn observed(&self, s: &RackServer) -> Server {
        let mut server = s.server.clone();
        server.status = match s.booted_at {
            None => ServerStatus::Off,
            Some(at) if at.elapsed() < self.config.boot_time => ServerStatus::Starting,
            Some(_) => ServerStatus::Running,
        };
        server
    }

    fn catalogue() -> Vec<ServerTypeOffer> {
        let offer = |name: &str, cores, memory_gb, hourly: &str| ServerTypeOffer {
            name: name.into(),
            cores,
            memory_gb,
            disk_gb: 80,
            architecture: "x86".into(),
            deprecated: false,
            prices: RACKS
                .iter()
                .map(|rack| LocationPrice { location: (*rack).into(), hourly: hourly.into(), monthly: "0".into() })
                .collect(),
        };
        vec![
            offer("r2.small", 2, 4.0, "0.004"),
            offer("r4.medium", 4, 8.0, "0.008"),
            offer("r8.large", 8, 16.0, "0.016"),
        ]
    }

    fn parse_id(id: &ServerId) -> Option<u64> {
        id.0.parse().ok()
    }
}

fn now() -> Timestamp {
    time::OffsetDateTime::now_utc()
}

#[async_trait]
impl ComputeProvider for RackCloud {
    fn name(&self) -> &'static str {
        "rack"
    }

    fn credential_kind(&self) -> sam_core::domain::CredentialProvider {
        RACK_CREDENTIAL
    }

    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError> {
        self.project(token).map(|_| ())
    }

    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        let project = self.project(token)?;
        let types = Self::catalogue();
        let server_type = choose_server_type(spec.size, &spec.location, &types).ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidConfig,
                format!("rack cloud: no {} server type in location {}", spec.size, spec.location),
            )
        })?;
        let mut rack = lock(&self.rack);
        let workspace = spec.workspace_id.to_string();
        let mine = |s: &&RackServer| s.project == project;
        // Idempotent by the workspace label: a retried create returns the
        // server the first attempt made.
        if let Some(existing) =
            rack.servers.values().filter(mine).find(|s| s.server.labels.get(LABEL_WORKSPACE) == Some(&workspace))
        {
            return Ok(self.observed(existing));
        }
        if rack.servers.values().filter(mine).any(|s| s.server.name == spec.name) {
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidConfig,
                format!("rack cloud: a server named {} exists", spec.name),
            ));
        }
        if rack.servers.values().filter(mine).count() >= self.config.max_servers_per_project {
            return Err(ProviderError::new(
                ProviderErrorKind::QuotaExceeded,
                "rack cloud: project server limit reached",
            ));
        }
        let host = (1..=u16::MAX).find(|h| !rack.leased.contains(h)).ok_or_else(|| {
            ProviderError::new(ProviderErrorKind::Capacity, "rack cloud: no free address in 10.42.0.0/16")
        })?;
        rack.leased.insert(host);
        let id = rack.next_id;
        rack.next_id += 1;
        let [hi, lo] = host.to_be_bytes();
        let entry = RackServer {
            project,
            server: Server {
                id: ServerId(id.to_string()),
                name: spec.name.clone(),
                status: ServerStatus::Starting,
                public_ipv4: Some(Ipv4Addr::new(10, 42, hi, lo)),
                labels: spec.all_labels(),
                server_type: server_type.name.clone(),
                location: spec.location.clone(),
                created_at: now(),
            },
            booted_at: Some(Instant::now()),
            user_data: spec.user_data.clone(),
        };
        let created = self.observed(&entry);
        rack.servers.insert(id, entry);
        Ok(created)
    }

    async fn get_server(&self, token: &SecretString, id: &ServerId) -> Result<Option<Server>, ProviderError> {
        let project = self.project(token)?;
        let rack = lock(&self.rack);
        Ok(Self::parse_id(id)
            .and_then(|n| rack.servers.get(&n))
            .filter(|s| s.project == project)
            .map(|s| self.observed(s)))
    }

    async fn find_servers(&self, token: &SecretString, workspace: WorkspaceId) -> Result<Vec<Server>, ProviderError> {
        let workspace = workspace.to_string();
        Ok(self
            .list_servers(token)
            .await?
            .into_iter()
            .filter(|s| s.labels.get(LABEL_WORKSPACE) == Some(&workspace))
            .collect())
    }

    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        let project = self.project(token)?;
        let rack = lock(&self.rack);
        Ok(rack
            .servers
            .values()
            .filter(|s| s.project == project)
            .map(|s| self.observed(s))
            .filter(Server::is_managed)
            .collect())
    }

    async fn add_labels(
        &self,
        token: &SecretString,
        id: &ServerId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let project = self.project(token)?;
        let mut rack = lock(&self.rack);
        match Self::parse_id(id).and_then(|n| rack.servers.get_mut(&n)).filter(|s| s.project == project) {
            Some(racked) => {
                racked.server.labels.extend(labels.clone());
                Ok(())
            }
            None => Err(ProviderError::new(ProviderErrorKind::NotFound, format!("rack: no server {id}"))),
        }
    }

    async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        let project = self.project(token)?;
        let mut rack = lock(&self.rack);
        let Some(n) = Self::parse_id(id) else { return Ok(()) };
        // Absent (or another project's) counts as deleted.
        if rack.servers.get(&n).is_some_and(|s| s.project == project)
            && let Some(removed) = rack.servers.remove(&n)
            && let Some(ip) = removed.server.public_ipv4
        {
            let [_, _, hi, lo] = ip.octets();
            rack.leased.remove(&u16::from_be_bytes([hi, lo]));
        }
        Ok(())
    }

    async fn power_off(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.set_power(token, id, false)
    }

    async fn power_on(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.set_power(token, id, true)
    }

    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        self.project(token)?;
        Ok(Self::catalogue())
    }

    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        self.project(token)?;
        RACKS
            .iter()
            .enumerate()
            .map(|(n, rack)| {
                Ok(Location {
                    code: LocationCode::new(*rack)
                        .map_err(|e| ProviderError::new(ProviderErrorKind::Other, e.to_string()))?,
                    description: format!("Lab rack {}", n + 1),
                    country: "DE".into(),
                    city: "Berlin".into(),
                })
            })
            .collect()
    }
}

impl RackCloud {
    fn set_power(&self, token: &SecretString, id: &ServerId, on: bool) -> Result<(), ProviderError> {
        let project = self.project(token)?;
        let mut rack = lock(&self.rack);
        let server = Self::parse_id(id)
            .and_then(|n| rack.servers.get_mut(&n))
            .filter(|s| s.project == project)
            .ok_or_else(|| ProviderError::new(ProviderErrorKind::NotFound, format!("rack cloud: no server {id}")))?;
        server.booted_at = on.then(Instant::now);
        Ok(())
    }
}

/// Runs the example: a workspace on the rack cloud, created, booted, stopped,
/// restarted and deleted through the unchanged engine. Returns the statuses it
/// went through.
pub async fn run(out: &mut dyn Write) -> Result<Vec<String>, Error> {
    let cloud = Arc::new(RackCloud::new(RackCloudConfig::default()));
    let token = cloud.add_project("demo");
    let github = Arc::new(FakeGithub::new(30));
    let ports = Ports {
        store: Arc::new(MemoryStore::new()),
        compute: cloud.clone(),
        dns: Arc::new(FakeDnsZone::new()),
        repos: github.clone(),
        cipher: Arc::new(FakeCipher::new(1, "example key")),
        tokens: Arc::new(FakeTokenAuthority::new("http://127.0.0.1:8080", "k1")),
        clock: Arc::new(SystemClock),
    };
    let engine = Arc::new(Engine::new(ports.clone(), EngineConfig::new("ws.example.dev", "http://127.0.0.1:8080")));
    let user = demo::sign_up(&ports, &github, token.expose()).await?;
    let mut statuses = Vec::new();
    let mut show = |out: &mut dyn Write, step: &str, ws: &sam_core::domain::Workspace| -> std::io::Result<()> {
        statuses.push(ws.status().to_string());
        writeln!(out, "{step:<10} → {}", demo::describe(ws))
    };

    let ws = engine.create(user, demo::spec("on-the-rack", "lab2")?, demo::INSTALLATION).await?;
    show(out, "create", &ws)?;
    let ws = settled(engine.drive(user, ws.id).await?)?;
    show(out, "drive", &ws)?;
    let ws = boot(out, &cloud, &engine, user).await?;
    show(out, "ready", &ws)?;

    let ws = engine.stop(user, ws.id).await?;
    show(out, "stop", &ws)?;
    let ws = settled(engine.drive(user, ws.id).await?)?;
    show(out, "drive", &ws)?;
    writeln!(out, "  rack: {} servers", cloud.servers().len())?;

    // A restart provisions a fresh server with the same configuration.
    let ws = engine.restart(user, ws.id).await?;
    show(out, "restart", &ws)?;
    let ws = settled(engine.drive(user, ws.id).await?)?;
    show(out, "drive", &ws)?;
    let ws = boot(out, &cloud, &engine, user).await?;
    show(out, "ready", &ws)?;

    let ws = engine.delete(user, ws.id).await?;
    show(out, "delete", &ws)?;
    if !matches!(engine.drive(user, ws.id).await?, DriveOutcome::Removed) {
        return Err("the workspace was not removed".into());
    }
    writeln!(out, "{:<10} → removed; rack: {} servers", "drive", cloud.servers().len())?;
    Ok(statuses)
}

/// Waits for the rack's only server to finish booting, then plays its agent
/// (which reads its cloud-init from the metadata service).
async fn boot(
    out: &mut dyn Write,
    cloud: &RackCloud,
    engine: &Arc<Engine>,
    user: sam_core::domain::UserId,
) -> Result<sam_core::domain::Workspace, Error> {
    let mut server = cloud.servers().into_iter().next().ok_or("the rack has no server")?;
    while server.status == ServerStatus::Starting {
        tokio::time::sleep(Duration::from_millis(5)).await;
        server = cloud.servers().into_iter().next().ok_or("the server vanished")?;
    }
    let ip = server.public_ipv4.map_or("-".to_owned(), |ip| ip.to_string());
    writeln!(
        out,
        "  rack: server {} {} in {} at {ip}, {:?}",
        server.id, server.server_type, server.location, server.status
    )?;
    let user_data = cloud.metadata_user_data(&server.id).ok_or("no user data for the server")?;
    Ok(demo::boot_agent(engine, user, &user_data).await?.0)
}

fn settled(outcome: DriveOutcome) -> Result<sam_core::domain::Workspace, Error> {
    match outcome {
        DriveOutcome::Settled(ws) => Ok(*ws),
        other => Err(format!("unexpected drive outcome {other:?}").into()),
    }
}
