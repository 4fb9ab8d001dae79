//! `sam-server teardown`: deletes everything the deployment made. Lists it
//! first — every server of a workspace in this deployment's database, in
//! every connected Hetzner account (the stored tokens are opened with the
//! encryption keys), every `ws-<id>.<base>` DNS record, the API host record,
//! the database — then asks for the deployment name (the base domain) before
//! touching anything. Other SAM-labelled servers are listed and left alone
//! (they may be another deployment's); the database is kept while anything
//! could not be looked into.

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use sam_core::domain::CredentialProvider;
use sam_core::engine::credential_context;
use sam_core::ports::{
    Cipher as _, ComputeProvider as _, DnsProvider as _, LABEL_WORKSPACE, Server, Store, WorkspaceScan,
};
use sam_core::secret::SecretString;
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

struct Account {
    user: String,
    token: SecretString,
    /// Servers of this deployment's workspaces: deleted.
    servers: Vec<Server>,
    /// Other SAM-labelled servers: listed, left alone.
    others: Vec<Server>,
}

/// What teardown found: everything it will delete, what it leaves alone and
/// what it could not look into.
struct Plan {
    /// The deployment name (its base domain).
    name: String,
    hetzner: HetznerProvider,
    dns: CloudflareDns,
    /// The database, open until the plan is dropped, which `run` does just
    /// before deleting the database.
    _store: Option<std::sync::Arc<dyn Store>>,
    accounts: Vec<Account>,
    /// `ws-<label>.<base>` records and the API host's.
    records: Vec<String>,
    /// What could not be looked into: while any is left, the database (and so
    /// the tokens to find the rest) is kept.
    unreadable: Vec<String>,
}

impl Plan {
    fn keeps_database(&self, options: &TeardownOptions) -> bool {
        options.keep_data || !self.unreadable.is_empty()
    }
}

/// Runs `teardown`: plan → show → confirm → execute → verify.
pub async fn run(options: TeardownOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let plan = plan(&options.config).await?;
    show(&plan, &options);
    confirm(&plan.name, options.confirm.as_deref())?;
    let mut failures = execute(&plan).await;
    failures.extend(verify(&plan).await);
    failures.extend(plan.unreadable.iter().map(|u| format!("cannot look into: {u}")));
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
    println!("teardown of deployment {name}");
    println!("looking for what it made…");
    let hetzner =
        HetznerProvider::new(HetznerConfig { base_url: config.hetzner_api_url.clone(), ..HetznerConfig::default() })
            .context("Hetzner adapter")?;
    let mut unreadable = Vec::new();
    let store = match crate::deployment::open_store(&config.database_url).await {
        Ok(store) => Some(store),
        Err(e) => {
            unreadable.push(format!("the database cannot be opened ({e}); servers cannot be looked up"));
            None
        }
    };
    let accounts = match &store {
        Some(store) => find_servers(config, store.as_ref(), &hetzner, &mut unreadable).await?,
        None => Vec::new(),
    };
    let dns = cloudflare(config)?;
    let records = find_records(config, &name, &dns, &mut unreadable).await?;
    Ok(Plan { name, hetzner, dns, _store: store, accounts, records, unreadable })
}

