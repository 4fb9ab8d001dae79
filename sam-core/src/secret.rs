//! Secrets: a string type that never prints itself, random tokens, and the
//! hashes SAM stores instead of tokens.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (cloud token, installation token, cookie secret). `Debug`
/// and `Display` print `[redacted]`; the memory is wiped on drop. Reading it
/// takes an explicit [`SecretString::expose`].
///
/// ```
/// use sam_core::secret::SecretString;
/// let token = SecretString::new("hcloud-abc");
/// assert_eq!(format!("{token:?}"), "SecretString([redacted])");
/// assert_eq!(token.expose(), "hcloud-abc");
/// ```
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Keep the borrow short and never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Secret bytes (a decrypted credential) with the same guarantees as
/// [`SecretString`].
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps secret bytes.
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// As a UTF-8 secret string, if it is one.
    pub fn into_secret_string(self) -> Option<SecretString> {
        std::str::from_utf8(&self.0).ok().map(SecretString::new)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([{} bytes redacted])", self.0.len())
    }
}

/// The operating system's random generator failed; nothing secret can be made.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the system random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// A fresh random token of 32 bytes (256 bits), base64url without padding
/// (43 characters): for cookies, bootstrap tokens, OAuth state and PKCE.
pub fn random_token() -> Result<SecretString, RandomError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    bytes.zeroize();
    Ok(SecretString::new(token))
}

/// Lower-case hex SHA-256 of `data`: what stores keep instead of a session or
/// bootstrap token, so a leaked database cannot be replayed.
///
/// ```
/// assert_eq!(
///     sam_core::secret::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A PKCE pair (RFC 7636, method `S256`).
///
/// ```
/// use sam_core::secret::PkcePair;
/// // The RFC 7636 appendix B example.
/// let pair = PkcePair::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
/// assert_eq!(pair.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
#[derive(Clone, Debug)]
pub struct PkcePair {
    /// Kept by the client (in a short-lived cookie) until the code exchange.
    pub verifier: SecretString,
    /// Sent in the authorize URL.
    pub challenge: String,
}

impl PkcePair {
    /// A new random pair.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self::from_verifier(random_token()?))
    }

    /// The pair for a known verifier.
    pub fn from_verifier(verifier: SecretString) -> Self {
        let challenge = pkce_challenge(verifier.expose());
        Self { verifier, challenge }
    }
}

/// `BASE64URL(SHA256(verifier))`, the `S256` code challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn secrets_never_print() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?}{s}").contains("hunter2"));
        let b = SecretBytes::new(b"hunter2".to_vec());
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
