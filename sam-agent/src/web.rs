//! HTTP and WebSocket endpoints of the agent.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `{status}`; with a `workspace-probe` bearer token also `version, uptime, devcontainer, activeSessions, lastActivity, idleSeconds` (401 if the token is refused) |
//! | `GET /ready` | 200 once terminals can be opened, else 503 |
//! | `GET /` | the terminal page (valid cookie) or a page explaining how to open it |
//! | `GET /assets/{path}` | embedded static files only (no file system access) |
//! | `GET /auth/callback?token=` | verify a terminal token, set the session cookie, move on to `/` (a refresh page, so the SameSite=Strict cookie is sent) |
//! | `POST /auth/logout` | drop the session cookie |
//! | `GET /ws/terminal` | the terminal WebSocket (cookie **and** `Origin` checked) |
//! | `GET /api/files/directory?session=` | `{directory, maxUploadBytes}`: where an upload for that terminal lands (its shell's current directory, else the workspace folder), and the largest file it takes |
//! | `POST /api/files/upload?session=&name=&overwrite=` | the body (raw bytes, `Content-Length` required, at most `SAM_AGENT_MAX_UPLOAD_MIB`) becomes file `name` there: 201 `{path, size}`; 409 if it exists without `overwrite=1`; 411, 413, 400 bad name (cookie **and** `Origin` checked) |
//! | `GET /api/files/stat?session=&path=` | `{path, kind: "file"|"directory", size}` (404 if nothing is there), before a download (cookie checked) |
//! | `GET /api/files/download?session=&path=` | a file (`Content-Length`), or a directory as `<name>.tar.gz`; a relative path starts at that terminal's directory (cookie checked) |
//! | `GET /api/ports` | `{ports: [{port, process, ready}]}`: the TCP ports the workspace's processes listen on, each previewable at `p<port>-<this host>` once `ready` (its name made at the edge) (cookie checked) |
//! | any request to `p<port>-ws-<id>.…` | the preview of that port ([`crate::preview`]): forwarded, WebSockets included, to the server on it, for its owner only |
//! | `GET /api/sessions` | `{limit, sessions: [{id, name, attached}]}`: the live terminal sessions, oldest first, and how many may run (cookie checked) |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use rust_embed::RustEmbed;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tracing::Instrument;

use crate::agent::{Agent, Notice};
use crate::auth::{AuthError, origin_allowed};
use crate::output::{Attachment, Take};
use crate::protocol::{
    ClientControl, ControlError, ServerControl, WindowSize, close_code, parse_client, session_name, valid_session_id,
};
use crate::session::{Session, SessionError};

/// Request bodies are tiny (none of the endpoints takes a body).
const MAX_BODY: usize = 16 * 1024;
/// What a terminal socket reads from the network at a time. Input is
/// keystrokes and the odd paste (read in several pieces); tungstenite zeroes
/// the whole buffer, so every open terminal keeps all of it in memory.
const TERMINAL_READ_BUFFER: usize = 1024;
/// How long after a new tab's shell started the spare for the next tab is.
const SPARE_DELAY: Duration = Duration::from_millis(25);
/// Output frames sent before control messages are looked at again.
const FRAMES_PER_TURN: usize = 8;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
                        form-action 'self'; frame-ancestors 'none'";

/// The agent's router.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/auth/callback", get(auth_callback))
        .route("/auth/logout", post(logout))
        .route("/ws/terminal", get(terminal))
        .route("/api/sessions", get(list_sessions))
        .route("/api/ports", get(list_ports))
        .route("/api/files/directory", get(file_directory))
        .route("/api/files/upload", post(upload))
        .route("/api/files/download", get(download))
        .route("/api/files/stat", get(file_stat))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&agent), previews))
        .with_state(agent)
}

/// Requests for a preview host (`p<port>-ws-<id>…`) go to the preview, not
/// to the terminal's routes: the two never share a path.
async fn previews(
    State(agent): State<Arc<Agent>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    match host.and_then(|h| sam_core::domain::preview_port_of(h, &agent.workspace())) {
        Some(port) => crate::preview::handle(agent, port, request).await,
        None => next.run(request).await,
    }
}

