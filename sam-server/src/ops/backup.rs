//! `sam-server backup` / `restore`: the database (SQLite `VACUUM INTO`, an
//! online copy; PostgreSQL through `pg_dump` / `pg_restore`, both from
//! `sam_providers::store::admin`) and the keys (JWT signing keys and
//! encryption keys) in one directory, mode 0700.
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

use anyhow::Context as _;
use clap::Args;
use sam_core::domain::CredentialProvider;
use sam_core::engine::credential_context;
use sam_core::ports::Cipher as _;
use sam_providers::store::admin::{self, DatabaseKind, redact_url};
use serde::{Deserialize, Serialize};

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
    let status = admin::migration_status(&config.database_url).await.context("the database")?;
    let counts = admin::row_counts(&config.database_url).await?;
    let database_file = kind.dump_file_name();
    admin::dump(&config.database_url, &out.join(database_file)).await.context("copying the database")?;
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
    let kept = admin::load_dump(&config.database_url, &source, stamp).context("restoring the database")?;
    println!("  ok   database     restored from {}", manifest.database_file);
    if let Some(aside) = kept {
        println!("       the database that was there is kept as {}", aside.display());
    }

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
    let named = [&manifest.database_file, &manifest.jwt_signing_key, &manifest.encryption_key];
    for name in named.into_iter().chain(&manifest.previous_jwt_keys).chain(&manifest.old_encryption_keys) {
        inside_backup(from, name)?;
    }
    Ok(manifest)
}

/// A manifest is data from wherever the backup came from: each file it
/// names must be a regular file inside the backup directory (no `..`, no
/// absolute path, no symbolic link), so a tampered manifest cannot make
/// `restore` read — and install as a key — a file from elsewhere.
fn inside_backup(from: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(name);
    let plain = !name.is_empty() && relative.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    anyhow::ensure!(plain, "manifest.json names {name:?}, which is not a file inside the backup: nothing was changed");
    let mut path = from.to_path_buf();
    for component in relative.components() {
        path.push(component);
        let meta = std::fs::symlink_metadata(&path);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!("the backup's {name} is a symbolic link: nothing was changed");
        }
    }
    Ok(path)
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
    if !admin::can_load_dump(kind) {
        anyhow::bail!(
            "pg_restore not found: install the PostgreSQL client (Debian: apt-get install postgresql-client); \
             nothing was changed"
        );
    }
    Ok(source)
}

/// Refuses to overwrite a database in use unless `force`.
async fn check_target(database_url: &str, force: bool) -> anyhow::Result<()> {
    let counts = admin::row_counts(database_url).await.context("the target database")?;
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
    for provider in [CredentialProvider::HETZNER, CredentialProvider::GITHUB] {
        for credential in store.list_all_credentials(provider).await.context("listing credentials")? {
            match cipher.open(&credential.ciphertext, credential_context(credential.user_id, provider)) {
                Ok(_) => opened += 1,
                Err(_) => failed += 1,
            }
        }
    }
    let counts = admin::row_counts(&config.database_url).await?;
    println!(
        "  ok   verified     {} users, {} workspaces; {opened} credentials decrypt, {failed} do not",
        counts.users, counts.workspaces
    );
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup_with(names: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let mut manifest = serde_json::json!({
            "format": FORMAT, "created_at": "2026-12-04T00:00:00Z", "sam_version": "0",
            "database": "sqlite", "database_file": "database.sqlite", "migration_version": 1,
            "jwt_signing_key": "keys/jwt-signing-key.pem", "encryption_key": "keys/credentials-key.b64",
            "previous_jwt_keys": [], "old_encryption_keys": [],
        });
        for (field, value) in names {
            manifest[*field] =
                if field.ends_with("keys") { serde_json::json!([value]) } else { serde_json::json!(value) };
        }
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        dir
    }

    #[test]
    fn a_manifest_names_only_files_inside_the_backup() {
        assert!(read_manifest(backup_with(&[]).path()).is_ok());
        for (field, name) in [
            ("database_file", "/etc/passwd"),
            ("jwt_signing_key", "../../etc/ssh/ssh_host_rsa_key"),
            ("encryption_key", "keys/../../secret"),
            ("previous_jwt_keys", "/root/.ssh/id_rsa"),
            ("old_encryption_keys", ""),
        ] {
            let error = read_manifest(backup_with(&[(field, name)]).path()).unwrap_err().to_string();
            assert!(error.contains("not a file inside the backup"), "{field} = {name:?}: {error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_that_is_a_symbolic_link_is_refused() {
        let dir = backup_with(&[]);
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("keys/credentials-key.b64")).unwrap();
        let error = read_manifest(dir.path()).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
