//! What the agent keeps across its own restarts and the VM's reboots: the
//! grant its bootstrap token was traded for (workspace, repository, the
//! callback credential, the clone token until the clone is done), in one
//! root-only file (`0600` in a `0700` directory, written atomically). With
//! it a restarted agent resumes (heartbeats, terminals, the devcontainer
//! started again, the repository untouched) without a bootstrap token, which
//! is spent once redeemed.
//!
//! With TLS, the file also keeps the agent's private key (made on the VM,
//! never sent anywhere) and its certificate.
//!
//! The file names the bootstrap token it came from (its SHA-256): a file
//! from another token (another boot) is ignored.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sam_core::domain::{UserId, WorkspaceId};
use sam_core::secret::{SecretString, sha256_hex};
use serde::{Deserialize, Serialize};

use crate::bootstrap::BootstrapGrant;

const FILE: &str = "grant.json";

/// Reading or writing the state failed.
#[derive(Debug, thiserror::Error)]
#[error("agent state {path}: {reason}")]
pub struct StateError {
    path: PathBuf,
    reason: String,
}

/// A grant as kept on disk.
#[derive(Debug, Clone)]
pub struct SavedGrant {
    /// The grant (its clone token empty once the clone is done).
    pub grant: BootstrapGrant,
    /// The repository is fully cloned.
    pub cloned: bool,
    /// SHA-256 (hex) of the bootstrap token it was redeemed with.
    pub bootstrap_sha256: Option<String>,
    /// The private key (PEM) of the agent's TLS certificate.
    pub tls_key: Option<SecretString>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    workspace_id: WorkspaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<UserId>,
    repository: String,
    branch: String,
    clone_url: String,
    callback_token: String,
    #[serde(default)]
    clone_token: Option<String>,
    cloned: bool,
    #[serde(default)]
    bootstrap_sha256: Option<String>,
    #[serde(default)]
    origin_certificate: Option<String>,
    #[serde(default)]
    edge_client_ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_image: Option<String>,
    #[serde(default)]
    tls_key: Option<String>,
}

/// The state directory (e.g. `/var/lib/sam-agent`).
#[derive(Debug, Clone)]
pub struct AgentState {
    dir: PathBuf,
}

