//! GitHub adapter ↔ GitHub emulator, over real HTTP: OAuth, App tokens,
//! repositories, webhooks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sam_core::domain::{GithubUserId, InstallationId, RepoFullName};
use sam_core::ports::{IdentityProvider, ProviderErrorKind, RepoAccess, TokenScope};
use sam_core::secret::{PkcePair, SecretString, random_token};
use sam_providers::emulators::{
    Fault, GITHUB_CLIENT_ID, GITHUB_WEBHOOK_SECRET, GithubEmulator, GithubEmulatorConfig, InjectedError,
};
use sam_providers::github::{
    GithubApp, GithubConfig, InMemoryDeliveryLog, WebhookError, WebhookEvent, WebhookHeaders, WebhookVerifier,
};
use sam_providers::http::HttpConfig;

/// A second RSA key, not the emulator's: tokens signed with it must fail.
const OTHER_PRIVATE_KEY_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEArj8poL3ymkEL07LMeyWomVtvhBv7rU47EF/kPiCOTQNuJ9/a
zzE/RFnhXO7Ym9rK3XRe8uw30Gdzbde0bHi9MOKF2f2ZJz0jSN3j/sokSobIOZdL
83mu3/ODyT9EPsLNwsjfCMbatKbbcJkzzK3bOBAlsFDce4231sB3fTol+c7ijrFZ
GnNQHiF2vze6VAoGtWRI6PYJKWm91Ab059LPLzuG61THoufsdNq2fmTxV3yNJdUh
kVFs/Z6lBmca9jKTVLZzSq5KlCmHB58XcHSNYCFBr3wi6kmep7Vusi/W5BontuqQ
AenvGMX3jdro7nNvceapIO2HJcdzlzN+FaGCZQIDAQABAoIBAA9BhHmIZ/dNfqWY
YALgNzTGJqtgb9aqpM04OBmgbBUeGcTv+o5td2aan/qtBtYOf/iHudB3EiPzCs4x
NqDQqW/gRWviokgnODGnC9FBDZBg4KL6NjIpE0CUZ5N1MJp2H+HQCIcSMg/jFA91
um1PQ4RTFZmsWsGOlOv+ifey4aRPbXSZalt0X2VJXuUYVcRkCbugmwENGPWu8XUc
vgzkcn97bqVLNKu8gvZ/vi2kI6Lql0cnACS4q3rMbtc8GlJ4B/d9tOgTlP3OW4lI
llTOLDLiOCTq87Afe6tEQN+wDHYbDtQ55PAqhuJwN3fYBOKJW+frFSJ5KnbnJZnA
0gfwJzkCgYEA8+LBi5OraNsuGxHagJB/z9A2ZSoSH+kLh1mZZqKRH3upmTiP81TR
bd7vswkZed7pX5wqL0JtCL/j/qh3arWzXba3zFx0HiSCiRhgAVXI6XLP95ncExhy
Z3f4ppOVQooil0YZkf3CnEXyvmFQseUTrmTuSRRLVutLLoQF2/4gTtMCgYEAtubg
8rJK2sjZpuCG8lkCIjV4i/V+i7QxR4TFCcfd3ZGTnkBiDboXn442eLvFp4TKC6RV
w3mYzhddPhJ+vlMhUgN2pfVu3FXOA8AgrRuhJ9nB8M3V7fQkUb5Ud0eyk1zu3gNj
dJmMSOA/6MZ75912TznPA84/oxBi5/fa7UdS1ucCgYB9tuc5gXcb589OWNee6d1Y
S+WeJB+Pn1s3+7GdPDM+XUpBFuzs603BKue4C/q73XHCvQbpsX3uwqtNu51CvkKl
DeiUSRv55av76zqhtYyI+YvF/+N3XGSsfSUJCI4p7HaEL7hCjuHgGBZWmGc2K/UH
MjO6K+Hh/guVAKzch5QzzQKBgETsC6ho9zwqo5n20eNRFzS84YgcImuSo19H8NgW
sMxlpzLjIA/8KBrABFbKq1jM+TYZ3xeiIqrGsyRI4+nkeZHmLDetnPD6hH91Ttrs
pnXV4PdVGWBpt6X2Cu5H3ksZogmXTUsK8YoktvCImvhsw8BnEFNmzSQtcJfpFl6D
mfvRAoGAPTsX1VsjuD9JSWmzgdwJl+RinfUk5lz6DUlRiOLPQfvFWtP0OVedzlrt
mp/iL1sMzG+TQw7OTIaflpM8BK1HiL5puV8UGlFTWDieiAvhm58Rp0vlmBV1Vh1+
eUyhGYwPUR8ccwnF0R3PnMu7HOqiTqkw2PIc8ypur6kS2yr+oww=
-----END RSA PRIVATE KEY-----";

