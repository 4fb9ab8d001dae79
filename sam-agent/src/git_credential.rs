//! Git credentials for the workspace's repository, so `git pull` and `git
//! push` keep working after the clone token expires (GitHub: 1 hour).
//!
//! Two halves:
//! - [`CredentialService`], in the agent: a Unix socket that answers git's
//!   credential requests for the clone URL's host (and no other) with a
//!   token for the workspace's one repository, fetched from the control
//!   plane (`POST /api/workspaces/{id}/git-credential` with the callback
//!   credential) and kept until 5 minutes before it expires. Whether the
//!   token may push is decided there, by the owner's permission on GitHub.
//! - [`helper_main`], the `sam-agent git-credential [--socket PATH]
//!   get|store|erase` command git runs (configured in the clone's
//!   `.git/config`): it forwards git's request to the socket and prints the
//!   answer; a refusal or a read-only notice goes to stderr, where git shows
//!   it to the user.
//!
//! The socket protocol is git's own credential format: `key=value` lines and
//! a blank line, the client adding `action=get|erase`. The token is never
//! written to disk.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sam_core::domain::WorkspaceId;
use sam_core::secret::SecretString;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Largest request accepted on the socket.
const MAX_REQUEST: usize = 8 * 1024;
/// Longest a token request to the control plane may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// A cached token is replaced this long before it expires.
const RENEW_BEFORE: time::Duration = time::Duration::minutes(5);
/// The socket's directory (in the agent's state directory) and file name:
/// a directory of its own, so it can be mounted into the devcontainer
/// without the agent's other state.
pub const SOCKET_DIR: &str = "git";
const SOCKET_NAME: &str = "git-credential.sock";

/// What the control plane answers.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    username: String,
    password: String,
    expires_at: String,
    #[serde(default)]
    notice: Option<String>,
}

#[derive(Clone)]
struct Cached {
    answer: Answer,
    expires: time::OffsetDateTime,
}

/// Answers git's credential requests for the workspace's repository.
pub struct CredentialService {
    http: reqwest::Client,
    url: String,
    callback: SecretString,
    /// `protocol` and `host` (with port) of the clone URL.
    protocol: String,
    host: String,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for CredentialService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialService").field("url", &self.url).field("host", &self.host).finish_non_exhaustive()
    }
}

/// Why a credential could not be given.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The clone URL has no host.
    #[error("the clone URL {0} has no host")]
    CloneUrl(String),
    /// The control plane could not be asked.
    #[error("could not reach the SAM control plane: {0}")]
    Http(String),
    /// The control plane refused.
    #[error("the SAM control plane refused a token ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// Not the documented answer.
    #[error("malformed answer from the SAM control plane")]
    Malformed,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `key=value` lines up to a blank line.
fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A value git can read back: no line breaks, no NUL.
fn clean(value: &str) -> String {
    value.chars().filter(|c| *c != '\n' && *c != '\r' && *c != '\0').collect()
}

