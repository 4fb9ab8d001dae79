//! Users, their sessions, their sealed cloud credentials and their GitHub App
//! installations.

use serde::{Deserialize, Serialize};

use super::{GithubUserId, InstallationId, Timestamp, UserId};

/// A SAM user, bound to one GitHub account by its numeric id.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// SAM's id.
    pub id: UserId,
    /// GitHub's numeric id; the identity, since logins can be renamed.
    pub github_id: GithubUserId,
    /// Current GitHub login (display only).
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// Primary verified email, if GitHub shared one.
    pub email: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// First sign-in.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// Last profile refresh.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

/// The profile to create or refresh a user from, as verified by the identity
/// provider.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewUser {
    /// GitHub's numeric id.
    pub github_id: GithubUserId,
    /// Login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// Primary verified email.
    pub email: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
}

/// A server-side sign-in session. The cookie holds a random secret; the store
/// keeps only its SHA-256 (`id_hash`), so a leaked database cannot be replayed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    /// Hex SHA-256 of the cookie secret.
    pub id_hash: String,
    /// Owner.
    pub user_id: UserId,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use (sliding expiry moves `expires_at` forward from here).
    pub last_seen_at: Timestamp,
    /// After this instant the session is invalid.
    pub expires_at: Timestamp,
}

/// What is needed to create a session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewSession {
    /// Hex SHA-256 of the cookie secret.
    pub id_hash: String,
    /// Owner.
    pub user_id: UserId,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// The cloud a credential is for. One credential per provider per user.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialProvider {
    /// Hetzner Cloud API token.
    Hetzner,
    /// The user's GitHub user-to-server token from sign-in, used to list the
    /// app installations the user can access. Not shown as a cloud credential.
    Github,
}

impl CredentialProvider {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialProvider::Hetzner => "hetzner",
            CredentialProvider::Github => "github",
        }
    }
}

impl std::str::FromStr for CredentialProvider {
    type Err = super::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hetzner" => Ok(CredentialProvider::Hetzner),
            "github" => Ok(CredentialProvider::Github),
            _ => Err(super::ValidationError::new("provider", "must be 'hetzner' or 'github'")),
        }
    }
}

/// A user's cloud credential. Only ciphertext: the token is sealed by a
/// [`Cipher`](crate::ports::Cipher) before it reaches this type, so no code path
/// that holds a `Credential` can print the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// Owner.
    pub user_id: UserId,
    /// Cloud.
    pub provider: CredentialProvider,
    /// Sealed token (see `Cipher::seal`).
    #[serde(skip_serializing)]
    pub ciphertext: Vec<u8>,
    /// When the token was last accepted by the provider.
    #[serde(with = "time::serde::rfc3339::option")]
    pub validated_at: Option<Timestamp>,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// When it was last replaced or re-sealed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user_id", &self.user_id)
            .field("provider", &self.provider)
            .field("ciphertext", &format_args!("<{} bytes sealed>", self.ciphertext.len()))
            .field("validated_at", &self.validated_at)
            .finish()
    }
}

/// An installation of SAM's GitHub App on a user or organisation account.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GithubInstallation {
    /// GitHub's installation id.
    pub id: InstallationId,
    /// Login of the account the app is installed on.
    pub account_login: String,
    /// `User` or `Organization`.
    pub account_type: String,
    /// GitHub id of that account.
    pub account_id: GithubUserId,
    /// Suspended installations keep existing workspaces but refuse new ones.
    pub suspended: bool,
    /// Set when GitHub reported the app uninstalled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed_at: Option<Timestamp>,
    /// Last update from GitHub.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl GithubInstallation {
    /// Whether new workspaces may clone through this installation.
    pub fn is_usable(&self) -> bool {
        !self.suspended && self.removed_at.is_none()
    }
}
