//! Signing (feature `jwt`): RSA key pairs on `aws-lc-rs`, tokens through
//! `jsonwebtoken`, the JWKS document.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sam_core::domain::Timestamp;
use sam_core::ports::{
    Audience, IssuedToken, Jwk, JwkSet, TokenError, TokenErrorKind, TokenIssuer, TokenRequest, TokenVerifier,
    VerifiedToken,
};
use sam_core::secret::{SecretString, random_token};
use sha2::{Digest as _, Sha256};

use super::rs256::{Claims, RsaPublicKey, err, header_kid, verify_with_key};
use super::{JwtVerifier, MAX_LEEWAY_SECS, MIN_RSA_BITS};

/// A key that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    /// Not a PEM block of the expected kind.
    #[error("not a PEM-encoded RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)")]
    Pem,
    /// The key was rejected (invalid, or shorter than 2048 bits).
    #[error("RSA key rejected: {0}")]
    Rejected(String),
    /// Key generation failed.
    #[error("RSA key generation failed")]
    Generate,
}

/// An RSA key pair for RS256 with its public JWK and `kid` (RFC 7638
/// thumbprint). The private key is never printed.
#[derive(Clone)]
pub struct RsaSigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: RsaPublicKey,
    jwk: Jwk,
    pkcs8_pem: SecretString,
    public_pem: String,
    bits: usize,
}

impl RsaSigningKey {
    /// Generates a new key pair of `bits` (2048, 3072 or 4096).
    pub fn generate(bits: usize) -> Result<Self, JwtKeyError> {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(JwtKeyError::Rejected(format!("unsupported key size {bits}"))),
        };
        let pair = KeyPair::generate(size).map_err(|_| JwtKeyError::Generate)?;
        let der = pair.as_der().map_err(|_| JwtKeyError::Generate)?;
        let pem = SecretString::new(pem_encode("PRIVATE KEY", der.as_ref()));
        Self::from_pem(pem.expose())
    }

    /// Loads a PEM private key: PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what
    /// [`RsaSigningKey::generate`] writes) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, JwtKeyError> {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let (label, der) = pem_decode(pem).ok_or(JwtKeyError::Pem)?;
        let der = zeroize::Zeroizing::new(der);
        let pair = match label.as_str() {
            "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der),
            _ => return Err(JwtKeyError::Pem),
        }
        .map_err(|e| JwtKeyError::Rejected(e.to_string()))?;
        let bits = pair.public_modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(JwtKeyError::Rejected(format!("{bits}-bit modulus; at least {MIN_RSA_BITS} bits needed")));
        }
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = rfc7638_thumbprint(&n, &e);
        let spki = public.as_der().map_err(|e| JwtKeyError::Rejected(e.to_string()))?;
        let pkcs8 = pair.as_der().map_err(|e| JwtKeyError::Rejected(e.to_string()))?;
        let pkcs8_pem = SecretString::new(pem_encode("PRIVATE KEY", pkcs8.as_ref()));
        let encoding = EncodingKey::from_rsa_pem(pkcs8_pem.expose().as_bytes())
            .map_err(|e| JwtKeyError::Rejected(e.to_string()))?;
        let decoding = RsaPublicKey::from_components(&n, &e)
            .ok_or_else(|| JwtKeyError::Rejected("the public key does not decode".into()))?;
        let jwk = Jwk { kty: "RSA".into(), kid: kid.clone(), alg: "RS256".into(), use_: "sig".into(), n, e };
        Ok(Self { kid, encoding, decoding, jwk, pkcs8_pem, public_pem: pem_encode("PUBLIC KEY", spki.as_ref()), bits })
    }

    /// The key id: RFC 7638 SHA-256 thumbprint of the public key, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key as PKCS#8 PEM (the key file format).
    pub fn private_pem(&self) -> &SecretString {
        &self.pkcs8_pem
    }

    /// The public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }
}

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigningKey").field("kid", &self.kid).field("bits", &self.bits).finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of an RSA public key: base64url(SHA-256 of
/// `{"e":"<e>","kty":"RSA","n":"<n>"}`).
pub fn rfc7638_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and DER bytes of the first PEM block.
fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_and_end = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_and_end.find(&end_marker)?;
    let body: String = body_and_end[..body_end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).ok()?;
    Some((label, der))
}

struct RingEntry {
    key: Arc<RsaSigningKey>,
    /// For keys that no longer sign: when their last token has expired.
    retire_at: Option<Timestamp>,
}

