//! `sam-server teardown`: deletes everything the deployment made. Lists it
//! first — every SAM-managed server in every connected Hetzner account (the
//! stored tokens are opened with the encryption keys), every DNS record
//! under the workspace prefix, the API host record, the database — then asks
//! for the deployment name (the base domain) before touching anything.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use sam_core::domain::CredentialProvider;
use sam_core::engine::credential_context;
use sam_core::ports::{Cipher as _, ComputeProvider as _, DnsProvider as _, Server};
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
    servers: Vec<Server>,
}

/// Runs `teardown`.
pub async fn run(options: TeardownOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config = &options.config;
    let name = config.base_domain.clone().context("SAM_BASE_DOMAIN is not set: which deployment is this?")?;
    println!("teardown of deployment {name}");
    println!("looking for what it made…");

    // Servers, in every connected Hetzner account.
    let hetzner =
        HetznerProvider::new(HetznerConfig { base_url: config.hetzner_api_url.clone(), ..HetznerConfig::default() })
            .context("Hetzner adapter")?;
    let mut accounts = Vec::new();
    let mut unreadable = Vec::new();
    let store = match crate::deployment::open_store(&config.database_url).await {
        Ok(store) => Some(store),
        Err(e) => {
            println!("  the database cannot be opened ({e}); servers cannot be looked up");
            None
        }
    };
    if let Some(store) = &store {
        let aes = sam_providers::keys::read_aes_key(
            config.encryption_key_file.as_ref().context("SAM_ENCRYPTION_KEY_FILE is not set")?,
        )?;
        let mut older = Vec::new();
        for path in &config.old_encryption_key_files {
            older.push(sam_providers::keys::read_aes_key(path)?);
        }
        let cipher = AesGcmCipher::new(aes, older).context("key ring")?;
        for credential in store.list_all_credentials(CredentialProvider::Hetzner).await? {
            let user = credential.user_id.to_string();
            let token = match cipher
                .open(&credential.ciphertext, credential_context(credential.user_id, CredentialProvider::Hetzner))
                .ok()
                .and_then(sam_core::secret::SecretBytes::into_secret_string)
            {
                Some(t) => t,
                None => {
                    unreadable.push(format!("user {user}: the stored token does not decrypt with these keys"));
                    continue;
                }
            };
            match hetzner.list_servers(&token).await {
                Ok(servers) => accounts.push(Account { user, token, servers }),
                Err(e) => unreadable.push(format!("user {user}: listing servers failed: {e}")),
            }
        }
    }

    // DNS records.
    let zone = config.cloudflare_zone_id.clone().context("SAM_CLOUDFLARE_ZONE_ID is not set")?;
    let token_file = config.cloudflare_api_token_file.as_ref().context("SAM_CLOUDFLARE_API_TOKEN_FILE is not set")?;
    let dns = CloudflareDns::new(CloudflareConfig {
        base_url: config.cloudflare_api_url.clone(),
        ..CloudflareConfig::new(super::read_secret_file(token_file)?, zone)
    })
    .context("Cloudflare adapter")?;
    let suffix = format!(".{}", name.to_ascii_lowercase());
    let mut records: Vec<String> = dns
        .list_records("ws-")
        .await
        .context("listing DNS records")?
        .into_iter()
        .filter(|r| r.name.ends_with(&suffix))
        .map(|r| r.name)
        .collect();
    let api_host = config.public_url.as_deref().and_then(super::url_host).filter(|h| h.ends_with(&suffix));
    if let Some(host) = &api_host
        && !dns.list_records(host).await.unwrap_or_default().iter().any(|r| r.name.eq_ignore_ascii_case(host))
    {
        // Nothing there.
    } else if let Some(host) = &api_host {
        records.push(host.clone());
    }
    records.sort();
    records.dedup();

    let server_count: usize = accounts.iter().map(|a| a.servers.len()).sum();
    println!("\nThis deletes:");
    println!("  servers ({server_count}) in {} connected Hetzner account(s):", accounts.len());
    for account in &accounts {
        for server in &account.servers {
            println!("    - {} (id {}, user {})", server.name, server.id, account.user);
        }
    }
    println!("  DNS records ({}) in the zone:", records.len());
    for record in &records {
        println!("    - {record}");
    }
    if options.keep_data {
        println!("  the database: no (--keep-data)");
    } else {
        println!("  the database: {} (users, credentials, workspaces)", super::redact_url(&config.database_url));
    }
    for problem in &unreadable {
        println!("  cannot look into: {problem}");
    }
    println!("Kept: the keys and the configuration files; the GitHub App (delete it in GitHub's settings).");

    let typed = match &options.confirm {
        Some(c) => c.clone(),
        None => {
            print!("\nType the deployment name ({name}) to delete all of this: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    anyhow::ensure!(typed == name, "the name typed is not {name}: nothing was deleted");

    let mut failures = Vec::new();
    for account in &accounts {
        for server in &account.servers {
            match hetzner.delete_server(&account.token, &server.id).await {
                Ok(()) => println!("  deleted server {}", server.name),
                Err(e) => failures.push(format!("server {}: {e}", server.name)),
            }
        }
    }
    for record in &records {
        match dns.delete_records(record).await {
            Ok(()) => println!("  deleted DNS record {record}"),
            Err(e) => failures.push(format!("DNS record {record}: {e}")),
        }
    }
    // Check that nothing is left before the tokens go with the database.
    for account in &accounts {
        if let Ok(left) = hetzner.list_servers(&account.token).await
            && !left.is_empty()
        {
            failures.push(format!("{} server(s) still listed for user {}", left.len(), account.user));
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            println!("  FAIL {f}");
        }
        anyhow::bail!("teardown incomplete; the database was kept so it can be run again");
    }
    if let Some(store) = store {
        drop(store);
    }
    if !options.keep_data {
        let outcome = super::backup::drop_database(&config.database_url).await?;
        println!("  database: {outcome}");
    }
    println!("teardown of {name} complete in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