const REDIRECT: &str = "http://127.0.0.1:9/api/auth/callback/github";

async fn emulator() -> GithubEmulator {
    GithubEmulator::start(GithubEmulatorConfig::default()).await.unwrap()
}

fn config(emu: &GithubEmulator) -> GithubConfig {
    let mut c = GithubConfig::emulated(emu.base_url());
    c.http = HttpConfig::fast();
    c
}

fn adapter(emu: &GithubEmulator) -> GithubApp {
    GithubApp::new(config(emu)).unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Reads the hidden inputs of the authorize page's form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|part| {
            let name = part.split("name=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            let value = part.split("value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            (name, value.replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">"))
        })
        .collect()
}

/// Opens the authorize URL, clicks the button (`approve`) or cancel, and
/// returns the callback query pairs.
async fn click(url: &str, decision: &str) -> Vec<(String, String)> {
    let client = browser();
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"sign-in\""), "the page has a sign-in button");
    assert!(html.contains("octocat"));
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), decision.into()));
    let action = reqwest::Url::parse(url).unwrap().join("/login/oauth/authorize").unwrap();
    let answer = client.post(action).form(&form).send().await.unwrap();
    assert!(answer.status().is_redirection(), "redirects back: {}", answer.status());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT));
    reqwest::Url::parse(&location).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Like [`click`], with another identity's button (`user=<login>`).
async fn click_as(url: &str, login: &str) -> Vec<(String, String)> {
    let client = browser();
    let html = client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("id=\"sign-in-{login}\"")), "a button for {login}: {html}");
    let mut form = hidden_fields(&html);
    form.push(("user".into(), login.into()));
    let action = reqwest::Url::parse(url).unwrap().join("/login/oauth/authorize").unwrap();
    let answer = client.post(action).form(&form).send().await.unwrap();
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    reqwest::Url::parse(&location).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn oauth_round_trip_binds_the_numeric_id() {
    let emu = emulator().await;
    let github = adapter(&emu);
    let state = random_token().unwrap();
    let pkce = PkcePair::generate().unwrap();
    let url = github.authorize_url(state.expose(), &pkce.challenge, REDIRECT);
    assert!(url.contains("code_challenge_method=S256"));

    let callback = click(&url, "approve").await;
    // The caller compares the returned state with the one in its cookie; a
    // forged state is caught there (the adapter never sees it).
    assert_eq!(param(&callback, "state"), Some(state.expose()));
    assert_ne!(param(&callback, "state"), Some("forged-state"));
    let code = param(&callback, "code").unwrap().to_owned();

    let identity = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap();
    assert_eq!(identity.profile.github_id, GithubUserId(583_231));
    assert_eq!(identity.profile.login, "octocat");
    assert_eq!(identity.profile.email.as_deref(), Some("octocat@example.com"));
    assert!(identity.tokens.access_token.expose().starts_with("ghu_"));
    let expires = identity.tokens.expires_at.expect("a GitHub App's user token expires");
    let in_8h = time::OffsetDateTime::now_utc() + Duration::from_secs(8 * 3600);
    assert!((expires - in_8h).abs() < time::Duration::minutes(1), "8 hours: {expires}");
    assert!(identity.tokens.refresh_token.as_ref().unwrap().expose().starts_with("ghr_"));
    assert!(identity.tokens.refresh_expires_at.unwrap() > in_8h + Duration::from_secs(100 * 24 * 3600));

    // Replaying the code fails: codes are single use.
    let err = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("bad_verification_code"));
}

