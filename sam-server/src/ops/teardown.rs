//! `sam-server teardown`: deletes everything the deployment made. Lists it
//! first — every server of a workspace in this deployment's database, in
//! every connected Hetzner account (the stored tokens are opened with the
//! encryption keys), every `ws-<id>.<base>` DNS record, the API host record,
//! the database — then asks for the deployment name (the base domain) before
//! touching anything. Other SAM-labelled servers are listed and left alone
//! (they may be another deployment's); the database is kept while anything
//! could not be looked into.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use sam_core::engine::{Inventory, InventoryPorts};
use sam_core::ports::{DnsProvider as _, Store};
use sam_providers::cipher::AesGcmCipher;
use sam_providers::cloudflare::{CloudflareConfig, CloudflareDns};
use sam_providers::hetzner::{HetznerConfig, HetznerProvider};

use crate::config::ServeConfig;

/// Options of `sam-server teardown`.
#[derive(Args, Debug, Clone)]
pub struct TeardownOptions {
    /// The deployment's settings.
    #[command(flatten)]
    pub config: ServeConfig,
    /// The deployment name (its base domain), for scripts; without it the
    /// name is asked for on the terminal.
    #[arg(long)]
    pub confirm: Option<String>,
    /// Delete cloud resources only; keep the database (and so the users and
    /// their credentials).
    #[arg(long)]
    pub keep_data: bool,
}

/// What teardown found: the deployment's [`Inventory`] in the clouds and the
/// zone, the API host's record, and the adapters to delete them with.
struct Plan {
    /// The deployment name (its base domain).
    name: String,
    /// The deployment's id (what its servers and records carry).
    deployment: sam_core::domain::DeploymentId,
    /// Its workspace names.
    hosts: sam_core::domain::WorkspaceHosts,
    hetzner: HetznerProvider,
    dns: CloudflareDns,
    cipher: AesGcmCipher,
    /// The database, open until the plan is dropped, which `run` does just
    /// before deleting the database.
    store: Option<std::sync::Arc<dyn Store>>,
    inventory: Inventory,
    /// The API host's record, when the zone has it.
    api_host: Option<String>,
    /// What could not be looked into besides the inventory's own list.
    unreadable: Vec<String>,
}

impl Plan {
    fn ports(&self) -> InventoryPorts<'_> {
        InventoryPorts {
            store: self.store.as_deref(),
            compute: &self.hetzner,
            dns: &self.dns,
            cipher: &self.cipher,
            hosts: &self.hosts,
            deployment: &self.deployment,
        }
    }

    /// Everything that could not be looked into: while any is left, the
    /// database (and so the tokens to find the rest) is kept.
    fn unreadable(&self) -> impl Iterator<Item = &String> {
        self.inventory.unreadable.iter().chain(&self.unreadable)
    }

    fn keeps_database(&self, options: &TeardownOptions) -> bool {
        options.keep_data || self.unreadable().next().is_some()
    }
}

