//! The `sam-server` binary: configuration in, control plane out.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use sam_server::config::{ServeConfig, with_file_defaults};
use sam_server::deployment;

/// SAM control plane: disposable cloud workspaces with a browser terminal.
#[derive(Parser, Debug)]
#[command(name = "sam-server", version, about)]
struct Cli {
    /// A file of SAM_*=value lines (flags and environment take precedence).
    #[arg(long, env = "SAM_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "SAM_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole product on this machine: emulated GitHub, Hetzner and
    /// Cloudflare, workspace agents as local processes. No cloud account needed.
    Dev(sam_server::dev::DevOptions),
    /// Run the emulated GitHub, Hetzner and Cloudflare alone, with their
    /// state on disk, printing their addresses and test tokens and serving
    /// their control API on loopback.
    Emulators(sam_server::dev::service::EmulatorOptions),
    /// Run the control plane (production).
    Serve(ServeConfig),
    /// First-time setup wizard: domain, Cloudflare DNS, the GitHub App (from
    /// a manifest), keys, configuration file, migrations, then the doctor's
    /// checks. Safe to run again; `--yes` for scripts.
    Setup(Box<sam_server::ops::setup::SetupOptions>),
    /// Check a deployment: configuration, keys, database, Cloudflare, DNS,
    /// the GitHub App, agent binaries, the running server. Exits non-zero on
    /// any failure.
    Doctor(Box<sam_server::ops::doctor::DoctorOptions>),
    /// Delete every server, DNS record and (unless --keep-data) the database
    /// this deployment made, after listing them and a confirmation.
    Teardown(Box<sam_server::ops::teardown::TeardownOptions>),
    /// Copy the database (online) and the keys into a new directory.
    Backup(Box<sam_server::ops::backup::BackupOptions>),
    /// Put a backup's database and keys in place (refuses to replace a
    /// database in use without --force). Stop the server first.
    Restore(Box<sam_server::ops::backup::RestoreOptions>),
    /// Apply database migrations and exit (`serve` applies them too).
    Migrate(Box<ServeConfig>),
    /// Print docs/configuration.md, generated from these definitions.
    #[command(hide = true)]
    ConfigReference,
    /// Generate or rotate keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the effective configuration (secrets redacted) and every problem.
    CheckConfig(ServeConfig),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Write a new JWT signing key (RSA, PEM) and encryption key (AES-256, base64), mode 0600.
    Generate {
        /// Directory to write into (created with mode 0700).
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
    /// Replace both keys in a key directory, keeping the current ones under
    /// dated names, and print the settings for the overlap period.
    Rotate {
        /// The key directory written by `keys generate`.
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
    /// Re-seal every stored credential under the active encryption key (after
    /// `keys rotate`; safe while the server runs).
    /// Takes the server settings: SAM_DATABASE_URL, SAM_ENCRYPTION_KEY_FILE
    /// (the active key) and SAM_OLD_ENCRYPTION_KEY_FILES (the keys whose blobs
    /// are to be re-sealed).
    Reseal(Box<ServeConfig>),
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    // First, while this is the only thread: it edits the environment.
    let sockets = sam_server::listeners::Sockets::from_env();
    let cli = parse_cli()?;
    init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(cli, sockets))
}

/// Parses the command line, with the configuration file's settings as
/// defaults. A first, lenient pass only finds `--config` (or `SAM_CONFIG`)
/// and the subcommand; the second parses the untouched command line.
fn parse_cli() -> anyhow::Result<Cli> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = Cli::command().ignore_errors(true).try_get_matches_from(&argv).ok();
    let config_path = first.as_ref().and_then(|m| m.get_one::<PathBuf>("config").cloned());
    // `setup` creates the file named by --config; without one it writes the
    // default path, so a re-run reads its settings from there.
    let creating = first.as_ref().and_then(|m| m.subcommand_name()) == Some("setup");
    let config_path =
        config_path.or_else(|| creating.then(|| PathBuf::from(sam_server::ops::setup::DEFAULT_CONFIG_PATH)));
    let mut command = Cli::command();
    if let Some(path) = config_path.filter(|p| !creating || p.exists()) {
        command = with_file_defaults(command, &path).map_err(anyhow::Error::msg)?;
    }
    let matches = command.get_matches_from(argv);
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

async fn run(cli: Cli, sockets: sam_server::listeners::Sockets) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(options) => sam_server::dev::run(options, sockets).await,
        Command::Emulators(options) => sam_server::dev::service::run(options).await,
        Command::Serve(config) => serve(config, sockets).await,
        Command::Setup(options) => sam_server::ops::setup::run(*options, cli.config).await,
        Command::Doctor(options) => sam_server::ops::doctor::run(*options).await,
        Command::Teardown(options) => sam_server::ops::teardown::run(*options).await,
        Command::Backup(options) => sam_server::ops::backup::backup(*options).await,
        Command::Restore(options) => sam_server::ops::backup::restore(*options).await,
        Command::ConfigReference => {
            print!("{}", sam_server::ops::reference::markdown(&<Cli as clap::CommandFactory>::command()));
            Ok(())
        }
        Command::Migrate(config) => {
            let started = std::time::Instant::now();
            deployment::open_store(&config.database_url).await.map_err(anyhow::Error::msg)?;
            println!(
                "migrations applied to {} in {} ms",
                redact_url(&config.database_url),
                started.elapsed().as_millis()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Generate { dir }) => {
            let files = sam_providers::keys::generate_key_files(&dir)
                .with_context(|| format!("writing keys to {}", dir.display()))?;
            println!("SAM_JWT_PRIVATE_KEY_FILE={}", files.jwt_signing_key.display());
            println!("SAM_ENCRYPTION_KEY_FILE={}", files.credentials_key.display());
            println!("(public key for reference: {})", files.jwt_public_key.display());
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { dir }) => rotate_keys(&dir),
        Command::Keys(KeysCommand::Reseal(config)) => {
            let ServeConfig { database_url, encryption_key_file, old_encryption_key_files, .. } = *config;
            let encryption_key_file =
                encryption_key_file.context("SAM_ENCRYPTION_KEY_FILE (the active key) is not set")?;
            let store = deployment::open_store(&database_url).await.map_err(anyhow::Error::msg)?;
            let active = sam_providers::keys::read_aes_key(&encryption_key_file).context("encryption key")?;
            let mut older = Vec::new();
            for path in &old_encryption_key_files {
                older.push(sam_providers::keys::read_aes_key(path).with_context(|| format!("{}", path.display()))?);
            }
            let cipher = sam_providers::cipher::AesGcmCipher::new(active, older).context("key ring")?;
            let now = time::OffsetDateTime::now_utc();
            for provider in
                [sam_core::domain::CredentialProvider::HETZNER, sam_core::domain::CredentialProvider::GITHUB]
            {
                let report = sam_providers::cipher::reseal_all(
                    &*store,
                    &cipher,
                    provider,
                    sam_core::engine::CREDENTIAL_PURPOSE,
                    now,
                )
                .await
                .context("re-sealing")?;
                println!("{}: {report:?}", provider.as_str());
            }
            Ok(())
        }
        Command::CheckConfig(config) => {
            print_config(&config);
            // Everything serve builds, on a throw-away database: checking the
            // configuration must not create or migrate the real one.
            let mut scratch = config.clone();
            scratch.database_url = "sqlite::memory:".into();
            let built = deployment::build(&scratch).await;
            let database = sam_server::ops::doctor::database_check(&config.database_url).await;
            println!("\n{}", database.line());
            match built {
                Ok(_) => {
                    println!("configuration OK");
                    Ok(())
                }
                Err(problems) => anyhow::bail!("\nconfiguration problems:\n{problems}"),
            }
        }
    }
}