#[tokio::test]
async fn a_code_with_the_wrong_pkce_verifier_fails_and_is_consumed() {
    let emu = emulator().await;
    let github = adapter(&emu);
    let pkce = PkcePair::generate().unwrap();
    let callback = click(&github.authorize_url("s", &pkce.challenge, REDIRECT), "approve").await;
    let code = param(&callback, "code").unwrap().to_owned();
    let attacker = PkcePair::generate().unwrap();
    let err = github.exchange_code(&code, &attacker.verifier, REDIRECT).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);
    let err = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized, "the failed attempt consumed the code");
    assert_eq!(emu.code_exchanges(), 2, "exchanges are never retried");
}

#[tokio::test]
async fn errors_in_http_200_bodies_are_errors() {
    let emu = emulator().await;
    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve(REDIRECT, Some(&pkce.challenge));

    // What GitHub sends: 200 with an `error` field.
    let raw = browser()
        .post(format!("{}/login/oauth/access_token", emu.base_url()))
        .header("accept", "application/json")
        .form(&[("client_id", GITHUB_CLIENT_ID), ("client_secret", "wrong"), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["error"], "incorrect_client_credentials");

    let mut c = config(&emu);
    c.client_secret = SecretString::new("wrong");
    let err = GithubApp::new(c).unwrap().exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig, "{err}");
    assert!(!err.to_string().contains("wrong"), "no secret in the error");

    let code = emu.approve(REDIRECT, Some(&pkce.challenge));
    let err = adapter(&emu).exchange_code(&code, &pkce.verifier, "http://127.0.0.1:9/elsewhere").await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig);
    assert!(err.message().contains("redirect_uri_mismatch"));
}

#[tokio::test]
async fn cancel_redirects_with_access_denied() {
    let emu = emulator().await;
    let url = adapter(&emu).authorize_url("st", "challenge", REDIRECT);
    let callback = click(&url, "deny").await;
    assert_eq!(param(&callback, "error"), Some("access_denied"));
    assert_eq!(param(&callback, "state"), Some("st"));
    assert_eq!(param(&callback, "code"), None);
}

/// Signs the test user in through the adapter; their tokens.
async fn user_tokens(emu: &GithubEmulator, github: &GithubApp) -> sam_core::ports::UserTokens {
    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve(REDIRECT, Some(&pkce.challenge));
    github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap().tokens
}

fn scope(repository: &str, write: bool) -> TokenScope {
    TokenScope { repository: RepoFullName::new(repository).unwrap(), write }
}

