//! `sam-server backup` / `restore`: the database (SQLite `VACUUM INTO`, an
//! online copy; PostgreSQL through `pg_dump` / `pg_restore`) and the keys
//! (JWT signing keys and encryption keys) in one directory, mode 0700.
//!
//! Layout of a backup directory:
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | format, time, SAM version, database kind, migration version, key files |
//! | `database.sqlite` or `database.pgdump` | the database (`pg_dump --format=custom`) |
//! | `keys/jwt-signing-key.pem`, `keys/credentials-key.b64` | the active keys |
//! | `keys/previous-jwt-<n>.pem`, `keys/old-credentials-key-<n>.b64` | keys still in their rotation overlap |

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use anyhow::Context as _;
use clap::Args;
use sam_core::domain::CredentialProvider;
use sam_core::engine::credential_context;
use sam_core::ports::Cipher as _;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;

use super::{DatabaseKind, redact_url};
use crate::config::ServeConfig;

/// Options of `sam-server backup`.
#[derive(Args, Debug, Clone)]
pub struct BackupOptions {
    /// The deployment's settings (database and key files).
    #[command(flatten)]
    pub config: ServeConfig,
    /// Directory to write the backup into (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
}

/// Options of `sam-server restore`.
#[derive(Args, Debug, Clone)]
pub struct RestoreOptions {
    /// The deployment's settings: where the database and the keys go.
    #[command(flatten)]
    pub config: ServeConfig,
    /// A directory written by `sam-server backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace a database that already holds users or workspaces.
    #[arg(long)]
    pub force: bool,
}

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Debug)]
struct Manifest {
    format: u32,
    created_at: String,
    sam_version: String,
    database: String,
    database_file: String,
    migration_version: i64,
    jwt_signing_key: String,
    encryption_key: String,
    previous_jwt_keys: Vec<String>,
    old_encryption_keys: Vec<String>,
}

/// Migrations recorded in a database.
#[derive(Debug, Clone, Copy, Default)]
pub struct MigrationStatus {
    /// Applied successfully.
    pub applied: u64,
    /// Recorded as failed.
    pub failed: u64,
    /// Highest applied version.
    pub latest: i64,
    /// Highest version this build ships, when known.
    pub expected: Option<i64>,
}

/// Rows that make a database "in use".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Users.
    pub users: i64,
    /// Stored cloud credentials.
    pub credentials: i64,
    /// Workspaces.
    pub workspaces: i64,
}

impl RowCounts {
    /// Nothing anyone would miss.
    pub fn is_empty(&self) -> bool {
        self.users == 0 && self.credentials == 0 && self.workspaces == 0
    }
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn connect(url: &str, create: bool) -> anyhow::Result<Option<Conn>> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => {
            if let Some(path) = super::sqlite_path(url)
                && !path.exists()
                && !create
            {
                return Ok(None);
            }
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .context("SAM_DATABASE_URL")?
                .create_if_missing(create);
            Ok(Some(Conn::Sqlite(sqlx::SqliteConnection::connect_with(&options).await.context("opening SQLite")?)))
        }
        DatabaseKind::Postgres => {
            let options = sqlx::postgres::PgConnectOptions::from_str(url).context("SAM_DATABASE_URL")?;
            let conn = sqlx::PgConnection::connect_with(&options)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to PostgreSQL: {}", redact_url(&e.to_string())))?;
            Ok(Some(Conn::Postgres(conn)))
        }
    }
}

