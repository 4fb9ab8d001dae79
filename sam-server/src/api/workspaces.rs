//! Workspaces: list, create, one, stop, restart, delete, history, and a
//! server-sent event stream of the caller's changes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use sam_core::domain::{
    BranchName, InstallationId, LocationCode, RepoFullName, VmSize, Workspace, WorkspaceId, WorkspaceName,
    WorkspaceSpec,
};
use sam_core::engine::WorkspaceAction;
use sam_core::lifecycle::WorkspaceStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use sam_core::api::{CreateWorkspace, PortView, WorkspaceView};

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::CurrentUser;
use crate::state::AppState;

/// The view of `ws` under the deployment's URL scheme.
pub fn view(state: &AppState, ws: &Workspace) -> WorkspaceView {
    let config = state.engine.config();
    let agent = state.engine.agent_version(ws.id);
    let url = (ws.status() == WorkspaceStatus::Running)
        .then(|| config.workspace_url_template.replace("{host}", &config.hostname(&ws.id)));
    let idle = state.engine.idle_window(ws);
    let ports = if ws.status() == WorkspaceStatus::Running {
        state
            .engine
            .listening_ports(ws.id)
            .into_iter()
            .map(|p| PortView {
                open_url: format!("/api/workspaces/{}/ports/{}/open", ws.id, p.port),
                port: p.port,
                process: p.process,
            })
            .collect()
    } else {
        Vec::new()
    };
    WorkspaceView {
        id: ws.id,
        name: ws.spec.name.to_string(),
        repository: ws.spec.repository.to_string(),
        branch: ws.spec.branch.to_string(),
        status: ws.status(),
        vm_size: ws.spec.vm_size,
        vm_location: ws.spec.vm_location.to_string(),
        url,
        last_activity_at: ws.last_activity_at,
        idle_timeout_seconds: state.engine.idle_threshold(ws).as_secs(),
        idle_warning_at: idle.map(|w| w.warn_at),
        idle_stop_at: idle.map(|w| w.stop_at),
        error_message: ws.lifecycle.error_message.clone(),
        status_reason: ws.lifecycle.reason,
        agent_version: agent.as_ref().map(|a| a.reported.clone()),
        agent_current: agent.and_then(|a| a.current),
        ports,
        created_at: ws.created_at,
        updated_at: ws.updated_at,
    }
}

/// Query of the list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only workspaces in this status.
    #[param(pattern = "^(pending|creating|running|stopping|stopped|deleting|error)$")]
    status: Option<String>,
}

/// `GET /api/workspaces?status=`.
#[utoipa::path(
    get,
    path = "/api/workspaces",
    tag = "workspaces",
    security(("session" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "The caller's workspaces", body = [WorkspaceView]),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 422, description = "Unknown status", body = ErrorBody)
    )
)]
pub async fn list(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Query(query): extract::Query<ListQuery>,
) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<WorkspaceStatus>().map_err(|_| ApiError::invalid("status", "unknown status"))?),
    };
    let list = state.engine.list(current.user.id, status).await?;
    Ok(Json(list.iter().map(|w| view(&state, w)).collect()))
}

/// `POST /api/workspaces`.
#[utoipa::path(
    post,
    path = "/api/workspaces",
    tag = "workspaces",
    security(("session" = [])),
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "Recorded; provisioning runs in the background", body = WorkspaceView),
        (status = 401, description = "No valid session, or the GitHub sign-in expired (`signin_required`: sign in again)", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No repository of that name that the user can see on GitHub", body = ErrorBody),
        (status = 409, description = "Name taken, or the quota of active workspaces reached", body = ErrorBody),
        (status = 412, description = "No cloud credential, or the GitHub App is not installed (or uninstalled) on the owner", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body; `field` names the input", body = ErrorBody),
        (status = 503, description = "GitHub or the store could not be reached; retry (`Retry-After`)", body = ErrorBody)
    )
)]
pub async fn create(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Json(body): extract::Json<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let invalid = |e: sam_core::domain::ValidationError| ApiError::invalid(e.field, e.to_string());
    let spec = WorkspaceSpec {
        name: WorkspaceName::new(body.name).map_err(invalid)?,
        repository: RepoFullName::new(body.repository).map_err(invalid)?,
        branch: BranchName::new(body.branch).map_err(invalid)?,
        vm_size: body.vm_size.parse::<VmSize>().map_err(invalid)?,
        vm_location: LocationCode::new(body.vm_location).map_err(invalid)?,
    };
    let installation = state
        .accounts
        .installation_for(current.user.id, &spec.repository, body.installation_id.map(InstallationId))
        .await?;
    let options = sam_core::engine::CreateOptions { idle_timeout: body.idle_timeout_seconds.map(Duration::from_secs) };
    let ws = state.engine.create_with(current.user.id, spec, installation, options).await?;
    state.spawn_drive(ws.owner, ws.id);
    Ok((StatusCode::CREATED, Json(view(&state, &ws))))
}

