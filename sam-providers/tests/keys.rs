//! Key generation and key files: formats, modes, round trips.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use sam_core::domain::{CredentialProvider, UserId};
use sam_core::ports::{Audience, Cipher, SealContext, TokenIssuer, TokenRequest, TokenVerifier};
use sam_providers::cipher::AesGcmCipher;
use sam_providers::jwt::{JwtIssuer, JwtVerifier};
use sam_providers::keys::{
    KeyFileError, KeyFiles, generate_aes_key, generate_key_files, read_aes_key, read_rsa_key, write_aes_key,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn generated_files_have_the_documented_format_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let files = generate_key_files(&dir).unwrap();
    assert_eq!(files, KeyFiles::in_dir(&dir));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&files.jwt_signing_key), 0o600);
    assert_eq!(mode(&files.credentials_key), 0o600);
    assert_eq!(mode(&files.jwt_public_key), 0o644);

    let private = std::fs::read_to_string(&files.jwt_signing_key).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(private.ends_with("-----END PRIVATE KEY-----\n"));
    let public = std::fs::read_to_string(&files.jwt_public_key).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let aes = std::fs::read_to_string(&files.credentials_key).unwrap();
    assert_eq!(aes.len(), 45, "44 base64 characters and a newline");
    assert!(aes.ends_with("=\n"));

    // The keys load back and work.
    let rsa = read_rsa_key(&files.jwt_signing_key).unwrap();
    assert!(rsa.bits() >= 2048);
    assert_eq!(rsa.public_pem(), public);
    let issuer = JwtIssuer::new("https://sam.test", rsa);
    let now = time::OffsetDateTime::now_utc();
    let request = TokenRequest {
        audience: Audience::WorkspaceCallback,
        subject: UserId::new(),
        workspace: sam_core::domain::WorkspaceId::new(),
        ttl: std::time::Duration::from_secs(60),
        session: None,
    };
    let token = issuer.issue(request, now).unwrap();
    let verifier = JwtVerifier::from_jwks("https://sam.test", &issuer.jwks());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(verifier.verify(token.token.expose(), Audience::WorkspaceCallback, now)).unwrap();

    let key = read_aes_key(&files.credentials_key).unwrap();
    let ring = AesGcmCipher::new(key, []).unwrap();
    let ctx = SealContext { user_id: UserId::new(), provider: CredentialProvider::HETZNER, purpose: "api-token" };
    assert_eq!(ring.open(&ring.seal(b"x", ctx).unwrap(), ctx).unwrap().expose(), b"x");

    // Generating again never clobbers existing keys.
    assert!(matches!(generate_key_files(&dir), Err(KeyFileError::Exists(_))));
    assert_eq!(std::fs::read_to_string(&files.jwt_signing_key).unwrap(), private);
}

#[test]
fn aes_key_files_round_trip_and_refuse_overwrite_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aes.b64");
    let first = generate_aes_key().unwrap();
    write_aes_key(&path, &first, false).unwrap();
    assert_eq!(read_aes_key(&path).unwrap().id(), first.id());
    let second = generate_aes_key().unwrap();
    assert!(matches!(write_aes_key(&path, &second, false), Err(KeyFileError::Exists(_))));
    assert_eq!(read_aes_key(&path).unwrap().id(), first.id());
    write_aes_key(&path, &second, true).unwrap();
    assert_eq!(read_aes_key(&path).unwrap().id(), second.id());
    assert_eq!(mode(&path), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
}

#[test]
fn bad_key_files_are_typed_errors_without_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad");
    std::fs::write(&path, "c2VjcmV0LWJ1dC1zaG9ydA==\n").unwrap();
    let err = read_aes_key(&path).unwrap_err();
    assert!(matches!(err, KeyFileError::Aes { .. }));
    assert!(!err.to_string().contains("c2VjcmV0"));
    let err = read_rsa_key(&path).unwrap_err();
    assert!(matches!(err, KeyFileError::Rsa { .. }));
    assert!(matches!(read_aes_key(&dir.path().join("missing")), Err(KeyFileError::Io { .. })));
}