#[tokio::test]
async fn a_refresh_token_works_once_and_rotates_the_pair() {
    let emu = emulator().await;
    emu.add_installation(1, "octocat", &[("octocat/a", &["main"])]);
    let github = adapter(&emu);
    let first = user_tokens(&emu, &github).await;
    github.list_installations(&first.access_token).await.unwrap();

    let second = github.refresh(first.refresh_token.as_ref().unwrap()).await.unwrap();
    assert_ne!(second.access_token.expose(), first.access_token.expose());
    assert_ne!(second.refresh_token.as_ref().unwrap().expose(), first.refresh_token.as_ref().unwrap().expose());
    github.list_installations(&second.access_token).await.unwrap();
    let err = github.list_installations(&first.access_token).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized, "the old access token died with the refresh");

    // A used refresh token is dead; GitHub says so in a 200.
    let err = github.refresh(first.refresh_token.as_ref().unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);
    assert!(err.message().contains("bad_refresh_token"), "{err}");
    let raw: serde_json::Value = browser()
        .post(format!("{}/login/oauth/access_token", emu.base_url()))
        .header("accept", "application/json")
        .form(&[
            ("client_id", GITHUB_CLIENT_ID),
            ("client_secret", sam_providers::emulators::GITHUB_CLIENT_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", first.refresh_token.as_ref().unwrap().expose()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["error"], "bad_refresh_token");

    // Expired access tokens are refused; the refresh token still works.
    emu.expire_user_tokens();
    let err = github.list_installations(&second.access_token).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);
    let third = github.refresh(second.refresh_token.as_ref().unwrap()).await.unwrap();
    github.list_installations(&third.access_token).await.unwrap();

    // A refresh is never resent: an outage is an error, and the token is
    // not spent by a retry.
    let before = emu.faults().count("POST", "/login/oauth/access_token");
    emu.faults().inject("POST", "/login/oauth/access_token", Fault::Error(InjectedError::Unavailable), 1);
    let err = github.refresh(third.refresh_token.as_ref().unwrap()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(emu.faults().count("POST", "/login/oauth/access_token"), before + 1, "sent once");
    github.refresh(third.refresh_token.as_ref().unwrap()).await.unwrap();
    assert_eq!(emu.refreshes(), 3);
}

#[tokio::test]
async fn installation_tokens_are_per_repository_and_never_shared() {
    let emu = emulator().await;
    emu.add_installation(77, "octocat", &[("octocat/hello", &["main"]), ("octocat/other", &["main"])]);
    let github = adapter(&emu);
    let a = github.installation_token(InstallationId(77), &scope("octocat/hello", false)).await.unwrap();
    let b = github.installation_token(InstallationId(77), &scope("octocat/hello", false)).await.unwrap();
    assert_ne!(a.token.expose(), b.token.expose(), "each caller its own token");
    assert_eq!(emu.token_mints(), 2);
    assert!(a.expires_at > time::OffsetDateTime::now_utc() + Duration::from_secs(3000));
    assert_eq!(emu.token_scope(a.token.expose()), Some((Some(vec!["octocat/hello".to_owned()]), "read".to_owned())));

    // The token reads its repository and nothing else.
    let client = browser();
    let get = |path: &str, token: &SecretString| {
        client.get(format!("{}{path}", emu.base_url())).bearer_auth(token.expose()).send()
    };
    assert_eq!(get("/repos/octocat/hello", &a.token).await.unwrap().status(), 200);
    assert_eq!(get("/repos/octocat/other", &a.token).await.unwrap().status(), 404);
    let listed: serde_json::Value = get("/installation/repositories", &a.token).await.unwrap().json().await.unwrap();
    assert_eq!(listed["total_count"], 1);

    let w = github.installation_token(InstallationId(77), &scope("octocat/hello", true)).await.unwrap();
    assert_eq!(emu.token_scope(w.token.expose()).unwrap().1, "write");
    // A repository outside the installation, or a permission the app lacks: 422.
    let err = github.installation_token(InstallationId(77), &scope("octocat/elsewhere", false)).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig, "{err}");
    emu.configure(|c| {
        c.app_permissions.insert("contents".into(), "read".into());
    });
    let err = github.installation_token(InstallationId(77), &scope("octocat/hello", true)).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::InvalidConfig, "{err}");
    assert!(err.message().contains("not granted"), "{err}");
}

#[tokio::test]
async fn app_jwt_signature_is_checked_by_the_emulator() {
    let emu = emulator().await;
    emu.add_installation(5, "octocat", &[("octocat/hello", &["main"])]);
    let mut c = config(&emu);
    c.app_private_key_pem = SecretString::new(OTHER_PRIVATE_KEY_PEM);
    let hello = scope("octocat/hello", false);
    let err = GithubApp::new(c).unwrap().installation_token(InstallationId(5), &hello).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized);

    let mut c = config(&emu);
    c.app_id = "1".into();
    let err = GithubApp::new(c).unwrap().installation_token(InstallationId(5), &hello).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Unauthorized, "wrong issuer");

    let github = adapter(&emu);
    let err = github.installation_token(InstallationId(6), &hello).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::NotFound);
    emu.set_suspended(5, true);
    let err = github.installation_token(InstallationId(5), &hello).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::Forbidden, "suspended");
    assert_eq!(emu.token_mints(), 0);
}