/// `GET /api/workspaces/{id}`.
#[utoipa::path(
    get,
    path = "/api/workspaces/{id}",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody)
    )
)]
pub async fn get(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<Json<WorkspaceView>, ApiError> {
    let ws = state.engine.get(current.user.id, id).await?;
    Ok(Json(view(&state, &ws)))
}

async fn action(
    state: AppState,
    current: CurrentUser,
    id: WorkspaceId,
    action: WorkspaceAction,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let owner = current.user.id;
    let ws = state.engine.perform(owner, id, action).await?;
    state.spawn_drive(owner, id);
    Ok((StatusCode::ACCEPTED, Json(view(&state, &ws))))
}

/// `POST /api/workspaces/{id}/stop`.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/stop",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 202, description = "Stopping: the server and DNS record are being removed", body = WorkspaceView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody),
        (status = 409, description = "Not possible in its current status", body = ErrorBody)
    )
)]
pub async fn stop(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    action(state, current, id, WorkspaceAction::Stop).await
}

/// `POST /api/workspaces/{id}/restart`.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/restart",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 202, description = "Provisioning again", body = WorkspaceView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody),
        (status = 409, description = "Not possible in its current status", body = ErrorBody),
        (status = 412, description = "No cloud token connected (`precondition_failed`)", body = ErrorBody)
    )
)]
pub async fn restart(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    action(state, current, id, WorkspaceAction::Restart).await
}

/// `POST /api/workspaces/{id}/activity`.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/activity",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Counted as activity now: the idle countdown starts again", body = WorkspaceView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody)
    )
)]
pub async fn still_here(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<Json<WorkspaceView>, ApiError> {
    let ws = state.engine.record_user_activity(current.user.id, id).await?;
    Ok(Json(view(&state, &ws)))
}

/// Query of a preview's opening.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenPreviewQuery {
    /// The path to open on the preview (default `/`).
    #[param(max_length = 2048)]
    path: Option<String>,
}

