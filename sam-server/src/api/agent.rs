//! Endpoints for workspace agents (authenticated by their credentials, not by
//! a user session): bootstrap, reports, heartbeats, and the agent download.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sam_core::accounts::AccountsErrorKind;
use sam_core::domain::{UserId, Workspace, WorkspaceId};
use sam_core::engine::{AgentReport, BootstrapGrant, EngineErrorKind};
use sam_core::ports::Audience;
use sam_core::wire::{
    BootProgress, BootstrapRequest, HeartbeatAction, HeartbeatAnswer, HeartbeatReport, PreviewCertificateAnswer,
    PreviewCertificateRequest,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ErrorBody};
use super::extract;
use crate::state::AppState;

/// The agent's identity from its `Authorization: Bearer <callback token>`,
/// checked against the workspace in the path.
async fn authenticate_agent(
    state: &AppState,
    headers: &HeaderMap,
    path_id: &str,
) -> Result<(UserId, WorkspaceId, Workspace), ApiError> {
    let unauthorized =
        || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid workspace credential is required");
    let id: WorkspaceId = path_id.parse().map_err(|_| unauthorized())?;
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| t.len() <= 4096)
        .ok_or_else(unauthorized)?;
    let now = state.engine.now();
    let claims = state.verifier.verify(token, Audience::WorkspaceCallback, now).await.map_err(|e| {
        tracing::warn!(workspace_id = %id, kind = ?e.kind, "agent credential rejected");
        unauthorized()
    })?;
    if claims.workspace != id {
        tracing::warn!(workspace_id = %id, claimed = %claims.workspace, "agent credential for another workspace");
        return Err(unauthorized());
    }
    // Signed is not enough: it must be the credential of the workspace's
    // current server. A deleted workspace's, or an earlier VM's, is refused
    // however long it still has to live.
    let ws = match state.engine.get(claims.subject, id).await {
        Ok(ws) => ws,
        Err(e) if e.kind == sam_core::engine::EngineErrorKind::NotFound => {
            tracing::warn!(workspace_id = %id, "agent credential of a workspace that no longer exists");
            return Err(unauthorized());
        }
        Err(e) => return Err(e.into()),
    };
    let current = match &ws.lifecycle.agent_credential {
        Some(current) => *current == claims.id,
        // Bootstrapped before credentials were recorded (an upgrade): its
        // credential holds while that server runs; a restart records one.
        None => ws.lifecycle.server.is_some() && ws.status() == sam_core::lifecycle::WorkspaceStatus::Running,
    };
    if !current {
        tracing::warn!(workspace_id = %id, "agent credential of an earlier server, or revoked");
        return Err(unauthorized());
    }
    Ok((claims.subject, id, ws))
}

/// The agent calling, authenticated by its callback credential for the
/// workspace in the path (owner, workspace, and the workspace as read to
/// check the credential). An extractor of the request's
/// head, so a handler checks the credential before it reads the body: an
/// unauthenticated call is a 401 whatever it sends.
pub struct AgentCaller(pub UserId, pub WorkspaceId, pub Workspace);

impl axum::extract::FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid workspace credential is required");
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| unauthorized())?;
        let (owner, id, ws) = authenticate_agent(state, &parts.headers, &id).await?;
        Ok(Self(owner, id, ws))
    }
}

/// `POST /api/bootstrap/{token}`: single use.
#[utoipa::path(
    post,
    path = "/api/bootstrap/{token}",
    tag = "agent",
    params(("token" = String, Path, description = "The single-use bootstrap token from cloud-init")),
    request_body(content = Option<BootstrapRequest>, description = "Optional: a certificate signing request for the workspace's name"),
    responses(
        (status = 200, description = "What the agent needs to boot the workspace; the token is spent", body = BootstrapGrant),
        (status = 422, description = "The body or its certificate request is invalid", body = ErrorBody),
        (status = 401, description = "Unknown, spent or expired bootstrap token", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is no longer being created", body = ErrorBody),
        (status = 429, description = "Too many requests from this address", body = ErrorBody),
        (status = 503, description = "GitHub could not mint the clone token; retry", body = ErrorBody)
    )
)]
pub async fn bootstrap(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<BootstrapGrant>, ApiError> {
    // No body (agents before certificate requests) is an empty request.
    let request: BootstrapRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BootstrapRequest::default()
    } else {
        // `null` is "no request" too (the document's body is optional).
        serde_json::from_slice::<Option<BootstrapRequest>>(&body).map(Option::unwrap_or_default).map_err(|_| {
            ApiError::from(sam_core::engine::EngineError {
                kind: sam_core::engine::EngineErrorKind::Invalid,
                message: "the body must be a JSON object with an optional csr".into(),
                field: Some("csr"),
            })
        })?
    };
    let grant = state.engine.redeem_bootstrap_with(&token, &request).await?;
    Ok(Json(grant))
}

