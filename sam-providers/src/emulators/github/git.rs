//! Git's smart HTTP protocol for the emulated repositories, as
//! `https://github.com/{owner}/{repo}.git` serves it: `GET
//! …/info/refs?service=git-upload-pack|git-receive-pack`, `POST
//! …/git-upload-pack` (clone, fetch) and `POST …/git-receive-pack` (push),
//! run by `git http-backend` over bare repositories under
//! [`GithubEmulatorConfig::git_root`](super::GithubEmulatorConfig::git_root),
//! created on first use with one commit per configured branch.
//!
//! Credentials are checked the way GitHub checks them: HTTP Basic with the
//! token as the password (`x-access-token:<token>`, what git sends from a
//! credential helper) or as the user name, or `Authorization: Bearer`.
//! None, unknown or expired → 401 with `WWW-Authenticate: Basic
//! realm="GitHub"` (git then asks its credential helper). A repository the
//! credential cannot read (not in the installation token's repositories, not
//! one the user accesses) → 404 `Repository not found.`. A push needs
//! `contents: write` on an installation token, or a user with push
//! permission (and the app holding `contents: write`) → otherwise 403.
//! After a push, the repository's branches are what the API lists.

use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use super::{EmulatedInstallation, Inner};
use crate::emulators::lock;

/// Largest request body a push may send.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a credential may do with a repository it can see.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Read,
    ReadWrite,
}

/// Who pushes, for `REMOTE_USER` and messages.
struct Caller {
    name: String,
    access: Access,
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

fn ask_for_credentials() -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, "Invalid username or token.");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"GitHub\""));
    response
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Repository not found.")
}

/// The token in `Authorization`: Basic (password, or the user name when the
/// password is empty or `x-oauth-basic`), `Bearer` or `token`.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
            let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
            let token = if password.is_empty() || password == "x-oauth-basic" { user } else { password };
            (!token.is_empty()).then(|| token.to_owned())
        }
        "bearer" | "token" => Some(rest.trim().to_owned()).filter(|t| !t.is_empty()),
        _ => None,
    }
}

/// `repo` without its `.git` (GitHub serves both spellings).
fn full_name(owner: &str, repo: &str) -> Option<String> {
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then(|| format!("{owner}/{name}"))
}

/// What the request's credential may do with `full`, and the installation
/// holding it; `Err` is the answer to give instead.
fn authorize(inner: &Inner, headers: &HeaderMap, full: &str) -> Result<(Caller, EmulatedInstallation), Response> {
    let token = token_of(headers).ok_or_else(ask_for_credentials)?;
    // The configuration is read before the state is locked, never while.
    let (app_writes, test_user) = {
        let config = lock(&inner.config);
        (config.app_permissions.get("contents").is_some_and(|a| a == "write"), config.user.clone())
    };
    let state = lock(&inner.state);
    let holder = state.installations.values().find(|i| i.repositories.contains_key(full)).cloned();
    if let Some(grant) = state.installation_tokens.get(&token) {
        if Instant::now() >= grant.expires {
            return Err(ask_for_credentials());
        }
        let holder = holder.filter(|i| i.id == grant.installation && !i.suspended).ok_or_else(not_found)?;
        if !grant.scope(&holder).repositories.contains_key(full) {
            return Err(not_found());
        }
        let access = if grant.contents == "write" { Access::ReadWrite } else { Access::Read };
        return Ok((Caller { name: "x-access-token".into(), access }, holder));
    }
    let user = state.user_tokens.get(&token).copied().ok_or_else(ask_for_credentials)?;
    if user.expires.is_some_and(|at| at <= crate::emulators::unix_now()) {
        return Err(ask_for_credentials());
    }
    let login = if test_user.id == user.user {
        test_user.login
    } else {
        state.other_users.get(&user.user).map(|u| u.login.clone()).unwrap_or_default()
    };
    let holder = holder.filter(|i| i.user_reads(user.user, full)).ok_or_else(not_found)?;
    let access = if app_writes && holder.user_pushes(user.user) { Access::ReadWrite } else { Access::Read };
    Ok((Caller { name: login, access }, holder))
}

