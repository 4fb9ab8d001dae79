use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ports::{Cipher, CipherError, CipherErrorKind, SealContext};
use crate::secret::{SecretBytes, constant_time_eq, fill_random};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 12;
const TAG: usize = 16;

/// A test cipher with a key ring and the same blob layout and failure modes as
/// the real one (`version ‖ key id ‖ nonce ‖ ciphertext ‖ tag`), built from
/// SHA-256 so `sam-core` needs no AEAD crate. **Not for production**: it exists
/// so engine tests can seal and open without the real adapter.
#[derive(Debug, Clone)]
pub struct FakeCipher {
    keys: BTreeMap<u32, [u8; 32]>,
    active: u32,
}

impl FakeCipher {
    /// A ring with one key, `key_id`, derived from `seed`.
    pub fn new(key_id: u32, seed: &str) -> Self {
        Self { keys: BTreeMap::from([(key_id, derive(seed))]), active: key_id }
    }

    /// This ring plus a new active key (the old ones still open).
    pub fn rotated(&self, key_id: u32, seed: &str) -> Self {
        let mut next = self.clone();
        next.keys.insert(key_id, derive(seed));
        next.active = key_id;
        next
    }

    fn keystream_xor(key: &[u8; 32], nonce: &[u8], data: &mut [u8]) {
        for (counter, chunk) in data.chunks_mut(32).enumerate() {
            let block = Sha256::new()
                .chain_update(key)
                .chain_update(nonce)
                .chain_update((counter as u64).to_be_bytes())
                .finalize();
            for (byte, k) in chunk.iter_mut().zip(block.iter()) {
                *byte ^= k;
            }
        }
    }

    fn tag(key: &[u8; 32], header: &[u8], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG] {
        let digest = Sha256::new()
            .chain_update(b"tag")
            .chain_update(key)
            .chain_update((aad.len() as u64).to_be_bytes())
            .chain_update(aad)
            .chain_update(header)
            .chain_update(ciphertext)
            .finalize();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&digest[..TAG]);
        tag
    }
}

fn derive(seed: &str) -> [u8; 32] {
    Sha256::digest(seed.as_bytes()).into()
}

impl Cipher for FakeCipher {
    fn seal(&self, plaintext: &[u8], context: SealContext<'_>) -> Result<Vec<u8>, CipherError> {
        let key = self.keys.get(&self.active).ok_or(CipherError::new(CipherErrorKind::Internal, "no active key"))?;
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce).map_err(|_| CipherError::new(CipherErrorKind::Internal, "no randomness"))?;
        let mut blob = Vec::with_capacity(HEADER + plaintext.len() + TAG);
        blob.push(VERSION);
        blob.extend_from_slice(&self.active.to_be_bytes());
        blob.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        Self::keystream_xor(key, &nonce, &mut body);
        let tag = Self::tag(key, &blob, &context.aad(), &body);
        blob.extend_from_slice(&body);
        blob.extend_from_slice(&tag);
        Ok(blob)
    }

    fn open(&self, blob: &[u8], context: SealContext<'_>) -> Result<SecretBytes, CipherError> {
        if blob.len() < HEADER + TAG {
            return Err(CipherError::new(CipherErrorKind::Malformed, "blob too short"));
        }
        if blob[0] != VERSION {
            return Err(CipherError::new(CipherErrorKind::UnknownVersion, "unknown blob version"));
        }
        let key_id = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let key = self.keys.get(&key_id).ok_or(CipherError::new(CipherErrorKind::UnknownKey, "key not in ring"))?;
        let (header, rest) = blob.split_at(HEADER);
        let (body, tag) = rest.split_at(rest.len() - TAG);
        if !constant_time_eq(&Self::tag(key, header, &context.aad(), body), tag) {
            return Err(CipherError::new(CipherErrorKind::Authentication, "authentication failed"));
        }
        let mut plain = body.to_vec();
        Self::keystream_xor(key, &header[5..], &mut plain);
        Ok(SecretBytes::new(plain))
    }

    fn needs_reseal(&self, blob: &[u8]) -> bool {
        blob.len() < 5 || u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]) != self.active
    }
}
