//! Cloud accounts: a user's API token for the compute provider, validated
//! with the provider before it is stored sealed, never returned.

use crate::domain::{Credential, CredentialProvider, Location, Timestamp, UserId, VmSize, choose_server_type_of};
use crate::engine::credential_context;
use crate::ports::{CredentialRemoval, ProviderErrorKind};
use crate::secret::SecretString;

use super::{Accounts, AccountsError, AccountsErrorKind};

/// The longest cloud token accepted (Hetzner's are 64 characters).
const MAX_TOKEN_LEN: usize = 256;

/// A connected cloud account, with what it offers. Never the token.
#[derive(Clone, Debug)]
pub struct CloudAccount {
    /// The provider.
    pub provider: CredentialProvider,
    /// When the token was first connected.
    pub created_at: Timestamp,
    /// When the provider last accepted it.
    pub validated_at: Option<Timestamp>,
    /// Locations and size offers, or why they could not be read right now.
    pub catalogue: Result<Catalogue, String>,
}

/// What a cloud account offers: its locations and, per location, the server
/// type each size maps to with its price.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    /// Locations the account can use.
    pub locations: Vec<Location>,
    /// One offer per size and location where a type fits.
    pub sizes: Vec<SizeOffer>,
}

/// The server type a size maps to in one location, with its price.
#[derive(Clone, PartialEq, Debug)]
pub struct SizeOffer {
    /// The size.
    pub size: VmSize,
    /// Location code.
    pub location: String,
    /// The provider's server type.
    pub server_type: String,
    /// Its CPU architecture (`x86` or `arm`, see [`crate::domain::arch`]).
    pub architecture: String,
    /// Virtual cores.
    pub cores: u32,
    /// Memory in GB.
    pub memory_gb: f64,
    /// Gross price per hour, as the provider quotes it (a decimal string).
    pub hourly: String,
    /// Gross monthly cap.
    pub monthly: String,
}

impl Accounts {
    /// The user's connected cloud accounts, each with its catalogue.
    pub async fn cloud_accounts(&self, user: UserId) -> Result<Vec<CloudAccount>, AccountsError> {
        let credentials = self.ports.store.list_credentials(user).await?;
        let mut out = Vec::new();
        for credential in credentials.iter().filter(|c| c.provider == self.cloud_provider()) {
            out.push(self.cloud_account(credential).await);
        }
        Ok(out)
    }

