//! RS256 verification on `ring`: the compact token, its header, the
//! signature, then the claims.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam_core::domain::{Timestamp, UserId, WorkspaceId};
use sam_core::ports::{Audience, JwkSet, TokenError, TokenErrorKind, VerifiedToken};
use serde::{Deserialize, Serialize};

use super::{MAX_LEEWAY_SECS, MAX_TOKEN_LEN, MIN_RSA_BITS};

/// An RSA public key (modulus and exponent, big-endian) for RS256.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RsaPublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaPublicKey {
    /// From a JWK's base64url `n` and `e`; `None` for anything that does not
    /// decode or is shorter than [`MIN_RSA_BITS`].
    pub(crate) fn from_components(n: &str, e: &str) -> Option<Self> {
        let n = URL_SAFE_NO_PAD.decode(n).ok()?;
        let e = URL_SAFE_NO_PAD.decode(e).ok()?;
        let bits = n.iter().position(|b| *b != 0).map_or(0, |first| (n.len() - first) * 8);
        (bits >= MIN_RSA_BITS && !e.is_empty()).then_some(Self { n, e })
    }
}

/// The claims SAM puts in a token.
#[derive(Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    pub(crate) sub: String,
    pub(crate) workspace: String,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    pub(crate) jti: String,
    /// The sign-in a terminal token was issued under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
}

/// The fields of a JOSE header SAM reads before choosing a key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

pub(crate) fn err(kind: TokenErrorKind, message: &str) -> TokenError {
    TokenError::new(kind, message)
}

/// Reads `alg` and `kid` from a compact token, refusing anything but RS256.
pub(crate) fn header_kid(token: &str) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(err(TokenErrorKind::Malformed, "token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(err(TokenErrorKind::Malformed, "not a compact JWS"));
    };
    let bytes =
        URL_SAFE_NO_PAD.decode(header).map_err(|_| err(TokenErrorKind::Malformed, "header is not base64url"))?;
    let header: RawHeader =
        serde_json::from_slice(&bytes).map_err(|_| err(TokenErrorKind::Malformed, "header is not a JOSE header"))?;
    if header.alg != "RS256" {
        return Err(err(TokenErrorKind::UnsupportedAlgorithm, "only RS256 is accepted"));
    }
    header.kid.ok_or_else(|| err(TokenErrorKind::UnknownKey, "token has no kid"))
}

/// Verifies `token` with `key` (already chosen by `kid`): the signature over
/// `header.payload`, then `iss`, `aud`, and `exp`/`nbf` against `now`.
pub(crate) fn verify_with_key(
    token: &str,
    key: &RsaPublicKey,
    issuer: &str,
    audience: Audience,
    leeway_secs: u64,
    now: Timestamp,
) -> Result<VerifiedToken, TokenError> {
    // The header was read (RS256, a kid) before the key was chosen.
    let (signed, signature) =
        token.rsplit_once('.').ok_or_else(|| err(TokenErrorKind::Malformed, "not a compact JWS"))?;
    let (_, payload) = signed.split_once('.').ok_or_else(|| err(TokenErrorKind::Malformed, "not a compact JWS"))?;
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| err(TokenErrorKind::Malformed, "signature is not base64url"))?;
    let public = ring::signature::RsaPublicKeyComponents { n: &key.n, e: &key.e };
    public
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .map_err(|_| err(TokenErrorKind::InvalidSignature, "signature does not verify"))?;
    let payload =
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| err(TokenErrorKind::Malformed, "payload is not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|_| err(TokenErrorKind::Malformed, "claims of the wrong shape"))?;
    if claims.iss != issuer {
        return Err(err(TokenErrorKind::WrongIssuer, "unexpected issuer"));
    }
    if claims.aud != audience.as_str() {
        return Err(err(TokenErrorKind::WrongAudience, "unexpected audience"));
    }
    let leeway = i64::try_from(leeway_secs.min(MAX_LEEWAY_SECS)).unwrap_or(0);
    let now_secs = now.unix_timestamp();
    if now_secs >= claims.exp.saturating_add(leeway) {
        return Err(err(TokenErrorKind::Expired, "token expired"));
    }
    if now_secs.saturating_add(leeway) < claims.nbf {
        return Err(err(TokenErrorKind::NotYetValid, "token not yet valid"));
    }
    Ok(VerifiedToken {
        subject: claims.sub.parse::<UserId>().map_err(|_| err(TokenErrorKind::Malformed, "sub is not a user id"))?,
        workspace: claims
            .workspace
            .parse::<WorkspaceId>()
            .map_err(|_| err(TokenErrorKind::Malformed, "workspace is not a workspace id"))?,
        audience,
        id: claims.jti,
        expires_at: Timestamp::from_unix_timestamp(claims.exp)
            .map_err(|_| err(TokenErrorKind::Malformed, "exp out of range"))?,
        session: claims.sid,
    })
}

/// Public keys by `kid`, from a JWKS document: RSA signing keys for RS256
/// only; any other entry is ignored.
pub(crate) fn keys_from_jwks(set: &JwkSet) -> HashMap<String, RsaPublicKey> {
    set.keys
        .iter()
        .filter(|k| k.kty == "RSA" && k.alg == "RS256" && k.use_ == "sig")
        .filter_map(|k| RsaPublicKey::from_components(&k.n, &k.e).map(|key| (k.kid.clone(), key)))
        .collect()
}