impl Conn {
    async fn has_table(&mut self, table: &str) -> anyhow::Result<bool> {
        let n: i64 = match self {
            Self::Sqlite(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
                    .bind(table)
                    .fetch_one(c)
                    .await?
            }
            Self::Postgres(c) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                )
                .bind(table)
                .fetch_one(c)
                .await?
            }
        };
        Ok(n > 0)
    }

    async fn count(&mut self, table: &'static str) -> anyhow::Result<i64> {
        if !self.has_table(table).await? {
            return Ok(0);
        }
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        Ok(match self {
            Self::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
            Self::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
        })
    }

    async fn migrations(&mut self) -> anyhow::Result<MigrationStatus> {
        if !self.has_table("_sqlx_migrations").await? {
            return Ok(MigrationStatus::default());
        }
        let (applied, failed, latest): (i64, i64, i64) = match self {
            Self::Sqlite(c) => sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0), COALESCE(MAX(version), 0) FROM _sqlx_migrations",
            )
            .fetch_one(c)
            .await?,
            Self::Postgres(c) => sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0)::BIGINT, \
                 COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0)::BIGINT, COALESCE(MAX(version), 0)::BIGINT FROM _sqlx_migrations",
            )
            .fetch_one(c)
            .await?,
        };
        Ok(MigrationStatus {
            applied: u64::try_from(applied).unwrap_or(0),
            failed: u64::try_from(failed).unwrap_or(0),
            latest,
            expected: None,
        })
    }
}

/// The migrations applied to the database at `url` (none applied here).
pub async fn migration_status(url: &str) -> anyhow::Result<MigrationStatus> {
    let kind = DatabaseKind::of(url)?;
    let Some(mut conn) = connect(url, false).await? else {
        anyhow::bail!("the database file does not exist");
    };
    let mut status = conn.migrations().await?;
    if kind == DatabaseKind::Sqlite {
        // What this build ships: the version an empty in-memory store reaches.
        let reference = sam_providers::store::SqliteStore::in_memory().await.context("reference store")?;
        let expected: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(reference.pool()).await.ok();
        status.expected = expected;
    }
    Ok(status)
}

/// Users, credentials and workspaces in the database (zeros when it does not
/// exist yet).
pub async fn row_counts(url: &str) -> anyhow::Result<RowCounts> {
    let Some(mut conn) = connect(url, false).await? else {
        return Ok(RowCounts::default());
    };
    Ok(RowCounts {
        users: conn.count("users").await?,
        credentials: conn.count("credentials").await?,
        workspaces: conn.count("workspaces").await?,
    })
}

/// Deletes the database: the SQLite file (with its journal), or every table
/// of the PostgreSQL schema (the database itself stays, empty).
pub async fn drop_database(url: &str) -> anyhow::Result<String> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => {
            let path = super::sqlite_path(url).context("an in-memory database has nothing to delete")?;
            let mut removed = Vec::new();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                // No exists() check first: SQLite deletes its -wal and -shm
                // files when a closing connection (ours, just released) is
                // the last one, so a file seen a moment ago may be gone.
                match std::fs::remove_file(&file) {
                    Ok(()) => removed.push(file.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("deleting {}", file.display())),
                }
            }
            Ok(format!("deleted {}", if removed.is_empty() { "nothing (no file)".into() } else { removed.join(", ") }))
        }
        DatabaseKind::Postgres => {
            let Some(Conn::Postgres(mut conn)) = connect(url, false).await? else {
                anyhow::bail!("not a PostgreSQL connection");
            };
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT tablename::TEXT FROM pg_tables WHERE schemaname = current_schema()")
                    .fetch_all(&mut conn)
                    .await?;
            for table in &tables {
                let sql = format!("DROP TABLE IF EXISTS \"{}\" CASCADE", table.replace('"', "\"\""));
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
            }
            Ok(format!("dropped {} tables in {}", tables.len(), redact_url(url)))
        }
    }
}

/// A PostgreSQL client tool: on `PATH`, else the newest under
/// `/usr/lib/postgresql/*/bin` (Debian).
pub fn pg_tool(name: &str) -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let tool = e.path().join("bin").join(name);
            tool.is_file().then_some((version, tool))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Runs a PostgreSQL tool against `url`, the password passed through the
