use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{Timestamp, UserId, WorkspaceId};
use crate::secret::SecretString;

/// Who a token is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Audience {
    /// The browser opening a workspace terminal (`workspace-terminal`).
    #[serde(rename = "workspace-terminal")]
    WorkspaceTerminal,
    /// The agent calling back to the control plane (`workspace-callback`).
    #[serde(rename = "workspace-callback")]
    WorkspaceCallback,
    /// The control plane asking an agent for its health details
    /// (`workspace-probe`): without one, an agent tells only whether it is up.
    #[serde(rename = "workspace-probe")]
    WorkspaceProbe,
    /// The browser opening a preview of a port the workspace serves
    /// (`workspace-preview`): a separate audience, so a preview link never
    /// opens a terminal.
    #[serde(rename = "workspace-preview")]
    WorkspacePreview,
}

impl Audience {
    /// The `aud` claim value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Audience::WorkspaceTerminal => "workspace-terminal",
            Audience::WorkspaceCallback => "workspace-callback",
            Audience::WorkspaceProbe => "workspace-probe",
            Audience::WorkspacePreview => "workspace-preview",
        }
    }
}

/// What to put in a token.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenRequest {
    /// Audience.
    pub audience: Audience,
    /// The user (`sub`).
    pub subject: UserId,
    /// The workspace (`workspace`).
    pub workspace: WorkspaceId,
    /// Lifetime.
    pub ttl: std::time::Duration,
    /// The sign-in it was issued under (`sid`: the session's hash), for a
    /// terminal token: the agent ends what it opened when that sign-in ends.
    pub session: Option<String>,
}

/// A signed token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: SecretString,
    /// `jti`.
    pub id: String,
    /// `exp`.
    pub expires_at: Timestamp,
}

/// The verified claims of a token.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedToken {
    /// `sub`.
    pub subject: UserId,
    /// `workspace`; the caller compares it with the workspace it serves.
    pub workspace: WorkspaceId,
    /// `aud`.
    pub audience: Audience,
    /// `jti`.
    pub id: String,
    /// `exp`.
    pub expires_at: Timestamp,
    /// `sid`, when the token carries one.
    pub session: Option<String>,
}

/// Why a token was refused. Each failure has its own kind so logs and tests
/// can tell them apart; users see one generic message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// Not a well-formed token, or claims of the wrong shape.
    Malformed,
    /// Algorithm other than the allowed one (`none`, `HS256`, ...).
    UnsupportedAlgorithm,
    /// `kid` missing or not a known key.
    UnknownKey,
    /// Signature does not verify.
    InvalidSignature,
    /// `exp` passed.
    Expired,
    /// `nbf` in the future.
    NotYetValid,
    /// Wrong `aud`.
    WrongAudience,
    /// Wrong `iss`.
    WrongIssuer,
    /// The key set could not be fetched or signing failed.
    Unavailable,
}

/// A token failure.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("token rejected ({kind:?}): {message}")]
pub struct TokenError {
    /// Kind.
    pub kind: TokenErrorKind,
    /// Detail (never contains the token).
    pub message: String,
}

impl TokenError {
    /// An error of `kind`.
    pub fn new(kind: TokenErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// One public key of a JSON Web Key Set (RFC 7517), RSA only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA`.
    pub kty: String,
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// `RS256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Modulus, base64url.
    pub n: String,
    /// Exponent, base64url.
    pub e: String,
}

/// A JSON Web Key Set, as served at `/.well-known/jwks.json`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct JwkSet {
    /// Every key that may have signed a still-valid token.
    pub keys: Vec<Jwk>,
}

/// Signs short-lived tokens (the control plane).
pub trait TokenIssuer: Send + Sync + std::fmt::Debug {
    /// Signs a token for `request`, valid from `now`.
    fn issue(&self, request: TokenRequest, now: Timestamp) -> Result<IssuedToken, TokenError>;

    /// The public keys verifiers need.
    fn jwks(&self) -> JwkSet;
}

/// Verifies tokens (the agent, and the control plane for callbacks). Async
/// because a verifier may fetch a key set over the network.
#[async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    /// Verifies signature, algorithm, issuer, `audience`, expiry and not-before
    /// at `now`. The caller checks the workspace claim.
    async fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<VerifiedToken, TokenError>;
}