/// `POST /api/bootstrap/{token}/progress`: a step of the VM's own boot
/// (cloud-init, before the agent exists), with the bootstrap token, which
/// this does not spend.
#[utoipa::path(
    post,
    path = "/api/bootstrap/{token}/progress",
    tag = "agent",
    params(("token" = String, Path, description = "The bootstrap token from cloud-init (not spent)")),
    request_body = BootProgress,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "Unknown, spent or expired bootstrap token (once the agent redeemed it, it reports)", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is no longer being created", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Too many reports from this address", body = ErrorBody)
    )
)]
pub async fn vm_boot_progress(
    State(state): State<AppState>,
    Path(token): Path<String>,
    extract::Json(progress): extract::Json<BootProgress>,
) -> Result<StatusCode, ApiError> {
    check_progress(&progress)?;
    let failed = progress.status == "failed";
    let ws = state.engine.report_vm_boot(&token, progress).await?;
    if failed {
        state.spawn_drive(ws.owner, ws.id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Step and status are short words.
fn check_progress(progress: &BootProgress) -> Result<(), ApiError> {
    let word = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !word(&progress.step, 64) || !word(&progress.status, 16) {
        return Err(ApiError::invalid("step", "step and status are short words (letters, digits, - and _)"));
    }
    Ok(())
}

/// `POST /api/workspaces/{id}/preview-certificate`: the preview name of a
/// port the workspace listens on (its DNS record at the edge) and, for a
/// certificate request, an origin certificate for it.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/preview-certificate",
    tag = "agent",
    security(("agent" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body = PreviewCertificateRequest,
    responses(
        (status = 200, description = "The name, and the certificate when one was asked for", body = PreviewCertificateAnswer),
        (status = 401, description = "No valid workspace credential for this workspace", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is not running, or has all the preview names it may have", body = ErrorBody),
        (status = 422, description = "Invalid port or request", body = ErrorBody),
        (status = 429, description = "Over the workspace's 120 reports a minute", body = ErrorBody),
        (status = 503, description = "The DNS zone or the origin CA is unavailable; try again", body = ErrorBody)
    )
)]
pub async fn preview_certificate(
    State(state): State<AppState>,
    AgentCaller(_, _, ws): AgentCaller,
    extract::Json(request): extract::Json<PreviewCertificateRequest>,
) -> Result<Json<PreviewCertificateAnswer>, ApiError> {
    let issued = state.engine.issue_preview_certificate(ws, request.port, request.csr.as_deref()).await?;
    Ok(Json(PreviewCertificateAnswer { hostname: issued.hostname, certificate: issued.certificate_pem }))
}

/// `POST /api/workspaces/{id}/heartbeat`.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/heartbeat",
    tag = "agent",
    security(("agent" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body = HeartbeatReport,
    responses(
        (status = 200, description = "What the agent must do (continue, warn, shutdown)", body = HeartbeatAnswer),
        (status = 401, description = "No valid workspace credential for this workspace", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is not running", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Over the workspace's 120 reports a minute", body = ErrorBody)
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    AgentCaller(owner, id, ws): AgentCaller,
    extract::Json(report): extract::Json<HeartbeatReport>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let answer = state.engine.record_heartbeat_of(ws, report).await?;
    if answer.action == HeartbeatAction::Shutdown {
        state.spawn_drive(owner, id);
    }
    Ok(Json(answer))
}

/// `POST /api/workspaces/{id}/boot-progress`: `{step, status:
/// running|done|failed, message}`; step `ready` done makes the workspace
/// running, any failure puts it in `error` with the message.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/boot-progress",
    tag = "agent",
    security(("agent" = [])),
    params(("id" = String, Path, format = Uuid)),
    request_body = BootProgress,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "No valid workspace credential for this workspace", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is no longer being created", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Over the workspace's 120 reports a minute", body = ErrorBody)
    )
)]
pub async fn report(
    State(state): State<AppState>,
    AgentCaller(owner, id, _): AgentCaller,
    extract::Json(progress): extract::Json<BootProgress>,
) -> Result<StatusCode, ApiError> {
    check_progress(&progress)?;
    let report = AgentReport::from(progress);
    state.engine.report_agent(owner, id, &report).await?;
    if matches!(report, AgentReport::Failed { .. }) {
        state.spawn_drive(owner, id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A credential for git on the workspace's VM, as the credential helper
/// hands it to git.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCredential {
    /// `owner/name`: the one repository the token reaches.
    #[schema(example = "octo-org/hello-world")]
    pub repository: String,
    /// Always `x-access-token`.
    pub username: String,
    /// The repository token (GitHub: 1 hour).
    pub password: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Whether it may push.
    pub write: bool,
    /// Why it may not push, for the helper to tell the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// `POST /api/workspaces/{id}/git-credential`: a fresh token for the
/// workspace's one repository, for the git credential helper on its VM.
/// It may push only when the owner has push permission on GitHub (checked
/// now, with their own authorization) and the app may write contents.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/git-credential",
    tag = "agent",
    security(("agent" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "A token for the workspace's repository", body = GitCredential),
        (status = 401, description = "No valid workspace credential for this workspace", body = ErrorBody),
        (status = 404, description = "The workspace is gone", body = ErrorBody),
        (status = 409, description = "The workspace is neither being created nor running", body = ErrorBody),
        (status = 412, description = "GitHub no longer grants the workspace's repository", body = ErrorBody),
        (status = 503, description = "GitHub could not be reached; retry", body = ErrorBody)
    )
)]
pub async fn git_credential(
    State(state): State<AppState>,
    AgentCaller(owner, id, _): AgentCaller,
) -> Result<Json<GitCredential>, ApiError> {
    let ws = state.engine.get(owner, id).await?;
    let repository = ws.spec.repository;
    let (push, mut notice) = match state.accounts.repository(owner, &repository).await {
        Ok(seen) if seen.push => (true, None),
        Ok(_) => (false, Some(format!("read-only: you have no push permission on {repository}"))),
        Err(e) if e.kind == AccountsErrorKind::SignInRequired => {
            (false, Some("read-only: sign in to SAM again to push (your GitHub sign-in expired)".to_owned()))
        }
        Err(e) if e.kind == AccountsErrorKind::NotFound => {
            (false, Some(format!("read-only: {repository} is no longer visible to you on GitHub")))
        }
        Err(e) => return Err(e.into()),
    };
    let (repository, token) = match state.engine.repository_token(owner, id, push).await {
        // The app may not write contents: its permissions predate push.
        Err(e) if push && e.kind == EngineErrorKind::Precondition => {
            notice = Some("read-only: the SAM GitHub App may not write repository contents".to_owned());
            state.engine.repository_token(owner, id, false).await?
        }
        other => other?,
    };
    let expires_at =
        token.expires_at.format(&time::format_description::well_known::Rfc3339).map_err(|_| ApiError::internal())?;
    Ok(Json(GitCredential {
        repository: repository.to_string(),
        username: "x-access-token".into(),
        password: token.token.expose().to_owned(),
        expires_at,
        write: push && notice.is_none(),
        notice,
    }))
}

/// Query of the agent download.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `amd64` (default) or `arm64`.
    #[param(pattern = "^(amd64|arm64)$")]
    arch: Option<String>,
}

/// The path of the agent binary for `arch` in `dir`.
pub fn agent_path(dir: &std::path::Path, arch: &str) -> PathBuf {
    dir.join(format!("sam-agent-{arch}"))
}

/// `GET /api/agent/download?arch=amd64|arm64`: the agent of exactly this
/// server's version, with its SHA-256 for cloud-init to verify.
#[utoipa::path(
    get,
    path = "/api/agent/download",
    tag = "agent",
    params(DownloadQuery),
    responses(
        (status = 200, description = "The agent binary", content_type = "application/octet-stream", body = Vec<u8>,
            headers(
                ("X-Agent-Version" = String, description = "The agent version (= this server's)"),
                ("X-Agent-Sha256" = String, description = "Hex SHA-256 of the body, checked by cloud-init"),
            )),
        (status = 404, description = "No binary for this architecture on this server", body = ErrorBody),
        (status = 422, description = "Unknown architecture", body = ErrorBody)
    )
)]
pub async fn download(
    State(state): State<AppState>,
    extract::Query(query): extract::Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let arch = query.arch.unwrap_or_else(|| "amd64".into());
    if arch != "amd64" && arch != "arm64" {
        return Err(ApiError::invalid("arch", "arch must be amd64 or arm64"));
    }
    let path = agent_path(&state.http.agent_dir, &arch);
    let missing = format!("this server has no agent binary for {arch}");
    let mut headers = HeaderMap::new();
    headers.insert("x-agent-version", HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    serve_file(path, "agent_not_found", missing, headers, "x-agent-sha256").await
}

/// Downloads served at once (agent binaries, the devcontainer CLI): each
/// holds an open file and a connection; more wait for a moment's 503.
const MAX_DOWNLOADS: usize = 16;

fn downloads() -> &'static tokio::sync::Semaphore {
    static DOWNLOADS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    DOWNLOADS.get_or_init(|| tokio::sync::Semaphore::new(MAX_DOWNLOADS))
}

