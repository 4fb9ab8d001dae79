//! The [`Cipher`] contract.

use crate::domain::{CredentialProvider, UserId};
use crate::ports::{Cipher, CipherErrorKind, SealContext};

fn context(user: UserId, purpose: &str) -> SealContext<'_> {
    SealContext { user_id: user, provider: CredentialProvider::HETZNER, purpose }
}

/// Runs the suite. `rotated` must be `cipher`'s key ring plus a new active key;
/// `stranger` a ring that shares no key with either.
pub async fn run(cipher: &dyn Cipher, rotated: &dyn Cipher, stranger: &dyn Cipher) {
    round_trip(cipher);
    binds_context(cipher);
    rejects_damage(cipher);
    nonces_differ(cipher);
    rotation(cipher, rotated);
    let user = UserId::new();
    let blob = cipher.seal(b"secret", context(user, "api-token")).expect("seal");
    let err = stranger.open(&blob, context(user, "api-token")).expect_err("a ring without the key");
    assert_eq!(err.kind, CipherErrorKind::UnknownKey);
}

/// Seal then open gives the plaintext back, for empty and large inputs too.
pub fn round_trip(cipher: &dyn Cipher) {
    let user = UserId::new();
    for plaintext in [&b""[..], b"hcloud-token-1234", &[0xffu8; 4096][..]] {
        let blob = cipher.seal(plaintext, context(user, "api-token")).expect("seal");
        assert!(
            !blob.windows(plaintext.len().max(1)).any(|w| plaintext.len() > 4 && w == plaintext),
            "no plaintext in the blob"
        );
        let opened = cipher.open(&blob, context(user, "api-token")).expect("open");
        assert_eq!(opened.expose(), plaintext);
    }
}

/// A blob opened under another user, provider purpose fails authentication.
pub fn binds_context(cipher: &dyn Cipher) {
    let user = UserId::new();
    let blob = cipher.seal(b"token", context(user, "api-token")).expect("seal");
    let err = cipher.open(&blob, context(UserId::new(), "api-token")).expect_err("another user");
    assert_eq!(err.kind, CipherErrorKind::Authentication);
    let err = cipher.open(&blob, context(user, "other-purpose")).expect_err("another purpose");
    assert_eq!(err.kind, CipherErrorKind::Authentication);
}

/// Flipped bits, truncation and unknown versions are typed errors, never panics.
pub fn rejects_damage(cipher: &dyn Cipher) {
    let user = UserId::new();
    let ctx = context(user, "api-token");
    let blob = cipher.seal(b"some token value", ctx).expect("seal");
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let err = cipher.open(&bad, ctx).expect_err("a flipped bit is detected");
        assert!(
            matches!(
                err.kind,
                CipherErrorKind::Authentication | CipherErrorKind::UnknownKey | CipherErrorKind::UnknownVersion
            ),
            "byte {i}: {err:?}"
        );
    }
    for len in 0..blob.len() {
        assert!(cipher.open(&blob[..len], ctx).is_err(), "truncated to {len} bytes");
    }
    let mut unknown = blob.clone();
    unknown[0] = 0xee;
    assert_eq!(cipher.open(&unknown, ctx).expect_err("version").kind, CipherErrorKind::UnknownVersion);
    assert_eq!(cipher.open(&[], ctx).expect_err("empty").kind, CipherErrorKind::Malformed);
}

/// Sealing the same plaintext twice gives different blobs (fresh nonces).
pub fn nonces_differ(cipher: &dyn Cipher) {
    let user = UserId::new();
    let a = cipher.seal(b"same", context(user, "p")).expect("seal");
    let b = cipher.seal(b"same", context(user, "p")).expect("seal");
    assert_ne!(a, b);
}

/// After rotation old blobs still open, new blobs use the new key, and old
/// blobs are flagged for re-sealing.
pub fn rotation(cipher: &dyn Cipher, rotated: &dyn Cipher) {
    let user = UserId::new();
    let ctx = context(user, "api-token");
    let old = cipher.seal(b"old secret", ctx).expect("seal");
    assert!(!cipher.needs_reseal(&old));
    assert!(rotated.needs_reseal(&old), "a blob under the old key needs re-sealing");
    assert_eq!(rotated.open(&old, ctx).expect("old blob opens after rotation").expose(), b"old secret");
    let new = rotated.seal(b"old secret", ctx).expect("reseal");
    assert!(!rotated.needs_reseal(&new));
    assert_eq!(cipher.open(&new, ctx).expect_err("old ring lacks the new key").kind, CipherErrorKind::UnknownKey);
}