/// Servers, in every connected Hetzner account. Only servers labelled with a
/// workspace of this deployment's database are ours: a Hetzner account may
/// hold servers of another deployment too.
async fn find_servers(
    config: &ServeConfig,
    store: &dyn Store,
    hetzner: &HetznerProvider,
    unreadable: &mut Vec<String>,
) -> anyhow::Result<Vec<Account>> {
    let aes = sam_providers::keys::read_aes_key(
        config.encryption_key_file.as_ref().context("SAM_ENCRYPTION_KEY_FILE is not set")?,
    )?;
    let mut older = Vec::new();
    for path in &config.old_encryption_key_files {
        older.push(sam_providers::keys::read_aes_key(path)?);
    }
    let cipher = AesGcmCipher::new(aes, older).context("key ring")?;
    let ours = workspace_ids(store).await.unwrap_or_else(|e| {
        unreadable.push(format!("the database's workspaces cannot be listed ({e})"));
        BTreeSet::new()
    });
    let credentials = store.list_all_credentials(CredentialProvider::HETZNER).await.unwrap_or_else(|e| {
        unreadable.push(format!("the stored Hetzner tokens cannot be listed ({e})"));
        Vec::new()
    });
    let mut accounts = Vec::new();
    for credential in credentials {
        let user = credential.user_id.to_string();
        let Some(token) = cipher
            .open(&credential.ciphertext, credential_context(credential.user_id, CredentialProvider::HETZNER))
            .ok()
            .and_then(sam_core::secret::SecretBytes::into_secret_string)
        else {
            unreadable.push(format!("user {user}: the stored token does not decrypt with these keys"));
            continue;
        };
        match hetzner.list_servers(&token).await {
            Ok(all) => {
                let (servers, others) = all.into_iter().partition(|s| is_ours(s, &ours));
                accounts.push(Account { user, token, servers, others });
            }
            Err(e) => unreadable.push(format!("user {user}: listing servers failed: {e}")),
        }
    }
    Ok(accounts)
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

/// DNS records: `ws-<label>.<base>` only (not names under a sub-domain of the
/// base, which may be another deployment's), and the API host.
async fn find_records(
    config: &ServeConfig,
    name: &str,
    dns: &CloudflareDns,
    unreadable: &mut Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let suffix = format!(".{}", name.to_ascii_lowercase());
    let mut records: Vec<String> = dns
        .list_records("ws-")
        .await
        .context("listing DNS records")?
        .into_iter()
        .filter(|r| is_workspace_record(&r.name, name))
        .map(|r| r.name)
        .collect();
    let api_host = config.public_url.as_deref().and_then(super::url_host).filter(|h| h.ends_with(&suffix));
    if let Some(host) = &api_host {
        match dns.list_records(host).await {
            Ok(found) if found.iter().any(|r| r.name.eq_ignore_ascii_case(host)) => records.push(host.clone()),
            Ok(_) => {}
            Err(e) => unreadable.push(format!("the API host record {host} cannot be looked up: {e}")),
        }
    }
    records.sort();
    records.dedup();
    Ok(records)
}

/// Prints what will be deleted, what is left alone and what could not be
/// looked into.
fn show(plan: &Plan, options: &TeardownOptions) {
    let server_count: usize = plan.accounts.iter().map(|a| a.servers.len()).sum();
    let other_count: usize = plan.accounts.iter().map(|a| a.others.len()).sum();
    println!("\nThis deletes:");
    println!("  servers ({server_count}) in {} connected Hetzner account(s):", plan.accounts.len());
    for account in &plan.accounts {
        for server in &account.servers {
            println!("    - {} (id {}, user {})", server.name, server.id, account.user);
        }
    }
    println!("  DNS records ({}) in the zone:", plan.records.len());
    for record in &plan.records {
        println!("    - {record}");
    }
    if options.keep_data {
        println!("  the database: no (--keep-data)");
    } else if !plan.unreadable.is_empty() {
        println!("  the database: no, it is kept: not everything could be looked into (below)");
    } else {
        println!(
            "  the database: {} (users, credentials, workspaces)",
            super::redact_url(&options.config.database_url)
        );
    }
    if other_count > 0 {
        println!(
            "Left alone: {other_count} other SAM-labelled server(s) whose workspace is not in this database; \
             they may belong to another deployment using the same Hetzner account (delete them in the Hetzner \
             console if they are strays):"
        );
        for account in &plan.accounts {
            for server in &account.others {
                println!("    - {} (id {}, user {})", server.name, server.id, account.user);
            }
        }
    }
    for problem in &plan.unreadable {
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

/// Deletes what the plan found; returns what failed.
async fn execute(plan: &Plan) -> Vec<String> {
    let mut failures = Vec::new();
    for account in &plan.accounts {
        for server in &account.servers {
            match plan.hetzner.delete_server(&account.token, &server.id).await {
                Ok(()) => println!("  deleted server {}", server.name),
                Err(e) => failures.push(format!("server {}: {e}", server.name)),
            }
        }
    }
    for record in &plan.records {
        match plan.dns.delete_records(record).await {
            Ok(()) => println!("  deleted DNS record {record}"),
            Err(e) => failures.push(format!("DNS record {record}: {e}")),
        }
    }
    failures
}

/// Checks that none of our servers is left before the tokens go with the
/// database.
async fn verify(plan: &Plan) -> Vec<String> {
    let mut failures = Vec::new();
    for account in &plan.accounts {
        let ours: BTreeSet<String> = account.servers.iter().map(|s| s.id.to_string()).collect();
        match plan.hetzner.list_servers(&account.token).await {
            Ok(left) => {
                let left = left.iter().filter(|s| ours.contains(&s.id.to_string())).count();
                if left > 0 {
                    failures.push(format!("{left} server(s) still listed for user {}", account.user));
                }
            }
            Err(e) => failures.push(format!("user {}: checking that the servers are gone failed: {e}", account.user)),
        }
    }
    failures
}

/// Prints the failures and says how to continue; the database is kept.
fn report_failures(failures: &[String], plan: &Plan, options: &TeardownOptions) -> anyhow::Error {
    for f in failures {
        println!("  FAIL {f}");
    }
    if !plan.unreadable.is_empty() {
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

/// Every workspace id in the database (all statuses, all users).
async fn workspace_ids(store: &dyn Store) -> Result<BTreeSet<String>, sam_core::ports::StoreError> {
    let mut ids = BTreeSet::new();
    let mut after = None;
    loop {
        let page = store.scan_workspaces(&WorkspaceScan { statuses: Vec::new(), after, limit: 500 }).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        ids.extend(page.iter().map(|w| w.id.to_string()));
    }
    Ok(ids)
}

/// Whether `server` is labelled with one of `workspaces`.
fn is_ours(server: &Server, workspaces: &BTreeSet<String>) -> bool {
    server.labels.get(LABEL_WORKSPACE).is_some_and(|w| workspaces.contains(w))
}

/// Whether `record` is `ws-<label>.<base>`: a single label starting with
/// `ws-` directly under the base domain (case-insensitive).
pub fn is_workspace_record(record: &str, base: &str) -> bool {
    let record = record.to_ascii_lowercase();
    let suffix = format!(".{}", base.to_ascii_lowercase());
    record
        .strip_suffix(&suffix)
        .is_some_and(|label| label.len() > 3 && label.starts_with("ws-") && !label.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::is_workspace_record;

    #[test]
    fn workspace_records_are_single_labels_under_the_base() {
        assert!(is_workspace_record("ws-abc.sam.example.dev", "sam.example.dev"));
        assert!(is_workspace_record("WS-abc.Sam.Example.dev", "sam.example.dev"));
        assert!(!is_workspace_record("ws-x.staging.sam.example.dev", "sam.example.dev"));
        assert!(!is_workspace_record("ws-.sam.example.dev", "sam.example.dev"));
        assert!(!is_workspace_record("ws-abc.other.dev", "sam.example.dev"));
        assert!(!is_workspace_record("api.sam.example.dev", "sam.example.dev"));
    }
}