#[derive(Deserialize, Default)]
pub(super) struct ServiceQuery {
    service: Option<String>,
}

/// `GET /{owner}/{repo}.git/info/refs?service=…`.
pub(super) async fn info_refs(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<ServiceQuery>,
) -> Response {
    let service = q.service.unwrap_or_default();
    if service != "git-upload-pack" && service != "git-receive-pack" {
        // The dumb protocol is not served, as on GitHub.
        return text(StatusCode::FORBIDDEN, "Smart HTTP only: add ?service=git-upload-pack");
    }
    let query = format!("service={service}");
    serve(&inner, &headers, &owner, &repo, "info/refs", "GET", &query, Bytes::new(), service == "git-receive-pack")
        .await
}

/// `POST /{owner}/{repo}.git/git-upload-pack` (clone, fetch).
pub(super) async fn upload_pack(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    serve(&inner, &headers, &owner, &repo, "git-upload-pack", "POST", "", body, false).await
}

/// `POST /{owner}/{repo}.git/git-receive-pack` (push).
pub(super) async fn receive_pack(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let response = serve(&inner, &headers, &owner, &repo, "git-receive-pack", "POST", "", body, true).await;
    if response.status().is_success()
        && let Some(full) = full_name(&owner, &repo)
    {
        record_branches(&inner, &full).await;
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    inner: &Inner,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    action: &str,
    method: &str,
    query: &str,
    body: Bytes,
    push: bool,
) -> Response {
    let Some(root) = lock(&inner.config).git_root.clone() else {
        return not_found();
    };
    let Some(full) = full_name(owner, repo) else { return not_found() };
    let (caller, installation) = match authorize(inner, headers, &full) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if push && caller.access != Access::ReadWrite {
        let message = if caller.name == "x-access-token" {
            "Write access to repository not granted.".to_owned()
        } else {
            format!("Permission to {full}.git denied to {}.", caller.name)
        };
        return text(StatusCode::FORBIDDEN, &message);
    }
    if body.len() > MAX_BODY {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.");
    }
    let branches = installation.repositories.get(&full).cloned().unwrap_or_default();
    let _creating = inner.git_lock.lock().await;
    if let Err(e) = ensure_repository(&root, &full, &branches).await {
        tracing::warn!(repository = %full, error = %e, "emulated GitHub could not create the repository");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Could not prepare the repository.");
    }
    drop(_creating);
    let cgi = Cgi {
        root: &root,
        path_info: format!("/{full}.git/{action}"),
        method,
        query,
        headers,
        remote_user: &caller.name,
    };
    match cgi.run(body).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(repository = %full, error = %e, "git http-backend failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "git http-backend failed.")
        }
    }
}

/// One `git http-backend` request.
struct Cgi<'a> {
    root: &'a FsPath,
    path_info: String,
    method: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    remote_user: &'a str,
}

impl Cgi<'_> {
    async fn run(&self, body: Bytes) -> std::io::Result<Response> {
        let header = |name: HeaderName| self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let mut child = tokio::process::Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("PATH_INFO", &self.path_info)
            .env("REQUEST_METHOD", self.method)
            .env("QUERY_STRING", self.query)
            .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
            .env("GIT_PROTOCOL", header(HeaderName::from_static("git-protocol")))
            .env("REMOTE_USER", self.remote_user)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
        // Written while the output is read, so a large exchange cannot
        // fill both pipes and stall.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
            let _ = stdin.shutdown().await;
        });
        let output = child.wait_with_output().await?;
        let _ = writer.await;
        if !output.status.success() && output.stdout.is_empty() {
            return Err(std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
        }
        Ok(parse_cgi(&output.stdout))
    }
}