/// `GET /api/workspaces/{id}/ports/{port}/open?path=`: signs the browser
/// in to the preview of `port` (a one-time `workspace-preview` token of the
/// owner) and sends it there. A preview opened without its cookie comes
/// here, so a preview URL can be bookmarked and shared with oneself only.
#[utoipa::path(
    get,
    path = "/api/workspaces/{id}/ports/{port}/open",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid), ("port" = u16, Path, minimum = 1, maximum = 65535), OpenPreviewQuery),
    responses(
        (status = 303, description = "On to the preview's host with a one-time token"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "An access token: previews open from a signed-in browser", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
        (status = 422, description = "Not a port", body = ErrorBody),
        (status = 429, description = "Too many tokens asked for", body = ErrorBody)
    )
)]
pub async fn open_preview(
    State(state): State<AppState>,
    current: CurrentUser,
    axum::extract::Path((id, port)): axum::extract::Path<(String, String)>,
    extract::Query(query): extract::Query<OpenPreviewQuery>,
) -> Result<axum::response::Response, ApiError> {
    // A preview runs the user's app: opened from a browser signed in to
    // SAM, never with an access token (a `read` one least of all).
    current.require_browser()?;
    let id: WorkspaceId = id.parse().map_err(|_| ApiError::not_found("workspace"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::invalid("port", "must be a TCP port (1-65535)"))?;
    let path = query.path.unwrap_or_else(|| "/".to_owned());
    if path.len() > 2048 {
        return Err(ApiError::invalid("path", "must be at most 2048 characters"));
    }
    let access =
        state.engine.issue_preview_token(current.user.id, id, port, &path, Some(&current.session_hash)).await?;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = axum::http::HeaderValue::from_str(&access.url).map_err(|_| ApiError::internal())?;
    response.headers_mut().insert(axum::http::header::LOCATION, location);
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    // The token is in the URL: not for the preview's own pages to see.
    response
        .headers_mut()
        .insert(axum::http::header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// What a user may choose when creating a workspace.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceOptions {
    /// Idle timeout: the deployment's default and the bounds a workspace's
    /// own must lie in, in seconds.
    idle_timeout_seconds: IdleTimeoutOptions,
    /// How long before an idle stop the warning comes, in seconds.
    idle_warning_seconds: u64,
}

/// Bounds of a workspace's idle timeout, in seconds.
#[derive(Serialize, ToSchema)]
pub struct IdleTimeoutOptions {
    default: u64,
    min: u64,
    max: u64,
}

/// `GET /api/workspace-options`.
#[utoipa::path(
    get,
    path = "/api/workspace-options",
    tag = "workspaces",
    security(("session" = [])),
    responses(
        (status = 200, description = "The choices a new workspace offers", body = WorkspaceOptions),
        (status = 401, description = "No valid session", body = ErrorBody)
    )
)]
pub async fn options(State(state): State<AppState>, _current: CurrentUser) -> Json<WorkspaceOptions> {
    let config = state.engine.config();
    let (min, max) = config.idle_timeout_bounds();
    Json(WorkspaceOptions {
        idle_timeout_seconds: IdleTimeoutOptions {
            default: config.idle_timeout.as_secs(),
            min: min.as_secs(),
            max: max.as_secs(),
        },
        idle_warning_seconds: config.idle_warning.as_secs(),
    })
}

/// `DELETE /api/workspaces/{id}`.
#[utoipa::path(
    delete,
    path = "/api/workspaces/{id}",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 202, description = "Deleting: listed until its server and DNS record are confirmed gone", body = WorkspaceView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody),
        (status = 409, description = "Not possible in its current status", body = ErrorBody)
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    action(state, current, id, WorkspaceAction::Delete).await
}

/// One entry of the history.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    from: WorkspaceStatus,
    to: WorkspaceStatus,
    /// The lifecycle event, e.g. `create_requested`, `idle_timeout`.
    event: String,
    reason: String,
    message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: time::OffsetDateTime,
}

/// `GET /api/workspaces/{id}/events`.
#[utoipa::path(
    get,
    path = "/api/workspaces/{id}/events",
    tag = "workspaces",
    security(("session" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The history, oldest first, with reasons", body = [EventView]),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No such workspace of yours (never 403)", body = ErrorBody)
    )
)]
pub async fn events(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::WorkspacePath(id): extract::WorkspacePath,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let events = state.engine.events(current.user.id, id).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| EventView {
                from: e.from,
                to: e.to,
                event: e.event,
                reason: e.reason.to_string(),
                message: e.message,
                at: e.at,
            })
            .collect(),
    ))
}

/// How often a stream checks that its sign-in still exists. A sign-out is
/// announced at once (the change feed); this catches a sign-in that expired.
const SESSION_CHECK: Duration = Duration::from_secs(30);

/// How soon a stream whose read failed reads again.
const STREAM_RETRY: Duration = Duration::from_secs(1);

