//! Cloud credentials: validated with the provider before they are stored
//! (sealed); never returned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sam_core::accounts::{Catalogue, CloudAccount};
use sam_core::domain::VmSize;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract;
use super::session::CurrentUser;
use crate::state::AppState;

/// One connected cloud account, as listed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    #[schema(example = "hetzner")]
    provider: String,
    connected: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    validated_at: Option<time::OffsetDateTime>,
    /// Locations the account can use.
    locations: Vec<LocationView>,
    /// The server type each size maps to, per location, with prices.
    sizes: Vec<SizeOffer>,
    /// Set when the provider could not be asked right now.
    #[serde(skip_serializing_if = "Option::is_none")]
    catalogue_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LocationView {
    code: String,
    city: String,
    country: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SizeOffer {
    size: VmSize,
    location: String,
    server_type: String,
    /// `x86` or `arm`: the workspace runs on that CPU architecture.
    architecture: String,
    cores: u32,
    memory_gb: f64,
    /// Gross price per hour, as the provider quotes it (a decimal string).
    hourly: String,
    /// Gross monthly cap.
    monthly: String,
}

impl From<CloudAccount> for CredentialView {
    fn from(account: CloudAccount) -> Self {
        let (catalogue, catalogue_error) = match account.catalogue {
            Ok(c) => (c, None),
            Err(why) => (Catalogue::default(), Some(why)),
        };
        CredentialView {
            provider: account.provider.to_string(),
            connected: true,
            created_at: account.created_at,
            validated_at: account.validated_at,
            locations: catalogue
                .locations
                .into_iter()
                .map(|l| LocationView { code: l.code.to_string(), city: l.city, country: l.country })
                .collect(),
            sizes: catalogue
                .sizes
                .into_iter()
                .map(|o| SizeOffer {
                    size: o.size,
                    location: o.location,
                    server_type: o.server_type,
                    architecture: o.architecture,
                    cores: o.cores,
                    memory_gb: o.memory_gb,
                    hourly: o.hourly,
                    monthly: o.monthly,
                })
                .collect(),
            catalogue_error,
        }
    }
}

/// `GET /api/credentials`.
#[utoipa::path(
    get,
    path = "/api/credentials",
    tag = "credentials",
    security(("session" = [])),
    responses(
        (status = 200, description = "Connected cloud accounts (never the token), with locations and sizes", body = [CredentialView]),
        (status = 401, description = "No valid session", body = ErrorBody)
    )
)]
pub async fn list(State(state): State<AppState>, current: CurrentUser) -> Result<Json<Vec<CredentialView>>, ApiError> {
    let accounts = state.accounts.cloud_accounts(current.user.id).await?;
    Ok(Json(accounts.into_iter().map(CredentialView::from).collect()))
}

/// Body of `POST /api/credentials`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCredential {
    /// `hetzner`.
    #[schema(example = "hetzner", pattern = "^hetzner$")]
    provider: String,
    /// The provider's API token: printable ASCII without spaces (leading
    /// and trailing whitespace is trimmed).
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]{1,256}$")]
    token: String,
}

/// `POST /api/credentials`: validates with the provider, then stores sealed.
#[utoipa::path(
    post,
    path = "/api/credentials",
    tag = "credentials",
    security(("session" = [])),
    request_body = AddCredential,
    responses(
        (status = 201, description = "Validated and stored (sealed); the token is not echoed", body = CredentialView),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body, or the provider rejected the token", body = ErrorBody),
        (status = 429, description = "More than 10 token changes by this user in a minute", body = ErrorBody),
        (status = 503, description = "The provider could not be reached; nothing stored", body = ErrorBody)
    )
)]
pub async fn add(
    State(state): State<AppState>,
    axum::Extension(limits): axum::Extension<std::sync::Arc<super::user_limits::UserLimits>>,
    current: CurrentUser,
    extract::Json(body): extract::Json<AddCredential>,
) -> Result<(StatusCode, Json<CredentialView>), ApiError> {
    limits.credential_write(current.user.id)?;
    let provider = body.provider.parse().map_err(|_| ApiError::invalid("provider", "provider must be 'hetzner'"))?;
    let account = state.accounts.connect_cloud(current.user.id, provider, &body.token).await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// `DELETE /api/credentials/{provider}`. Refused while workspaces are active:
/// without the token their servers could not be deleted.
#[utoipa::path(
    delete,
    path = "/api/credentials/{provider}",
    tag = "credentials",
    security(("session" = [])),
    params(("provider" = String, Path, description = "`hetzner`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Cross-origin request refused", body = ErrorBody),
        (status = 404, description = "No such credential", body = ErrorBody),
        (status = 409, description = "Workspaces still use it", body = ErrorBody)
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(provider): Path<String>,
) -> Result<StatusCode, ApiError> {
    let provider = provider.parse().map_err(|_| ApiError::not_found("credential"))?;
    state.accounts.disconnect_cloud(current.user.id, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
