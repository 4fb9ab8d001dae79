//! RS256 tokens: the `TokenIssuer`/`TokenVerifier` contract, every rejection
//! with its own error kind, rotation with overlap, and the agent's JWKS
//! verifier against a real HTTP server on loopback. Every test signs and
//! verifies real tokens, so a build without a `jsonwebtoken` crypto backend
//! fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers report failure by panicking

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sam_core::domain::{Timestamp, UserId, WorkspaceId};
use sam_core::ports::{Audience, TokenErrorKind, TokenIssuer, TokenRequest, TokenVerifier};
use sam_core::testkit::conformance;
use sam_core::testkit::fakes::ManualClock;
use sam_providers::jwt::{JwksVerifier, JwtIssuer, JwtVerifier, RsaSigningKey, rfc7638_thumbprint};
use time::macros::datetime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ISSUER: &str = "https://sam.example.test";
const T0: Timestamp = datetime!(2026-01-01 00:00:00 UTC);

/// RSA key generation costs tens of milliseconds; share a few keys.
fn key(n: usize) -> RsaSigningKey {
    static KEYS: OnceLock<Vec<RsaSigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..3).map(|_| RsaSigningKey::generate(2048).unwrap()).collect())[n].clone()
}

fn request() -> TokenRequest {
    TokenRequest {
        audience: Audience::WorkspaceTerminal,
        subject: UserId::new(),
        workspace: WorkspaceId::new(),
        ttl: Duration::from_secs(300),
        session: None,
    }
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

fn claims_json(iss: &str, aud: &str, nbf: i64, exp: i64) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":"{aud}","sub":"{}","workspace":"{}","iat":{nbf},"nbf":{nbf},"exp":{exp},"jti":"j1"}}"#,
        UserId::new(),
        WorkspaceId::new()
    )
}

#[tokio::test]
async fn conformance_with_a_jwks_verifier_and_with_the_issuer_itself() {
    let issuer = JwtIssuer::new(ISSUER, key(0));
    let foreign = JwtIssuer::new("https://evil.example.test", key(1));
    let verifier = JwtVerifier::from_jwks(ISSUER, &issuer.jwks());
    conformance::tokens::run(&issuer, &verifier, &foreign).await;
    conformance::tokens::run(&issuer, &issuer, &foreign).await;
    // A foreign issuer using one of *our* keys is still refused (wrong iss).
    let same_key_other_name = JwtIssuer::new("https://evil.example.test", key(0));
    conformance::tokens::run(&issuer, &verifier, &same_key_other_name).await;
}

