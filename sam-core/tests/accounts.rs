//! The application layer over the testkit's fakes: sign-in, sessions, cloud
//! accounts and repository access, each rule checked where it lives.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use sam_core::accounts::{AccountsErrorKind, InstallationChange};
use sam_core::domain::{CredentialProvider, GithubUserId, InstallationId, RepoFullName};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{InstallationInfo, ProviderErrorKind};
use sam_core::secret::PkcePair;
use sam_core::testkit::fakes::Fault;
use sam_core::testkit::harness::{CLOUD_TOKEN, Harness};
use sam_core::testkit::sample_new_user;

async fn signed_in(h: &Harness, github_id: i64) -> sam_core::accounts::SignedIn {
    let pkce = PkcePair::generate().unwrap();
    let code = h.github.approve(&pkce.challenge, sample_new_user(github_id));
    h.accounts().sign_in(&code, &pkce.verifier, "https://sam.test/cb").await.unwrap()
}

#[tokio::test]
async fn sign_in_binds_the_numeric_github_id_and_opens_a_session() {
    let h = Harness::new().await;
    let first = signed_in(&h, 7).await;
    assert_eq!(first.user.github_id, GithubUserId(7));
    let session = h.accounts().session(first.session_secret.expose()).await.unwrap().expect("live session");
    assert_eq!(session.user.id, first.user.id);

    // A second sign-in of the same GitHub account is the same user.
    let again = signed_in(&h, 7).await;
    assert_eq!(again.user.id, first.user.id);
    // The GitHub token is kept sealed, never in clear.
    let stored = h.store.get_credential(first.user.id, CredentialProvider::GITHUB).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&stored.ciphertext).contains("gho_fake_7"));
}

#[tokio::test]
async fn a_code_is_exchanged_once_and_only_with_its_verifier() {
    let h = Harness::new().await;
    let pkce = PkcePair::generate().unwrap();
    let code = h.github.approve(&pkce.challenge, sample_new_user(8));
    let other = PkcePair::generate().unwrap();
    let e = h.accounts().sign_in(&code, &other.verifier, "https://sam.test/cb").await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::SignInFailed);
    h.accounts().sign_in(&code, &pkce.verifier, "https://sam.test/cb").await.unwrap();
    let replay = h.accounts().sign_in(&code, &pkce.verifier, "https://sam.test/cb").await.unwrap_err();
    assert_eq!(replay.kind, AccountsErrorKind::SignInFailed);
}

#[tokio::test]
async fn sessions_slide_expire_and_end() {
    let h = Harness::new().await;
    let accounts = h.accounts();
    let signed = signed_in(&h, 9).await;
    let secret = signed.session_secret.expose().to_owned();
    assert!(accounts.session("").await.unwrap().is_none());
    assert!(accounts.session(&"x".repeat(129)).await.unwrap().is_none());
    assert!(accounts.session("not-a-session").await.unwrap().is_none());

    // Used every 6 days, a 7-day session lives on.
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(6 * 24 * 3600));
        assert!(accounts.session(&secret).await.unwrap().is_some());
    }
    // Unused for 8 days, it is gone.
    h.clock.advance(Duration::from_secs(8 * 24 * 3600));
    assert!(accounts.session(&secret).await.unwrap().is_none());

    let a = signed_in(&h, 9).await;
    let b = signed_in(&h, 9).await;
    let session_a = accounts.session(a.session_secret.expose()).await.unwrap().unwrap();
    accounts.sign_out(session_a.user.id, &session_a.session_hash, false).await.unwrap();
    assert!(accounts.session(a.session_secret.expose()).await.unwrap().is_none());
    assert!(accounts.session(b.session_secret.expose()).await.unwrap().is_some(), "only that session ended");
    accounts.sign_out(session_a.user.id, &session_a.session_hash, true).await.unwrap();
    assert!(accounts.session(b.session_secret.expose()).await.unwrap().is_none(), "everywhere");

    // However often it is used, a session ends 30 days after sign-in (a
    // stolen cookie kept alive does not last forever).
    let kept = signed_in(&h, 9).await;
    let kept = kept.session_secret.expose().to_owned();
    for _ in 0..5 {
        h.clock.advance(Duration::from_secs(5 * 24 * 3600));
        assert!(accounts.session(&kept).await.unwrap().is_some(), "used every 5 days, within 30");
    }
    // Day 30: the sliding expiry would keep it two more days; the maximum
    // age does not.
    h.clock.advance(Duration::from_secs(5 * 24 * 3600));
    assert!(accounts.session(&kept).await.unwrap().is_none(), "30 days after sign-in");
}