/// Runs `teardown`: plan → show → confirm → execute → verify.
pub async fn run(options: TeardownOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let plan = plan(&options.config).await?;
    show(&plan, &options);
    confirm(&plan.name, options.confirm.as_deref())?;
    let mut failures = plan.inventory.delete(plan.ports(), |what| println!("  deleted {what}")).await;
    if let Some(host) = &plan.api_host {
        match plan.dns.delete_records(host).await {
            Ok(()) => println!("  deleted DNS record {host}"),
            Err(e) => failures.push(format!("DNS record {host}: {e}")),
        }
    }
    // None of our servers may be left before the tokens go with the database.
    failures.extend(plan.inventory.servers_left(plan.ports()).await);
    failures.extend(plan.unreadable().map(|u| format!("cannot look into: {u}")));
    if !failures.is_empty() {
        return Err(report_failures(&failures, &plan, &options));
    }
    let keep_database = plan.keeps_database(&options);
    let name = plan.name.clone();
    drop(plan);
    if !keep_database {
        let outcome = sam_providers::store::admin::drop_database(&options.config.database_url).await?;
        println!("  database: {outcome}");
    }
    println!("teardown of {name} complete in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Looks for everything the deployment made, touching nothing.
async fn plan(config: &ServeConfig) -> anyhow::Result<Plan> {
    let name = config.base_domain.clone().context("SAM_BASE_DOMAIN is not set: which deployment is this?")?;
    let deployment = config.deployment_id().map_err(anyhow::Error::msg)?;
    let hosts = config.workspace_hosts().map_err(anyhow::Error::msg)?;
    println!("teardown of deployment {name} (id {deployment})");
    println!("looking for what it made…");
    let hetzner =
        HetznerProvider::new(HetznerConfig { base_url: config.hetzner_api_url.clone(), ..HetznerConfig::default() })
            .context("Hetzner adapter")?;
    let cipher = key_ring(config)?;
    let mut unreadable = Vec::new();
    let store = match crate::deployment::open_store(&config.database_url).await {
        Ok(store) => Some(store),
        Err(e) => {
            unreadable.push(format!("the database cannot be opened ({e}); servers cannot be looked up"));
            None
        }
    };
    let dns = cloudflare(config)?;
    let mut plan = Plan {
        name,
        deployment,
        hosts,
        hetzner,
        dns,
        cipher,
        store,
        inventory: Inventory::default(),
        api_host: None,
        unreadable,
    };
    plan.inventory = Inventory::take(plan.ports()).await;
    match api_host_record(config, &plan).await {
        Ok(host) => plan.api_host = host,
        Err(why) => plan.unreadable.push(why),
    }
    Ok(plan)
}

/// The encryption keys that open the stored cloud tokens.
fn key_ring(config: &ServeConfig) -> anyhow::Result<AesGcmCipher> {
    let aes = sam_providers::keys::read_aes_key(
        config.encryption_key_file.as_ref().context("SAM_ENCRYPTION_KEY_FILE is not set")?,
    )?;
    let mut older = Vec::new();
    for path in &config.old_encryption_key_files {
        older.push(sam_providers::keys::read_aes_key(path)?);
    }
    AesGcmCipher::new(aes, older).context("key ring")
}

fn cloudflare(config: &ServeConfig) -> anyhow::Result<CloudflareDns> {
    let zone = config.cloudflare_zone_id.clone().context("SAM_CLOUDFLARE_ZONE_ID is not set")?;
    let token_file = config.cloudflare_api_token_file.as_ref().context("SAM_CLOUDFLARE_API_TOKEN_FILE is not set")?;
    CloudflareDns::new(CloudflareConfig {
        base_url: config.cloudflare_api_url.clone(),
        ..CloudflareConfig::new(super::read_secret_file(token_file)?, zone)
    })
    .context("Cloudflare adapter")
}

/// The API host's record, when it is under the base domain and in the zone.
async fn api_host_record(config: &ServeConfig, plan: &Plan) -> Result<Option<String>, String> {
    let suffix = format!(".{}", plan.name.to_ascii_lowercase());
    let Some(host) = config.public_url.as_deref().and_then(super::url_host).filter(|h| h.ends_with(&suffix)) else {
        return Ok(None);
    };
    match plan.dns.list_records(&host).await {
        Ok(found) => Ok(found.iter().any(|r| r.name.eq_ignore_ascii_case(&host)).then_some(host)),
        Err(e) => Err(format!("the API host record {host} cannot be looked up: {e}")),
    }
}

/// Prints what will be deleted, what is left alone and what could not be
/// looked into.
fn show(plan: &Plan, options: &TeardownOptions) {
    let accounts = &plan.inventory.accounts;
    let server_count: usize = accounts.iter().map(|a| a.servers.len()).sum();
    let other_count: usize = accounts.iter().map(|a| a.others.len()).sum();
    println!("\nThis deletes:");
    println!("  servers ({server_count}) in {} connected Hetzner account(s):", accounts.len());
    for account in accounts {
        for server in &account.servers {
            println!("    - {} (id {}, user {})", server.name, server.id, account.owner);
        }
    }
    let firewalls: Vec<_> = accounts.iter().filter_map(|a| a.firewall.as_ref().map(|f| (f, a.owner))).collect();
    println!("  firewalls ({}):", firewalls.len());
    for (firewall, owner) in firewalls {
        println!("    - {} (id {}, user {owner})", firewall.name, firewall.id);
    }
    let mut records: Vec<&str> = plan.inventory.records.iter().map(|r| r.name.as_str()).collect();
    records.extend(plan.api_host.as_deref());
    records.sort_unstable();
    records.dedup();
    println!("  DNS records ({}) in the zone:", records.len());
    for record in records {
        println!("    - {record}");
    }
    if options.keep_data {
        println!("  the database: no (--keep-data)");
    } else if plan.unreadable().next().is_some() {
        println!("  the database: no, it is kept: not everything could be looked into (below)");
    } else {
        println!(
            "  the database: {} (users, credentials, workspaces)",
            super::redact_url(&options.config.database_url)
        );
    }
    if other_count > 0 {
        println!(
            "Left alone: {other_count} other SAM-labelled server(s), another deployment's or unmarked with a \
             workspace not in this database; they may belong to another deployment using the same Hetzner \
             account (delete them in the Hetzner console if they are strays):"
        );
        for account in accounts {
            for server in &account.others {
                let owner = server.deployment().unwrap_or("no deployment id");
                println!("    - {} (id {}, user {}, {owner})", server.name, server.id, account.owner);
            }
        }
    }
    let others = &plan.inventory.other_records;
    if !others.is_empty() {
        println!(
            "Left alone: {} other ws-* record(s), another deployment's or unmarked and unknown here:",
            others.len()
        );
        for record in others {
            let owner = record.owner.as_ref().map_or("no deployment id", |d| d.as_str());
            println!("    - {} ({owner})", record.name);
        }
    }
    for problem in plan.unreadable() {
        println!("  cannot look into: {problem}");
    }
    println!("Kept: the keys and the configuration files; the GitHub App (delete it in GitHub's settings).");
}

/// The operator types the deployment name (or passed it with `--confirm`).
fn confirm(name: &str, given: Option<&str>) -> anyhow::Result<()> {
    let typed = match given {
        Some(c) => c.to_owned(),
        None => {
            print!("\nType the deployment name ({name}) to delete all of this: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    anyhow::ensure!(typed == name, "the name typed is not {name}: nothing was deleted");
    Ok(())
}

/// Prints the failures and says how to continue; the database is kept.
fn report_failures(failures: &[String], plan: &Plan, options: &TeardownOptions) -> anyhow::Error {
    for f in failures {
        println!("  FAIL {f}");
    }
    if plan.unreadable().next().is_some() {
        println!(
            "What could not be looked into may still have servers or records. Fix it (make the database \
             reachable; put the key that encrypted the tokens in SAM_OLD_ENCRYPTION_KEY_FILES) and run \
             teardown again, or delete what is left by hand in the Hetzner console and Cloudflare and then \
             delete the database yourself."
        );
    }
    if options.keep_data {
        anyhow::anyhow!("teardown incomplete; run it again once the failures above are fixed")
    } else {
        anyhow::anyhow!("teardown incomplete; the database was kept so it can be run again")
    }
}
