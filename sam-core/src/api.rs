//! The control plane's REST API as data: what `sam-server` sends and reads,
//! and what a client (the `sam` command) reads and sends — one definition
//! for both sides, with its JSON Schema (feature `openapi`) in the server's
//! OpenAPI document. JSON, camelCase.
//!
//! ```
//! use sam_core::api::WorkspaceView;
//! let json = r#"{"id":"0192f0c4-7d2e-7a31-9b1c-4c9d2a7e5f10","name":"api","repository":"o/r",
//!   "branch":"main","status":"running","vmSize":"small","vmLocation":"fsn1","url":null,
//!   "lastActivityAt":null,"idleTimeoutSeconds":1800,"idleWarningAt":null,"idleStopAt":null,
//!   "errorMessage":null,"statusReason":"provisioning","agentVersion":null,"agentCurrent":null,
//!   "ports":[{"port":3000,"process":"node","openUrl":"/api/workspaces/x/ports/3000/open"}],
//!   "createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}"#;
//! let ws: WorkspaceView = serde_json::from_str(json).unwrap();
//! assert_eq!(ws.ports[0].port, 3000);
//! ```

use serde::{Deserialize, Serialize};

use crate::domain::{VmSize, WorkspaceId};
use crate::lifecycle::{Reason, WorkspaceStatus};

/// A workspace as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceView {
    /// Its id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: WorkspaceId,
    /// Its name, unique among the user's workspaces.
    pub name: String,
    /// `owner/name`.
    pub repository: String,
    /// The branch it was cloned at.
    pub branch: String,
    /// Where it is in its lifecycle.
    pub status: WorkspaceStatus,
    /// Its size.
    pub vm_size: VmSize,
    /// Its location code.
    pub vm_location: String,
    /// Where the terminal is served, while running.
    pub url: Option<String>,
    /// The last terminal activity recorded.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_activity_at: Option<time::OffsetDateTime>,
    /// The idle timeout that applies to it (its own, else the deployment's).
    pub idle_timeout_seconds: u64,
    /// While running: when its idle warning starts and when it stops for
    /// idleness, unless there is activity before (the countdown; it moves
    /// later with every heartbeat that reports activity).
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub idle_warning_at: Option<time::OffsetDateTime>,
    /// When it stops for idleness, unless there is activity before.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub idle_stop_at: Option<time::OffsetDateTime>,
    /// Why it failed, in words the user can act on (status `error`); or what
    /// is wrong now: a `running` workspace whose agent is unreachable (kept,
    /// and released at the time the message names), a `stopping` or
    /// `deleting` one whose cleanup is blocked (retried).
    pub error_message: Option<String>,
    /// Why it is in its status.
    pub status_reason: Reason,
    /// The version the workspace's agent last reported, while it reports.
    pub agent_version: Option<String>,
    /// Whether that is the version this control plane serves (`false`: an
    /// older or newer agent; restart the workspace to get the current one).
    pub agent_current: Option<bool>,
    /// While running: the TCP ports its processes listen on (as its agent
    /// last reported), each with where to open its preview.
    #[serde(default)]
    pub ports: Vec<PortView>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: time::OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: time::OffsetDateTime,
}

/// A port a workspace's process listens on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    /// The port.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65535))]
    pub port: u16,
    /// The listening process's name, when the agent could tell.
    pub process: Option<String>,
    /// Opens its preview (this API's `GET …/ports/{port}/open`, relative to
    /// the control plane), from a browser signed in to SAM.
    pub open_url: String,
}

/// Body of `POST /api/workspaces`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspace {
    /// 1–64 letters, digits, spaces, `-`, `_` and `.`, starting with a
    /// letter or digit and not ending in a space; unique among the user's
    /// workspaces.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$")
    )]
    pub name: String,
    /// `owner/name`, as GitHub names them.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "octo-org/hello-world",
            max_length = 140,
            pattern = "^[A-Za-z0-9](-?[A-Za-z0-9]){0,38}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"
        )
    )]
    pub repository: String,
    /// A branch of the repository. The pattern is the common case; the
    /// server takes any name `git check-ref-format --branch` takes, except
    /// one starting with `-`.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "main", min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_]+(/[A-Za-z0-9_-]+)*$")
    )]
    pub branch: String,
    /// `small`, `medium` or `large`.
    #[cfg_attr(feature = "openapi", schema(example = "small", pattern = "^(small|medium|large)$"))]
    pub vm_size: String,
    /// A location code of the user's cloud account, e.g. `fsn1` (one it
    /// does not offer: 422).
    #[cfg_attr(feature = "openapi", schema(example = "fsn1", pattern = "^[a-z0-9-]{1,32}$"))]
    pub vm_location: String,
    /// Optional: the installation to clone through; found from the
    /// repository's owner when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default, deserialize_with = "whole_number", skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<i64>,
    /// Optional: seconds without terminal activity before it stops, within
    /// the bounds of `GET /api/workspace-options` (else 422); the
    /// deployment's default when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(default, deserialize_with = "whole_number", skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
}

/// Body of `POST /api/terminal/token`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminalTokenRequest {
    /// The workspace.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub workspace_id: String,
}

/// Answer of `POST /api/terminal/token`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TerminalTokenResponse {
    /// RS256 JWT, audience `workspace-terminal`.
    pub token: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: time::OffsetDateTime,
    /// The agent URL to open (carries the token).
    pub url: String,
}

/// The current user, as `GET /api/auth/me` returns it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user's id.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub id: String,
    /// Their GitHub account's id.
    pub github_id: i64,
    /// Their GitHub login.
    pub login: String,
    /// Their name, as GitHub has it.
    pub name: Option<String>,
    /// Their email, as GitHub has it.
    pub email: Option<String>,
    /// Their avatar.
    pub avatar_url: Option<String>,
    /// How many active workspaces the user may have.
    pub max_active_workspaces: u32,
}

/// An optional integer field as JSON Schema means it: `2` and `2.0` are the
/// same integer (the OpenAPI document says `integer`, and generic clients
/// send either), `2.5` is not one. For `#[serde(default, deserialize_with)]`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let out_of_range = || D::Error::custom(format!("{number} is out of range"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map(Some).map_err(|_| out_of_range());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map(Some).map_err(|_| out_of_range());
    }
    match number.as_f64() {
        // Exactly representable whole numbers only (|n| < 2^53).
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            #[allow(clippy::cast_possible_truncation)]
            let n = f as i64;
            T::try_from(n).map(Some).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!("{number} is not a whole number"))),
    }
}

#[cfg(test)]
mod whole_number_tests {
    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(default, deserialize_with = "super::whole_number")]
        days: Option<u32>,
    }

    fn days(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json).map(|b| b.days).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_with_or_without_a_fraction_of_zero() {
        assert_eq!(days(r#"{"days": 2}"#), Ok(Some(2)));
        assert_eq!(days(r#"{"days": 2.0}"#), Ok(Some(2)));
        assert_eq!(days(r#"{}"#), Ok(None));
        assert_eq!(days(r#"{"days": null}"#), Ok(None));
        assert!(days(r#"{"days": 2.5}"#).is_err());
        assert!(days(r#"{"days": -1}"#).is_err());
        assert!(days(r#"{"days": 1e300}"#).is_err());
        assert!(days(r#"{"days": "2"}"#).is_err());
    }
}
