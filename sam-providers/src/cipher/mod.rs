//! [`Cipher`] with AES-256-GCM and a key ring (feature `cipher`).
//!
//! # Blob format (version 1)
//!
//! ```text
//! offset  size  field
//! 0       1     format version, 0x01
//! 1       4     key id, big-endian u32 (see AesKey::id)
//! 5       12    nonce, random per seal (96 bits from the OS CSPRNG)
//! 17      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then the tag
//! ```
//!
//! The associated data is [`SealContext::aad`] (`sam/v1|<user>|<provider>|<purpose>`)
//! followed by `|key=<key id as 8 hex digits>`, so a blob copied to another
//! user's row, provider or purpose, or relabelled with another key id, fails
//! to open with [`CipherErrorKind::Authentication`].
//!
//! # Keys
//!
//! An [`AesKey`] is 32 random bytes; its id is derived from the key itself
//! (the first four bytes of `SHA-256("sam-aes-key-id/v1" ‖ key)`), so every
//! replica computes the same id from the same key file and no id bookkeeping
//! is needed. A key file holds the key as standard base64 (44 characters) on
//! one line; see `keys` for generation.
//!
//! A ring ([`AesGcmCipher`]) has one active key, which seals, and any number
//! of older keys, which still open. After a rotation, [`reseal_all`] re-seals
//! every stored credential under the active key; then the old key can go.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sam_core::ports::{Cipher, CipherError, CipherErrorKind, SealContext};
use sam_core::secret::{SecretBytes, SecretString, fill_random};
use secrecy::{ExposeSecret as _, SecretBox};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

mod reseal;

pub use reseal::{ResealError, ResealReport, reseal_all};

/// The purpose string SAM seals cloud API tokens under.
pub const API_TOKEN_PURPOSE: &str = "api-token";

/// The blob format this module writes.
pub const BLOB_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// The shortest valid blob (empty plaintext).
pub const MIN_BLOB_LEN: usize = HEADER_LEN + TAG_LEN;

/// A key that cannot be used: wrong length, not base64, or a ring whose keys
/// share an id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64 of exactly 32 bytes.
    #[error("an AES-256 key must be 32 bytes, base64-encoded")]
    Format,
    /// Two keys of a ring have the same id (the same key twice, or a collision).
    #[error("two keys in the ring have the id {0:08x}")]
    DuplicateId(u32),
    /// The operating system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A 256-bit AES key with its derived id. The key bytes are zeroed on drop and
/// never printed.
pub struct AesKey {
    id: u32,
    bytes: SecretBox<[u8; 32]>,
}

impl AesKey {
    /// Wraps key bytes (the caller should zero its copy).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(b"sam-aes-key-id/v1").chain_update(bytes).finalize();
        let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Self { id, bytes: SecretBox::new(Box::new(*bytes)) }
    }

    /// A fresh random key from the OS CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(&mut bytes[..]).map_err(|_| KeyError::Random)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Parses the key file format: standard base64 of 32 bytes (surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| KeyError::Format)?);
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(decoded.as_slice().try_into().map_err(|_| KeyError::Format)?);
        Ok(Self::from_bytes(&bytes))
    }

    /// The key file format: standard base64 of the 32 bytes.
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// The key id stored in every blob it seals.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AesKey {{ id: {:08x}, key: [redacted] }}", self.id)
    }
}

/// AES-256-GCM [`Cipher`] over a key ring. See the [module docs](self) for the
/// blob format.
///
/// ```
/// use sam_core::domain::{CredentialProvider, UserId};
/// use sam_core::ports::{Cipher, SealContext};
/// use sam_providers::cipher::{AesGcmCipher, AesKey};
///
/// let old = AesKey::generate().unwrap();
/// let ring = AesGcmCipher::new(AesKey::from_base64(old.to_base64().expose()).unwrap(), []).unwrap();
/// let ctx = SealContext { user_id: UserId::new(), provider: CredentialProvider::HETZNER, purpose: "api-token" };
/// let blob = ring.seal(b"hcloud-token", ctx).unwrap();
///
/// // Rotation: a new active key, the old one still opens.
/// let rotated = AesGcmCipher::new(AesKey::generate().unwrap(), [old]).unwrap();
/// assert!(rotated.needs_reseal(&blob));
/// assert_eq!(rotated.open(&blob, ctx).unwrap().expose(), b"hcloud-token");
/// ```
pub struct AesGcmCipher {
    active: u32,
    keys: BTreeMap<u32, Aes256Gcm>,
}