#[tokio::test]
async fn every_rejection_has_its_own_kind() {
    let signing = key(0);
    let issuer = JwtIssuer::new(ISSUER, signing.clone());
    let verifier = JwtVerifier::from_jwks(ISSUER, &issuer.jwks());
    let kind = |r: Result<_, sam_core::ports::TokenError>| r.expect_err("must be rejected").kind;
    let good = issuer.issue(request(), T0).unwrap();
    let token = good.token.expose();
    let at = |secs: i64| T0 + time::Duration::seconds(secs);

    assert!(verifier.verify(token, Audience::WorkspaceTerminal, at(1)).await.is_ok());
    // Expiry and not-before, with at most 5 s of leeway.
    assert!(verifier.verify(token, Audience::WorkspaceTerminal, at(304)).await.is_ok(), "within leeway");
    assert_eq!(kind(verifier.verify(token, Audience::WorkspaceTerminal, at(305)).await), TokenErrorKind::Expired);
    assert!(verifier.verify(token, Audience::WorkspaceTerminal, at(-5)).await.is_ok(), "within leeway");
    assert_eq!(kind(verifier.verify(token, Audience::WorkspaceTerminal, at(-6)).await), TokenErrorKind::NotYetValid);
    // Audience.
    assert_eq!(kind(verifier.verify(token, Audience::WorkspaceCallback, at(1)).await), TokenErrorKind::WrongAudience);
    // Issuer: a verifier expecting another issuer.
    let other = JwtVerifier::from_jwks("https://other.example.test", &issuer.jwks());
    assert_eq!(kind(other.verify(token, Audience::WorkspaceTerminal, at(1)).await), TokenErrorKind::WrongIssuer);

    let parts: Vec<&str> = token.split('.').collect();
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, signing.kid());
    let claims = claims_json(ISSUER, "workspace-terminal", T0.unix_timestamp(), T0.unix_timestamp() + 300);

    // alg: none, with and without a signature.
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
    assert_eq!(
        kind(verifier.verify(&none, Audience::WorkspaceTerminal, at(1)).await),
        TokenErrorKind::UnsupportedAlgorithm
    );
    let none_kid = format!("{}.{}.{}", b64(&header.replace("RS256", "none")), b64(&claims), parts[2]);
    assert_eq!(
        kind(verifier.verify(&none_kid, Audience::WorkspaceTerminal, at(1)).await),
        TokenErrorKind::UnsupportedAlgorithm
    );

    // HS256 signed with the public key (PEM and JWK modulus) as the secret.
    for secret in [signing.public_pem().as_bytes().to_vec(), signing.public_jwk().n.as_bytes().to_vec()] {
        let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs_header.kid = Some(signing.kid().to_owned());
        let claims_value: serde_json::Value = serde_json::from_str(&claims).unwrap();
        let forged =
            jsonwebtoken::encode(&hs_header, &claims_value, &jsonwebtoken::EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(
            kind(verifier.verify(&forged, Audience::WorkspaceTerminal, at(1)).await),
            TokenErrorKind::UnsupportedAlgorithm
        );
    }

    // Tampered payload: another workspace, same signature.
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_eq!(
        kind(verifier.verify(&tampered, Audience::WorkspaceTerminal, at(1)).await),
        TokenErrorKind::InvalidSignature
    );
    // Tampered signature.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(
        kind(verifier.verify(&bad_sig, Audience::WorkspaceTerminal, at(1)).await),
        TokenErrorKind::InvalidSignature
    );

    // Unknown kid, and no kid.
    let stranger = JwtIssuer::new(ISSUER, key(1));
    let unknown = stranger.issue(request(), T0).unwrap();
    assert_eq!(
        kind(verifier.verify(unknown.token.expose(), Audience::WorkspaceTerminal, at(1)).await),
        TokenErrorKind::UnknownKey
    );
    let no_kid = format!("{}.{}.{}", b64(r#"{"alg":"RS256","typ":"JWT"}"#), parts[1], parts[2]);
    assert_eq!(kind(verifier.verify(&no_kid, Audience::WorkspaceTerminal, at(1)).await), TokenErrorKind::UnknownKey);

    // Garbage.
    for garbage in ["", "a.b", "a.b.c", "a.b.c.d", "!!!.???.***", &"x".repeat(20_000)] {
        assert_eq!(kind(verifier.verify(garbage, Audience::WorkspaceTerminal, at(1)).await), TokenErrorKind::Malformed);
    }
}

#[tokio::test]
async fn tokens_carry_the_documented_claims() {
    let issuer = JwtIssuer::new(ISSUER, key(0));
    let req = request();
    let issued = issuer.issue(req.clone(), T0).unwrap();
    let parts: Vec<&str> = issued.token.expose().split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], key(0).kid());
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], "workspace-terminal");
    assert_eq!(claims["sub"], req.subject.to_string());
    assert_eq!(claims["workspace"], req.workspace.to_string());
    assert_eq!(claims["iat"], T0.unix_timestamp());
    assert_eq!(claims["nbf"], T0.unix_timestamp());
    assert_eq!(claims["exp"], T0.unix_timestamp() + 300);
    assert_eq!(claims["jti"], issued.id);
}

