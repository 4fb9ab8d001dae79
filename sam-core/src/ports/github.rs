use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::ProviderError;
use crate::domain::{GithubUserId, InstallationId, NewUser, RepoFullName, Timestamp};
use crate::secret::SecretString;

/// A user's authorization with the identity provider: the access token that
/// acts for them and, when it expires (GitHub Apps: after 8 hours), the
/// refresh token that replaces it (once: a refresh returns a new pair and
/// kills the old one).
#[derive(Clone, Debug)]
pub struct UserTokens {
    /// User-to-server access token.
    pub access_token: SecretString,
    /// When the access token stops working; `None` if it does not expire.
    pub expires_at: Option<Timestamp>,
    /// The single-use token for a new pair; `None` when tokens do not expire.
    pub refresh_token: Option<SecretString>,
    /// When the refresh token stops working (GitHub: 6 months).
    pub refresh_expires_at: Option<Timestamp>,
}

impl UserTokens {
    /// A token that does not expire (and has no refresh token).
    pub fn lasting(access_token: SecretString) -> Self {
        Self { access_token, expires_at: None, refresh_token: None, refresh_expires_at: None }
    }
}

/// The result of a successful OAuth code exchange: a verified profile bound to
/// GitHub's numeric id, and the user's tokens (for acting as the user:
/// their installations, the repositories they can reach, their permission).
#[derive(Clone, Debug)]
pub struct VerifiedIdentity {
    /// Profile to create or refresh the user from.
    pub profile: NewUser,
    /// The user's authorization.
    pub tokens: UserTokens,
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

    /// Trades a refresh token for a new pair. The refresh token is dead
    /// afterwards (even when the answer is lost); a dead or expired one is
    /// `Unauthorized`. Never retried by the adapter: a resent refresh would
    /// only meet a dead token.
    async fn refresh(&self, refresh_token: &SecretString) -> Result<UserTokens, ProviderError>;
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
    /// Whether the user the listing was made for may push to it (their
    /// permission on GitHub; `false` when it was listed for no one).
    #[serde(default)]
    pub push: bool,
}

/// What a repository token may do: read one repository, or read and write
/// it (`contents: write`). Nothing else: no other repository, no other
/// permission.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenScope {
    /// The one repository.
    pub repository: RepoFullName,
    /// Whether the token may push.
    pub write: bool,
}

/// One page of a paginated listing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Page<T> {
    /// Items of this page.
    pub items: Vec<T>,
    /// The next page number, if there is one.
    pub next_page: Option<u32>,
}

/// A short-lived token for one repository (GitHub: 1 hour).
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

    /// One page (from 1) of the repositories of an installation that the
    /// *user* can access (an organization member sees only what their teams
    /// grant), with the user's push permission. `NotFound` for an
    /// installation the user cannot see.
    async fn list_repositories(
        &self,
        user_token: &SecretString,
        installation: InstallationId,
        page: u32,
    ) -> Result<Page<Repository>, ProviderError>;

    /// One repository as the user sees it (with their push permission);
    /// `NotFound` when the user cannot see it.
    async fn repository(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Repository, ProviderError>;

    /// Branch names of a repository the user can see (all pages); `NotFound`
    /// otherwise.
    async fn list_branches(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError>;

    /// A fresh installation token limited to `scope`: its one repository,
    /// `contents` read (or write), `metadata` read. Never cached or shared:
    /// each caller gets its own.
    async fn installation_token(
        &self,
        installation: InstallationId,
        scope: &TokenScope,
    ) -> Result<InstallationToken, ProviderError>;
}