/// environment (never on the command line).
fn run_pg_tool(tool: &str, args: &[&str], url: &str) -> anyhow::Result<()> {
    let path = pg_tool(tool).with_context(|| {
        format!("{tool} not found: install the PostgreSQL client (Debian: apt-get install postgresql-client)")
    })?;
    let mut parsed = reqwest::Url::parse(url).context("SAM_DATABASE_URL")?;
    // The URL holds it percent-encoded; the tool wants the password itself.
    let password = parsed.password().map(percent_decode);
    let _ = parsed.set_password(None);
    let mut command = std::process::Command::new(&path);
    command.args(args).arg(format!("--dbname={parsed}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().with_context(|| format!("running {}", path.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{tool} failed ({}): {}",
        output.status,
        redact_url(String::from_utf8_lossy(&output.stderr).trim())
    );
    Ok(())
}

/// `%xx` escapes decoded (as a URL's user info holds them); an invalid
/// escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
            && let Ok(byte) = u8::try_from(h * 16 + l)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    sam_providers::keys::write_key_file(to, &bytes, 0o600, true).with_context(|| format!("writing {}", to.display()))
}

/// Runs `backup`.
pub async fn backup(options: BackupOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config = &options.config;
    let kind = DatabaseKind::of(&config.database_url)?;
    let out = &options.out;
    if out.exists() {
        let empty = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?.next().is_none();
        anyhow::ensure!(empty, "{} exists and is not empty: choose a new directory", out.display());
    }
    super::create_private_dir(out)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", out.display()))?;
    }
    super::create_private_dir(&out.join("keys"))?;
    let jwt = config.jwt_private_key_file.as_ref().context("SAM_JWT_PRIVATE_KEY_FILE is not set")?;
    let aes = config.encryption_key_file.as_ref().context("SAM_ENCRYPTION_KEY_FILE is not set")?;

    println!("backup of {} into {}", redact_url(&config.database_url), out.display());
    let status = migration_status(&config.database_url).await.context("the database")?;
    let counts = row_counts(&config.database_url).await?;
    let database_file = match kind {
        DatabaseKind::Sqlite => {
            let target = out.join("database.sqlite");
            let Some(Conn::Sqlite(mut conn)) = connect(&config.database_url, false).await? else {
                anyhow::bail!("the SQLite database does not exist");
            };
            let target_text = target.to_str().context("the backup path is not UTF-8")?;
            sqlx::query("VACUUM INTO ?").bind(target_text).execute(&mut conn).await.context("VACUUM INTO")?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
            }
            "database.sqlite"
        }
        DatabaseKind::Postgres => {
            let target = out.join("database.pgdump");
            let target_text = target.to_str().context("the backup path is not UTF-8")?;
            run_pg_tool(
                "pg_dump",
                &["--format=custom", "--no-owner", "--no-privileges", &format!("--file={target_text}")],
                &config.database_url,
            )?;
            "database.pgdump"
        }
    };
    println!(
        "  ok   database     {database_file} ({} users, {} credentials, {} workspaces)",
        counts.users, counts.credentials, counts.workspaces
    );

    copy_private(jwt, &out.join("keys").join(sam_providers::keys::JWT_SIGNING_KEY_FILE))?;
    copy_private(aes, &out.join("keys").join(sam_providers::keys::CREDENTIALS_KEY_FILE))?;
    let mut previous = Vec::new();
    for (n, path) in config.jwt_previous_key_files.iter().enumerate() {
        let name = format!("previous-jwt-{n}.pem");
        copy_private(path, &out.join("keys").join(&name))?;
        previous.push(name);
    }
    let mut old = Vec::new();
    for (n, path) in config.old_encryption_key_files.iter().enumerate() {
        let name = format!("old-credentials-key-{n}.b64");
        copy_private(path, &out.join("keys").join(&name))?;
        old.push(name);
    }
    println!("  ok   keys         JWT signing key, encryption key, {} previous, {} old", previous.len(), old.len());
    let manifest = Manifest {
        format: FORMAT,
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        sam_version: env!("CARGO_PKG_VERSION").into(),
        database: kind.as_str().into(),
        database_file: database_file.into(),
        migration_version: status.latest,
        jwt_signing_key: format!("keys/{}", sam_providers::keys::JWT_SIGNING_KEY_FILE),
        encryption_key: format!("keys/{}", sam_providers::keys::CREDENTIALS_KEY_FILE),
        previous_jwt_keys: previous.iter().map(|n| format!("keys/{n}")).collect(),
        old_encryption_keys: old.iter().map(|n| format!("keys/{n}")).collect(),
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    sam_providers::keys::write_key_file(&out.join("manifest.json"), text.as_bytes(), 0o600, false)?;
    println!(
        "backup complete in {:.2} s: {} (it holds the encryption key: store it like a secret)",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Moves `path` aside when it exists with other content than `bytes`.
fn set_aside(path: &Path, bytes: &[u8], stamp: i64) -> anyhow::Result<Option<PathBuf>> {
    match std::fs::read(path) {
        Ok(current) if current == bytes => Ok(None),
        Ok(_) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
            let aside = path.with_file_name(format!("{name}.replaced-{stamp}"));
            std::fs::rename(path, &aside).with_context(|| format!("moving {} aside", path.display()))?;
            Ok(Some(aside))
        }
        Err(_) => Ok(None),
    }
}

/// Runs `restore`: check the backup and the target → replace the database →
/// put the keys in place → verify that every credential opens.
pub async fn restore(options: RestoreOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let config = &options.config;
    let from = &options.from;
    let manifest = read_manifest(from)?;
    let kind = DatabaseKind::of(&config.database_url)?;
    anyhow::ensure!(
        kind.as_str() == manifest.database,
        "the backup is of a {} database but SAM_DATABASE_URL is {}: restore into the same kind",
        manifest.database,
        kind.as_str()
    );
    let jwt_target = config
        .jwt_private_key_file
        .clone()
        .context("set SAM_JWT_PRIVATE_KEY_FILE (where the restored signing key goes)")?;
    let aes_target = config
        .encryption_key_file
        .clone()
        .context("set SAM_ENCRYPTION_KEY_FILE (where the restored encryption key goes)")?;
    println!("restore of {} (taken {}) into {}", from.display(), manifest.created_at, redact_url(&config.database_url));

    // Everything is checked before anything is replaced.
    let source = check_backup(from, &manifest, kind)?;
    check_target(&config.database_url, options.force).await?;

    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    match kind {
        DatabaseKind::Sqlite => restore_sqlite(&config.database_url, &source, stamp)?,
        DatabaseKind::Postgres => restore_postgres(&config.database_url, &source)?,
    }
    println!("  ok   database     restored from {}", manifest.database_file);

    let keys = restore_keys(from, &manifest, &jwt_target, &aes_target, stamp)?;
    println!("  ok   keys         {} and {}", jwt_target.display(), aes_target.display());
    for aside in &keys.moved {
        println!("       the key that was there is kept as {}", aside.display());
    }

    let failed = verify_restore(config, &aes_target, &keys.restored_old).await?;
    if !keys.extra_settings.is_empty() {
        println!("Add these settings (keys still in their rotation overlap):");
        for s in &keys.extra_settings {
            println!("  {s}");
        }
    }
    anyhow::ensure!(failed == 0, "{failed} credential(s) do not decrypt with the restored keys");
    println!("restore complete in {:.2} s; start the server (sam-server serve)", started.elapsed().as_secs_f64());
    Ok(())
}

fn read_manifest(from: &Path) -> anyhow::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(from.join("manifest.json"))
            .with_context(|| format!("{} is not a backup (no manifest.json)", from.display()))?,
    )
    .context("manifest.json")?;
    anyhow::ensure!(manifest.format == FORMAT, "backup format {} is not supported by this version", manifest.format);
    Ok(manifest)
}

