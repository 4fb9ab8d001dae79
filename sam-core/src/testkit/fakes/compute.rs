use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::faults::{FaultPlan, after};
use crate::domain::{
    DeploymentId, Location, LocationCode, LocationPrice, ServerId, ServerTypeOffer, WorkspaceId, choose_server_type_of,
};
use crate::ports::{
    Clock, ComputeProvider, Firewall, FirewallPolicy, InboundRule, LABEL_DEPLOYMENT, LABEL_WORKSPACE, ProviderError,
    ProviderErrorKind, Server, ServerSpec, ServerStatus, SystemClock,
};
use crate::secret::SecretString;
use crate::testkit::lock;

/// An in-memory cloud: servers with labels, per-token accounts, a catalogue of
/// server types, fault injection and call counters.
#[derive(Debug)]
pub struct FakeCloud {
    state: Mutex<CloudState>,
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    calls: AtomicU64,
    /// Faults to inject, by operation name (`create_server`, `delete_server`, ...).
    pub faults: FaultPlan,
}

#[derive(Debug, Default)]
struct CloudState {
    tokens: HashSet<String>,
    // (token, server) so one user's token never sees another account's servers.
    servers: BTreeMap<u64, (String, Server)>,
    user_data: BTreeMap<u64, String>,
    creates: u64,
    // (token, deployment) → the deployment's firewall in that account.
    firewalls: BTreeMap<(String, String), FakeFirewall>,
}

#[derive(Debug, Clone)]
struct FakeFirewall {
    id: String,
    name: String,
    rules: Vec<InboundRule>,
    /// Servers it was applied to directly at creation.
    servers: HashSet<u64>,
}

impl FakeCloud {
    /// An empty cloud with no valid tokens, on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty cloud whose servers get their creation time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::default(),
            clock,
            next_id: AtomicU64::new(1000),
            calls: AtomicU64::new(0),
            faults: FaultPlan::default(),
        }
    }

    /// The user data the server of `workspace` was created with.
    pub fn user_data_of(&self, workspace: WorkspaceId) -> Option<String> {
        let state = lock(&self.state);
        state
            .servers
            .iter()
            .find(|(_, (_, s))| s.workspace_id() == Some(workspace))
            .and_then(|(id, _)| state.user_data.get(id).cloned())
    }

    /// Registers a valid token (an account) and returns it.
    pub fn add_token(&self, token: &str) -> SecretString {
        lock(&self.state).tokens.insert(token.to_owned());
        SecretString::new(token)
    }

    /// Revokes a token.
    pub fn revoke_token(&self, token: &str) {
        lock(&self.state).tokens.remove(token);
    }

    /// Every server of every account.
    pub fn servers(&self) -> Vec<Server> {
        lock(&self.state).servers.values().map(|(_, s)| s.clone()).collect()
    }

    /// Servers labelled for `workspace`, in any account.
    pub fn servers_of(&self, workspace: WorkspaceId) -> Vec<Server> {
        self.servers().into_iter().filter(|s| s.workspace_id() == Some(workspace)).collect()
    }

    /// How many servers were ever created.
    pub fn create_count(&self) -> u64 {
        lock(&self.state).creates
    }

    /// How many calls were made, of any kind.
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Creates a server outside SAM's control flow (e.g. to plant an orphan),
    /// under `token`'s account.
    pub fn plant_server(&self, token: &str, labels: BTreeMap<String, String>) -> Server {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let server = make_server(id, format!("planted-{id}"), "cx23", "fsn1", labels, self.clock.now());
        lock(&self.state).servers.insert(id, (token.to_owned(), server.clone()));
        server
    }

    /// Removes a label behind SAM's back (e.g. to make a server look like one
    /// made before servers carried the deployment's id).
    pub fn remove_label(&self, id: &ServerId, key: &str) {
        let mut state = lock(&self.state);
        if let Some((_, server)) = parse_id(id).and_then(|n| state.servers.get_mut(&n)) {
            server.labels.remove(key);
        }
    }

    /// Deletes a server behind SAM's back (as a user might in the console).
    pub fn remove_server_externally(&self, id: &ServerId) {
        if let Ok(n) = id.0.parse::<u64>() {
            lock(&self.state).servers.remove(&n);
        }
    }

    fn authorize(&self, token: &SecretString) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if lock(&self.state).tokens.contains(token.expose()) {
            Ok(())
        } else {
            Err(ProviderError::new(ProviderErrorKind::Unauthorized, "fake cloud: unable to authenticate"))
        }
    }

    fn catalogue() -> Vec<ServerTypeOffer> {
        let priced =
            |name: &str, cores, memory_gb, architecture: &str, hourly: &str, deprecated, locations: &[&str]| {
                ServerTypeOffer {
                    name: name.into(),
                    cores,
                    memory_gb,
                    disk_gb: 40,
                    architecture: architecture.into(),
                    deprecated,
                    prices: locations
                        .iter()
                        .map(|l| LocationPrice { location: (*l).into(), hourly: hourly.into(), monthly: "0".into() })
                        .collect(),
                }
            };
        let everywhere = ["fsn1", "nbg1", "hel1"];
        vec![
            priced("cx22", 2, 4.0, "x86", "0.0050", true, &everywhere),
            priced("cx23", 2, 4.0, "x86", "0.0060", false, &everywhere),
            priced("cx33", 4, 8.0, "x86", "0.0100", false, &everywhere),
            priced("cx43", 8, 16.0, "x86", "0.0190", false, &everywhere),
            // Arm, cheaper for the small size, in two of the locations.
            priced("cax11", 2, 4.0, "arm", "0.0055", false, &["fsn1", "nbg1"]),
        ]
    }
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self::new()
    }
}