/// `GET /api/workspaces/stream`: `event: workspace` with a workspace's JSON
/// whenever it changes, `event: removed` with `{"id"}` when it is gone.
#[utoipa::path(
    get,
    path = "/api/workspaces/stream",
    tag = "workspaces",
    security(("session" = [])),
    responses(
        (status = 200, description = "Server-sent events: `workspace` (a WorkspaceView) on every change, `removed` (`{\"id\"}`) when one is gone", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "The user holds 8 live streams already (`too_many_streams`)", body = ErrorBody)
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    axum::Extension(limits): axum::Extension<std::sync::Arc<super::user_limits::UserLimits>>,
    axum::Extension(live): axum::Extension<std::sync::Arc<super::live_updates::LiveUpdates>>,
    current: CurrentUser,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let owner = current.user.id;
    let slot = limits.open_stream(owner)?;
    let session = current.session_hash;
    // Watching before the first read: a change committed in between is seen.
    let mut changes = live.watch(&state.engine, owner).await;
    let last = changes.current();
    let watcher = StreamWatch {
        state,
        changes,
        last,
        first: true,
        seen: HashMap::new(),
        session_check: tokio::time::Instant::now() + SESSION_CHECK,
        retry: None,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold((watcher, Vec::<SseEvent>::new()), move |(mut w, mut pending)| {
        let session = session.clone();
        async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((Ok(event), (w, pending)));
                }
                let retry = w.retry;
                let (list, check_session) = if std::mem::take(&mut w.first) {
                    (true, false)
                } else {
                    tokio::select! {
                        epochs = w.changes.next() => {
                            let epochs = epochs?;
                            let what = (epochs.workspaces != w.last.workspaces, epochs.sign_ins != w.last.sign_ins);
                            w.last = epochs;
                            what
                        }
                        // A deadline, not a sleep per wait: a user whose
                        // workspaces change more often than this still gets
                        // the check.
                        () = tokio::time::sleep_until(w.session_check) => (false, true),
                        () = tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)), if retry.is_some() => {
                            (true, false)
                        }
                    }
                };
                if check_session {
                    w.session_check = tokio::time::Instant::now() + SESSION_CHECK;
                    if matches!(w.state.accounts.session_alive(&session).await, Ok(false)) {
                        tracing::info!(user_id = %owner, "session ended; closing its stream");
                        return None;
                    }
                }
                if list {
                    // A failed read (the database busy or away) is tried
                    // again shortly, not left until the next change.
                    w.retry = (!w.diff(owner, &mut pending).await).then(|| tokio::time::Instant::now() + STREAM_RETRY);
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// What one event stream knows: its user's changes, what it last sent.
struct StreamWatch {
    state: AppState,
    changes: super::live_updates::UserChanges,
    last: super::live_updates::Epochs,
    first: bool,
    /// Each workspace's version and last activity as last sent.
    seen: HashMap<WorkspaceId, (u64, time::OffsetDateTime)>,
    /// When the sign-in is checked next.
    session_check: tokio::time::Instant,
    /// When a failed read is tried again.
    retry: Option<tokio::time::Instant>,
    /// The user's place among their streams, given back when the stream ends.
    _slot: super::user_limits::StreamSlot,
}

impl StreamWatch {
    /// Re-reads the user's workspaces and queues an event for each that
    /// changed or went since the last read; false when the read failed.
    async fn diff(&mut self, owner: sam_core::domain::UserId, pending: &mut Vec<SseEvent>) -> bool {
        let Ok(list) = self.state.engine.list(owner, None).await else {
            return false;
        };
        let now_ids: std::collections::HashSet<WorkspaceId> = list.iter().map(|w| w.id).collect();
        for id in self.seen.keys().copied().filter(|id| !now_ids.contains(id)).collect::<Vec<_>>() {
            self.seen.remove(&id);
            pending.push(SseEvent::default().event("removed").data(format!("{{\"id\":\"{id}\"}}")));
        }
        for ws in &list {
            let marker = (ws.version, ws.last_activity_at.unwrap_or(ws.updated_at));
            if self.seen.get(&ws.id) != Some(&marker) {
                self.seen.insert(ws.id, marker);
                if let Ok(json) = serde_json::to_string(&view(&self.state, ws)) {
                    pending.push(SseEvent::default().event("workspace").data(json));
                }
            }
        }
        true
    }
}
