use crate::domain::{CredentialProvider, UserId};
use crate::secret::SecretBytes;

/// What a sealed blob is bound to. The adapter feeds it (with the key id) into
/// the AEAD's associated data, so a blob copied to another user's row, another
/// provider or another purpose fails to open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SealContext<'a> {
    /// Owner.
    pub user_id: UserId,
    /// Provider the secret belongs to.
    pub provider: CredentialProvider,
    /// What the secret is for, e.g. `api-token`.
    pub purpose: &'a str,
}

impl SealContext<'_> {
    /// Canonical associated-data bytes: `sam/v1|<user>|<provider>|<purpose>`.
    pub fn aad(&self) -> Vec<u8> {
        format!("sam/v1|{}|{}|{}", self.user_id, self.provider.as_str(), self.purpose).into_bytes()
    }
}

/// Why a blob could not be sealed or opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum CipherErrorKind {
    /// Too short or structurally invalid.
    Malformed,
    /// The blob's format version is unknown.
    UnknownVersion,
    /// The blob was sealed with a key that is not in the key ring.
    UnknownKey,
    /// Authentication failed: wrong key, wrong context, or tampered bytes.
    Authentication,
    /// Randomness or the primitive itself failed.
    Internal,
}

/// A sealing failure. Never contains plaintext.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("cipher error ({kind:?}): {message}")]
pub struct CipherError {
    /// Kind.
    pub kind: CipherErrorKind,
    /// Detail.
    pub message: &'static str,
}

impl CipherError {
    /// An error of `kind`.
    pub const fn new(kind: CipherErrorKind, message: &'static str) -> Self {
        Self { kind, message }
    }
}

/// Authenticated encryption for secrets at rest, with a key ring: one active key
/// seals, older keys still open, so keys rotate without downtime.
///
/// Contract (checked by `testkit::conformance::cipher`): round trip; opening
/// with another context, a flipped bit or a truncated blob fails with a typed
/// error; two seals of the same plaintext differ (random nonce).
pub trait Cipher: Send + Sync + std::fmt::Debug {
    /// Seals `plaintext` bound to `context`.
    fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Result<Vec<u8>, CipherError>;

    /// Opens a blob sealed under `context` by any key in the ring.
    fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<SecretBytes, CipherError>;

    /// Whether `blob` was sealed by a key other than the active one, i.e. should
    /// be re-sealed after a rotation.
    fn needs_reseal(&self, blob: &[u8]) -> bool;
}