/// Served files' SHA-256 (hex) by path, with the length and modification
/// time they were hashed at.
type Hashes = std::sync::Mutex<std::collections::HashMap<PathBuf, (u64, std::time::SystemTime, String)>>;

/// SHA-256 (hex) of the files served, valid while the file has the length
/// and modification time it was hashed at: a file is hashed once, not per
/// download.
fn hashes() -> &'static Hashes {
    static HASHES: std::sync::OnceLock<Hashes> = std::sync::OnceLock::new();
    HASHES.get_or_init(Default::default)
}

/// Opens `path` and learns its SHA-256 (cached; computed from the opened
/// file itself, so the hash is of the bytes sent even while an upgrade
/// replaces the file). Blocking.
fn open_served(path: &std::path::Path) -> std::io::Result<(std::fs::File, u64, String)> {
    use sha2::Digest as _;
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let (len, modified) = (meta.len(), meta.modified()?);
    let cached = hashes()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(path)
        .filter(|(l, m, _)| *l == len && *m == modified)
        .cloned();
    if let Some((_, _, sha)) = cached {
        return Ok((file, len, sha));
    }
    let mut hasher = sha2::Sha256::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    file.rewind()?;
    let sha: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hashes()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path.to_owned(), (len, modified, sha.clone()));
    Ok((file, len, sha))
}