impl CredentialService {
    /// A service for workspace `id` whose repository is cloned from
    /// `clone_url`, asking `control_plane` with the callback credential
    /// through `http` (the agent's one client, [`crate::http::client`]).
    pub fn new(
        control_plane: &str,
        id: WorkspaceId,
        callback: SecretString,
        clone_url: &str,
        http: reqwest::Client,
    ) -> Result<Self, CredentialError> {
        let url = reqwest::Url::parse(clone_url).map_err(|_| CredentialError::CloneUrl(clone_url.to_owned()))?;
        let host = url.host_str().ok_or_else(|| CredentialError::CloneUrl(clone_url.to_owned()))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            http,
            url: format!("{}/api/workspaces/{id}/git-credential", control_plane.trim_end_matches('/')),
            callback,
            protocol: url.scheme().to_owned(),
            host,
            cache: Mutex::new(None),
        })
    }

    /// The answer to one request (git's format), the client's `action`
    /// included: the credential for the clone URL's host, nothing for any
    /// other (git then tries elsewhere), `error=` when it cannot be had.
    pub async fn answer(&self, request: &str) -> String {
        let pairs = parse(request);
        let ours = field(&pairs, "protocol") == Some(self.protocol.as_str())
            && field(&pairs, "host").is_some_and(|h| h.eq_ignore_ascii_case(&self.host));
        if !ours {
            return String::new();
        }
        match field(&pairs, "action").unwrap_or("get") {
            "erase" => {
                // Git refused it (401): ask for a fresh one next time.
                *lock(&self.cache) = None;
                String::new()
            }
            "get" => match self.credential().await {
                Ok(answer) => {
                    let mut out = format!(
                        "username={}\npassword={}\n",
                        clean(&answer.answer.username),
                        clean(&answer.answer.password)
                    );
                    out.push_str(&format!("password_expiry_utc={}\n", answer.expires.unix_timestamp()));
                    if let Some(notice) = &answer.answer.notice {
                        out.push_str(&format!("notice={}\n", clean(notice)));
                    }
                    out
                }
                Err(e) => {
                    tracing::warn!(error = %e, "git credential unavailable");
                    format!("error={}\n", clean(&e.to_string()))
                }
            },
            _ => String::new(),
        }
    }

    async fn credential(&self) -> Result<Cached, CredentialError> {
        let now = time::OffsetDateTime::now_utc();
        if let Some(cached) = lock(&self.cache).clone()
            && cached.expires - now > RENEW_BEFORE
        {
            return Ok(cached);
        }
        let response = self
            .http
            .post(&self.url)
            .timeout(REQUEST_TIMEOUT)
            .bearer_auth(self.callback.expose())
            .send()
            .await
            .map_err(|e| CredentialError::Http(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| CredentialError::Http(e.without_url().to_string()))?;
        if !status.is_success() {
            #[derive(Deserialize)]
            struct Refusal {
                #[serde(default)]
                message: String,
            }
            let message = serde_json::from_slice::<Refusal>(&body).map(|r| r.message).unwrap_or_default();
            return Err(CredentialError::Refused { status: status.as_u16(), message });
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| CredentialError::Malformed)?;
        let expires = time::OffsetDateTime::parse(&answer.expires_at, &time::format_description::well_known::Rfc3339)
            .map_err(|_| CredentialError::Malformed)?;
        let cached = Cached { answer, expires };
        *lock(&self.cache) = Some(cached.clone());
        Ok(cached)
    }

    /// Serves requests on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::UnixListener) {
        loop {
            let mut stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!(%error, "git credential socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let service = Arc::clone(&self);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut limited = (&mut stream).take(MAX_REQUEST as u64);
                let read = limited.read_to_end(&mut request);
                if tokio::time::timeout(Duration::from_secs(5), read).await.is_err() {
                    return;
                }
                let answer = service.answer(&String::from_utf8_lossy(&request)).await;
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Binds the socket at `path` (replacing a stale one), readable by the
/// workspace's users: the shell may run as another user than the agent.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// The `credential.helper` value that runs this binary as the helper
/// against `socket`.
pub fn helper_command(agent: &Path, socket: &Path) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    format!("!{} git-credential --socket {}", quote(agent), quote(socket))
}

/// Configures the clone at `repo` to ask this agent for credentials (its
/// own config only; earlier helpers are reset for it). The clone may belong
/// to the container's user by now: git is told to trust it for this call.
pub async fn configure_clone(repo: &Path, agent: &Path, socket: &Path) -> std::io::Result<()> {
    let trusted = format!("safe.directory={}", repo.display());
    for args in [
        vec!["config", "--local", "--replace-all", "credential.helper", ""],
        vec!["config", "--local", "--add", "credential.helper", &helper_command(agent, socket)],
    ] {
        // Tracked: as a container's PID 1 the agent's reaper must not take
        // git's exit status.
        let mut git = tokio::process::Command::new("git");
        git.arg("-c").arg(&trusted).args(&args).current_dir(repo).kill_on_drop(true);
        let output = crate::reaper::output_tracked(&mut git).await?;
        if !output.status.success() {
            let why = String::from_utf8_lossy(&output.stderr);
            return Err(std::io::Error::other(format!("git {} failed: {}", args.join(" "), why.trim())));
        }
    }
    Ok(())
}

/// The socket path for a state directory (in the temporary directory when
/// that path is too long for a Unix socket's 108 bytes).
pub fn socket_path(state_dir: &Path) -> PathBuf {
    let path = state_dir.join(SOCKET_DIR).join(SOCKET_NAME);
    if path.as_os_str().len() < 100 {
        return path;
    }
    let digest = sam_core::secret::sha256_hex(state_dir.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("sam-git-{}", &digest[..16])).join(SOCKET_NAME)
}

/// `sam-agent git-credential [--socket PATH] <action>`: git's side.
/// Returns the exit code.
pub fn helper_main(args: &[String]) -> i32 {
    let mut socket = std::env::var_os("SAM_GIT_CREDENTIAL_SOCKET").map(PathBuf::from);
    let mut action = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--socket" => socket = rest.next().map(PathBuf::from),
            other => action = Some(other.to_owned()),
        }
    }
    let action = action.unwrap_or_default();
    if action != "get" && action != "erase" {
        // `store` and anything newer: nothing is kept.
        return 0;
    }
    let Some(socket) = socket else {
        eprintln!("sam: no credential socket (--socket or SAM_GIT_CREDENTIAL_SOCKET)");
        return 1;
    };
    let mut input = String::new();
    if std::io::stdin().take(MAX_REQUEST as u64).read_to_string(&mut input).is_err() {
        return 1;
    }
    let request = format!("action={action}\n{}", input.trim_end_matches('\n'));
    let answer = match ask(&socket, &request) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("sam: the workspace agent did not answer ({e}); is it running?");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    for (key, value) in parse(&answer) {
        match key.as_str() {
            "error" => eprintln!("sam: {value}"),
            "notice" => eprintln!("sam: {value}"),
            _ => {
                let _ = writeln!(out, "{key}={value}");
            }
        }
    }
    0
}

fn ask(socket: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    stream.write_all(b"\n\n")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.take(64 * 1024).read_to_string(&mut answer)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_command_quotes_its_paths() {
        let cmd = helper_command(Path::new("/opt/it's/sam-agent"), Path::new("/run/sam/git.sock"));
        assert_eq!(cmd, "!'/opt/it'\\''s/sam-agent' git-credential --socket '/run/sam/git.sock'");
    }

    #[tokio::test]
    async fn requests_for_other_hosts_get_nothing() {
        let service = CredentialService::new(
            "http://127.0.0.1:9",
            WorkspaceId::new(),
            SecretString::new("cb"),
            "https://github.com/octo/hello.git",
            crate::http::client().unwrap(),
        )
        .unwrap();
        assert_eq!(service.answer("action=get\nprotocol=https\nhost=evil.example\n").await, "");
        assert_eq!(service.answer("action=get\nprotocol=http\nhost=github.com\n").await, "", "not over plain http");
        // Ours, but the control plane is unreachable: an error git shows.
        let answer = service.answer("action=get\nprotocol=https\nhost=github.com\npath=octo/hello.git\n").await;
        assert!(answer.starts_with("error=could not reach"), "{answer}");
        assert!(!answer.contains("password"));
    }
}