/// Moves the current keys aside under dated names and writes new ones.
fn rotate_keys(dir: &std::path::Path) -> anyhow::Result<()> {
    let current = sam_providers::keys::KeyFiles::in_dir(dir);
    anyhow::ensure!(current.jwt_signing_key.exists(), "no keys in {} (run keys generate first)", dir.display());
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let aside = |path: &std::path::Path| -> anyhow::Result<PathBuf> {
        let name = path.file_name().and_then(|n| n.to_str()).context("key file name")?;
        let target = path.with_file_name(format!("{stamp}-{name}"));
        std::fs::rename(path, &target).with_context(|| format!("moving {}", path.display()))?;
        Ok(target)
    };
    let old_jwt = aside(&current.jwt_signing_key)?;
    let old_aes = aside(&current.credentials_key)?;
    let _ = aside(&current.jwt_public_key);
    let files = sam_providers::keys::generate_key_files(dir).context("writing new keys")?;
    println!("New keys: {} and {}", files.jwt_signing_key.display(), files.credentials_key.display());
    println!("Add these settings and restart every replica:");
    println!("  SAM_JWT_PREVIOUS_KEY_FILES={}", old_jwt.display());
    println!("  SAM_OLD_ENCRYPTION_KEY_FILES={}", old_aes.display());
    println!("Then run `sam-server keys reseal` with the same settings. After 30 days (the longest token lifetime)");
    println!(
        "remove SAM_JWT_PREVIOUS_KEY_FILES; once reseal reports nothing left, remove SAM_OLD_ENCRYPTION_KEY_FILES."
    );
    Ok(())
}

