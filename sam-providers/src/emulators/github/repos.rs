//! The GitHub emulator's repository and rate-limit endpoints:
//! `GET /repos/{owner}/{repo}`, `…/installation`, `…/branches`,
//! `…/branches/{branch}`, `GET /user/repos`,
//! `GET /user/installations/{id}/repositories`, `GET /app/installations`,
//! `GET /rate_limit`, and the `X-RateLimit-*` headers every API answer
//! carries. A repository is visible to an installation token of an
//! installation that has it (and, for a token minted for some repositories,
//! is one of them), and to a user token of a user who can see such an
//! installation and access the repository
//! ([`EmulatedInstallation::user_repositories`]); to anyone else it does not
//! exist (404, as GitHub hides private repositories).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

use super::{
    EmulatedInstallation, Inner, PageQuery, api_error, app_identity, bad_credentials, check_app_jwt, installation_json,
    paginate, shapes, user_for, with_link,
};
use crate::emulators::{bearer, lock, unix_now};

/// Requests per hour for a token (GitHub: 5000 for user and installation
/// tokens), and without one (60).
const TOKEN_LIMIT: u64 = 5000;
const ANONYMOUS_LIMIT: u64 = 60;

fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "Not Found")
}

/// Who may read repositories with these headers: the installations whose
/// repositories they see, and whether it is a user (else an installation).
/// The user id is `None` for an installation token.
fn readable(inner: &Inner, headers: &HeaderMap) -> Result<(Vec<EmulatedInstallation>, Option<i64>), Response> {
    let token = bearer(headers).ok_or_else(bad_credentials)?;
    {
        let state = lock(&inner.state);
        if let Some(grant) = state.installation_tokens.get(&token) {
            if std::time::Instant::now() >= grant.expires {
                return Err(bad_credentials());
            }
            let seen = state.installations.get(&grant.installation).map(|i| grant.scope(i));
            return Ok((seen.into_iter().collect(), None));
        }
    }
    let user = user_for(inner, headers).ok_or_else(bad_credentials)?;
    let state = lock(&inner.state);
    let seen = state.installations.values().filter(|i| i.visible_to.contains(&user.id)).map(|i| i.seen_by(user.id));
    Ok((seen.collect(), Some(user.id)))
}

fn owner_json(base: &str, installation: &EmulatedInstallation, owner: &str) -> Value {
    let kind = if owner == installation.account_login { installation.account_type.as_str() } else { "User" };
    shapes::simple_user(base, owner, shapes::id_of(owner), kind)
}

/// The repository `full` as `installations` see it: its installation and
/// branches.
fn find<'a>(
    installations: &'a [EmulatedInstallation],
    full: &str,
) -> Option<(&'a EmulatedInstallation, &'a Vec<String>)> {
    installations.iter().find_map(|i| i.repositories.get(full).map(|branches| (i, branches)))
}

fn repository_json(
    base: &str,
    installation: &EmulatedInstallation,
    full: &str,
    branches: &[String],
    user: Option<i64>,
    complete: bool,
) -> Value {
    let owner = owner_json(base, installation, full.split('/').next().unwrap_or_default());
    let default_branch = branches.first().map_or("main", String::as_str);
    // An installation token reads (contents: read); a user has their role.
    let role = match user {
        None => "read",
        Some(id) => installation.role_of(id),
    };
    let (push, admin) = match role {
        "admin" => (true, true),
        "maintain" | "write" => (true, false),
        _ => (false, false),
    };
    shapes::repository(base, full, &owner, default_branch, Some((push, admin)), complete)
}