/// Checks that every file the backup names is there and parses (and that
/// the tool a restore needs is installed); returns the database file.
fn check_backup(from: &Path, manifest: &Manifest, kind: DatabaseKind) -> anyhow::Result<PathBuf> {
    let source = from.join(&manifest.database_file);
    anyhow::ensure!(source.is_file(), "the backup has no database file {}: nothing was changed", source.display());
    sam_providers::keys::read_rsa_key(&from.join(&manifest.jwt_signing_key))
        .context("the backup's signing key does not parse: nothing was changed")?;
    sam_providers::keys::read_aes_key(&from.join(&manifest.encryption_key))
        .context("the backup's encryption key does not parse: nothing was changed")?;
    for name in &manifest.previous_jwt_keys {
        sam_providers::keys::read_rsa_key(&from.join(name))
            .with_context(|| format!("the backup's {name} does not parse: nothing was changed"))?;
    }
    for name in &manifest.old_encryption_keys {
        sam_providers::keys::read_aes_key(&from.join(name))
            .with_context(|| format!("the backup's {name} does not parse: nothing was changed"))?;
    }
    if kind == DatabaseKind::Postgres {
        anyhow::ensure!(
            pg_tool("pg_restore").is_some(),
            "pg_restore not found: install the PostgreSQL client (Debian: apt-get install postgresql-client); \
             nothing was changed"
        );
    }
    Ok(source)
}

