//! RS256 tokens: [`JwtIssuer`] (feature `jwt`) signs and publishes a JWKS
//! document, [`JwtVerifier`] verifies against a fixed key set, and
//! [`JwksVerifier`] (the agent's) fetches the control plane's
//! `/.well-known/jwks.json`, caches it and refetches once on an unknown `kid`.
//! The two verifiers need only feature `jwt-verify`.
//!
//! Tokens carry `iss`, `aud` (`workspace-terminal`, `workspace-callback` or
//! `workspace-probe`), `sub` (user id), `workspace`, `iat`, `nbf`, `exp`, a
//! random `jti` and, for terminal tokens, the sign-in (`sid`). The header
//! names the key by `kid`, the RFC 7638 thumbprint of its public key.
//!
//! Verification accepts RS256 only (the header's `alg` is checked before any
//! key is touched, so `none` and `HS256` signed with the public key are
//! refused as [`TokenErrorKind::UnsupportedAlgorithm`]), looks the key up by
//! `kid` in a map, checks the RSASSA-PKCS1-v1_5 SHA-256 signature with
//! `ring` (moduli of 2048 to 8192 bits), then `iss`, `aud`, and `exp` and
//! `nbf` against the `now` the caller passes, with a leeway of at most five
//! seconds.
//!
//! Signing runs on `aws-lc-rs` (through `jsonwebtoken`, feature `jwt`);
//! verification on `ring`, the crypto library the agent's TLS already uses,
//! so an agent links one.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::fmt;

use sam_core::domain::Timestamp;
use sam_core::ports::{Audience, JwkSet, TokenError, TokenErrorKind, TokenVerifier, VerifiedToken};

#[cfg(feature = "jwt")]
mod issuer;
mod jwks;
mod rs256;

#[cfg(feature = "jwt")]
pub use issuer::{JwtIssuer, JwtKeyError, RsaSigningKey, rfc7638_thumbprint};
pub use jwks::JwksVerifier;
use rs256::{RsaPublicKey, err, header_kid, keys_from_jwks, verify_with_key};

/// The largest leeway a verifier accepts for `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 5;
/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Verifies RS256 tokens of one issuer against a fixed set of public keys.
#[derive(Clone)]
pub struct JwtVerifier {
    issuer: String,
    leeway_secs: u64,
    keys: HashMap<String, RsaPublicKey>,
}

impl JwtVerifier {
    /// A verifier for tokens of `issuer` signed by any RS256 key in `jwks`.
    pub fn from_jwks(issuer: impl Into<String>, jwks: &JwkSet) -> Self {
        Self { issuer: issuer.into(), leeway_secs: MAX_LEEWAY_SECS, keys: keys_from_jwks(jwks) }
    }

    /// Sets the leeway for `exp`/`nbf` (capped at [`MAX_LEEWAY_SECS`]).
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs.min(MAX_LEEWAY_SECS);
        self
    }

    /// The known `kid`s.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier").field("issuer", &self.issuer).field("kids", &self.kids()).finish()
    }
}

#[async_trait::async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let kid = header_kid(token)?;
        let key = self.keys.get(&kid).ok_or_else(|| err(TokenErrorKind::UnknownKey, "unknown kid"))?;
        verify_with_key(token, key, &self.issuer, audience, self.leeway_secs, now)
    }
}