#[tokio::test]
async fn a_cloud_token_is_stored_only_after_the_provider_accepts_it() {
    let h = Harness::new().await;
    let user = signed_in(&h, 10).await.user.id;
    let accounts = h.accounts();

    for bad in ["", "   ", "has space", &"x".repeat(257)] {
        let e = accounts.connect_cloud(user, CredentialProvider::HETZNER, bad).await.unwrap_err();
        assert_eq!((e.kind, e.field), (AccountsErrorKind::Invalid, Some("token")), "{bad:?}");
    }
    let e = accounts.connect_cloud(user, CredentialProvider::GITHUB, CLOUD_TOKEN).await.unwrap_err();
    assert_eq!((e.kind, e.field), (AccountsErrorKind::Invalid, Some("provider")));

    let e = accounts.connect_cloud(user, CredentialProvider::HETZNER, "forged-token").await.unwrap_err();
    assert_eq!((e.kind, e.field), (AccountsErrorKind::TokenRejected, Some("token")));
    h.cloud.faults.push("validate_credential", Fault::Fail(ProviderErrorKind::Transient));
    let e = accounts.connect_cloud(user, CredentialProvider::HETZNER, CLOUD_TOKEN).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::ProviderUnavailable);
    assert!(accounts.cloud_accounts(user).await.unwrap().is_empty(), "nothing stored");

    let connected =
        accounts.connect_cloud(user, CredentialProvider::HETZNER, &format!(" {CLOUD_TOKEN} ")).await.unwrap();
    let catalogue = connected.catalogue.expect("the catalogue is read with the new token");
    assert!(!catalogue.locations.is_empty() && !catalogue.sizes.is_empty());
    let listed = accounts.cloud_accounts(user).await.unwrap();
    assert_eq!(listed.len(), 1, "the GitHub sign-in token is not a cloud account");

    // Replacing keeps the first connection time.
    h.clock.advance(Duration::from_secs(60));
    let replaced = accounts.connect_cloud(user, CredentialProvider::HETZNER, CLOUD_TOKEN).await.unwrap();
    assert_eq!(replaced.created_at, connected.created_at);
    assert!(replaced.validated_at > connected.validated_at);
}

#[tokio::test]
async fn a_cloud_token_is_not_disconnected_while_a_workspace_needs_it() {
    let h = Harness::new().await;
    let engine = h.engine();
    let accounts = h.accounts();
    let ws = h.running(&engine, "busy").await;
    let e = accounts.disconnect_cloud(h.user, CredentialProvider::HETZNER).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::InUse);
    assert!(e.message.contains("1 workspace"), "{}", e.message);

    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Stopped));
    accounts.disconnect_cloud(h.user, CredentialProvider::HETZNER).await.unwrap();
    let e = accounts.disconnect_cloud(h.user, CredentialProvider::HETZNER).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotFound);
    let e = accounts.disconnect_cloud(h.user, CredentialProvider::GITHUB).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotFound, "the sign-in token is not a cloud account");
}

#[tokio::test]
async fn repositories_are_reached_only_through_the_users_installations() {
    let h = Harness::new().await;
    let accounts = h.accounts();
    // The harness user never signed in here, so there is no GitHub token.
    let e = accounts.installations(h.user).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::SignInRequired);

    let user = signed_in(&h, 4242).await.user.id; // installation 1 is visible to 4242
    let installations = accounts.installations(user).await.unwrap();
    assert_eq!(installations.iter().map(|i| i.id).collect::<Vec<_>>(), vec![InstallationId(1)]);
    let page = accounts.repositories(user, InstallationId(1), 0, None).await.unwrap();
    assert!(page.items.iter().any(|r| r.full_name.as_str() == "octo-org/hello-world"));
    assert!(accounts.repositories(user, InstallationId(1), 1, Some("someone-else")).await.unwrap().items.is_empty());
    let repo = RepoFullName::new("octo-org/hello-world").unwrap();
    assert!(!accounts.branches(user, &repo).await.unwrap().is_empty());
    assert_eq!(accounts.installation_for(user, &repo, None).await.unwrap(), InstallationId(1));

    let stranger = signed_in(&h, 5).await.user.id;
    let e = accounts.repositories(stranger, InstallationId(1), 1, None).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotFound);
    let e = accounts.branches(stranger, &repo).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotFound);
    assert!(!e.message.contains("github:"), "no upstream text: {}", e.message);
    let e = accounts.installation_for(stranger, &repo, None).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::AppNotInstalled);
}

