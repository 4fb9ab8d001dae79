//! The [`TokenIssuer`] / [`TokenVerifier`] contract.

use std::time::Duration;

use time::macros::datetime;

use crate::domain::{Timestamp, UserId, WorkspaceId};
use crate::ports::{Audience, TokenErrorKind, TokenIssuer, TokenRequest, TokenVerifier};

const T0: Timestamp = datetime!(2026-01-01 00:00:00 UTC);

/// Runs the suite. `verifier` must accept `issuer`'s tokens; `foreign` is an
/// issuer with a different key and issuer name. Leeway of the verifier must
/// be at most 5 seconds.
pub async fn run(issuer: &dyn TokenIssuer, verifier: &dyn TokenVerifier, foreign: &dyn TokenIssuer) {
    let request = TokenRequest {
        audience: Audience::WorkspaceTerminal,
        subject: UserId::new(),
        workspace: WorkspaceId::new(),
        ttl: Duration::from_secs(300),
        session: Some("5e55".repeat(16)),
    };
    let issued = issuer.issue(request.clone(), T0).expect("issue");
    assert_eq!(issued.expires_at, T0 + Duration::from_secs(300));

    let ok = verifier
        .verify(issued.token.expose(), Audience::WorkspaceTerminal, T0 + Duration::from_secs(10))
        .await
        .expect("valid");
    assert_eq!(ok.subject, request.subject);
    assert_eq!(ok.workspace, request.workspace);
    assert_eq!(ok.audience, Audience::WorkspaceTerminal);
    assert_eq!(ok.id, issued.id);
    assert_eq!(ok.session, request.session, "the sign-in it was issued under");
    let without = TokenRequest { session: None, ..request.clone() };
    let plain = issuer.issue(without, T0).expect("issue");
    let plain = verifier.verify(plain.token.expose(), Audience::WorkspaceTerminal, T0).await.expect("valid");
    assert_eq!(plain.session, None);

    let second = issuer.issue(request.clone(), T0).expect("issue");
    assert_ne!(second.id, issued.id, "every token has its own jti");

    let kind = |r: Result<_, crate::ports::TokenError>| r.expect_err("must be rejected").kind;
    let token = issued.token.expose();
    assert_eq!(
        kind(verifier.verify(token, Audience::WorkspaceTerminal, T0 + Duration::from_secs(306)).await),
        TokenErrorKind::Expired
    );
    assert_eq!(
        kind(verifier.verify(token, Audience::WorkspaceTerminal, T0 - Duration::from_secs(60)).await),
        TokenErrorKind::NotYetValid
    );
    assert_eq!(kind(verifier.verify(token, Audience::WorkspaceCallback, T0).await), TokenErrorKind::WrongAudience);

    let forged = foreign.issue(request, T0).expect("issue foreign");
    let forged_kind = kind(verifier.verify(forged.token.expose(), Audience::WorkspaceTerminal, T0).await);
    assert!(
        matches!(
            forged_kind,
            TokenErrorKind::UnknownKey | TokenErrorKind::InvalidSignature | TokenErrorKind::WrongIssuer
        ),
        "a token from another issuer is refused: {forged_kind:?}"
    );

    // Tamper with the last character of the claims section.
    let parts: Vec<&str> = token.split('.').collect();
    assert!(parts.len() >= 3, "compact token format");
    let claims_index = parts.len() - 2;
    let mut tampered_parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
    let claims = &mut tampered_parts[claims_index];
    let last = claims.pop().unwrap_or('A');
    claims.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = tampered_parts.join(".");
    let tampered_kind = kind(verifier.verify(&tampered, Audience::WorkspaceTerminal, T0).await);
    assert!(
        matches!(tampered_kind, TokenErrorKind::InvalidSignature | TokenErrorKind::Malformed),
        "tampered: {tampered_kind:?}"
    );

    for garbage in ["", "abc", "a.b.c", "....", &"x".repeat(10_000)] {
        assert!(verifier.verify(garbage, Audience::WorkspaceTerminal, T0).await.is_err(), "garbage {garbage:.10}");
    }
}