/// Serves `agent` on `listener` until [`Agent::shutdown`] is called; then
/// tells terminals, ends every shell and returns.
pub async fn serve(listener: tokio::net::TcpListener, agent: Arc<Agent>) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Keystroke echoes are tiny writes: never hold them back (Nagle).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    serve_on(listener, agent).await
}

/// [`serve`] over TLS ([`crate::tls::TlsListener`]).
pub async fn serve_tls(listener: crate::tls::TlsListener, agent: Arc<Agent>) -> std::io::Result<()> {
    serve_on(listener, agent).await
}

async fn serve_on<L>(listener: L, agent: Arc<Agent>) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let app = router(Arc::clone(&agent));
    let stop = Arc::clone(&agent);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.shutdown_requested().await;
            // Give sockets a moment to deliver the shutdown notice.
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Container kills run `docker exec` (bounded at 15 s each).
            stop.sessions.close_all_and_wait(Duration::from_secs(20)).await;
        })
        .await
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, [(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], value.to_string()).into_response()
}

/// Anyone may learn whether the agent is up; its version, sessions and
/// activity only the control plane (a `workspace-probe` token), since they
/// tell a stranger what runs there and whether its user is at the keyboard.
async fn health(State(agent): State<Arc<Agent>>, headers: axum::http::HeaderMap) -> Response {
    let status = if agent.is_shutting_down() {
        "stopping"
    } else if agent.is_ready() {
        "ok"
    } else {
        "starting"
    };
    let Some(authorization) = headers.get(axum::http::header::AUTHORIZATION) else {
        return json_response(StatusCode::OK, &serde_json::json!({ "status": status }));
    };
    let allowed = match authorization.to_str() {
        Ok(value) => agent.auth.probe_allowed(value).await,
        Err(_) => false,
    };
    if !allowed {
        return json_response(StatusCode::UNAUTHORIZED, &serde_json::json!({ "status": status }));
    }
    let last =
        agent.activity.last_activity_at().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": agent.activity.uptime().as_secs(),
            "devcontainer": agent.devcontainer(),
            "activeSessions": agent.sessions.len(),
            "lastActivity": last,
            "idleSeconds": agent.activity.idle().as_secs(),
        }),
    )
}

async fn ready(State(agent): State<Arc<Agent>>) -> Response {
    if agent.is_ready() && !agent.is_shutting_down() {
        json_response(StatusCode::OK, &serde_json::json!({"ready": true}))
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({"ready": false}))
    }
}

fn embedded(path: &str) -> Option<(Vec<u8>, &'static str)> {
    let file = Assets::get(path)?;
    let kind = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    Some((file.data.into_owned(), kind))
}

