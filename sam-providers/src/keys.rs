//! Key generation and key files (feature `keys`), for `sam-server keys
//! generate|rotate` and `sam-server dev`.
//!
//! # File formats
//!
//! | file (default name) | content | mode |
//! |---|---|---|
//! | `jwt-signing-key.pem` | RSA private key (2048+ bits), PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); its `kid` is the RFC 7638 thumbprint of the public key, so it needs no separate id | `0600` |
//! | `jwt-signing-key.pub.pem` | the matching public key, SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), for operators and external verifiers | `0644` |
//! | `credentials-key.b64` | AES-256 key: 32 random bytes as standard base64 on one line (44 characters and a newline); its key id is derived from the key (see [`crate::cipher`]) | `0600` |
//!
//! Files are written atomically (a temporary file created with the final
//! mode in the same directory, synced, then renamed), and an existing file is
//! never overwritten unless asked. Loading warns (without refusing) when a
//! private key file is readable by group or others.

#![warn(missing_docs)]

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cipher::{AesKey, KeyError};
use crate::jwt::{JwtKeyError, RsaSigningKey};

/// Default file name of the token signing key.
pub const JWT_SIGNING_KEY_FILE: &str = "jwt-signing-key.pem";
/// Default file name of the token signing key's public half.
pub const JWT_PUBLIC_KEY_FILE: &str = "jwt-signing-key.pub.pem";
/// Default file name of the credential encryption key.
pub const CREDENTIALS_KEY_FILE: &str = "credentials-key.b64";
/// RSA modulus size [`generate_key_files`] uses.
pub const DEFAULT_RSA_BITS: usize = 3072;

/// Why a key file could not be written or read. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("key file {0} already exists")]
    Exists(PathBuf),
    /// The file does not hold a valid AES key.
    #[error("key file {path}: {source}")]
    Aes {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: KeyError,
    },
    /// The file does not hold a valid RSA key.
    #[error("key file {path}: {source}")]
    Rsa {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: JwtKeyError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io { path: path.to_owned(), source }
}

/// Writes `contents` to `path` with `mode`, atomically. Refuses to replace an
/// existing file unless `overwrite`.
pub fn write_key_file(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> Result<(), KeyFileError> {
    if !overwrite && path.exists() {
        return Err(KeyFileError::Exists(path.to_owned()));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "key".into());
    let mut suffix = [0u8; 8];
    sam_core::secret::fill_random(&mut suffix)
        .map_err(|e| KeyFileError::Io { path: path.to_owned(), source: std::io::Error::other(e.to_string()) })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", u64::from_be_bytes(suffix)));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = options.open(&tmp).map_err(io(&tmp))?;
        file.write_all(contents).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        #[cfg(unix)]
        {
            // The umask may have narrowed the mode at creation; set it exactly.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
        }
        if !overwrite && path.exists() {
            return Err(KeyFileError::Exists(path.to_owned()));
        }
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_private(path: &Path) -> Result<zeroize::Zeroizing<String>, KeyFileError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "private key file is readable by group or others; use mode 0600");
        }
    }
    Ok(text)
}

/// A new random AES-256 key for sealing credentials.
pub fn generate_aes_key() -> Result<AesKey, KeyError> {
    AesKey::generate()
}

/// A new RSA key pair for signing tokens (`bits` = 2048, 3072 or 4096).
pub fn generate_rsa_key(bits: usize) -> Result<RsaSigningKey, JwtKeyError> {
    RsaSigningKey::generate(bits)
}

/// Writes an AES key file (base64, mode 0600).
pub fn write_aes_key(path: &Path, key: &AesKey, overwrite: bool) -> Result<(), KeyFileError> {
    let mut text = zeroize::Zeroizing::new(key.to_base64().expose().to_owned());
    text.push('\n');
    write_key_file(path, text.as_bytes(), 0o600, overwrite)
}

/// Reads an AES key file.
pub fn read_aes_key(path: &Path) -> Result<AesKey, KeyFileError> {
    let text = read_private(path)?;
    AesKey::from_base64(&text).map_err(|source| KeyFileError::Aes { path: path.to_owned(), source })
}

/// Writes the private key (PKCS#8 PEM, mode 0600) to `path`.
pub fn write_rsa_key(path: &Path, key: &RsaSigningKey, overwrite: bool) -> Result<(), KeyFileError> {
    write_key_file(path, key.private_pem().expose().as_bytes(), 0o600, overwrite)
}

/// Writes the public key (SPKI PEM, mode 0644) to `path`.
pub fn write_rsa_public_key(path: &Path, key: &RsaSigningKey, overwrite: bool) -> Result<(), KeyFileError> {
    write_key_file(path, key.public_pem().as_bytes(), 0o644, overwrite)
}

/// Reads a private key file (PKCS#8 or PKCS#1 PEM).
pub fn read_rsa_key(path: &Path) -> Result<RsaSigningKey, KeyFileError> {
    let text = read_private(path)?;
    RsaSigningKey::from_pem(&text).map_err(|source| KeyFileError::Rsa { path: path.to_owned(), source })
}

/// Where [`generate_key_files`] put the keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFiles {
    /// The token signing key (private).
    pub jwt_signing_key: PathBuf,
    /// Its public half.
    pub jwt_public_key: PathBuf,
    /// The credential encryption key.
    pub credentials_key: PathBuf,
}

impl KeyFiles {
    /// The default file names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            jwt_signing_key: dir.join(JWT_SIGNING_KEY_FILE),
            jwt_public_key: dir.join(JWT_PUBLIC_KEY_FILE),
            credentials_key: dir.join(CREDENTIALS_KEY_FILE),
        }
    }
}

/// Generates a fresh RSA signing key ([`DEFAULT_RSA_BITS`]) and AES key and
/// writes them under their default names in `dir` (created with mode 0700 if
/// missing). Refuses to overwrite existing files. Blocking: from async code,
/// call it through `tokio::task::spawn_blocking`.
pub fn generate_key_files(dir: &Path) -> Result<KeyFiles, KeyFileError> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io(dir))?;
    }
    let files = KeyFiles::in_dir(dir);
    for path in [&files.jwt_signing_key, &files.jwt_public_key, &files.credentials_key] {
        if path.exists() {
            return Err(KeyFileError::Exists(path.clone()));
        }
    }
    let rsa = generate_rsa_key(DEFAULT_RSA_BITS)
        .map_err(|source| KeyFileError::Rsa { path: files.jwt_signing_key.clone(), source })?;
    let aes = generate_aes_key().map_err(|source| KeyFileError::Aes { path: files.credentials_key.clone(), source })?;
    write_rsa_key(&files.jwt_signing_key, &rsa, false)?;
    write_rsa_public_key(&files.jwt_public_key, &rsa, false)?;
    write_aes_key(&files.credentials_key, &aes, false)?;
    tracing::info!(dir = %dir.display(), kid = rsa.kid(), aes_key_id = %format!("{:08x}", aes.id()), "keys generated");
    Ok(files)
}