/// Refuses to overwrite a database in use unless `force`.
async fn check_target(database_url: &str, force: bool) -> anyhow::Result<()> {
    let counts = row_counts(database_url).await.context("the target database")?;
    if !counts.is_empty() {
        anyhow::ensure!(
            force,
            "the target database is in use ({} users, {} credentials, {} workspaces): refusing to overwrite it; \
             back it up first, then pass --force to replace it",
            counts.users,
            counts.credentials,
            counts.workspaces
        );
        println!("  --force: replacing a database with {} users and {} workspaces", counts.users, counts.workspaces);
    }
    Ok(())
}

/// Copies the backup beside the target, keeps a replaced database (with its
/// journal files) aside, then renames the copy into place.
fn restore_sqlite(database_url: &str, source: &Path, stamp: i64) -> anyhow::Result<()> {
    let target = super::sqlite_path(database_url).context("SAM_DATABASE_URL names no file")?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        super::create_private_dir(dir)?;
    }
    let tmp = PathBuf::from(format!("{}.restoring", target.display()));
    std::fs::copy(source, &tmp).with_context(|| format!("copying {}", source.display()))?;
    if target.exists() {
        // Kept, with its journal files, under a name SQLite opens them
        // together by.
        let mut aside = PathBuf::from(format!("{}.replaced-{stamp}", target.display()));
        for n in 1.. {
            if !aside.exists() {
                break;
            }
            aside = PathBuf::from(format!("{}.replaced-{stamp}-{n}", target.display()));
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            let file = PathBuf::from(format!("{}{suffix}", target.display()));
            let to = format!("{}{suffix}", aside.display());
            // As in `drop_database`: SQLite may remove these as the last
            // connection closes.
            match std::fs::rename(&file, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("moving {} aside", file.display())),
            }
        }
        std::fs::rename(&target, &aside).with_context(|| format!("moving {} aside", target.display()))?;
        println!("       the database that was there is kept as {}", aside.display());
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("replacing {}", target.display()))?;
    Ok(())
}

fn restore_postgres(database_url: &str, source: &Path) -> anyhow::Result<()> {
    let source_text = source.to_str().context("the backup path is not UTF-8")?;
    // One transaction: if anything fails, the database is as it was.
    run_pg_tool(
        "pg_restore",
        &["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction", source_text],
        database_url,
    )
}

/// What putting the keys in place did.
struct RestoredKeys {
    /// Keys that were replaced, kept under another name.
    moved: Vec<PathBuf>,
    /// Settings the operator must add for keys still in their overlap.
    extra_settings: Vec<String>,
    /// Earlier encryption keys restored beside the current one.
    restored_old: Vec<PathBuf>,
}

