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

/// The kind of a stored credential: the cloud (or service) a token is for,
/// named by the adapter that uses it
/// ([`ComputeProvider::credential_kind`](crate::ports::ComputeProvider::credential_kind)).
/// One credential per kind per user. A short lowercase name rather than a
/// closed list, so an adapter for another cloud brings its own kind and
/// `sam-core` does not change.
///
/// ```
/// use sam_core::domain::CredentialProvider;
/// let kind: CredentialProvider = "example-cloud".parse()?;
/// assert_eq!(kind.as_str(), "example-cloud");
/// assert_ne!(kind, CredentialProvider::HETZNER);
/// assert!("Not A Kind".parse::<CredentialProvider>().is_err());
/// # Ok::<(), sam_core::domain::ValidationError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialProvider {
    name: [u8; CredentialProvider::MAX_LEN],
    len: u8,
}

impl CredentialProvider {
    /// The longest name.
    pub const MAX_LEN: usize = 24;
    /// A Hetzner Cloud API token.
    pub const HETZNER: Self = Self::known("hetzner");
    /// The user's GitHub user-to-server token from sign-in, used to list the
    /// app installations the user can access. Not shown as a cloud credential.
    pub const GITHUB: Self = Self::known("github");

    /// The kind named `name`: 1 to [`Self::MAX_LEN`] characters of `a-z`,
    /// `0-9` and `-`, starting with a letter. `None` otherwise.
    pub const fn new(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN || !bytes[0].is_ascii_lowercase() {
            return None;
        }
        let mut out = [0u8; Self::MAX_LEN];
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                return None;
            }
            out[i] = b;
            i += 1;
        }
        // The length fits: MAX_LEN is under 256.
        Some(Self { name: out, len: bytes.len() as u8 })
    }

    /// A kind known at compile time (a bad name fails the build).
    pub const fn known(name: &'static str) -> Self {
        match Self::new(name) {
            Some(kind) => kind,
            None => panic!("not a credential kind name"),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        // Built from validated ASCII only.
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CredentialProvider {
    type Err = super::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s).ok_or_else(|| {
            super::ValidationError::new(
                "provider",
                "must be a credential kind such as 'hetzner': lowercase letters, digits and '-'",
            )
        })
    }
}

impl Serialize for CredentialProvider {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CredentialProvider {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
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