/// Signs RS256 tokens with the active key of a ring and publishes every key
/// that is not retired. Rotation: [`JwtIssuer::rotate`] makes a new key the
/// signer and keeps the old one in the JWKS until its tokens have expired;
/// [`JwtIssuer::retire_expired`] then drops it. Also verifies its own tokens
/// (the control plane checks callback tokens this way).
pub struct JwtIssuer {
    issuer: String,
    leeway_secs: u64,
    ring: RwLock<Vec<RingEntry>>,
}

impl JwtIssuer {
    /// An issuer named `issuer` (the `iss` claim, e.g. the control plane's
    /// URL) signing with `key`.
    pub fn new(issuer: impl Into<String>, key: RsaSigningKey) -> Self {
        Self {
            issuer: issuer.into(),
            leeway_secs: MAX_LEEWAY_SECS,
            ring: RwLock::new(vec![RingEntry { key: Arc::new(key), retire_at: None }]),
        }
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<RingEntry>> {
        self.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<RingEntry>> {
        self.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `kid` of the signing key.
    pub fn active_kid(&self) -> String {
        self.read().first().map(|e| e.key.kid.clone()).unwrap_or_default()
    }

    /// Makes `key` the signing key. The previous signer keeps verifying and
    /// stays in the JWKS until `old_tokens_expire_at` (now + the longest token
    /// lifetime issued, plus leeway), after which
    /// [`JwtIssuer::retire_expired`] removes it.
    pub fn rotate(&self, key: RsaSigningKey, old_tokens_expire_at: Timestamp) {
        let mut ring = self.write();
        for entry in ring.iter_mut() {
            if entry.retire_at.is_none() {
                entry.retire_at = Some(old_tokens_expire_at);
            }
        }
        ring.retain(|e| e.key.kid != key.kid);
        ring.insert(0, RingEntry { key: Arc::new(key), retire_at: None });
        tracing::info!(kid = %ring[0].key.kid, "token signing key rotated");
    }

    /// Drops keys whose tokens have all expired at `now`; returns how many.
    pub fn retire_expired(&self, now: Timestamp) -> usize {
        let mut ring = self.write();
        let before = ring.len();
        ring.retain(|e| e.retire_at.is_none_or(|at| at > now));
        before - ring.len()
    }

    /// The `kid`s in the ring, signer first.
    pub fn kids(&self) -> Vec<String> {
        self.read().iter().map(|e| e.key.kid.clone()).collect()
    }

    /// A verifier holding the ring's current public keys.
    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::from_jwks(self.issuer.clone(), &self.jwks())
    }
}

impl fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtIssuer").field("issuer", &self.issuer).field("kids", &self.kids()).finish()
    }
}

impl TokenIssuer for JwtIssuer {
    fn issue(&self, request: TokenRequest, now: Timestamp) -> Result<IssuedToken, TokenError> {
        let key = self
            .read()
            .first()
            .map(|e| e.key.clone())
            .ok_or_else(|| err(TokenErrorKind::Unavailable, "no signing key"))?;
        let jti = random_token().map_err(|_| err(TokenErrorKind::Unavailable, "no randomness for the token id"))?;
        let expires_at = now + request.ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: request.audience.as_str().to_owned(),
            sub: request.subject.to_string(),
            workspace: request.workspace.to_string(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            jti: jti.expose().to_owned(),
            sid: request.session.clone(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TokenError::new(TokenErrorKind::Unavailable, format!("signing failed: {e}")))?;
        Ok(IssuedToken {
            token: SecretString::new(token),
            id: claims.jti,
            expires_at: Timestamp::from_unix_timestamp(claims.exp)
                .map_err(|_| err(TokenErrorKind::Unavailable, "expiry out of range"))?,
        })
    }

    fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.read().iter().map(|e| e.key.jwk.clone()).collect() }
    }
}

#[async_trait::async_trait]
impl TokenVerifier for JwtIssuer {
    async fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let kid = header_kid(token)?;
        let key = self
            .read()
            .iter()
            .find(|e| e.key.kid == kid)
            .map(|e| e.key.clone())
            .ok_or_else(|| err(TokenErrorKind::UnknownKey, "unknown kid"))?;
        verify_with_key(token, &key.decoding, &self.issuer, audience, self.leeway_secs, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(rfc7638_thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn pem_round_trip() {
        let pem = pem_encode("PRIVATE KEY", &[1, 2, 3, 250]);
        assert_eq!(pem_decode(&pem), Some(("PRIVATE KEY".to_owned(), vec![1, 2, 3, 250])));
        assert_eq!(pem_decode("garbage"), None);
    }
}