fn make_server(
    id: u64,
    name: String,
    server_type: &str,
    location: &str,
    labels: BTreeMap<String, String>,
    created_at: crate::domain::Timestamp,
) -> Server {
    Server {
        id: ServerId(id.to_string()),
        name,
        status: ServerStatus::Running,
        public_ipv4: Some(Ipv4Addr::new(198, 51, (id >> 8) as u8, id as u8)),
        labels,
        server_type: server_type.into(),
        location: location.into(),
        created_at,
    }
}

fn parse_id(id: &ServerId) -> Option<u64> {
    id.0.parse().ok()
}

#[async_trait]
impl ComputeProvider for FakeCloud {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn credential_kind(&self) -> crate::domain::CredentialProvider {
        crate::domain::CredentialProvider::HETZNER
    }

    async fn validate_credential(&self, token: &SecretString) -> Result<(), ProviderError> {
        let pending = self.faults.before("validate_credential")?;
        self.authorize(token)?;
        after("validate_credential", pending, ())
    }

    async fn create_server(&self, token: &SecretString, spec: &ServerSpec) -> Result<Server, ProviderError> {
        let pending = self.faults.before("create_server")?;
        self.authorize(token)?;
        let server_type = choose_server_type_of(spec.size, &spec.location, &Self::catalogue(), spec.architectures)
            .map(|o| o.name.clone())
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::InvalidConfig,
                    format!("fake cloud: no {} server type in location {}", spec.size, spec.location),
                )
            })?;
        if spec.user_data.len() > crate::cloud_init::MAX_USER_DATA {
            return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "fake cloud: user_data over 32 KiB"));
        }
        let mut state = lock(&self.state);
        let existing = state.servers.values().find(|(owner, s)| {
            owner == token.expose() && s.labels.get(LABEL_WORKSPACE) == Some(&spec.workspace_id.to_string())
        });
        if let Some((_, server)) = existing {
            return after("create_server", pending, server.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(firewall) = &spec.firewall {
            let Some(fw) =
                state.firewalls.iter_mut().find(|((owner, _), f)| owner == token.expose() && f.id == *firewall)
            else {
                return Err(ProviderError::new(ProviderErrorKind::NotFound, format!("firewall {firewall} not found")));
            };
            fw.1.servers.insert(id);
        }
        let server =
            make_server(id, spec.name.clone(), &server_type, &spec.location, spec.all_labels(), self.clock.now());
        state.servers.insert(id, (token.expose().to_owned(), server.clone()));
        state.user_data.insert(id, spec.user_data.clone());
        state.creates += 1;
        after("create_server", pending, server)
    }

    async fn get_server(&self, token: &SecretString, id: &ServerId) -> Result<Option<Server>, ProviderError> {
        let pending = self.faults.before("get_server")?;
        self.authorize(token)?;
        let state = lock(&self.state);
        let found = parse_id(id)
            .and_then(|n| state.servers.get(&n))
            .filter(|(owner, _)| owner == token.expose())
            .map(|(_, s)| s.clone());
        after("get_server", pending, found)
    }

    async fn find_servers(&self, token: &SecretString, workspace: WorkspaceId) -> Result<Vec<Server>, ProviderError> {
        let pending = self.faults.before("find_servers")?;
        self.authorize(token)?;
        let state = lock(&self.state);
        let found = state
            .servers
            .values()
            .filter(|(owner, s)| owner == token.expose() && s.workspace_id() == Some(workspace))
            .map(|(_, s)| s.clone())
            .collect();
        after("find_servers", pending, found)
    }

    async fn list_servers(&self, token: &SecretString) -> Result<Vec<Server>, ProviderError> {
        let pending = self.faults.before("list_servers")?;
        self.authorize(token)?;
        let state = lock(&self.state);
        let found = state
            .servers
            .values()
            .filter(|(owner, s)| owner == token.expose() && s.is_managed())
            .map(|(_, s)| s.clone())
            .collect();
        after("list_servers", pending, found)
    }

    async fn add_labels(
        &self,
        token: &SecretString,
        id: &ServerId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let pending = self.faults.before("add_labels")?;
        self.authorize(token)?;
        {
            let mut state = lock(&self.state);
            let server = parse_id(id)
                .and_then(|n| state.servers.get_mut(&n))
                .filter(|(owner, _)| owner == token.expose())
                .map(|(_, server)| server);
            let Some(server) = server else {
                return Err(ProviderError::new(ProviderErrorKind::NotFound, format!("server {id} not found")));
            };
            server.labels.extend(labels.clone());
        }
        after("add_labels", pending, ())
    }

    async fn delete_server(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        let pending = self.faults.before("delete_server")?;
        self.authorize(token)?;
        let mut state = lock(&self.state);
        if let Some(n) = parse_id(id)
            && state.servers.get(&n).is_some_and(|(owner, _)| owner == token.expose())
        {
            state.servers.remove(&n);
            for firewall in state.firewalls.values_mut() {
                firewall.servers.remove(&n);
            }
        }
        after("delete_server", pending, ())
    }

    async fn power_off(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.set_status(token, id, ServerStatus::Off, "power_off")
    }

    async fn power_on(&self, token: &SecretString, id: &ServerId) -> Result<(), ProviderError> {
        self.set_status(token, id, ServerStatus::Running, "power_on")
    }

    async fn list_server_types(&self, token: &SecretString) -> Result<Vec<ServerTypeOffer>, ProviderError> {
        let pending = self.faults.before("list_server_types")?;
        self.authorize(token)?;
        after("list_server_types", pending, Self::catalogue())
    }

    async fn ensure_firewall(
        &self,
        token: &SecretString,
        policy: &FirewallPolicy,
    ) -> Result<Option<String>, ProviderError> {
        let pending = self.faults.before("ensure_firewall")?;
        self.authorize(token)?;
        let id = {
            let mut state = lock(&self.state);
            let key = (token.expose().to_owned(), policy.deployment.to_string());
            let next = format!("fw-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
            let firewall = state.firewalls.entry(key).or_insert_with(|| FakeFirewall {
                id: next,
                name: policy.name(),
                rules: Vec::new(),
                servers: HashSet::new(),
            });
            firewall.rules = policy.rules.clone();
            firewall.id.clone()
        };
        after("ensure_firewall", pending, Some(id))
    }

    async fn find_firewall(
        &self,
        token: &SecretString,
        deployment: &DeploymentId,
    ) -> Result<Option<Firewall>, ProviderError> {
        let pending = self.faults.before("find_firewall")?;
        self.authorize(token)?;
        let found = {
            let state = lock(&self.state);
            state.firewalls.get(&(token.expose().to_owned(), deployment.to_string())).map(|f| {
                let servers = state
                    .servers
                    .iter()
                    .filter(|(id, (owner, s))| {
                        owner == token.expose()
                            && (f.servers.contains(id)
                                || s.labels.get(LABEL_DEPLOYMENT).map(String::as_str) == Some(deployment.as_str()))
                    })
                    .map(|(_, (_, s))| s.id.clone())
                    .collect();
                Firewall {
                    id: f.id.clone(),
                    name: f.name.clone(),
                    rules: f.rules.clone(),
                    covers_deployment: true,
                    servers,
                }
            })
        };
        after("find_firewall", pending, found)
    }

    async fn delete_firewall(&self, token: &SecretString, deployment: &DeploymentId) -> Result<(), ProviderError> {
        let pending = self.faults.before("delete_firewall")?;
        self.authorize(token)?;
        lock(&self.state).firewalls.remove(&(token.expose().to_owned(), deployment.to_string()));
        after("delete_firewall", pending, ())
    }

    async fn list_locations(&self, token: &SecretString) -> Result<Vec<Location>, ProviderError> {
        let pending = self.faults.before("list_locations")?;
        self.authorize(token)?;
        let locations = [("fsn1", "Falkenstein"), ("nbg1", "Nuremberg"), ("hel1", "Helsinki")]
            .iter()
            .filter_map(|(code, city)| {
                Some(Location {
                    code: LocationCode::new(*code).ok()?,
                    description: format!("{city} DC"),
                    country: if *code == "hel1" { "FI".into() } else { "DE".into() },
                    city: (*city).into(),
                })
            })
            .collect();
        after("list_locations", pending, locations)
    }
}

impl FakeCloud {
    fn set_status(
        &self,
        token: &SecretString,
        id: &ServerId,
        status: ServerStatus,
        operation: &'static str,
    ) -> Result<(), ProviderError> {
        let pending = self.faults.before(operation)?;
        self.authorize(token)?;
        let mut state = lock(&self.state);
        let server = parse_id(id)
            .and_then(|n| state.servers.get_mut(&n))
            .filter(|(owner, _)| owner == token.expose())
            .ok_or_else(|| {
                ProviderError::new(ProviderErrorKind::NotFound, format!("fake cloud: server {id} not found"))
            })?;
        server.1.status = status;
        after(operation, pending, ())
    }
}