/// `GET /repos/{owner}/{repo}`.
pub(super) async fn repository(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    let (installations, user) = match readable(&inner, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let full = format!("{owner}/{repo}");
    let base = inner.base_url.get().cloned().unwrap_or_default();
    match find(&installations, &full) {
        Some((installation, branches)) => {
            Json(repository_json(&base, installation, &full, branches, user, true)).into_response()
        }
        None => not_found(),
    }
}

/// `GET /repos/{owner}/{repo}/installation` (app JWT).
pub(super) async fn repository_installation(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check_app_jwt(&inner, &headers) {
        return r;
    }
    let full = format!("{owner}/{repo}");
    let app = app_identity(&inner);
    let state = lock(&inner.state);
    match state.installations.values().find(|i| i.repositories.contains_key(&full)) {
        Some(i) => Json(installation_json(&app, i)).into_response(),
        None => not_found(),
    }
}

/// The full name and branches of `owner/repo`, when the credential reads it.
fn branches_of(inner: &Inner, headers: &HeaderMap, owner: &str, repo: &str) -> Result<(String, Vec<String>), Response> {
    let (installations, _) = readable(inner, headers)?;
    let full = format!("{owner}/{repo}");
    let names = find(&installations, &full).map(|(_, names)| names.clone()).ok_or_else(not_found)?;
    Ok((full, names))
}

/// `GET /repos/{owner}/{repo}/branches` (installation or user token).
pub(super) async fn branches(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (full, names) = match branches_of(&inner, &headers, &owner, &repo) {
        Ok(found) => found,
        Err(r) => return r,
    };
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let all: Vec<Value> = names.iter().map(|b| shapes::short_branch(&base, &full, b)).collect();
    let (items, link) = paginate(&inner, &format!("/repos/{full}/branches"), &all, &q);
    with_link(Json(json!(items)).into_response(), link)
}

/// `GET /repos/{owner}/{repo}/branches/{branch}`.
pub(super) async fn branch(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Response {
    let (full, names) = match branches_of(&inner, &headers, &owner, &repo) {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !names.contains(&branch) {
        return api_error(StatusCode::NOT_FOUND, "Branch not found");
    }
    let base = inner.base_url.get().cloned().unwrap_or_default();
    Json(shapes::branch_with_protection(&base, &full, &branch)).into_response()
}

/// Every repository of `installations`, as `repository` objects.
pub(super) fn repositories_of(inner: &Inner, installations: &[EmulatedInstallation], user: Option<i64>) -> Vec<Value> {
    let base = inner.base_url.get().cloned().unwrap_or_default();
    installations
        .iter()
        .flat_map(|i| i.repositories.iter().map(move |(full, branches)| (i, full, branches)))
        .map(|(i, full, branches)| repository_json(&base, i, full, branches, user, false))
        .collect()
}

/// `GET /user/repos` (user token): the repositories of the installations the
/// user can see.
pub(super) async fn user_repositories(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if user_for(&inner, &headers).is_none() {
        return bad_credentials();
    }
    let (installations, user) = match readable(&inner, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let all = repositories_of(&inner, &installations, user);
    let (items, link) = paginate(&inner, "/user/repos", &all, &q);
    with_link(Json(json!(items)).into_response(), link)
}

/// `GET /user/installations/{id}/repositories` (user token).
pub(super) async fn user_installation_repositories(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some(user) = user_for(&inner, &headers) else {
        return bad_credentials();
    };
    let installation = lock(&inner.state)
        .installations
        .get(&id)
        .filter(|i| i.visible_to.contains(&user.id))
        .map(|i| i.seen_by(user.id));
    let Some(installation) = installation else {
        return not_found();
    };
    let all = repositories_of(&inner, std::slice::from_ref(&installation), Some(user.id));
    let total = all.len();
    let (items, link) = paginate(&inner, &format!("/user/installations/{id}/repositories"), &all, &q);
    with_link(
        Json(json!({"total_count": total, "repository_selection": "selected", "repositories": items})).into_response(),
        link,
    )
}

/// `GET /app/installations` (app JWT).
pub(super) async fn app_installations(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Err(r) = check_app_jwt(&inner, &headers) {
        return r;
    }
    let app = app_identity(&inner);
    let all: Vec<Value> = lock(&inner.state).installations.values().map(|i| installation_json(&app, i)).collect();
    let (items, link) = paginate(&inner, "/app/installations", &all, &q);
    with_link(Json(json!(items)).into_response(), link)
}

/// The credential a request counts against, and its hourly limit.
fn bucket(headers: &HeaderMap) -> (String, u64) {
    match bearer(headers) {
        Some(token) => (token, TOKEN_LIMIT),
        None => ("anonymous".into(), ANONYMOUS_LIMIT),
    }
}

/// `(used, window end)` for `key` now, starting a new hour when due.
fn window(inner: &Inner, key: &str, count: bool) -> (u64, u64) {
    let now = unix_now();
    let mut state = lock(&inner.state);
    let entry = state.rate.entry(key.to_owned()).or_insert((0, now + 3600));
    if now >= entry.1 {
        *entry = (0, now + 3600);
    }
    if count {
        entry.0 += 1;
    }
    *entry
}

/// `GET /rate_limit` (does not count against the limit, as on GitHub).
pub(super) async fn rate_limit(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let (key, limit) = bucket(&headers);
    let (used, reset) = window(&inner, &key, false);
    let core = shapes::rate(limit, used, reset);
    let other = shapes::rate(limit, 0, reset);
    Json(json!({"resources": {"core": core, "search": shapes::rate(30, 0, reset), "graphql": other,
                              "integration_manifest": shapes::rate(5000, 0, reset)},
                "rate": core}))
    .into_response()
}

/// Counts every REST call (not the web pages, not `/rate_limit`) and adds
/// `X-RateLimit-Limit`, `-Remaining`, `-Used`, `-Reset` and `-Resource`;
/// past the limit GitHub answers 403 with `x-ratelimit-remaining: 0`.
pub(super) async fn rate_headers(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let web = path.starts_with("/login/")
        || path.starts_with("/settings/")
        || path.starts_with("/organizations/")
        || (path.starts_with("/apps/") && path.ends_with("/installations/new"));
    if web || path == "/rate_limit" {
        return next.run(request).await;
    }
    let (key, limit) = bucket(request.headers());
    let (used, reset) = window(&inner, &key, true);
    let mut response = if used > limit {
        api_error(StatusCode::FORBIDDEN, "API rate limit exceeded")
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", limit.saturating_sub(used).to_string()),
        ("x-ratelimit-used", used.min(limit).to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