/// A file this server hands to VMs, streamed from disk, with its SHA-256
/// (hex) in `sha_header`: a missing file is a 404 with `code` and
/// `missing`; more than [`MAX_DOWNLOADS`] at once, a 503 to retry.
async fn serve_file(
    path: PathBuf,
    code: &'static str,
    missing: String,
    mut headers: HeaderMap,
    sha_header: &'static str,
) -> Result<Response, ApiError> {
    let Ok(permit) = downloads().try_acquire() else {
        let mut busy =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many downloads; retry shortly").into_response();
        busy.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("2"));
        return Ok(busy);
    };
    let opened = tokio::task::spawn_blocking({
        let path = path.clone();
        move || open_served(&path)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let (file, len, sha) = match opened {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, code, missing));
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "a file served to VMs is unreadable");
            return Err(ApiError::internal());
        }
    };
    if let Ok(v) = HeaderValue::from_str(&sha) {
        headers.insert(sha_header, v);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    // The permit is held until the body is sent (or the client leaves).
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let stream = futures_util::StreamExt::map(stream, move |chunk| {
        let _held = &permit;
        chunk
    });
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

/// The file name of the devcontainer CLI bundle in the agent directory:
/// the npm package of the pinned version
/// ([`DEVCONTAINER_CLI_VERSION`](sam_core::cloud_init::DEVCONTAINER_CLI_VERSION)),
/// as `npm pack @devcontainers/cli@<version>` writes it.
pub fn devcontainer_cli_file() -> String {
    format!("devcontainers-cli-{}.tgz", sam_core::cloud_init::DEVCONTAINER_CLI_VERSION)
}

/// `GET /api/agent/devcontainer-cli`: the pinned devcontainer CLI (its npm
/// package, which has no dependencies) for VMs to unpack instead of
/// installing npm and the CLI from the registry at every boot.
#[utoipa::path(
    get,
    path = "/api/agent/devcontainer-cli",
    tag = "agent",
    responses(
        (status = 200, description = "The devcontainer CLI's npm package (gzipped tar)", content_type = "application/octet-stream", body = Vec<u8>,
            headers(
                ("X-Devcontainer-Cli-Version" = String, description = "Its version, the one cloud-init pins"),
                ("X-Sha256" = String, description = "Hex SHA-256 of the body, checked by cloud-init"),
            )),
        (status = 404, description = "This server has no bundle (VMs then install the CLI with npm)", body = ErrorBody)
    )
)]
pub async fn devcontainer_cli(State(state): State<AppState>) -> Result<Response, ApiError> {
    let path = state.http.agent_dir.join(devcontainer_cli_file());
    let missing = "this server has no devcontainer CLI bundle".to_owned();
    let mut headers = HeaderMap::new();
    headers
        .insert("x-devcontainer-cli-version", HeaderValue::from_static(sam_core::cloud_init::DEVCONTAINER_CLI_VERSION));
    serve_file(path, "devcontainer_cli_not_found", missing, headers, "x-sha256").await
}
