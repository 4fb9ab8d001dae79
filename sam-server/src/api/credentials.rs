//! Cloud credentials: validated with the provider before they are stored
//! (sealed); never returned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sam_core::domain::{Credential, CredentialProvider, VmSize, choose_server_type};
use sam_core::engine::credential_context;
use sam_core::ports::ProviderErrorKind;
use sam_core::secret::SecretString;
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
    provider: &'static str,
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
    cores: u32,
    memory_gb: f64,
    /// Gross price per hour, as the provider quotes it (a decimal string).
    hourly: String,
    /// Gross monthly cap.
    monthly: String,
}

async fn view(state: &AppState, credential: &Credential) -> CredentialView {
    let mut view = CredentialView {
        provider: credential.provider.as_str(),
        connected: true,
        created_at: credential.created_at,
        validated_at: credential.validated_at,
        locations: Vec::new(),
        sizes: Vec::new(),
        catalogue_error: None,
    };
    let ports = state.engine.ports();
    let token =
        match ports.cipher.open(&credential.ciphertext, credential_context(credential.user_id, credential.provider)) {
            Ok(plain) => plain.into_secret_string(),
            Err(_) => None,
        };
    let Some(token) = token else {
        view.catalogue_error = Some("the stored token cannot be read; add it again".into());
        return view;
    };
    let (locations, types) =
        tokio::join!(ports.compute.list_locations(&token), ports.compute.list_server_types(&token));
    match (locations, types) {
        (Ok(locations), Ok(types)) => {
            for location in &locations {
                for size in VmSize::ALL {
                    if let Some(offer) = choose_server_type(size, location.code.as_str(), &types)
                        && let Some(price) = offer.prices.iter().find(|p| p.location == location.code.as_str())
                    {
                        view.sizes.push(SizeOffer {
                            size,
                            location: location.code.to_string(),
                            server_type: offer.name.clone(),
                            cores: offer.cores,
                            memory_gb: offer.memory_gb,
                            hourly: price.hourly.clone(),
                            monthly: price.monthly.clone(),
                        });
                    }
                }
            }
            view.locations = locations
                .into_iter()
                .map(|l| LocationView { code: l.code.to_string(), city: l.city, country: l.country })
                .collect();
        }
        (Err(e), _) | (_, Err(e)) => {
            view.catalogue_error = Some(format!("the provider did not answer ({})", e.kind().code()))
        }
    }
    view
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
    let credentials = state.engine.ports().store.list_credentials(current.user.id).await?;
    let mut out = Vec::new();
    for credential in credentials.iter().filter(|c| c.provider == CredentialProvider::Hetzner) {
        out.push(view(&state, credential).await);
    }
    Ok(Json(out))
}

/// Body of `POST /api/credentials`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCredential {
    /// `hetzner`.
    #[schema(example = "hetzner")]
    provider: String,
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
        (status = 503, description = "The provider could not be reached; nothing stored", body = ErrorBody)
    )
)]
pub async fn add(
    State(state): State<AppState>,
    current: CurrentUser,
    extract::Json(body): extract::Json<AddCredential>,
) -> Result<(StatusCode, Json<CredentialView>), ApiError> {
    if body.provider != "hetzner" {
        return Err(ApiError::invalid("provider", "provider must be 'hetzner'"));
    }
    let token = body.token.trim();
    if token.is_empty() || token.len() > 256 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("token", "the token must be 1 to 256 printable characters"));
    }
    let token = SecretString::new(token);
    let ports = state.engine.ports();
    match ports.compute.validate_credential(&token).await {
        Ok(()) => {}
        Err(e) if e.kind() == ProviderErrorKind::Unauthorized => {
            return Err(ApiError {
                field: Some("token".into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_token",
                    "Hetzner rejected this token. Create a Read & Write API token in your Hetzner Cloud project and paste it here.",
                )
            });
        }
        Err(e) => {
            tracing::warn!(kind = e.kind().code(), "token validation could not reach the provider");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "Hetzner could not be reached to check the token; nothing was stored. Try again.",
            ));
        }
    }
    let now = ports.clock.now();
    let sealed = ports
        .cipher
        .seal(token.expose().as_bytes(), credential_context(current.user.id, CredentialProvider::Hetzner))
        .map_err(|_| ApiError::internal())?;
    let created_at =
        ports.store.get_credential(current.user.id, CredentialProvider::Hetzner).await?.map_or(now, |c| c.created_at);
    let credential = Credential {
        user_id: current.user.id,
        provider: CredentialProvider::Hetzner,
        ciphertext: sealed,
        validated_at: Some(now),
        created_at,
        updated_at: now,
    };
    ports.store.put_credential(&credential).await?;
    tracing::info!(user_id = %current.user.id, "cloud credential stored");
    Ok((StatusCode::CREATED, Json(view(&state, &credential).await)))
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
    if provider != "hetzner" {
        return Err(ApiError::not_found("credential"));
    }
    let store = &state.engine.ports().store;
    let active = store
        .list_workspaces(current.user.id, None)
        .await?
        .into_iter()
        .filter(|w| w.status().is_active() || w.lifecycle.holds_resources())
        .count();
    if active > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "workspaces_active",
            format!("{active} workspace(s) still use this token; stop or delete them first"),
        ));
    }
    if store.delete_credential(current.user.id, CredentialProvider::Hetzner).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("credential"))
    }
}
