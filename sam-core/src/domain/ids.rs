//! Identifiers. Our own ids are UUID v7 (time-ordered, so indexes stay compact);
//! GitHub's are the numeric ids GitHub assigns, never logins, which can be renamed
//! and reused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ValidationError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID, e.g. one read back from a store.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one spelling per id keeps
                // URLs, DNS names and labels comparable as strings.
                if s.len() != 36 {
                    return Err(ValidationError::new($what, "must be a hyphenated UUID"));
                }
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| ValidationError::new($what, "must be a hyphenated UUID"))
            }
        }
    };
}

uuid_id!(
    /// Identifies a SAM user (not their GitHub account; see [`GithubUserId`]).
    UserId,
    "userId"
);
uuid_id!(
    /// Identifies a workspace. Also its DNS label (`ws-<id>`) and the value of the
    /// `sam-workspace` label on its server.
    ///
    /// ```
    /// use sam_core::domain::WorkspaceId;
    /// let id: WorkspaceId = "0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10".parse().unwrap();
    /// assert_eq!(id.dns_label(), "ws-0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10");
    /// ```
    WorkspaceId,
    "workspaceId"
);

impl WorkspaceId {
    /// The DNS label of this workspace: `ws-<id>`.
    pub fn dns_label(&self) -> String {
        format!("ws-{}", self.0.hyphenated())
    }

    /// Parses a DNS label produced by [`WorkspaceId::dns_label`].
    pub fn from_dns_label(label: &str) -> Option<Self> {
        label.strip_prefix("ws-").and_then(|id| id.parse().ok())
    }
}

/// GitHub's numeric user id: the stable identity a SAM account is bound to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GithubUserId(pub i64);

impl fmt::Display for GithubUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// GitHub's numeric id of an installation of the SAM GitHub App.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstallationId(pub i64);

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A cloud provider's id of a server (Hetzner's are numeric; kept as text so any
/// provider fits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub String);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = WorkspaceId::new();
        let parsed: WorkspaceId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert_eq!(WorkspaceId::from_dns_label(&id.dns_label()), Some(id));
    }

    #[test]
    fn non_canonical_ids_are_rejected() {
        assert!("not-a-uuid".parse::<WorkspaceId>().is_err());
        let simple = Uuid::now_v7().simple().to_string();
        assert!(simple.parse::<WorkspaceId>().is_err());
        assert!(WorkspaceId::from_dns_label("vm-0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10").is_none());
    }

    #[test]
    fn v7_ids_sort_by_creation() {
        let a = WorkspaceId::new();
        let b = WorkspaceId::new();
        assert!(a < b);
    }
}