#[tokio::test]
async fn installations_repositories_and_branches_follow_pagination() {
    let emu = emulator().await;
    let branches: Vec<String> = (0..150).map(|i| format!("feature-{i:03}")).collect();
    let mut all_branches: Vec<&str> = vec!["main"];
    all_branches.extend(branches.iter().map(String::as_str));
    emu.add_installation(
        1,
        "octocat",
        &[("octocat/a", &all_branches), ("octocat/b", &["main"]), ("octocat/c", &["dev"])],
    );
    emu.add_installation(2, "acme-org", &[("acme-org/x", &["main"])]);
    let mut c = config(&emu);
    c.repositories_per_page = 2;
    let github = GithubApp::new(c).unwrap();

    let user = user_tokens(&emu, &github).await.access_token;
    let installations = github.list_installations(&user).await.unwrap();
    assert_eq!(installations.len(), 2);
    assert_eq!(installations[1].account_type, "Organization");
    assert!(github.list_installations(&SecretString::new("gho_bogus")).await.is_err());

    let first = github.list_repositories(&user, InstallationId(1), 1).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_page, Some(2));
    assert!(first.items.iter().all(|r| r.push), "the owner may push");
    let second = github.list_repositories(&user, InstallationId(1), 2).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_page, None);
    assert_eq!(second.items[0].default_branch, "dev");
    let err = github.list_repositories(&user, InstallationId(3), 1).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::NotFound, "an installation the user cannot see");

    let repo = RepoFullName::new("octocat/a").unwrap();
    let names = github.list_branches(&user, &repo).await.unwrap();
    assert_eq!(names.len(), 151, "two pages of branches");
    let ghost = RepoFullName::new("ghost/x").unwrap();
    let err = github.list_branches(&user, &ghost).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::NotFound, "a repository of no installation");
    assert_eq!(emu.token_mints(), 0, "listing acts as the user, never through an installation token");
    assert!(github.install_url().ends_with("/apps/sam-emulated/installations/new"));
}

#[tokio::test]
async fn api_errors_are_retried_or_not_by_kind() {
    let emu = emulator().await;
    emu.add_installation(1, "octocat", &[("octocat/a", &["main"])]);
    let github = adapter(&emu);
    let user = user_tokens(&emu, &github).await.access_token;
    let path = "/user/installations/1/repositories";
    emu.faults().inject("GET", path, Fault::Error(InjectedError::Unavailable), 2);
    github.list_repositories(&user, InstallationId(1), 1).await.unwrap();
    assert_eq!(emu.faults().count("GET", path), 3);
    emu.faults().inject("GET", path, Fault::Error(InjectedError::TooManyRequests), 1);
    github.list_repositories(&user, InstallationId(1), 1).await.unwrap();
    emu.remove_installation(1);
    let err = github.list_repositories(&user, InstallationId(1), 1).await.unwrap_err();
    assert_eq!(err.kind(), ProviderErrorKind::NotFound, "{err}");
}

// ------------------------------------------------------------- webhooks

type Seen = Arc<Mutex<Vec<WebhookEvent>>>;

