//! Repository access through the GitHub App: the user's installations, the
//! install URL, repositories (paginated, filtered by organisation) and branches.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sam_core::domain::{CredentialProvider, GithubInstallation, InstallationId, RepoFullName};
use sam_core::engine::credential_context;
use sam_core::ports::{InstallationInfo, Repository};
use sam_core::secret::SecretString;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::session::CurrentUser;
use crate::state::AppState;

async fn user_token(state: &AppState, current: &CurrentUser) -> Result<SecretString, ApiError> {
    let ports = state.engine.ports();
    let user = current.user.id;
    ports
        .store
        .get_credential(user, CredentialProvider::Github)
        .await?
        .and_then(|c| ports.cipher.open(&c.ciphertext, credential_context(user, CredentialProvider::Github)).ok())
        .and_then(|p| p.into_secret_string())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "signin_required", "sign in with GitHub again"))
}

/// The user's installations, refreshed from GitHub and recorded.
pub(crate) async fn installations(state: &AppState, current: &CurrentUser) -> Result<Vec<InstallationInfo>, ApiError> {
    let token = user_token(state, current).await?;
    let list = state.repos().list_installations(&token).await?;
    let ports = state.engine.ports();
    let now = ports.clock.now();
    for i in &list {
        // GitHub gives a reinstall a new id, so an uninstall recorded from a
        // webhook stays recorded even if a listing still shows the old id.
        let removed_at = ports.store.get_installation(i.id).await?.and_then(|known| known.removed_at);
        ports
            .store
            .upsert_installation(&GithubInstallation {
                id: i.id,
                account_login: i.account_login.clone(),
                account_type: i.account_type.clone(),
                account_id: i.account_id,
                suspended: i.suspended,
                removed_at,
                updated_at: now,
            })
            .await?;
    }
    Ok(list)
}

/// `GET /api/github/installations`.
pub async fn list_installations(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<InstallationInfo>>, ApiError> {
    Ok(Json(installations(&state, &current).await?))
}

/// `GET /api/github/install-url`.
pub async fn install_url(State(state): State<AppState>, _current: CurrentUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "url": state.repos().install_url() }))
}

/// Query of the repository listing.
#[derive(Deserialize)]
pub struct ReposQuery {
    installation_id: i64,
    #[serde(default = "first_page")]
    page: u32,
    /// Only repositories owned by this account (organisation filter).
    org: Option<String>,
}

fn first_page() -> u32 {
    1
}

/// One page of repositories.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReposPage {
    repositories: Vec<Repository>,
    next_page: Option<u32>,
}

async fn authorize_installation(state: &AppState, current: &CurrentUser, id: InstallationId) -> Result<(), ApiError> {
    if installations(state, current).await?.iter().any(|i| i.id == id) {
        Ok(())
    } else {
        Err(ApiError::not_found("installation"))
    }
}

/// `GET /api/github/repositories?installation_id=&page=&org=`.
pub async fn repositories(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<ReposQuery>,
) -> Result<Json<ReposPage>, ApiError> {
    let id = InstallationId(query.installation_id);
    authorize_installation(&state, &current, id).await?;
    let page = state.repos().list_repositories(id, query.page.clamp(1, 10_000)).await?;
    let repositories = page
        .items
        .into_iter()
        .filter(|r| query.org.as_deref().is_none_or(|org| r.full_name.owner().eq_ignore_ascii_case(org)))
        .collect();
    Ok(Json(ReposPage { repositories, next_page: page.next_page }))
}

/// Query of the branch listing.
#[derive(Deserialize)]
pub struct BranchesQuery {
    installation_id: i64,
}

/// `GET /api/github/repositories/{owner}/{repo}/branches?installation_id=`.
pub async fn branches(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<BranchesQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let repository =
        RepoFullName::new(format!("{owner}/{repo}")).map_err(|e| ApiError::invalid("repository", e.to_string()))?;
    let id = InstallationId(query.installation_id);
    authorize_installation(&state, &current, id).await?;
    Ok(Json(state.repos().list_branches(id, &repository).await?))
}
