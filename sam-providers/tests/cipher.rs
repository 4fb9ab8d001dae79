//! The `Cipher` contract and the key-ring guarantees of the AES-256-GCM cipher.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::collections::HashSet;
use std::sync::Arc;

use sam_core::domain::{Credential, CredentialProvider, UserId};
use sam_core::ports::{Cipher, CipherErrorKind, SealContext, Store};
use sam_core::testkit::conformance;
use sam_core::testkit::fakes::MemoryStore;
use sam_providers::cipher::{API_TOKEN_PURPOSE, AesGcmCipher, AesKey, BLOB_VERSION, reseal_all};

fn copy(key: &AesKey) -> AesKey {
    AesKey::from_base64(key.to_base64().expose()).unwrap()
}

fn ctx(user: UserId) -> SealContext<'static> {
    SealContext { user_id: user, provider: CredentialProvider::HETZNER, purpose: API_TOKEN_PURPOSE }
}

#[tokio::test]
async fn conformance_suite() {
    let old = AesKey::generate().unwrap();
    let cipher = AesGcmCipher::new(copy(&old), []).unwrap();
    let rotated = AesGcmCipher::new(AesKey::generate().unwrap(), [old]).unwrap();
    let stranger = AesGcmCipher::new(AesKey::generate().unwrap(), []).unwrap();
    conformance::cipher::run(&cipher, &rotated, &stranger).await;
}

#[test]
fn damage_gives_distinct_typed_errors() {
    let key = AesKey::generate().unwrap();
    let ring = AesGcmCipher::new(copy(&key), []).unwrap();
    let user = UserId::new();
    let blob = ring.seal(b"hcloud-secret-token", ctx(user)).unwrap();

    assert_eq!(ring.open(&[], ctx(user)).unwrap_err().kind, CipherErrorKind::Malformed);
    assert_eq!(ring.open(&blob[..10], ctx(user)).unwrap_err().kind, CipherErrorKind::Malformed);
    let mut unknown_version = blob.clone();
    unknown_version[0] = BLOB_VERSION + 1;
    assert_eq!(ring.open(&unknown_version, ctx(user)).unwrap_err().kind, CipherErrorKind::UnknownVersion);
    let mut flipped = blob.clone();
    *flipped.last_mut().unwrap() ^= 0x80;
    assert_eq!(ring.open(&flipped, ctx(user)).unwrap_err().kind, CipherErrorKind::Authentication);
    assert_eq!(ring.open(&blob, ctx(UserId::new())).unwrap_err().kind, CipherErrorKind::Authentication);
    let other_purpose = SealContext { purpose: "webhook-secret", ..ctx(user) };
    assert_eq!(ring.open(&blob, other_purpose).unwrap_err().kind, CipherErrorKind::Authentication);

    // Wrong key: another ring whose key claims the same id (relabelled blob)
    // and another ring without the id at all.
    let other = AesGcmCipher::new(AesKey::generate().unwrap(), []).unwrap();
    assert_eq!(other.open(&blob, ctx(user)).unwrap_err().kind, CipherErrorKind::UnknownKey);
    let mut relabelled = other.seal(b"hcloud-secret-token", ctx(user)).unwrap();
    relabelled[1..5].copy_from_slice(&ring.active_key_id().to_be_bytes());
    assert_eq!(ring.open(&relabelled, ctx(user)).unwrap_err().kind, CipherErrorKind::Authentication);
}

#[test]
fn nonces_never_repeat_over_100k_seals() {
    let ring = AesGcmCipher::new(AesKey::generate().unwrap(), []).unwrap();
    let user = UserId::new();
    let mut nonces = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let blob = ring.seal(b"t", ctx(user)).unwrap();
        let nonce: [u8; 12] = blob[5..17].try_into().unwrap();
        assert!(nonces.insert(nonce), "nonce repeated");
    }
    assert_eq!(nonces.len(), 100_000);
}

#[test]
fn nothing_secret_is_printed() {
    let key = AesKey::from_bytes(&[0x41; 32]);
    let encoded = key.to_base64();
    let printed = format!("{key:?} {:?} {encoded:?}", AesGcmCipher::new(copy(&key), []).unwrap());
    assert!(!printed.contains(encoded.expose()), "{printed}");
    let ring = AesGcmCipher::new(key, []).unwrap();
    let opened = ring.open(&ring.seal(b"hcloud-plaintext", ctx(UserId::new())).unwrap(), ctx(UserId::new()));
    assert!(opened.is_err());
    let user = UserId::new();
    let opened = ring.open(&ring.seal(b"hcloud-plaintext", ctx(user)).unwrap(), ctx(user)).unwrap();
    assert!(!format!("{opened:?}").contains("hcloud"));
}

#[tokio::test]
async fn rotation_then_reseal_on_the_memory_store() {
    rotation_then_reseal_moves_every_credential_to_the_new_key(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn rotation_then_reseal_on_sqlite() {
    let store = sam_providers::store::SqliteStore::in_memory().await.unwrap();
    rotation_then_reseal_moves_every_credential_to_the_new_key(Arc::new(store)).await;
}

async fn rotation_then_reseal_moves_every_credential_to_the_new_key(store: Arc<dyn Store>) {
    let old = AesKey::generate().unwrap();
    let before = AesGcmCipher::new(copy(&old), []).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut users = Vec::new();
    for n in 0..5 {
        let user = store.upsert_user(&sam_core::testkit::sample_new_user(9000 + n), now).await.unwrap().id;
        let token = format!("hcloud-token-{n}");
        let credential = Credential {
            user_id: user,
            provider: CredentialProvider::HETZNER,
            ciphertext: before.seal(token.as_bytes(), ctx(user)).unwrap(),
            validated_at: Some(now),
            created_at: now,
            updated_at: now,
        };
        store.put_credential(&credential).await.unwrap();
        users.push((user, token));
    }

    let new = AesKey::generate().unwrap();
    let new_id = new.id();
    let new_only = AesGcmCipher::new(copy(&new), []).unwrap();
    let rotated = AesGcmCipher::new(new, [old]).unwrap();
    // Old blobs still open with the rotated ring.
    for (user, token) in &users {
        let stored = store.get_credential(*user, CredentialProvider::HETZNER).await.unwrap().unwrap();
        assert!(rotated.needs_reseal(&stored.ciphertext));
        assert_eq!(rotated.open(&stored.ciphertext, ctx(*user)).unwrap().expose(), token.as_bytes());
    }
    let later = now + time::Duration::minutes(1);
    let report = reseal_all(&*store, &rotated, CredentialProvider::HETZNER, API_TOKEN_PURPOSE, later).await.unwrap();
    assert_eq!((report.examined, report.resealed), (5, 5));
    let again = reseal_all(&*store, &rotated, CredentialProvider::HETZNER, API_TOKEN_PURPOSE, later).await.unwrap();
    assert_eq!((again.examined, again.resealed), (5, 0), "a second run has nothing to do");

    // Every credential is now under the new key alone.
    for (user, token) in &users {
        let stored = store.get_credential(*user, CredentialProvider::HETZNER).await.unwrap().unwrap();
        assert_eq!(AesGcmCipher::blob_key_id(&stored.ciphertext), Some(new_id));
        assert!(!rotated.needs_reseal(&stored.ciphertext));
        assert_eq!(new_only.open(&stored.ciphertext, ctx(*user)).unwrap().expose(), token.as_bytes());
        assert_eq!(before.open(&stored.ciphertext, ctx(*user)).unwrap_err().kind, CipherErrorKind::UnknownKey);
        assert_eq!(stored.updated_at, later);
        assert_eq!(stored.created_at, now);
    }
}