fn page(status: StatusCode, name: &str) -> Response {
    match embedded(name) {
        Some((body, kind)) => (
            status,
            [
                (CONTENT_TYPE, kind),
                (CACHE_CONTROL, "no-store"),
                (CONTENT_SECURITY_POLICY, PAGE_CSP),
                (REFERRER_POLICY, "no-referrer"),
            ],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn index(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if agent.auth.check(&headers).is_some() {
        page(StatusCode::OK, "index.html")
    } else {
        page(StatusCode::UNAUTHORIZED, "unauthorized.html")
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    // Only files compiled into the binary are served: no path reaches the
    // file system, so `..` cannot escape.
    if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match embedded(&path) {
        Some((body, kind)) => ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

const CALLBACK_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0; url=/\"><title>Opening the terminal</title></head>\
<body><p>Opening the terminal… <a href=\"/\">continue</a></p></body></html>";

/// A page that moves on by itself rather than a redirect: the callback is
/// reached from the dashboard's site, and a browser does not send a
/// SameSite=Strict cookie on a redirect chain that started cross-site. The
/// refresh starts from this origin, so it carries the (new) cookie.
fn callback_page(set_cookie: Option<&str>) -> Response {
    let mut response = Response::new(Body::from(CALLBACK_PAGE));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct CallbackQuery {
    token: Option<String>,
}

async fn auth_callback(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let redeemed = agent.auth.redeem(&token).await;
    // The callback page reloaded (its token spent) by a browser that has
    // the session it opened: on to the terminal, no new session.
    if redeemed == Err(AuthError::Replayed) && agent.auth.check(&headers).is_some() {
        return callback_page(None);
    }
    match redeemed {
        Ok(value) => callback_page(Some(&agent.auth.set_cookie(&value))),
        Err(error) => {
            tracing::warn!(workspace = %agent.workspace(), %error, "terminal token refused");
            let status = match error {
                AuthError::BadRequest => StatusCode::BAD_REQUEST,
                AuthError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                AuthError::Token(_) | AuthError::WrongWorkspace | AuthError::NotOwner | AuthError::Replayed => {
                    StatusCode::UNAUTHORIZED
                }
            };
            page(status, "unauthorized.html")
        }
    }
}

async fn logout(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if !origin_allowed(&headers, &agent.config.allowed_origins) {
        return StatusCode::FORBIDDEN.into_response();
    }
    agent.auth.logout(&headers);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(LOCATION, HeaderValue::from_static("/"));
    if let Ok(cookie) = HeaderValue::from_str(&agent.auth.clear_cookie()) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// The answer to a request without a valid terminal cookie.
fn not_signed_in() -> Response {
    (StatusCode::UNAUTHORIZED, "open the terminal from the SAM dashboard").into_response()
}

/// The sessions a page (or another client) can reattach to: the tab bar
/// learns the names and which shells are still there.
async fn list_sessions(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if agent.auth.check(&headers).is_none() {
        return not_signed_in();
    }
    let sessions = serde_json::to_value(agent.sessions.list()).unwrap_or_default();
    let limit = agent.sessions.config().max_sessions;
    json_response(StatusCode::OK, &serde_json::json!({ "limit": limit, "sessions": sessions }))
}

/// The ports a preview can open: the page lists them beside the tabs.
async fn list_ports(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if agent.auth.check(&headers).is_none() {
        return not_signed_in();
    }
    let ports = match agent.port_scope().await {
        Some(scope) => agent.listening_ports(scope).await,
        None => Vec::new(),
    };
    let ports: Vec<serde_json::Value> = ports
        .into_iter()
        .map(|p| serde_json::json!({ "port": p.port, "process": p.process, "ready": agent.preview_ready(p.port) }))
        .collect();
    json_response(StatusCode::OK, &serde_json::json!({ "ports": ports }))
}

#[derive(Deserialize, Debug)]
struct FileQuery {
    session: Option<String>,
    name: Option<String>,
    path: Option<String>,
    overwrite: Option<u8>,
}

fn file_error(error: &crate::files::FileError) -> Response {
    use crate::files::FileError;
    let status = match error {
        FileError::BadPath(_) => StatusCode::BAD_REQUEST,
        FileError::NotFound => StatusCode::NOT_FOUND,
        FileError::Exists => StatusCode::CONFLICT,
        FileError::Denied => StatusCode::FORBIDDEN,
        FileError::Incomplete => StatusCode::BAD_REQUEST,
        FileError::Failed(detail) => {
            tracing::warn!(%detail, "file operation failed");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "the file operation failed"}),
            );
        }
    };
    json_response(status, &serde_json::json!({"error": error.to_string()}))
}

/// Where files go and come from for the terminal `session` (its shell's
/// directory), once the workspace has a shell.
async fn file_place(agent: &Agent, session: Option<&str>) -> Result<(crate::files::FileTarget, String), Response> {
    let Some(shell) = agent.sessions.shell() else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "workspace not ready").into_response());
    };
    let target = crate::files::FileTarget::of(&shell);
    let live = session.and_then(|id| agent.sessions.get(id));
    let dir = target.directory_of(live.as_deref()).await;
    Ok((target, dir))
}

async fn file_directory(State(agent): State<Arc<Agent>>, headers: HeaderMap, Query(q): Query<FileQuery>) -> Response {
    if agent.auth.check(&headers).is_none() {
        return not_signed_in();
    }
    match file_place(&agent, q.session.as_deref()).await {
        Ok((_, dir)) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "directory": dir, "maxUploadBytes": agent.config.max_upload }),
        ),
        Err(response) => response,
    }
}