use sam_server::ops::redact_url;

fn print_config(c: &ServeConfig) {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
    let file = |v: &Option<PathBuf>| {
        v.as_ref().map_or_else(|| "(missing)".into(), |p| format!("{} (contents hidden)", p.display()))
    };
    println!("listen                  {}", c.listen);
    println!("public URL              {}", show(&c.public_url));
    println!("base domain             {}", show(&c.base_domain));
    println!("workspace host naming   {}", c.workspace_host_naming);
    println!("edge client CA          {}", file(&c.edge_client_ca_file));
    println!("workspace URL template  {}", c.workspace_url_template);
    println!("database                {}", redact_url(&c.database_url));
    println!("JWT signing key         {}", file(&c.jwt_private_key_file));
    println!("encryption key          {}", file(&c.encryption_key_file));
    println!("old encryption keys     {}", c.old_encryption_key_files.len());
    println!("GitHub client id        {}", show(&c.github_client_id));
    println!("GitHub client secret    {}", file(&c.github_client_secret_file));
    println!("GitHub App              id {} slug {}", show(&c.github_app_id), show(&c.github_app_slug));
    println!("GitHub App private key  {}", file(&c.github_app_private_key_file));
    println!("GitHub webhook secret   {}", file(&c.github_webhook_secret_file));
    println!("GitHub URLs             {} / {}", c.github_web_url, c.github_api_url);
    println!("Cloudflare token        {}", file(&c.cloudflare_api_token_file));
    println!("Cloudflare zone         {}", show(&c.cloudflare_zone_id));
    println!("Hetzner API             {}", c.hetzner_api_url);
    println!("git base URL            {}", c.git_base_url);
    println!("agent directory         {}", deployment::agent_dir(c).display());
    println!("workspaces per user     {}", c.max_workspaces_per_user);
    println!("idle timeout            {} min", c.idle_timeout_minutes);
    println!("reconcile interval      {} s", c.reconcile_interval_seconds);
}

async fn serve(config: ServeConfig, mut sockets: sam_server::listeners::Sockets) -> anyhow::Result<()> {
    // First, so nothing recorded while starting is lost.
    let metrics = sam_server::metrics::install().context("installing the metrics recorder")?;
    let deployment = match deployment::build(&config).await {
        Ok(d) => d,
        Err(problems) => anyhow::bail!("cannot start; fix these settings:\n{problems}"),
    };
    let listener = sockets.tcp(0, &config.listen).await?;
    tracing::info!(address = %config.listen, public_url = %deployment.state.http.public_url, "sam-server listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let engine = deployment.engine.clone();
    let interval = Duration::from_secs(config.reconcile_interval_seconds.max(1));
    let reconciler = tokio::spawn(async move {
        let mut stop = stop_rx;
        engine
            .run_reconciler(interval, async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
    });
    let mut app = sam_server::api::router(deployment.state);
    if let Some(addr) = config.metrics_addr {
        let metrics_listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!(address = %addr, "metrics listening");
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = sam_server::metrics::serve(metrics_listener, metrics).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    if let Some(file) = &config.metrics_token_file {
        let token = sam_server::ops::read_secret_file(file).context("SAM_METRICS_TOKEN_FILE")?;
        app = app.merge(sam_server::metrics::router_with_token(metrics, token));
    }
    sam_server::serve_until_shutdown(listener, app).await.context("serving")?;
    tracing::info!("HTTP drained; stopping the reconciler");
    let _ = stop_tx.send(true);
    let _ = reconciler.await;
    Ok(())
}