#[test]
fn keys_have_rfc7638_kids_and_round_trip_through_pem() {
    let k = key(0);
    assert!(k.bits() >= 2048);
    assert_eq!(k.kid(), rfc7638_thumbprint(&k.public_jwk().n, &k.public_jwk().e));
    assert_eq!(k.public_jwk().kid, k.kid());
    let reloaded = RsaSigningKey::from_pem(k.private_pem().expose()).unwrap();
    assert_eq!(reloaded.kid(), k.kid());
    assert!(RsaSigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    assert!(RsaSigningKey::from_pem(k.public_pem()).is_err(), "a public key cannot sign");
    assert!(RsaSigningKey::generate(1024).is_err(), "short keys are refused");
    let printed = format!("{k:?}");
    assert!(!printed.contains("PRIVATE"), "{printed}");
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_they_expire() {
    let issuer = JwtIssuer::new(ISSUER, key(0));
    let old_token = issuer.issue(request(), T0).unwrap();
    issuer.rotate(key(1), T0 + Duration::from_secs(300 + 5));
    assert_eq!(issuer.active_kid(), key(1).kid());
    let new_token = issuer.issue(request(), T0 + Duration::from_secs(10)).unwrap();
    let jwks = issuer.jwks();
    let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, [key(1).kid(), key(0).kid()], "both keys published during the overlap");

    let verifier = JwtVerifier::from_jwks(ISSUER, &jwks);
    let at = T0 + Duration::from_secs(20);
    verifier.verify(old_token.token.expose(), Audience::WorkspaceTerminal, at).await.unwrap();
    verifier.verify(new_token.token.expose(), Audience::WorkspaceTerminal, at).await.unwrap();

    assert_eq!(issuer.retire_expired(T0 + Duration::from_secs(100)), 0, "old tokens still live");
    assert_eq!(issuer.retire_expired(T0 + Duration::from_secs(305)), 1);
    assert_eq!(issuer.kids(), [key(1).kid()]);
    let after = JwtVerifier::from_jwks(ISSUER, &issuer.jwks());
    let err = after.verify(old_token.token.expose(), Audience::WorkspaceTerminal, at).await.unwrap_err();
    assert_eq!(err.kind, TokenErrorKind::UnknownKey);
    issuer.verify(new_token.token.expose(), Audience::WorkspaceTerminal, at).await.unwrap();
}

/// A minimal HTTP server that serves whatever JWKS document it holds and
/// counts requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

async fn jwks_server(initial: String) -> JwksServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    let body = Arc::new(Mutex::new(initial));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (body.clone(), hits.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (b, h) = (b.clone(), h.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = b.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    JwksServer { url, body, hits }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_verifier_passes_the_contract_over_http() {
    let issuer = JwtIssuer::new(ISSUER, key(0));
    let server = jwks_server(serde_json::to_string(&issuer.jwks()).unwrap()).await;
    let verifier = JwksVerifier::new(&server.url, ISSUER).unwrap();
    let foreign = JwtIssuer::new("https://evil.example.test", key(1));
    conformance::tokens::run(&issuer, &verifier, &foreign).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_verifier_refetches_once_on_an_unknown_kid_and_rate_limits() {
    let issuer = JwtIssuer::new(ISSUER, key(0));
    let server = jwks_server(serde_json::to_string(&issuer.jwks()).unwrap()).await;
    let clock = ManualClock::new();
    let verifier = JwksVerifier::new(&server.url, ISSUER)
        .unwrap()
        .with_min_refetch_interval(Duration::from_millis(500))
        .with_clock(Arc::new(clock.clone()));
    let now = T0 + Duration::from_secs(1);

    let first = issuer.issue(request(), T0).unwrap();
    verifier.verify(first.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap();
    verifier.verify(first.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "fetched once, then cached");

    // The control plane rotates; the agent learns the new key on first sight.
    issuer.rotate(key(1), T0 + Duration::from_secs(600));
    *server.body.lock().unwrap() = serde_json::to_string(&issuer.jwks()).unwrap();
    clock.advance(Duration::from_millis(600));
    let rotated = issuer.issue(request(), T0).unwrap();
    verifier.verify(rotated.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 2, "one refetch for the new kid");
    verifier.verify(first.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap();

    // Tokens with unknown kids: one refetch, then refused without fetching
    // until the interval has passed.
    let stranger = JwtIssuer::new(ISSUER, key(2));
    clock.advance(Duration::from_millis(600));
    for _ in 0..20 {
        let forged = stranger.issue(request(), T0).unwrap();
        let err = verifier.verify(forged.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap_err();
        assert_eq!(err.kind, TokenErrorKind::UnknownKey);
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 3, "a flood of unknown kids costs one fetch");
    // Still within the interval (on the injected clock): no fetch.
    clock.advance(Duration::from_millis(400));
    let forged = stranger.issue(request(), T0).unwrap();
    verifier.verify(forged.token.expose(), Audience::WorkspaceTerminal, now).await.unwrap_err();
    assert_eq!(verifier.fetch_count().await, 3);
}

#[tokio::test]
async fn jwks_verifier_reports_an_unreachable_key_set() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let verifier = JwksVerifier::new(url, ISSUER).unwrap();
    let token = JwtIssuer::new(ISSUER, key(0)).issue(request(), T0).unwrap();
    let err = verifier.verify(token.token.expose(), Audience::WorkspaceTerminal, T0).await.unwrap_err();
    assert_eq!(err.kind, TokenErrorKind::Unavailable);
    // Within the refetch interval it does not hammer the control plane, and
    // still says why.
    let err = verifier.verify(token.token.expose(), Audience::WorkspaceTerminal, T0).await.unwrap_err();
    assert_eq!(err.kind, TokenErrorKind::Unavailable);
    assert_eq!(verifier.fetch_count().await, 1);
}