impl AgentState {
    /// State kept in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    fn error(&self, reason: impl std::fmt::Display) -> StateError {
        StateError { path: self.path(), reason: reason.to_string() }
    }

    /// The saved grant, if any and if it came from `bootstrap_token` (any
    /// saved grant when no token is given).
    pub async fn load(&self, bootstrap_token: Option<&SecretString>) -> Result<Option<SavedGrant>, StateError> {
        let this = self.clone();
        let wanted = bootstrap_token.map(|t| sha256_hex(t.expose().as_bytes()));
        tokio::task::spawn_blocking(move || this.load_blocking(wanted.as_deref())).await.map_err(|e| self.error(e))?
    }

    fn load_blocking(&self, wanted: Option<&str>) -> Result<Option<SavedGrant>, StateError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| self.error("not a saved grant"))?;
        if wanted.is_some_and(|w| wire.bootstrap_sha256.as_deref() != Some(w)) {
            tracing::info!(path = %path.display(), "saved grant is from another bootstrap token; ignored");
            return Ok(None);
        }
        let grant = BootstrapGrant {
            workspace_id: wire.workspace_id,
            owner: wire.owner,
            repository: wire.repository,
            branch: wire.branch,
            clone_token: SecretString::new(wire.clone_token.unwrap_or_default()),
            callback_token: SecretString::new(wire.callback_token),
            clone_url: wire.clone_url,
            origin_certificate: wire.origin_certificate,
            edge_client_ca: wire.edge_client_ca,
            default_image: wire.default_image,
        };
        let tls_key = wire.tls_key.map(SecretString::new);
        Ok(Some(SavedGrant { grant, cloned: wire.cloned, bootstrap_sha256: wire.bootstrap_sha256, tls_key }))
    }

    /// Saves `saved` (replacing what was there, atomically).
    pub async fn save(&self, saved: &SavedGrant) -> Result<(), StateError> {
        let wire = Wire {
            workspace_id: saved.grant.workspace_id,
            owner: saved.grant.owner,
            repository: saved.grant.repository.clone(),
            branch: saved.grant.branch.clone(),
            clone_url: saved.grant.clone_url.clone(),
            callback_token: saved.grant.callback_token.expose().to_owned(),
            // Needed only to clone again after a crash mid-clone.
            clone_token: (!saved.cloned).then(|| saved.grant.clone_token.expose().to_owned()),
            cloned: saved.cloned,
            bootstrap_sha256: saved.bootstrap_sha256.clone(),
            origin_certificate: saved.grant.origin_certificate.clone(),
            edge_client_ca: saved.grant.edge_client_ca.clone(),
            default_image: saved.grant.default_image.clone(),
            tls_key: saved.tls_key.as_ref().map(|k| k.expose().to_owned()),
        };
        let bytes = serde_json::to_vec(&wire).map_err(|e| self.error(e))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.save_blocking(&bytes)).await.map_err(|e| self.error(e))?
    }

    fn save_blocking(&self, bytes: &[u8]) -> Result<(), StateError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|e| self.error(e))?;
        // An existing directory keeps its mode; make sure it is root-only.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| self.error(e))?;
        let temp = self.dir.join(format!("{FILE}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| self.error(e))?;
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| self.error(e))?;
        std::fs::rename(&temp, self.path()).map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn grant() -> BootstrapGrant {
        BootstrapGrant {
            workspace_id: WorkspaceId::new(),
            owner: Some(UserId::new()),
            repository: "octo-org/hello-world".into(),
            branch: "main".into(),
            clone_token: SecretString::new("ghs_clone"),
            callback_token: SecretString::new("callback-jwt"),
            clone_url: "https://github.com/octo-org/hello-world.git".into(),
            origin_certificate: None,
            edge_client_ca: None,
            default_image: None,
        }
    }

    #[tokio::test]
    async fn a_saved_grant_comes_back_root_only_and_only_for_its_token() {
        let root = tempfile::tempdir().unwrap();
        let state = AgentState::new(root.path().join("state"));
        let token = SecretString::new("bootstrap-1");
        assert!(state.load(Some(&token)).await.unwrap().is_none(), "nothing saved yet");
        let saved = SavedGrant {
            grant: grant(),
            cloned: false,
            bootstrap_sha256: Some(sha256_hex(token.expose().as_bytes())),
            tls_key: Some(SecretString::new("-----BEGIN PRIVATE KEY-----")),
        };
        state.save(&saved).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.dir()), 0o700);
        assert_eq!(mode(&state.dir().join(FILE)), 0o600);
        let back = state.load(Some(&token)).await.unwrap().unwrap();
        assert_eq!(back.grant.workspace_id, saved.grant.workspace_id);
        assert_eq!(back.grant.callback_token.expose(), "callback-jwt");
        assert_eq!(back.grant.clone_token.expose(), "ghs_clone", "kept until the clone is done");
        assert_eq!(back.tls_key.as_ref().map(SecretString::expose), Some("-----BEGIN PRIVATE KEY-----"));
        assert!(state.load(Some(&SecretString::new("bootstrap-2"))).await.unwrap().is_none(), "another boot's");
        assert!(state.load(None).await.unwrap().is_some());

        state.save(&SavedGrant { cloned: true, ..back }).await.unwrap();
        let text = std::fs::read_to_string(state.dir().join(FILE)).unwrap();
        assert!(!text.contains("ghs_clone"), "the clone token is dropped once cloned");
        assert!(state.load(Some(&token)).await.unwrap().unwrap().cloned);

        std::fs::write(state.dir().join(FILE), b"garbage").unwrap();
        assert!(state.load(Some(&token)).await.is_err(), "an unreadable file is an error, not a fresh start");
    }
}
