//! What a deployment made in its users' clouds and in its DNS zone, for
//! taking a deployment down (`sam-server teardown`) or auditing it: the
//! servers of this deployment's workspaces in every connected cloud account,
//! the other SAM-labelled servers found there (another deployment's, perhaps:
//! listed, never touched), the `ws-<id>` records, and what could not be
//! looked into. What is this deployment's is decided by its id (the
//! `sam-deployment` label, the record's mark); a server or record made
//! before they carried one counts as this deployment's when a workspace in
//! its database names it.

use std::collections::BTreeSet;

use crate::domain::{DeploymentId, UserId, WorkspaceHosts, WorkspaceId};
use crate::ports::{
    Cipher, ComputeProvider, DnsProvider, DnsRecord, Firewall, Server, Store, StoreError, WorkspaceScan,
};
use crate::secret::SecretString;

use super::{Engine, credential_context};

/// The ports an inventory reads. The store is optional: without it the
/// servers cannot be looked up (which the inventory says), but the DNS
/// records can.
#[derive(Clone, Copy, Debug)]
pub struct InventoryPorts<'a> {
    /// Workspaces and sealed cloud tokens.
    pub store: Option<&'a dyn Store>,
    /// The cloud.
    pub compute: &'a dyn ComputeProvider,
    /// The zone.
    pub dns: &'a dyn DnsProvider,
    /// Opens the sealed tokens.
    pub cipher: &'a dyn Cipher,
    /// The deployment's workspace names (its records are named so).
    pub hosts: &'a WorkspaceHosts,
    /// The deployment's id.
    pub deployment: &'a DeploymentId,
}

/// One connected cloud account's servers.
#[derive(Clone, Debug)]
pub struct AccountServers {
    /// Whose account (the owner of the stored token).
    pub owner: UserId,
    /// Servers of this deployment's workspaces.
    pub servers: Vec<Server>,
    /// Other SAM-labelled servers: another deployment's, or made before
    /// servers carried a deployment id for a workspace this deployment does
    /// not know.
    pub others: Vec<Server>,
    /// This deployment's firewall in the account, if there is one.
    pub firewall: Option<Firewall>,
}

/// Everything found, and what could not be looked into.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Per connected account.
    pub accounts: Vec<AccountServers>,
    /// This deployment's `ws-<label>.<base>` records.
    pub records: Vec<DnsRecord>,
    /// Other `ws-<label>.<base>` records: another deployment's, or unmarked
    /// ones no workspace in the database names (listed, never touched).
    pub other_records: Vec<DnsRecord>,
    /// What could not be looked into (an unreadable token, a failed listing):
    /// while any is left, the inventory may be incomplete.
    pub unreadable: Vec<String>,
}

impl Inventory {
    /// Looks for everything, touching nothing.
    pub async fn take(ports: InventoryPorts<'_>) -> Self {
        let mut inventory = Self::default();
        let known = match ports.store {
            Some(store) => match workspace_ids(store).await {
                Ok(ids) => ids,
                Err(e) => {
                    inventory.unreadable.push(format!("the database's workspaces cannot be listed ({e})"));
                    BTreeSet::new()
                }
            },
            None => BTreeSet::new(),
        };
        match ports.store {
            Some(store) => inventory.find_servers(ports, store, &known).await,
            None => inventory.unreadable.push("no database: servers cannot be looked up".to_owned()),
        }
        // Workspaces' own names and their previews' (`p<port>-ws-…`).
        let listed = match ports.dns.list_records("ws-").await {
            Ok(mut records) => ports.dns.list_records("p").await.map(|previews| {
                records.extend(previews);
                records
            }),
            Err(e) => Err(e),
        };
        match listed {
            Ok(records) => {
                let hosts = ports.hosts;
                let in_zone = records.into_iter().filter(|r| hosts.owner_of(&r.name).is_some());
                (inventory.records, inventory.other_records) = in_zone.partition(|r| {
                    let named = || hosts.owner_of(&r.name).is_some_and(|id| known.contains(&id));
                    r.owner.as_ref().map_or_else(named, |owner| owner == ports.deployment)
                });
            }
            Err(e) => inventory.unreadable.push(format!("the DNS records cannot be listed: {e}")),
        }
        inventory
    }

    async fn find_servers(&mut self, ports: InventoryPorts<'_>, store: &dyn Store, known: &BTreeSet<WorkspaceId>) {
        let credentials = match store.list_all_credentials(ports.compute.credential_kind()).await {
            Ok(credentials) => credentials,
            Err(e) => {
                self.unreadable.push(format!("the stored cloud tokens cannot be listed ({e})"));
                Vec::new()
            }
        };
        for credential in credentials {
            let owner = credential.user_id;
            let Some(token) = open(ports, &credential.ciphertext, owner) else {
                self.unreadable.push(format!("user {owner}: the stored token does not decrypt with these keys"));
                continue;
            };
            let firewall = match ports.compute.find_firewall(&token, ports.deployment).await {
                Ok(firewall) => firewall,
                Err(e) => {
                    self.unreadable.push(format!("user {owner}: looking for the firewall failed: {e}"));
                    None
                }
            };
            match ports.compute.list_servers(&token).await {
                Ok(all) => {
                    let (servers, others) = all.into_iter().partition(|s| is_ours(s, ports.deployment, known));
                    self.accounts.push(AccountServers { owner, servers, others, firewall });
                }
                Err(e) => self.unreadable.push(format!("user {owner}: listing servers failed: {e}")),
            }
        }
    }

