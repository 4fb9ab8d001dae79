use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::{Timestamp, UserId, WorkspaceId};
use crate::ports::{
    Audience, IssuedToken, JwkSet, TokenError, TokenErrorKind, TokenIssuer, TokenRequest, TokenVerifier, VerifiedToken,
};
use crate::secret::{SecretString, constant_time_eq, random_token};

/// A token issuer and verifier in one, signing with SHA-256 keyed hashes under
/// a `kid`, with the same checks and error kinds as the RS256 adapter (issuer,
/// audience, expiry, not-before, unknown key, tampering). **Not for
/// production.** Tokens look like `fake.<kid>.<claims>.<signature>`.
#[derive(Debug, Clone)]
pub struct FakeTokenAuthority {
    issuer: String,
    keys: BTreeMap<String, [u8; 32]>,
    active: String,
}

impl FakeTokenAuthority {
    /// An authority named `issuer` with one key.
    pub fn new(issuer: &str, kid: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            keys: BTreeMap::from([(kid.to_owned(), Sha256::digest(kid.as_bytes()).into())]),
            active: kid.to_owned(),
        }
    }

    /// Adds a key and makes it the signing key; older keys still verify.
    pub fn rotate(&mut self, kid: &str) {
        self.keys.insert(kid.to_owned(), Sha256::digest(kid.as_bytes()).into());
        self.active = kid.to_owned();
    }

    /// Drops a key: tokens it signed no longer verify.
    pub fn retire(&mut self, kid: &str) {
        self.keys.remove(kid);
    }

    fn sign(key: &[u8; 32], kid: &str, claims: &str) -> String {
        let digest =
            Sha256::new().chain_update(key).chain_update(kid).chain_update(claims).chain_update(key).finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }
}

fn unix(t: Timestamp) -> i64 {
    t.unix_timestamp()
}

fn malformed() -> TokenError {
    TokenError::new(TokenErrorKind::Malformed, "not a well-formed token")
}

impl TokenIssuer for FakeTokenAuthority {
    fn issue(&self, request: TokenRequest, now: Timestamp) -> Result<IssuedToken, TokenError> {
        let key = self.keys.get(&self.active).ok_or_else(|| TokenError::new(TokenErrorKind::Unavailable, "no key"))?;
        let jti = random_token().map_err(|e| TokenError::new(TokenErrorKind::Unavailable, e.to_string()))?;
        let expires_at = now + request.ttl;
        let claims = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.issuer,
            request.audience.as_str(),
            request.subject,
            request.workspace,
            unix(now),
            unix(now),
            unix(expires_at),
            jti.expose(),
            request.session.as_deref().unwrap_or_default()
        );
        let encoded = URL_SAFE_NO_PAD.encode(claims.as_bytes());
        let signature = Self::sign(key, &self.active, &encoded);
        Ok(IssuedToken {
            token: SecretString::new(format!("fake.{}.{encoded}.{signature}", self.active)),
            id: jti.expose().to_owned(),
            expires_at,
        })
    }

    fn jwks(&self) -> JwkSet {
        JwkSet::default()
    }
}

#[async_trait]
impl TokenVerifier for FakeTokenAuthority {
    async fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let mut parts = token.split('.');
        let (Some(alg), Some(kid), Some(encoded), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if alg != "fake" {
            return Err(TokenError::new(TokenErrorKind::UnsupportedAlgorithm, "only the fake algorithm is accepted"));
        }
        let key = self.keys.get(kid).ok_or_else(|| TokenError::new(TokenErrorKind::UnknownKey, "unknown kid"))?;
        if !constant_time_eq(Self::sign(key, kid, encoded).as_bytes(), signature.as_bytes()) {
            return Err(TokenError::new(TokenErrorKind::InvalidSignature, "signature mismatch"));
        }
        let claims = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
        let claims = String::from_utf8(claims).map_err(|_| malformed())?;
        let fields: Vec<&str> = claims.split('|').collect();
        let [iss, aud, sub, ws, _iat, nbf, exp, jti, sid] = fields.as_slice() else {
            return Err(malformed());
        };
        if *iss != self.issuer {
            return Err(TokenError::new(TokenErrorKind::WrongIssuer, "unexpected issuer"));
        }
        if *aud != audience.as_str() {
            return Err(TokenError::new(TokenErrorKind::WrongAudience, "unexpected audience"));
        }
        let nbf: i64 = nbf.parse().map_err(|_| malformed())?;
        let exp: i64 = exp.parse().map_err(|_| malformed())?;
        if unix(now) >= exp {
            return Err(TokenError::new(TokenErrorKind::Expired, "token expired"));
        }
        if unix(now) < nbf {
            return Err(TokenError::new(TokenErrorKind::NotYetValid, "token not yet valid"));
        }
        Ok(VerifiedToken {
            subject: sub.parse::<UserId>().map_err(|_| malformed())?,
            workspace: ws.parse::<WorkspaceId>().map_err(|_| malformed())?,
            audience,
            id: (*jti).to_owned(),
            expires_at: Timestamp::from_unix_timestamp(exp).map_err(|_| malformed())?,
            session: (!sid.is_empty()).then(|| (*sid).to_owned()),
        })
    }
}
