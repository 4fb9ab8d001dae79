//! Previews at the edge: a running workspace's agent gets, per listening
//! port, a DNS record for `p<port>-ws-<id>` (where the workspace's own
//! record points, marked with the deployment) and an origin certificate
//! for exactly that name; at most [`MAX_PREVIEW_HOSTS`]; all released with
//! the workspace, and swept when a crash left them behind. The owner's
//! sign-in token for a preview is a `workspace-preview` one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::Harness;
use sam_core::engine::{EngineErrorKind, MAX_PREVIEW_HOSTS};
use sam_core::ports::{Audience, DnsProvider as _, TokenVerifier as _};

fn csr() -> String {
    format!("-----BEGIN CERTIFICATE REQUEST-----\nMII{}\n-----END CERTIFICATE REQUEST-----\n", "B".repeat(80))
}

#[tokio::test]
async fn preview_names_are_made_for_a_running_workspace_and_released_with_it() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "previews").await;
    let hosts = h.config.hosts();
    let own = h.dns.records_named(&hosts.host(&ws.id)).pop().expect("the workspace's record");

    let issued = engine.issue_preview_certificate(ws.clone(), 5173, Some(&csr())).await.unwrap();
    let name = hosts.preview_host(&ws.id, 5173).unwrap();
    assert_eq!(issued.hostname, name);
    assert!(issued.certificate_pem.as_deref().is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")));
    let records = h.dns.records_named(&name);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ipv4, own.ipv4, "where the workspace is");
    assert_eq!(records[0].owner.as_ref(), Some(&h.config.deployment), "marked as this deployment's");
    assert!(h.origin_ca.valid_hostnames().contains(&name), "a certificate for exactly that name");
    // Again (an agent restarted): still one record; without a request no certificate.
    let again = engine.issue_preview_certificate(ws.clone(), 5173, None).await.unwrap();
    assert_eq!((again.hostname.as_str(), again.certificate_pem), (name.as_str(), None));
    assert_eq!(h.dns.records_named(&name).len(), 1);

    // Bad input.
    let err = engine.issue_preview_certificate(ws.clone(), 0, None).await.unwrap_err();
    assert_eq!((err.kind, err.field), (EngineErrorKind::Invalid, Some("port")));
    let err = engine.issue_preview_certificate(ws.clone(), 3000, Some("hello")).await.unwrap_err();
    assert_eq!((err.kind, err.field), (EngineErrorKind::Invalid, Some("csr")));
    // At most MAX_PREVIEW_HOSTS names.
    for port in 1..MAX_PREVIEW_HOSTS as u16 {
        engine.issue_preview_certificate(ws.clone(), 8000 + port, None).await.unwrap();
    }
    let err = engine.issue_preview_certificate(ws.clone(), 9999, None).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState, "{err:?}");
    engine.issue_preview_certificate(ws.clone(), 5173, Some(&csr())).await.expect("an existing name is still served");

    // The sweep keeps them while the workspace runs.
    for _ in 0..2 {
        h.clock.advance(h.config.orphan_grace);
        engine.reconcile_once().await.unwrap();
    }
    assert_eq!(h.dns.records().len(), 1 + MAX_PREVIEW_HOSTS);
    h.assert_no_leaks(&[h.user]).await;

    // The owner's sign-in for a preview: a workspace-preview token.
    let access = engine.issue_preview_token(h.user, ws.id, 5173, "/app", Some("sid")).await.unwrap();
    assert!(access.url.starts_with(&format!("https://{name}/__sam/preview/callback?token=")), "{}", access.url);
    assert!(access.url.ends_with("&next=/app"));
    let verified = h.tokens.verify(access.token.expose(), Audience::WorkspacePreview, h.now()).await.unwrap();
    assert_eq!((verified.subject, verified.workspace), (h.user, ws.id));
    assert!(h.tokens.verify(access.token.expose(), Audience::WorkspaceTerminal, h.now()).await.is_err());
    let stranger = h.add_user(999).await;
    assert_eq!(
        engine.issue_preview_token(stranger, ws.id, 5173, "/", None).await.unwrap_err().kind,
        EngineErrorKind::NotFound
    );

    // Stopped: every preview record and certificate goes with the workspace's own.
    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    assert!(h.dns.records().is_empty(), "{:?}", h.dns.records());
    assert!(h.origin_ca.valid_hostnames().is_empty(), "{:?}", h.origin_ca.valid_hostnames());
    let err = engine.issue_preview_certificate(h.get(ws.id).await.unwrap(), 5173, None).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState);
    assert_eq!(
        engine.issue_preview_token(h.user, ws.id, 5173, "/", None).await.unwrap_err().kind,
        EngineErrorKind::InvalidState
    );
    h.assert_no_leaks(&[h.user]).await;
}

/// A preview record left behind (a crash between two steps) is swept after
/// the grace period; another deployment's is never touched.
#[tokio::test]
async fn orphan_preview_records_are_swept_after_the_grace() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "gone").await;
    engine.issue_preview_certificate(ws.clone(), 3000, Some(&csr())).await.unwrap();
    let name = h.config.hosts().preview_host(&ws.id, 3000).unwrap();
    let own = h.dns.records_named(&h.config.hostname(&ws.id)).pop().unwrap();
    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    // Left behind as if the release had crashed before it, and one of
    // another deployment's.
    let ours = h.config.deployment.clone();
    h.dns.upsert_a_record(&name, own.ipv4, Some(&ours)).await.unwrap();
    let theirs_name = format!("p3000-ws-{}.{}", sam_core::domain::WorkspaceId::new(), h.config.base_domain);
    let theirs = sam_core::domain::DeploymentId::new("other").unwrap();
    h.dns.upsert_a_record(&theirs_name, own.ipv4, Some(&theirs)).await.unwrap();

    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.orphan_records_deleted, 0, "grace first");
    h.clock.advance(h.config.orphan_grace);
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.orphan_records_deleted, 1);
    assert!(h.dns.records_named(&name).is_empty());
    assert_eq!(h.dns.records_named(&theirs_name).len(), 1, "another deployment's is left alone");
}