#[tokio::test]
async fn a_member_reaches_only_the_repositories_github_grants_them() {
    let h = Harness::new().await;
    let accounts = h.accounts();
    let info = InstallationInfo {
        id: InstallationId(5),
        account_login: "acme".into(),
        account_type: "Organization".into(),
        account_id: GithubUserId(50),
        suspended: false,
    };
    h.github.add_installation(info, 21, &["acme/open", "acme/secret"]);
    h.github.share_installation(InstallationId(5), 22);
    h.github.hide_repository(22, "acme/secret");
    h.github.read_only(22, "acme/open");
    let admin = signed_in(&h, 21).await.user.id;
    let member = signed_in(&h, 22).await.user.id;

    let names = |page: sam_core::ports::Page<sam_core::ports::Repository>| {
        page.items.iter().map(|r| (r.full_name.to_string(), r.push)).collect::<Vec<_>>()
    };
    let all = names(accounts.repositories(admin, InstallationId(5), 1, None).await.unwrap());
    assert_eq!(all, [("acme/open".to_owned(), true), ("acme/secret".to_owned(), true)]);
    let seen = names(accounts.repositories(member, InstallationId(5), 1, None).await.unwrap());
    assert_eq!(seen, [("acme/open".to_owned(), false)], "the hidden repository is not listed; no push");

    let secret = RepoFullName::new("acme/secret").unwrap();
    assert_eq!(accounts.branches(member, &secret).await.unwrap_err().kind, AccountsErrorKind::NotFound);
    let e = accounts.installation_for(member, &secret, None).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotFound, "creating a workspace for it: 404, not 412");
    assert_eq!(accounts.installation_for(admin, &secret, None).await.unwrap(), InstallationId(5));
    let open = RepoFullName::new("acme/open").unwrap();
    assert!(!accounts.repository(member, &open).await.unwrap().push);
}

#[tokio::test]
async fn expiring_github_tokens_are_renewed_once_and_a_dead_refresh_token_asks_for_sign_in() {
    let h = Harness::new().await;
    // The fake dates its tokens by the real clock.
    h.clock.set(time::OffsetDateTime::now_utc());
    h.github.expire_tokens();
    let accounts = h.accounts();
    let user = signed_in(&h, 4242).await.user.id;
    let before = h.store.get_credential(user, CredentialProvider::GITHUB).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&before.ciphertext).contains("ghr_fake"), "the refresh token is sealed");

    // Eight hours later GitHub rejects the access token: one refresh, and
    // the call goes through.
    h.github.expire_access_tokens();
    assert_eq!(accounts.installations(user).await.unwrap().len(), 1);
    assert_eq!(h.github.refreshes(), 1);
    accounts.installations(user).await.unwrap();
    assert_eq!(h.github.refreshes(), 1, "the renewed token is kept and reused");

    // Close to its expiry (by the clock), the token is renewed before use.
    h.clock.advance(Duration::from_secs(8 * 3600 - 120));
    accounts.installations(user).await.unwrap();
    assert_eq!(h.github.refreshes(), 2, "renewed before it expired");
    h.clock.set(time::OffsetDateTime::now_utc());

    // Two replicas meet the expired token at once: both calls succeed, and
    // the user stays signed in.
    h.github.expire_access_tokens();
    let (a, b) = (h.accounts(), h.accounts());
    let before = h.github.refreshes();
    let (ra, rb) = tokio::join!(a.installations(user), b.installations(user));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(h.github.refreshes(), before + 1, "one refresh; the other replica used its result");
    accounts.installations(user).await.unwrap();

    // A dead refresh token: sign in again, with a message that says so.
    h.github.expire_access_tokens();
    h.github.revoke_refresh_tokens();
    let e = accounts.installations(user).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::SignInRequired);
    assert!(e.message.contains("sign in again"), "{}", e.message);

    // A GitHub outage during the refresh is not a sign-out.
    let user = signed_in(&h, 4242).await.user.id;
    h.github.expire_access_tokens();
    h.github.faults.push("refresh", Fault::Fail(ProviderErrorKind::Transient));
    let e = accounts.installations(user).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::ProviderUnavailable);
    accounts.installations(user).await.unwrap();
}