    /// Connects (or replaces) the user's cloud token after the provider
    /// accepted it; nothing is stored when it does not, or cannot be asked.
    pub async fn connect_cloud(
        &self,
        user: UserId,
        provider: CredentialProvider,
        token: &str,
    ) -> Result<CloudAccount, AccountsError> {
        if provider != self.cloud_provider() {
            return Err(AccountsError::invalid(
                "provider",
                format!("provider must be '{}'", self.cloud_provider().as_str()),
            ));
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AccountsError::invalid("token", "the token must be 1 to 256 printable characters"));
        }
        let token = SecretString::new(token);
        match self.ports.compute.validate_credential(&token).await {
            Ok(()) => {}
            Err(e) if e.kind() == ProviderErrorKind::Unauthorized => {
                return Err(AccountsError {
                    field: Some("token"),
                    ..AccountsError::new(
                        AccountsErrorKind::TokenRejected,
                        "Hetzner rejected this token. Create a Read & Write API token in your Hetzner Cloud project and paste it here.",
                    )
                });
            }
            Err(e) => {
                tracing::warn!(kind = e.kind().code(), "token validation could not reach the provider");
                return Err(AccountsError::new(
                    AccountsErrorKind::ProviderUnavailable,
                    "Hetzner could not be reached to check the token; nothing was stored. Try again.",
                ));
            }
        }
        let credential = self.store_credential(user, provider, &token).await?;
        tracing::info!(user_id = %user, "cloud credential stored");
        Ok(self.cloud_account(&credential).await)
    }

    /// Removes the user's cloud token. Refused while any workspace is active
    /// or still holds cloud resources, without the token they could not be
    /// deleted; the store decides in one transaction, so no workspace can be
    /// created in between.
    pub async fn disconnect_cloud(&self, user: UserId, provider: CredentialProvider) -> Result<(), AccountsError> {
        if provider != self.cloud_provider() {
            return Err(AccountsError::not_found("credential"));
        }
        match self.ports.store.delete_credential_unless_in_use(user, provider).await? {
            CredentialRemoval::Removed => {
                tracing::info!(user_id = %user, "cloud credential removed");
                Ok(())
            }
            CredentialRemoval::NotFound => Err(AccountsError::not_found("credential")),
            CredentialRemoval::InUse { workspaces } => Err(AccountsError::new(
                AccountsErrorKind::InUse,
                format!("{workspaces} workspace(s) still use this token; stop or delete them first"),
            )),
        }
    }

    /// Seals `token` for `user` and `provider` and stores it (replacing any
    /// earlier one, whose creation time is kept). The only place a
    /// credential is written.
    pub async fn store_credential(
        &self,
        user: UserId,
        provider: CredentialProvider,
        token: &SecretString,
    ) -> Result<Credential, AccountsError> {
        let now = self.ports.clock.now();
        let ciphertext =
            self.ports.cipher.seal(token.expose().as_bytes(), credential_context(user, provider)).map_err(|e| {
                tracing::error!(kind = ?e.kind, "sealing a credential failed");
                AccountsError::internal()
            })?;
        let created_at = self.ports.store.get_credential(user, provider).await?.map_or(now, |c| c.created_at);
        let credential =
            Credential { user_id: user, provider, ciphertext, validated_at: Some(now), created_at, updated_at: now };
        self.ports.store.put_credential(&credential).await?;
        Ok(credential)
    }

    fn open(&self, credential: &Credential) -> Option<SecretString> {
        self.ports
            .cipher
            .open(&credential.ciphertext, credential_context(credential.user_id, credential.provider))
            .ok()
            .and_then(|plain| plain.into_secret_string())
    }

    fn cloud_provider(&self) -> CredentialProvider {
        self.ports.compute.credential_kind()
    }

    async fn cloud_account(&self, credential: &Credential) -> CloudAccount {
        let catalogue = match self.open(credential) {
            Some(token) => self.catalogue(&token).await,
            None => Err("the stored token cannot be read; add it again".to_owned()),
        };
        CloudAccount {
            provider: credential.provider,
            created_at: credential.created_at,
            validated_at: credential.validated_at,
            catalogue,
        }
    }

    async fn catalogue(&self, token: &SecretString) -> Result<Catalogue, String> {
        let compute = &self.ports.compute;
        let (locations, types) =
            crate::sync::join(compute.list_locations(token), compute.list_server_types(token)).await;
        let (locations, types) = match (locations, types) {
            (Ok(l), Ok(t)) => (l, t),
            (Err(e), _) | (_, Err(e)) => return Err(format!("the provider did not answer ({})", e.kind().code())),
        };
        let mut sizes = Vec::new();
        for location in &locations {
            for size in VmSize::ALL {
                if let Some(offer) =
                    choose_server_type_of(size, location.code.as_str(), &types, self.config.server_architectures)
                    && let Some(price) = offer.prices.iter().find(|p| p.location == location.code.as_str())
                {
                    sizes.push(SizeOffer {
                        size,
                        location: location.code.to_string(),
                        server_type: offer.name.clone(),
                        architecture: offer.architecture.clone(),
                        cores: offer.cores,
                        memory_gb: offer.memory_gb,
                        hourly: price.hourly.clone(),
                        monthly: price.monthly.clone(),
                    });
                }
            }
        }
        Ok(Catalogue { locations, sizes })
    }
}