/// An upload streams into the workspace: nothing is held in memory beyond
/// a chunk, and the file appears only once complete.
async fn upload(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(q): Query<FileQuery>,
    body: Body,
) -> Response {
    if !origin_allowed(&headers, &agent.config.allowed_origins) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if agent.auth.check(&headers).is_none() {
        return not_signed_in();
    }
    let Some(size) = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return json_response(StatusCode::LENGTH_REQUIRED, &serde_json::json!({"error": "Content-Length is required"}));
    };
    if size > agent.config.max_upload {
        let limit = agent.config.max_upload / (1024 * 1024);
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &serde_json::json!({ "error": format!("a file may be at most {limit} MiB") }),
        );
    }
    let name = q.name.unwrap_or_default();
    if let Err(error) = crate::files::check_name(&name) {
        return file_error(&error);
    }
    let (target, dir) = match file_place(&agent, q.session.as_deref()).await {
        Ok(place) => place,
        Err(response) => return response,
    };
    let started = std::time::Instant::now();
    match target.write(&dir, &name, size, q.overwrite == Some(1), body.into_data_stream()).await {
        Ok(()) => {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            tracing::info!(workspace = %agent.workspace(), %path, size, ms = started.elapsed().as_millis(), "file uploaded");
            agent.activity.touch();
            json_response(StatusCode::CREATED, &serde_json::json!({ "path": path, "size": size }))
        }
        Err(error) => file_error(&error),
    }
}

/// A signed-in request for what is at `path`: where to look and what is
/// there.
async fn file_entry(
    agent: &Agent,
    headers: &HeaderMap,
    q: FileQuery,
) -> Result<(crate::files::FileTarget, String, String, crate::files::Entry), Response> {
    if agent.auth.check(headers).is_none() {
        return Err(not_signed_in());
    }
    let path = q.path.unwrap_or_default();
    let (target, dir) = file_place(agent, q.session.as_deref()).await?;
    let entry = target.stat(&dir, &path).await.map_err(|error| file_error(&error))?;
    Ok((target, dir, path, entry))
}

async fn file_stat(State(agent): State<Arc<Agent>>, headers: HeaderMap, Query(q): Query<FileQuery>) -> Response {
    use crate::files::Entry;
    let (_, dir, path, entry) = match file_entry(&agent, &headers, q).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let shown = if path.starts_with('/') { path } else { format!("{}/{path}", dir.trim_end_matches('/')) };
    match entry {
        Entry::Directory => json_response(StatusCode::OK, &serde_json::json!({"path": shown, "kind": "directory"})),
        Entry::File(size) => {
            json_response(StatusCode::OK, &serde_json::json!({"path": shown, "kind": "file", "size": size}))
        }
    }
}