impl AesGcmCipher {
    /// A ring sealing with `active` and still opening blobs of `older` keys.
    pub fn new(active: AesKey, older: impl IntoIterator<Item = AesKey>) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        let active_id = active.id;
        for key in std::iter::once(active).chain(older) {
            let aead = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key.bytes.expose_secret()));
            if keys.insert(key.id, aead).is_some() {
                return Err(KeyError::DuplicateId(key.id));
            }
        }
        Ok(Self { active: active_id, keys })
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> u32 {
        self.active
    }

    /// Every key id in the ring, ascending.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The key id a blob names, if it is a well-formed version-1 blob.
    pub fn blob_key_id(blob: &[u8]) -> Option<u32> {
        if blob.len() < MIN_BLOB_LEN || blob[0] != BLOB_VERSION {
            return None;
        }
        Some(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
    }

    fn aad(context: SealContext<'_>, key_id: u32) -> Vec<u8> {
        let mut aad = context.aad();
        aad.extend_from_slice(format!("|key={key_id:08x}").as_bytes());
        aad
    }
}

impl fmt::Debug for AesGcmCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.keys().map(|id| format!("{id:08x}")).collect();
        f.debug_struct("AesGcmCipher")
            .field("active", &format_args!("{:08x}", self.active))
            .field("keys", &ids)
            .finish()
    }
}

impl Cipher for AesGcmCipher {
    fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Result<Vec<u8>, CipherError> {
        let aead = self
            .keys
            .get(&self.active)
            .ok_or(CipherError::new(CipherErrorKind::Internal, "the active key is not in the ring"))?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)
            .map_err(|_| CipherError::new(CipherErrorKind::Internal, "the system random number generator failed"))?;
        let aad = Self::aad(context, self.active);
        let ciphertext = aead
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| CipherError::new(CipherErrorKind::Internal, "encryption failed"))?;
        let mut blob = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&self.active.to_be_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<SecretBytes, CipherError> {
        let Some(&version) = blob.first() else {
            return Err(CipherError::new(CipherErrorKind::Malformed, "empty blob"));
        };
        if version != BLOB_VERSION {
            return Err(CipherError::new(CipherErrorKind::UnknownVersion, "unknown blob format version"));
        }
        if blob.len() < MIN_BLOB_LEN {
            return Err(CipherError::new(CipherErrorKind::Malformed, "blob too short"));
        }
        let key_id = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let aead = self
            .keys
            .get(&key_id)
            .ok_or(CipherError::new(CipherErrorKind::UnknownKey, "blob sealed with a key not in the ring"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = Self::aad(context, key_id);
        let plaintext = aead
            .decrypt(&Nonce::from(nonce), Payload { msg: &blob[HEADER_LEN..], aad: &aad })
            .map_err(|_| CipherError::new(CipherErrorKind::Authentication, "authentication failed"))?;
        Ok(SecretBytes::new(plaintext))
    }

    fn needs_reseal(&self, blob: &[u8]) -> bool {
        Self::blob_key_id(blob).is_some_and(|id| id != self.active)
    }
}

#[cfg(test)]
mod tests {
    use sam_core::domain::{CredentialProvider, UserId};

    use super::*;

    #[test]
    fn key_ids_are_derived_from_the_key() {
        let a = AesKey::from_bytes(&[7u8; 32]);
        let b = AesKey::from_base64(a.to_base64().expose()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), AesKey::from_bytes(&[8u8; 32]).id());
    }

    #[test]
    fn bad_key_text_is_refused() {
        assert_eq!(AesKey::from_base64("not base64!").unwrap_err(), KeyError::Format);
        assert_eq!(AesKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(), KeyError::Format);
    }

    #[test]
    fn a_ring_refuses_the_same_key_twice() {
        let err = AesGcmCipher::new(AesKey::from_bytes(&[1; 32]), [AesKey::from_bytes(&[1; 32])]).unwrap_err();
        assert!(matches!(err, KeyError::DuplicateId(_)));
    }

    #[test]
    fn blob_layout_is_as_documented() {
        let ring = AesGcmCipher::new(AesKey::from_bytes(&[3; 32]), []).unwrap();
        let ctx = SealContext { user_id: UserId::new(), provider: CredentialProvider::HETZNER, purpose: "p" };
        let blob = ring.seal(b"abc", ctx).unwrap();
        assert_eq!(blob.len(), MIN_BLOB_LEN + 3);
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(AesGcmCipher::blob_key_id(&blob), Some(ring.active_key_id()));
    }
}