    /// Deletes this deployment's records, then its servers (never the
    /// others), calling `deleted` with each one gone; returns what failed.
    /// Records go first and the servers are kept while any record could not
    /// be deleted: no address is freed while a `ws-<id>` name points at it.
    pub async fn delete(&self, ports: InventoryPorts<'_>, mut deleted: impl FnMut(&str)) -> Vec<String> {
        let mut failures = Vec::new();
        for record in &self.records {
            match ports.dns.delete_records(&record.name).await {
                Ok(()) => deleted(&format!("DNS record {}", record.name)),
                Err(e) => failures.push(format!("DNS record {}: {e}", record.name)),
            }
        }
        if !failures.is_empty() {
            failures.push("servers kept until their DNS records are gone".to_owned());
            return failures;
        }
        for account in &self.accounts {
            let token = match token(ports, account.owner).await {
                Ok(token) => token,
                Err(why) => {
                    failures.push(format!("user {}: {why}", account.owner));
                    continue;
                }
            };
            let mut servers_left = false;
            for server in &account.servers {
                match ports.compute.delete_server(&token, &server.id).await {
                    Ok(()) => deleted(&format!("server {}", server.name)),
                    Err(e) => {
                        servers_left = true;
                        failures.push(format!("server {}: {e}", server.name));
                    }
                }
            }
            // The firewall goes last: a server left running keeps it.
            if let Some(firewall) = &account.firewall {
                if servers_left {
                    failures.push(format!("firewall {}: kept while servers are left", firewall.name));
                } else {
                    match ports.compute.delete_firewall(&token, ports.deployment).await {
                        Ok(()) => deleted(&format!("firewall {}", firewall.name)),
                        Err(e) => failures.push(format!("firewall {}: {e}", firewall.name)),
                    }
                }
            }
        }
        failures
    }

    /// Which of this inventory's servers are still listed (to check a
    /// deletion before the tokens go with the database).
    pub async fn servers_left(&self, ports: InventoryPorts<'_>) -> Vec<String> {
        let mut left = Vec::new();
        for account in &self.accounts {
            let ours: BTreeSet<&str> = account.servers.iter().map(|s| s.id.0.as_str()).collect();
            let listed = match token(ports, account.owner).await {
                Ok(token) => ports.compute.list_servers(&token).await.map_err(|e| e.to_string()),
                Err(why) => Err(why),
            };
            match listed {
                Ok(servers) => {
                    let n = servers.iter().filter(|s| ours.contains(s.id.0.as_str())).count();
                    if n > 0 {
                        left.push(format!("{n} server(s) still listed for user {}", account.owner));
                    }
                }
                Err(why) => {
                    left.push(format!("user {}: checking that the servers are gone failed: {why}", account.owner));
                }
            }
        }
        left
    }
}

impl Engine {
    /// What this deployment made: see [`Inventory`].
    pub async fn inventory(&self) -> Inventory {
        Inventory::take(self.inventory_ports()).await
    }

    /// The ports an [`Inventory`] of this deployment reads.
    pub fn inventory_ports(&self) -> InventoryPorts<'_> {
        InventoryPorts {
            store: Some(self.ports.store.as_ref()),
            compute: self.ports.compute.as_ref(),
            dns: self.ports.dns.as_ref(),
            cipher: self.ports.cipher.as_ref(),
            hosts: &self.hosts,
            deployment: &self.config.deployment,
        }
    }
}

fn open(ports: InventoryPorts<'_>, ciphertext: &[u8], owner: UserId) -> Option<SecretString> {
    let kind = ports.compute.credential_kind();
    ports.cipher.open(ciphertext, credential_context(owner, kind)).ok().and_then(|p| p.into_secret_string())
}

async fn token(ports: InventoryPorts<'_>, owner: UserId) -> Result<SecretString, String> {
    let store = ports.store.ok_or("no database")?;
    let credential = store
        .get_credential(owner, ports.compute.credential_kind())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the cloud token is gone")?;
    open(ports, &credential.ciphertext, owner).ok_or_else(|| "the stored token does not decrypt".to_owned())
}

/// Every workspace id in the database (all statuses, all users).
async fn workspace_ids(store: &dyn Store) -> Result<BTreeSet<WorkspaceId>, StoreError> {
    let mut ids = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store.scan_workspaces(&WorkspaceScan { statuses: Vec::new(), after, limit: 500 }).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        ids.extend(page.iter().map(|w| w.id));
    }
    Ok(ids)
}

/// Whether `server` is this deployment's: labelled with its id, or (made
/// before servers carried one) labelled for one of its workspaces.
fn is_ours(server: &Server, deployment: &DeploymentId, workspaces: &BTreeSet<WorkspaceId>) -> bool {
    match server.deployment() {
        Some(id) => id == deployment.as_str(),
        None => server.workspace_id().is_some_and(|w| workspaces.contains(&w)),
    }
}