#[tokio::test]
async fn installation_changes_apply_idempotently_and_an_uninstall_sticks() {
    let h = Harness::new().await;
    let accounts = h.accounts();
    let info = InstallationInfo {
        id: InstallationId(77),
        account_login: "acme".into(),
        account_type: "Organization".into(),
        account_id: GithubUserId(70),
        suspended: false,
    };
    for _ in 0..2 {
        accounts.apply_installation_change(&info, InstallationChange::Created).await.unwrap();
        assert!(h.store.get_installation(info.id).await.unwrap().unwrap().is_usable());
    }
    accounts.apply_installation_change(&info, InstallationChange::Suspended).await.unwrap();
    assert!(!h.store.get_installation(info.id).await.unwrap().unwrap().is_usable());
    accounts.apply_installation_change(&info, InstallationChange::Unsuspended).await.unwrap();
    assert!(h.store.get_installation(info.id).await.unwrap().unwrap().is_usable());
    accounts.apply_installation_change(&info, InstallationChange::Deleted).await.unwrap();
    accounts.apply_installation_change(&info, InstallationChange::Deleted).await.unwrap();
    assert!(h.store.get_installation(info.id).await.unwrap().unwrap().removed_at.is_some());

    // A listing that still shows a removed installation does not revive it.
    h.github.add_installation(info.clone(), 12, &["acme/app"]);
    let user = signed_in(&h, 12).await.user.id;
    accounts.installations(user).await.unwrap();
    assert!(!h.store.get_installation(info.id).await.unwrap().unwrap().is_usable());
}

#[tokio::test]
async fn the_sign_in_policy_is_checked_at_sign_in_and_again_while_sessions_are_used() {
    use sam_core::accounts::{Accounts, AccountsConfig, RECHECK_EVERY, SignInPolicy};
    let h = Harness::new().await;
    let policy = SignInPolicy::new(["listed-login"], ["Acme"]);
    let accounts = Accounts::new(h.ports(), h.github.clone(), AccountsConfig::default().with_sign_in_policy(policy));
    let sign_in = async |github_id: i64, login: &str| {
        let pkce = PkcePair::generate().unwrap();
        let mut profile = sample_new_user(github_id);
        profile.login = login.into();
        let code = h.github.approve(&pkce.challenge, profile);
        accounts.sign_in(&code, &pkce.verifier, "https://sam.test/cb").await
    };
    let acme = InstallationInfo {
        id: InstallationId(61),
        account_login: "acme".into(),
        account_type: "Organization".into(),
        account_id: GithubUserId(60),
        suspended: false,
    };
    h.github.add_installation(acme, 31, &["acme/app"]);

    // Listed by login; a member of a listed organization; nobody else (and
    // nothing is stored for them).
    sign_in(30, "Listed-Login").await.unwrap();
    let member = sign_in(31, "member").await.unwrap();
    let e = sign_in(32, "stranger").await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotAllowed);
    assert!(e.message.contains("operator"), "{}", e.message);

    // The member leaves the organization: their session keeps working until
    // the recheck is due, then ends.
    let secret = member.session_secret.expose().to_owned();
    h.github.unshare_installation(InstallationId(61), 31);
    assert!(accounts.session(&secret).await.unwrap().is_some(), "the answer is kept for a while");
    h.clock.advance((RECHECK_EVERY + time::Duration::seconds(1)).unsigned_abs());
    let e = accounts.session(&secret).await.unwrap_err();
    assert_eq!(e.kind, AccountsErrorKind::NotAllowed);
    assert!(accounts.session(&secret).await.unwrap().is_none(), "the session is over");
}