/// Writes the signing and encryption keys where the configuration expects
/// them (keeping different ones aside), the public key beside the signing
/// key, and earlier keys as `restored-*` files.
fn restore_keys(
    from: &Path,
    manifest: &Manifest,
    jwt_target: &Path,
    aes_target: &Path,
    stamp: i64,
) -> anyhow::Result<RestoredKeys> {
    let mut moved = Vec::new();
    let jwt_bytes = std::fs::read(from.join(&manifest.jwt_signing_key)).context("the backup's signing key")?;
    let aes_bytes = std::fs::read(from.join(&manifest.encryption_key)).context("the backup's encryption key")?;
    for (target, bytes) in [(jwt_target, &jwt_bytes), (aes_target, &aes_bytes)] {
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::create_private_dir(dir)?;
        }
        if let Some(aside) = set_aside(target, bytes, stamp)? {
            moved.push(aside);
        }
        sam_providers::keys::write_key_file(target, bytes, 0o600, true)?;
    }
    let signing = sam_providers::keys::read_rsa_key(jwt_target)?;
    let public = jwt_target.with_file_name(sam_providers::keys::JWT_PUBLIC_KEY_FILE);
    sam_providers::keys::write_rsa_public_key(&public, &signing, true)?;
    let key_dir = jwt_target.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut extra_settings = Vec::new();
    let mut restored_old = Vec::new();
    for (setting, names) in [
        ("SAM_JWT_PREVIOUS_KEY_FILES", &manifest.previous_jwt_keys),
        ("SAM_OLD_ENCRYPTION_KEY_FILES", &manifest.old_encryption_keys),
    ] {
        let mut paths = Vec::new();
        for name in names {
            let file = Path::new(name).file_name().context("key file name")?;
            let target = key_dir.join(format!("restored-{}", file.to_string_lossy()));
            copy_private(&from.join(name), &target)?;
            if setting == "SAM_OLD_ENCRYPTION_KEY_FILES" {
                restored_old.push(target.clone());
            }
            paths.push(target.display().to_string());
        }
        if !paths.is_empty() {
            extra_settings.push(format!("{setting}={}", paths.join(",")));
        }
    }
    Ok(RestoredKeys { moved, extra_settings, restored_old })
}

/// Proves the restore: migrations up to date (the store opens) and every
/// credential opens with the restored keys; returns how many do not.
async fn verify_restore(config: &ServeConfig, aes_target: &Path, restored_old: &[PathBuf]) -> anyhow::Result<usize> {
    let store = crate::deployment::open_store(&config.database_url).await.map_err(anyhow::Error::msg)?;
    let mut older = Vec::new();
    for path in config.old_encryption_key_files.iter().chain(restored_old.iter()) {
        older.push(sam_providers::keys::read_aes_key(path)?);
    }
    let cipher = sam_providers::cipher::AesGcmCipher::new(sam_providers::keys::read_aes_key(aes_target)?, older)
        .context("key ring")?;
    let (mut opened, mut failed) = (0, 0);
    for provider in [CredentialProvider::Hetzner, CredentialProvider::Github] {
        for credential in store.list_all_credentials(provider).await.context("listing credentials")? {
            match cipher.open(&credential.ciphertext, credential_context(credential.user_id, provider)) {
                Ok(_) => opened += 1,
                Err(_) => failed += 1,
            }
        }
    }
    let counts = row_counts(&config.database_url).await?;
    println!(
        "  ok   verified     {} users, {} workspaces; {opened} credentials decrypt, {failed} do not",
        counts.users, counts.workspaces
    );
    Ok(failed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_percent_decoded() {
        assert_eq!(super::percent_decode("p%40ss%2Fw%3Ard"), "p@ss/w:rd");
        assert_eq!(super::percent_decode("plain"), "plain");
        assert_eq!(super::percent_decode("100%"), "100%");
        assert_eq!(super::percent_decode("%zz%4"), "%zz%4");
    }
}
