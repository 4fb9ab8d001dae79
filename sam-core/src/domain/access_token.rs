//! Personal access tokens: how a program (the `sam` CLI, a script) calls the
//! API as a user. Shown once when created; only a SHA-256 digest is kept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Timestamp, UserId, ValidationError};

/// Every token starts with this, so a leaked one is recognisable (and
/// secret scanners can be taught it).
pub const ACCESS_TOKEN_PREFIX: &str = "sam_pat_";

/// What a token may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Read the user's workspaces, events and account.
    Read,
    /// Everything `read` may, and create, stop, restart, delete workspaces
    /// and open their terminals.
    Write,
}

impl TokenScope {
    /// Whether a token of this scope may do what needs `needed`.
    ///
    /// ```
    /// use sam_core::domain::TokenScope;
    /// assert!(TokenScope::Write.allows(TokenScope::Read));
    /// assert!(!TokenScope::Read.allows(TokenScope::Write));
    /// ```
    pub fn allows(self, needed: TokenScope) -> bool {
        self == TokenScope::Write || needed == TokenScope::Read
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(TokenScope::Read),
            "write" => Ok(TokenScope::Write),
            _ => Err(ValidationError::new("scope", "must be read or write")),
        }
    }
}

/// A personal access token as stored (the token itself is not).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccessToken {
    /// Public id (what the settings page lists and revokes by).
    pub id: String,
    /// Whose it is.
    pub user_id: UserId,
    /// What the user called it (1–64 characters).
    pub name: String,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// What it may do.
    pub scope: TokenScope,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working (`None`: when revoked).
    pub expires_at: Option<Timestamp>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
}

impl AccessToken {
    /// Whether it still works at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}
