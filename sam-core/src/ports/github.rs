use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ProviderError;
use crate::domain::{GithubUserId, InstallationId, NewUser, RepoFullName, Timestamp};
use crate::secret::SecretString;

/// The result of a successful OAuth code exchange: a verified profile bound to
/// GitHub's numeric id, and the user's access token (for listing the user's
/// installations).
#[derive(Clone, Debug)]
pub struct VerifiedIdentity {
    /// Profile to create or refresh the user from.
    pub profile: NewUser,
    /// User-to-server access token.
    pub access_token: SecretString,
}

/// Sign-in through an OAuth identity provider (GitHub).
///
/// The caller generates `state` and a PKCE pair
/// ([`PkcePair`](crate::secret::PkcePair)), keeps both in a short-lived cookie,
/// compares `state` on return, and passes the verifier to
/// [`IdentityProvider::exchange_code`].
#[async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// The URL to send the browser to.
    fn authorize_url(&self, state: &str, pkce_challenge: &str, redirect_uri: &str) -> String;

    /// Exchanges the code for a verified identity. A code can be exchanged
    /// once; errors the provider reports in a 200 body are errors here too.
    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<VerifiedIdentity, ProviderError>;
}

/// An installation of the GitHub App as GitHub reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallationInfo {
    /// Installation id.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: InstallationId,
    /// Account login.
    pub account_login: String,
    /// `User` or `Organization`.
    pub account_type: String,
    /// Account id.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub account_id: GithubUserId,
    /// Whether GitHub suspended it.
    pub suspended: bool,
}

/// A repository reachable through an installation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// `owner/name`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "octo-org/hello-world"))]
    pub full_name: RepoFullName,
    /// Private or public.
    pub private: bool,
    /// Default branch.
    pub default_branch: String,
}

/// One page of a paginated listing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// The next page number, if there is one.
    pub next_page: Option<u32>,
}

/// A short-lived token that lets the agent clone (GitHub: 1 hour).
#[derive(Clone, Debug)]
pub struct InstallationToken {
    /// The token; never logged or written to `.git/config`.
    pub token: SecretString,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// Repository access through the GitHub App.
#[async_trait]
pub trait RepoAccess: Send + Sync + std::fmt::Debug {
    /// Where a user installs the app.
    fn install_url(&self) -> String;

    /// The app's installations the signed-in user can access.
    async fn list_installations(&self, user_token: &SecretString) -> Result<Vec<InstallationInfo>, ProviderError>;

    /// One page of the repositories of an installation (pages start at 1).
    async fn list_repositories(
        &self,
        installation: InstallationId,
        page: u32,
    ) -> Result<Page<Repository>, ProviderError>;

    /// Branch names of a repository (all pages).
    async fn list_branches(
        &self,
        installation: InstallationId,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError>;

    /// A fresh (or cached, while far from expiry) installation token.
    async fn installation_token(&self, installation: InstallationId) -> Result<InstallationToken, ProviderError>;
}
