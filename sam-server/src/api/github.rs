//! Repository access through the GitHub App: the user's installations, the
//! install URL, repositories (paginated, filtered by organisation) and branches.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sam_core::domain::{InstallationId, RepoFullName};
use sam_core::ports::{InstallationInfo, Repository};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::CurrentUser;
use crate::state::AppState;

/// `GET /api/github/installations`.
#[utoipa::path(
    get,
    path = "/api/github/installations",
    tag = "github",
    security(("session" = [])),
    responses(
        (status = 200, description = "Installations of the SAM app the user can access", body = [InstallationInfo]),
        (status = 401, description = "No valid session, or the GitHub sign-in expired (`signin_required`: sign in again)", body = ErrorBody),
        (status = 403, description = "GitHub refused the request with the user's authorization (`not_allowed`)", body = ErrorBody),
        (status = 502, description = "GitHub answered in a way SAM does not understand (`provider_error`)", body = ErrorBody),
        (status = 503, description = "GitHub could not be reached; retry (`Retry-After`)", body = ErrorBody)
    )
)]
pub async fn list_installations(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<InstallationInfo>>, ApiError> {
    Ok(Json(state.accounts.installations(current.user.id).await?))
}

/// Where to install the GitHub App.
#[derive(Serialize, ToSchema)]
pub struct InstallUrl {
    /// GitHub's install page of the SAM app.
    url: String,
    /// Whether any account may install it; `false`: only the account that
    /// owns the app (others must ask the operator).
    public: bool,
}

/// `GET /api/github/install-url`.
#[utoipa::path(
    get,
    path = "/api/github/install-url",
    tag = "github",
    security(("session" = [])),
    responses(
        (status = 200, description = "GitHub's install page of the app", body = InstallUrl),
        (status = 401, description = "No valid session", body = ErrorBody)
    )
)]
pub async fn install_url(State(state): State<AppState>, _current: CurrentUser) -> Json<InstallUrl> {
    Json(InstallUrl { url: state.accounts.install_url(), public: state.http.github_app_public })
}

/// Query of the repository listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReposQuery {
    /// The installation to list through.
    installation_id: i64,
    /// Page number, from 1.
    #[serde(default = "first_page")]
    #[param(minimum = 1)]
    page: u32,
    /// Only repositories owned by this account (organisation filter).
    org: Option<String>,
}

fn first_page() -> u32 {
    1
}

/// One page of repositories.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReposPage {
    repositories: Vec<Repository>,
    next_page: Option<u32>,
}

/// `GET /api/github/repositories?installation_id=&page=&org=`.
#[utoipa::path(
    get,
    path = "/api/github/repositories",
    tag = "github",
    security(("session" = [])),
    params(ReposQuery),
    responses(
        (status = 200, description = "One page of repositories", body = ReposPage),
        (status = 401, description = "No valid session, or the GitHub sign-in expired (`signin_required`: sign in again)", body = ErrorBody),
        (status = 404, description = "No such installation visible to the user", body = ErrorBody),
        (status = 422, description = "Invalid query", body = ErrorBody),
        (status = 403, description = "GitHub refused the request with the user's authorization (`not_allowed`)", body = ErrorBody),
        (status = 502, description = "GitHub answered in a way SAM does not understand (`provider_error`)", body = ErrorBody),
        (status = 503, description = "GitHub could not be reached; retry (`Retry-After`)", body = ErrorBody)
    )
)]
pub async fn repositories(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Query(query): extract::Query<ReposQuery>,
) -> Result<Json<ReposPage>, ApiError> {
    let page = state
        .accounts
        .repositories(current.user.id, InstallationId(query.installation_id), query.page, query.org.as_deref())
        .await?;
    Ok(Json(ReposPage { repositories: page.items, next_page: page.next_page }))
}

/// Query of the branch listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BranchesQuery {
    /// Accepted and ignored (older clients sent it): what the user can see
    /// is decided by GitHub from their own authorization.
    #[allow(dead_code)]
    installation_id: Option<i64>,
}

/// `GET /api/github/repositories/{owner}/{repo}/branches`.
#[utoipa::path(
    get,
    path = "/api/github/repositories/{owner}/{repo}/branches",
    tag = "github",
    security(("session" = [])),
    params(("owner" = String, Path), ("repo" = String, Path), BranchesQuery),
    responses(
        (status = 200, description = "Branch names, the default first", body = [String]),
        (status = 401, description = "No valid session, or the GitHub sign-in expired (`signin_required`: sign in again)", body = ErrorBody),
        (status = 404, description = "No repository of that name that the user can see", body = ErrorBody),
        (status = 422, description = "Invalid query", body = ErrorBody),
        (status = 403, description = "GitHub refused the request with the user's authorization (`not_allowed`)", body = ErrorBody),
        (status = 502, description = "GitHub answered in a way SAM does not understand (`provider_error`)", body = ErrorBody),
        (status = 503, description = "GitHub could not be reached; retry (`Retry-After`)", body = ErrorBody)
    )
)]
pub async fn branches(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((owner, repo)): Path<(String, String)>,
    extract::Query(_query): extract::Query<BranchesQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    // A name GitHub cannot have names no repository the user can see.
    let repository = RepoFullName::new(format!("{owner}/{repo}"))
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "repository not found"))?;
    Ok(Json(state.accounts.branches(current.user.id, &repository).await?))
}