async fn download(State(agent): State<Arc<Agent>>, headers: HeaderMap, Query(q): Query<FileQuery>) -> Response {
    use crate::files::{Entry, download_name};
    let (target, dir, path, entry) = match file_entry(&agent, &headers, q).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut child = match target.read(&dir, &path) {
        Ok(child) => child,
        Err(error) => return file_error(&error),
    };
    let Some(stdout) = child.stdout.take() else {
        return file_error(&crate::files::FileError::Failed("no output".into()));
    };
    // The child is reaped when its output ends (or the download is
    // abandoned: kill_on_drop).
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    agent.activity.touch();
    let name = download_name(&path, entry);
    let stream = tokio_util::io::ReaderStream::with_capacity(stdout, 256 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    let kind = if entry == Entry::Directory { "application/gzip" } else { "application/octet-stream" };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    if let Entry::File(size) = entry {
        h.insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    response
}

#[derive(Deserialize, Debug)]
struct TerminalQuery {
    session: Option<String>,
    name: Option<String>,
    offset: Option<u64>,
    rows: Option<u32>,
    cols: Option<u32>,
    ack: Option<u8>,
}

async fn terminal(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(q): Query<TerminalQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !origin_allowed(&headers, &agent.config.allowed_origins) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let Some(signed_in) = agent.auth.session_key(&headers) else {
        return not_signed_in();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if !agent.is_ready() || agent.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "workspace not ready").into_response();
    }
    let session_id = match q.session {
        Some(id) if valid_session_id(&id) => id,
        Some(_) => return (StatusCode::BAD_REQUEST, "invalid session id").into_response(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let size = match (q.rows, q.cols) {
        (Some(r), Some(c)) => match WindowSize::new(r, c) {
            Some(size) => size,
            None => return (StatusCode::BAD_REQUEST, "terminal size out of range").into_response(),
        },
        _ => WindowSize::default(),
    };
    let name = match q.name.as_deref().map(session_name) {
        None => None,
        Some(Some(name)) => Some(name),
        Some(None) => return (StatusCode::BAD_REQUEST, "invalid session name").into_response(),
    };
    let acks = q.ack == Some(1);
    let max = agent.config.max_frame_in;
    let span = tracing::info_span!("terminal", workspace = %agent.workspace(), session = %session_id);
    ws.max_frame_size(max).max_message_size(max).read_buffer_size(TERMINAL_READ_BUFFER).on_upgrade(move |socket| {
        run_terminal(socket, agent, Terminal { id: session_id, name, size, from: q.offset, acks, signed_in })
            .instrument(span)
    })
}

enum Outgoing {
    Text(String),
    Close(u16, &'static str),
}

enum OutputEnd {
    Exited,
    TakenOver,
    Shutdown,
    Closed,
    SocketError,
}

async fn close_with(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

/// What a terminal connection asked for, and the session cookie it came in
/// with (checked again whenever sessions are ended from outside).
struct Terminal {
    id: String,
    name: Option<String>,
    size: WindowSize,
    from: Option<u64>,
    acks: bool,
    signed_in: [u8; 32],
}

/// A terminal connection, from the attach to the close. The socket is split
/// before the connection's future is made: a `WebSocket` moved into an
/// async fn keeps its 368 bytes in that future for the connection's life
/// (the future is the largest part of what a session costs in memory). For
/// the same reason the attach and the closing waits are boxed: their
/// futures would otherwise keep their room for the connection's life.
fn run_terminal(socket: WebSocket, agent: Arc<Agent>, terminal: Terminal) -> impl Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    terminal_connection(sink, stream, agent, terminal)
}

async fn terminal_connection(
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    agent: Arc<Agent>,
    terminal: Terminal,
) {
    let Terminal { id, name, size, from, acks, signed_in } = terminal;
    let mut ended = agent.auth.watch_ended();
    let attached = Box::pin(agent.sessions.attach_named(&id, name, size, from, acks)).await;
    let attached = match attached {
        Ok(a) => a,
        Err(error) => {
            tracing::warn!(%error, "could not open a terminal");
            let (code, reason) = match error {
                SessionError::TooMany(_) => {
                    (close_code::TOO_MANY_SESSIONS, "this workspace has as many terminals as it allows: close one")
                }
                SessionError::NotReady => (close_code::TRY_AGAIN_LATER, "the workspace is not ready yet"),
                SessionError::Spawn(_) => (close_code::INTERNAL, "could not open a terminal"),
            };
            close_with(&mut sink, code, reason).await;
            return;
        }
    };
    if !attached.resumed && !agent.sessions.config().spare_for.is_zero() {
        let sessions = Arc::clone(&agent.sessions);
        tokio::spawn(async move {
            // Once this tab's own shell has had the CPU to print its prompt.
            tokio::time::sleep(SPARE_DELAY).await;
            sessions.prepare_spare(size).await;
        });
    }
    let session = attached.session;
    let attachment = attached.attachment;
    tracing::info!(resumed = attached.resumed, offset = attachment.offset, lost = attachment.lost, "terminal attached");
    let hello = ServerControl::Hello {
        session: id.clone(),
        name: session.name(),
        offset: attachment.offset,
        resumed: attached.resumed,
        lost_bytes: attachment.lost,
        ack_window: acks.then_some(agent.sessions.config().ack_window),
    };
    if sink.send(Message::Text(hello.to_json().into())).await.is_err() {
        agent.sessions.detach(&session, attachment.generation);
        return;
    }
    // Subscribed before the warning in force is looked at: a clearing (or
    // a new warning) that comes after that look is then not missed.
    let notices = agent.subscribe();
    if let Some(warning) = agent.current_warning() {
        let _ = sink.send(Message::Text(warning.to_json().into())).await;
    }
    // Boxed: the channel allocates room for 32 messages up front, and a
    // pong or a close is rare.
    let (ctl_tx, ctl_rx) = mpsc::channel::<Box<Outgoing>>(8);
    let generation = attachment.generation;
    let mut output =
        tokio::spawn(output_loop(sink, Arc::clone(&session), attachment, ctl_rx, notices, agent.config.keepalive));
    let client_timeout = agent.config.client_timeout;
    // One timer for the whole connection, re-armed only when it fires: a
    // keystroke just records when it came instead of touching the timer.
    let mut last_seen = tokio::time::Instant::now();
    let silence = tokio::time::sleep_until(last_seen + client_timeout);
    tokio::pin!(silence);

    enum InputEnd {
        Dropped,
        SignedOut,
        Violation,
        Closed,
        ClosedAfter(Duration),
        Output(OutputEnd),
    }
    let end = loop {
        tokio::select! {
            changed = ended.changed() => {
                if changed.is_ok() && agent.auth.still_signed_in(&signed_in) {
                    continue;
                }
                tracing::info!("the sign-in this terminal was opened under ended; closing");
                let _ = ctl_tx.send(Box::new(Outgoing::Close(close_code::SIGNED_OUT, "signed out"))).await;
                break InputEnd::SignedOut;
            }
            () = &mut silence => {
                if last_seen.elapsed() < client_timeout {
                    silence.as_mut().reset(last_seen + client_timeout);
                    continue;
                }
                tracing::info!("client silent; treating the connection as dropped");
                break InputEnd::Dropped;
            }
            msg = stream.next() => {
                if matches!(msg, Some(Ok(_))) {
                    last_seen = tokio::time::Instant::now();
                }
                match msg {
                None | Some(Ok(Message::Close(_))) => break InputEnd::Dropped,
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
                        tracing::warn!("oversized frame; closing");
                        let _ = ctl_tx.send(Box::new(Outgoing::Close(close_code::TOO_BIG, "message too big"))).await;
                        break InputEnd::Violation;
                    }
                    break InputEnd::Dropped;
                }
                Some(Ok(Message::Binary(data))) => {
                    agent.activity.touch();
                    if !session.write(&data).await {
                        break InputEnd::Dropped;
                    }
                }
                Some(Ok(Message::Text(text))) => match parse_client(text.as_str()) {
                    Ok(ClientControl::Resize { rows, cols }) => {
                        if let Some(size) = WindowSize::new(rows, cols) {
                            session.resize(size);
                        }
                    }
                    Ok(ClientControl::Ping { id }) => {
                        let _ = ctl_tx.try_send(Box::new(Outgoing::Text(ServerControl::Pong { id }.to_json())));
                    }
                    Ok(ClientControl::Pong { .. }) => {}
                    Ok(ClientControl::Ack { offset }) => session.output().ack(generation, offset),
                    Ok(ClientControl::Rename { name }) => session.set_name(name),
                    Ok(ClientControl::Active) => agent.activity.touch(),
                    Ok(ClientControl::Close { after }) => {
                        let end = match after {
                            Some(secs) if secs > 0 => InputEnd::ClosedAfter(Duration::from_secs(u64::from(secs))),
                            _ => {
                                // Before the close frame: a tab opened right
                                // after the client sees it must find the room
                                // this one leaves under the session limit.
                                agent.sessions.close(&id);
                                InputEnd::Closed
                            }
                        };
                        let _ = ctl_tx.send(Box::new(Outgoing::Close(close_code::NORMAL, "closed"))).await;
                        break end;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "bad control message; closing");
                        let reason = match error {
                            ControlError::Malformed => "malformed control message",
                            ControlError::SizeOutOfRange => "terminal size out of range",
                            ControlError::BadName => "invalid session name",
                        };
                        let _ = ctl_tx.send(Box::new(Outgoing::Close(close_code::INVALID_CONTROL, reason))).await;
                        break InputEnd::Violation;
                    }
                },
                Some(Ok(_)) => {}
                }
            }
            result = &mut output => {
                break InputEnd::Output(result.unwrap_or(OutputEnd::SocketError));
            }
        }
    };
    // Let the output task deliver its close frame first (it ends once the
    // control channel is closed), then act on the session.
    drop(ctl_tx);
    if !matches!(end, InputEnd::Output(_))
        && Box::pin(tokio::time::timeout(Duration::from_secs(2), &mut output)).await.is_err()
    {
        output.abort();
    }
    match end {
        InputEnd::Closed | InputEnd::Violation | InputEnd::Output(OutputEnd::Exited) => agent.sessions.close(&id),
        InputEnd::ClosedAfter(delay) => agent.sessions.detach_for(&session, generation, delay),
        InputEnd::Dropped | InputEnd::SignedOut | InputEnd::Output(OutputEnd::SocketError | OutputEnd::Closed) => {
            agent.sessions.detach(&session, generation);
        }
        InputEnd::Output(OutputEnd::TakenOver | OutputEnd::Shutdown) => {}
    }
    // Let the peer read the close frame before the connection goes away
    // (a client still sending, e.g. an oversized frame, would otherwise get
    // a reset that can swallow it).
    let _ =
        Box::pin(tokio::time::timeout(Duration::from_millis(500), async { while stream.next().await.is_some() {} }))
            .await;
    tracing::info!("terminal connection ended");
}

async fn output_loop(
    mut sink: SplitSink<WebSocket, Message>,
    session: Arc<Session>,
    attachment: Attachment,
    mut ctl: mpsc::Receiver<Box<Outgoing>>,
    mut notices: broadcast::Receiver<Notice>,
    keepalive: Duration,
) -> OutputEnd {
    let output = Arc::clone(session.output());
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let generation = attachment.generation;
    loop {
        let mut frames = 0;
        loop {
            // No coalescing delay: the reader task already gathers a flood
            // into large chunks, and whatever arrived while the previous
            // frame was written leaves in one frame.
            match output.take(generation) {
                Take::Data(bytes) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        return OutputEnd::SocketError;
                    }
                    frames += 1;
                    if frames == FRAMES_PER_TURN {
                        attachment.waker.notify_one();
                        break;
                    }
                }
                Take::Empty => break,
                Take::Finished(code) => {
                    let _ = sink.send(Message::Text(ServerControl::Exit { code }.to_json().into())).await;
                    close_with(&mut sink, close_code::NORMAL, "shell exited").await;
                    return OutputEnd::Exited;
                }
                Take::Detached => {
                    if session.is_killed() {
                        close_with(&mut sink, close_code::NORMAL, "session ended").await;
                        return OutputEnd::Exited;
                    }
                    close_with(&mut sink, close_code::TAKEN_OVER, "session attached elsewhere").await;
                    return OutputEnd::TakenOver;
                }
            }
        }
        tokio::select! {
            biased;
            msg = ctl.recv() => match msg.map(|m| *m) {
                Some(Outgoing::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return OutputEnd::SocketError;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    close_with(&mut sink, code, reason).await;
                    return OutputEnd::Closed;
                }
                None => return OutputEnd::Closed,
            },
            notice = notices.recv() => match notice {
                Ok(Notice::IdleWarning(msg)) => {
                    if sink.send(Message::Text(msg.to_json().into())).await.is_err() {
                        return OutputEnd::SocketError;
                    }
                }
                Ok(Notice::IdleCleared) => {
                    if sink.send(Message::Text(ServerControl::IdleCleared.to_json().into())).await.is_err() {
                        return OutputEnd::SocketError;
                    }
                }
                Ok(Notice::Shutdown(reason)) => {
                    let _ = sink.send(Message::Text(ServerControl::Shutdown { reason }.to_json().into())).await;
                    close_with(&mut sink, close_code::GOING_AWAY, "workspace stopping").await;
                    return OutputEnd::Shutdown;
                }
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {}
            },
            () = attachment.waker.notified() => {}
            _ = pings.tick() => {
                if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    return OutputEnd::SocketError;
                }
            }
        }
    }
}