async fn receiver(
    State((verifier, seen)): State<(WebhookVerifier, Seen)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let hook = WebhookHeaders {
        event: h("x-github-event"),
        delivery: h("x-github-delivery"),
        signature: h("x-hub-signature-256"),
    };
    match verifier.verify(hook, &body).await {
        Ok(delivery) => {
            seen.lock().unwrap().push(delivery.event);
            assert!(verifier.handled(&delivery.delivery_id).await.unwrap());
            StatusCode::NO_CONTENT
        }
        Err(WebhookError::Duplicate) => StatusCode::OK,
        Err(WebhookError::MissingSignature | WebhookError::MalformedSignature | WebhookError::BadSignature) => {
            StatusCode::UNAUTHORIZED
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn start_receiver() -> (String, Seen) {
    let verifier =
        WebhookVerifier::new(SecretString::new(GITHUB_WEBHOOK_SECRET), Arc::new(InMemoryDeliveryLog::default()));
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/hook", post(receiver)).with_state((verifier, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A delivery becomes a duplicate only once it is marked handled: one whose
/// effects were never applied (the process died, the store failed) is taken
/// again when GitHub redelivers it.
#[tokio::test]
async fn a_delivery_not_yet_handled_is_taken_again() {
    let emu = emulator().await;
    emu.add_installation(32, "octocat", &[("octocat/a", &["main"])]);
    let verifier =
        WebhookVerifier::new(SecretString::new(GITHUB_WEBHOOK_SECRET), Arc::new(InMemoryDeliveryLog::default()));
    let body = serde_json::to_vec(&emu.installation_payload("created", 32)).unwrap();
    let signature = emu.sign(&body);
    let headers = WebhookHeaders { event: Some("installation"), delivery: Some("d-32"), signature: Some(&signature) };
    let first = verifier.verify(headers, &body).await.unwrap();
    // ... and the process dies before applying it: GitHub redelivers.
    let again = verifier.verify(headers, &body).await.unwrap();
    assert_eq!(again.delivery_id, first.delivery_id);
    assert!(verifier.handled(&again.delivery_id).await.unwrap());
    assert!(matches!(verifier.verify(headers, &body).await, Err(WebhookError::Duplicate)));
}

#[tokio::test]
async fn webhooks_are_verified_deduplicated_and_parsed() {
    let emu = emulator().await;
    emu.add_installation(31, "octocat", &[("octocat/a", &["main"])]);
    let (url, seen) = start_receiver().await;

    let created = emu.send_webhook(&url, "installation", &emu.installation_payload("created", 31)).await.unwrap();
    assert_eq!(created.status, 204);
    let body = serde_json::to_vec(&emu.installation_payload("created", 31)).unwrap();

    // A redelivery reuses the delivery id: accepted once, then ignored.
    let replay =
        emu.send_webhook_raw(&url, "installation", &created.delivery_id, &body, Some(&emu.sign(&body))).await.unwrap();
    assert_eq!(replay.status, 200);

    // Bad, malformed and missing signatures.
    let bad = emu.send_webhook_raw(&url, "installation", "d-bad", &body, Some(&emu.sign(b"other body"))).await.unwrap();
    assert_eq!(bad.status, 401);
    let malformed = emu.send_webhook_raw(&url, "installation", "d-mal", &body, Some("sha1=abcd")).await.unwrap();
    assert_eq!(malformed.status, 401);
    let missing = emu.send_webhook_raw(&url, "installation", "d-none", &body, None).await.unwrap();
    assert_eq!(missing.status, 401);
    // A forged delivery does not burn its id: the genuine one still counts.
    let genuine = emu.send_webhook_raw(&url, "installation", "d-bad", &body, Some(&emu.sign(&body))).await.unwrap();
    assert_eq!(genuine.status, 204);

    for action in ["suspend", "unsuspend", "deleted"] {
        let r = emu.send_webhook(&url, "installation", &emu.installation_payload(action, 31)).await.unwrap();
        assert_eq!(r.status, 204);
    }
    for action in ["added", "removed"] {
        let payload = emu.installation_repositories_payload(action, 31, &["octocat/b"]);
        let r = emu.send_webhook(&url, "installation_repositories", &payload).await.unwrap();
        assert_eq!(r.status, 204);
    }
    let r = emu.send_webhook(&url, "push", &serde_json::json!({"ref": "refs/heads/main"})).await.unwrap();
    assert_eq!(r.status, 204);

    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 8);
    match &events[0] {
        WebhookEvent::InstallationCreated { installation, repositories } => {
            assert_eq!(installation.id, InstallationId(31));
            assert_eq!(installation.account_login, "octocat");
            assert_eq!(repositories, &[RepoFullName::new("octocat/a").unwrap()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(events[2], WebhookEvent::InstallationSuspended { .. }));
    assert!(matches!(events[3], WebhookEvent::InstallationUnsuspended { .. }));
    assert!(matches!(events[4], WebhookEvent::InstallationDeleted { .. }));
    assert_eq!(
        events[5],
        WebhookEvent::RepositoriesAdded {
            installation: InstallationId(31),
            repositories: vec![RepoFullName::new("octocat/b").unwrap()]
        }
    );
    assert!(matches!(events[6], WebhookEvent::RepositoriesRemoved { .. }));
    assert!(matches!(&events[7], WebhookEvent::Ignored { event, .. } if event == "push"));
}

#[tokio::test]
async fn the_install_page_creates_an_installation_and_sends_the_webhook() {
    let (hook_url, seen) = start_receiver().await;
    let emu = GithubEmulator::start(GithubEmulatorConfig {
        webhook_url: Some(hook_url),
        setup_url: Some("http://127.0.0.1:9/github/setup".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let github = adapter(&emu);
    let page = browser().get(github.install_url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"install\""));
    let answer = browser().post(github.install_url()).send().await.unwrap();
    assert!(answer.status().is_redirection());
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("setup_action=install"), "{location}");
    let installation = emu.installations()[0].id;
    assert!(location.contains(&format!("installation_id={installation}")));

    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve(REDIRECT, Some(&pkce.challenge));
    let identity = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap();
    let listed = github.list_installations(&identity.tokens.access_token).await.unwrap();
    assert_eq!(listed[0].id, InstallationId(installation));
    let repos = github.list_repositories(&identity.tokens.access_token, InstallationId(installation), 1).await.unwrap();
    assert_eq!(repos.items.len(), 2);

    for _ in 0..50 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(&events[..], [WebhookEvent::InstallationCreated { installation: i, repositories }]
            if i.id == InstallationId(installation) && repositories.len() == 2),
        "{events:?}"
    );
}

/// The consent page offers several test identities; each signs in as
/// itself and sees the installations shared with it, nothing else.
#[tokio::test]
async fn the_consent_page_offers_several_identities() {
    use sam_providers::emulators::EmulatedUser;
    let member =
        EmulatedUser { id: 2001, login: "mona-member".into(), name: None, email: Some("mona@example.com".into()) };
    let outsider = EmulatedUser { id: 2002, login: "hubot-outsider".into(), name: None, email: None };
    let emu = GithubEmulator::start(GithubEmulatorConfig {
        other_users: vec![member.clone(), outsider.clone()],
        ..GithubEmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.add_installation(31, "octo-org", &[("octo-org/app", &["main"])]);
    emu.share_installation(31, member.id);
    emu.set_role(31, member.id, "read");
    let github = adapter(&emu);
    for (who, sees) in [(&member, 1), (&outsider, 0)] {
        let pkce = PkcePair::generate().unwrap();
        let url = github.authorize_url("state", &pkce.challenge, REDIRECT);
        let callback = click_as(&url, &who.login).await;
        let code = param(&callback, "code").unwrap().to_owned();
        let identity = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap();
        assert_eq!(identity.profile.github_id, GithubUserId(who.id), "signed in as {}", who.login);
        assert_eq!(identity.profile.login, who.login);
        let installations: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/user/installations", emu.base_url().trim_end_matches('/')))
            .bearer_auth(identity.tokens.access_token.expose())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(installations["total_count"], sees, "{}: {installations}", who.login);
        let repo = reqwest::Client::new()
            .get(format!("{}/repos/octo-org/app", emu.base_url().trim_end_matches('/')))
            .bearer_auth(identity.tokens.access_token.expose())
            .send()
            .await
            .unwrap();
        if sees == 1 {
            let repo: serde_json::Value = repo.json().await.unwrap();
            assert_eq!(repo["permissions"]["push"], false, "a reader cannot push: {repo}");
            assert_eq!(repo["permissions"]["pull"], true);
        } else {
            assert_eq!(repo.status(), 404, "an outsider does not see the repository");
        }
    }
    let url = github.authorize_url("state", &PkcePair::generate().unwrap().challenge, REDIRECT);
    let html = browser().get(&url).send().await.unwrap().text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("user".into(), "nobody-configured".into()));
    let action = reqwest::Url::parse(&url).unwrap().join("/login/oauth/authorize").unwrap();
    assert_eq!(browser().post(action).form(&form).send().await.unwrap().status(), 422);
}

/// A public app installs on any account, a private one only on its owner's;
/// a second user installs it on their organization and works through it.
#[tokio::test]
async fn only_a_public_app_installs_on_other_accounts() {
    use sam_providers::emulators::EmulatedUser;
    let other = EmulatedUser { id: 3001, login: "lena".into(), name: None, email: None };
    let emu = GithubEmulator::start(GithubEmulatorConfig {
        other_users: vec![other.clone()],
        install_accounts: vec!["lena-org".into()],
        ..GithubEmulatorConfig::default()
    })
    .await
    .unwrap();
    let github = adapter(&emu);
    let install = |account: &str| {
        browser().post(format!("{}?as=lena", github.install_url())).form(&[("account", account.to_owned())]).send()
    };
    let page = browser().get(format!("{}?as=lena", github.install_url())).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"install-on-lena-org\""), "{page}");

    // GitHub's manifest default: a private app.
    let code = emu.create_app_from_manifest(&serde_json::json!({"url": "http://x", "public": false}));
    sam_providers::github::convert_manifest(emu.base_url(), &code, HttpConfig::fast()).await.unwrap();
    let refused = install("lena-org").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("private GitHub App"));
    assert!(emu.installations().is_empty());

    let code = emu.create_app_from_manifest(&serde_json::json!({"url": "http://x", "public": true,
        "default_permissions": {"contents": "write", "metadata": "read"}}));
    sam_providers::github::convert_manifest(emu.base_url(), &code, HttpConfig::fast()).await.unwrap();
    let done = install("lena-org").await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let installation = emu.installations()[0].clone();
    assert_eq!(installation.account_login, "lena-org");
    assert_eq!(installation.account_type, "Organization");
    assert!(installation.repositories.contains_key("lena-org/hello-world"));
    assert_eq!(install("someone-elses-org").await.unwrap().status(), 403, "not an account lena may install on");

    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve_as(other.clone(), REDIRECT, Some(&pkce.challenge));
    let lena = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap().tokens.access_token;
    let listed = github.list_installations(&lena).await.unwrap();
    assert_eq!(listed.len(), 1);
    let repos = github.list_repositories(&lena, listed[0].id, 1).await.unwrap();
    assert_eq!(repos.items.len(), 2);
    assert!(repos.items.iter().all(|r| r.push), "the installer administers the installation");
}

/// An organization member reaches only the repositories their teams grant.
#[tokio::test]
async fn a_member_reaches_only_the_repositories_granted_to_them() {
    use sam_providers::emulators::EmulatedUser;
    let member = EmulatedUser { id: 2001, login: "mona-member".into(), name: None, email: None };
    let emu = GithubEmulator::start(GithubEmulatorConfig {
        other_users: vec![member.clone()],
        ..GithubEmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.add_installation(31, "octo-org", &[("octo-org/app", &["main"]), ("octo-org/secret", &["main"])]);
    emu.share_installation(31, member.id);
    emu.restrict_user(31, member.id, &["octo-org/app"]);
    emu.set_role(31, member.id, "read");
    let github = adapter(&emu);
    let pkce = PkcePair::generate().unwrap();
    let code = emu.approve_as(member, REDIRECT, Some(&pkce.challenge));
    let token = github.exchange_code(&code, &pkce.verifier, REDIRECT).await.unwrap().tokens.access_token;

    let repos = github.list_repositories(&token, InstallationId(31), 1).await.unwrap();
    let names: Vec<_> = repos.items.iter().map(|r| (r.full_name.to_string(), r.push)).collect();
    assert_eq!(names, [("octo-org/app".to_owned(), false)]);
    let secret = RepoFullName::new("octo-org/secret").unwrap();
    assert_eq!(github.repository(&token, &secret).await.unwrap_err().kind(), ProviderErrorKind::NotFound);
    assert_eq!(github.list_branches(&token, &secret).await.unwrap_err().kind(), ProviderErrorKind::NotFound);
    let app = RepoFullName::new("octo-org/app").unwrap();
    assert!(!github.repository(&token, &app).await.unwrap().push);
}