/// A CGI answer (`Status:` and headers, a blank line, the body) as a response.
fn parse_cgi(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)));
    let Some((head_end, body_start)) = split else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Malformed git http-backend answer.");
    };
    let head = String::from_utf8_lossy(&out[..head_end]);
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.trim()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    let mut response = Response::new(Body::from(out[body_start..].to_vec()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn run_git(args: &[&str], dir: &FsPath) -> std::io::Result<String> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "SAM emulator")
        .env("GIT_AUTHOR_EMAIL", "emulator@sam.localhost")
        .env("GIT_COMMITTER_NAME", "SAM emulator")
        .env("GIT_COMMITTER_EMAIL", "emulator@sam.localhost")
        .stdin(Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(std::io::Error::other(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// The bare repository of `full` under `root`.
pub(crate) fn bare_path(root: &FsPath, full: &str) -> PathBuf {
    root.join(format!("{full}.git"))
}

/// Creates `<root>/<owner>/<name>.git` with an initial commit on each of
/// `branches` (the first is the default), if missing.
pub(crate) async fn ensure_repository(root: &FsPath, full: &str, branches: &[String]) -> std::io::Result<()> {
    let bare = bare_path(root, full);
    if bare.join("HEAD").exists() {
        return Ok(());
    }
    let root = root.to_owned();
    let full = full.to_owned();
    let branches = branches.to_vec();
    tokio::task::spawn_blocking(move || create_repository(&root, &full, &branches, &bare))
        .await
        .map_err(std::io::Error::other)?
}

fn create_repository(root: &FsPath, full: &str, branches: &[String], bare: &FsPath) -> std::io::Result<()> {
    let default = branches.first().map_or("main", String::as_str);
    let work = root.join(".work").join(full);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::write(
        work.join("README.md"),
        format!("# {full}\n\nA repository of the emulated GitHub. Edit away: this workspace is disposable.\n"),
    )?;
    std::fs::write(work.join("hello.sh"), "#!/bin/sh\necho \"hello from $(hostname)\"\n")?;
    run_git(&["init", "-q", "-b", default], &work)?;
    run_git(&["add", "."], &work)?;
    run_git(&["commit", "-q", "-m", "Initial commit"], &work)?;
    for branch in branches.iter().skip(1) {
        run_git(&["branch", branch], &work)?;
    }
    if let Some(parent) = bare.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let (Some(work_s), Some(bare_s)) = (work.to_str(), bare.to_str()) else {
        return Err(std::io::Error::other("non-UTF-8 git root"));
    };
    let partial = bare.with_extension("creating");
    let _ = std::fs::remove_dir_all(&partial);
    let partial_s = partial.to_str().unwrap_or(bare_s);
    run_git(&["clone", "-q", "--bare", work_s, partial_s], root)?;
    // Pushes arrive from anyone the emulator lets in.
    run_git(&["config", "http.receivepack", "true"], &partial)?;
    std::fs::rename(&partial, bare)?;
    let _ = std::fs::remove_dir_all(root.join(".work"));
    Ok(())
}

/// After a push: the branches the API lists are the repository's heads (the
/// default branch first).
async fn record_branches(inner: &Inner, full: &str) {
    let Some(root) = lock(&inner.config).git_root.clone() else { return };
    let bare = bare_path(&root, full);
    let heads = tokio::task::spawn_blocking(move || {
        run_git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"], &bare)
    })
    .await;
    let Ok(Ok(heads)) = heads else { return };
    let mut state = lock(&inner.state);
    for installation in state.installations.values_mut() {
        if let Some(branches) = installation.repositories.get_mut(full) {
            let default = branches.first().cloned();
            let mut names: Vec<String> =
                heads.lines().map(str::to_owned).filter(|b| Some(b) != default.as_ref()).collect();
            if let Some(default) = default {
                names.insert(0, default);
            }
            *branches = names;
        }
    }
}
