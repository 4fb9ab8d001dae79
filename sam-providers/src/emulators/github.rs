//! GitHub emulator: the OAuth web flow, the REST endpoints SAM uses, GitHub
//! App installation tokens, and signed webhook deliveries. Web and API share
//! one port, so the adapter's web and API base URLs are both
//! [`GithubEmulator::base_url`].
//!
//! | endpoint | behaviour |
//! |---|---|
//! | `GET /login/oauth/authorize` | an HTML page with a form: button `#sign-in` ("Sign in as `<login>`"), one `#sign-in-<login>` per [`GithubEmulatorConfig::other_users`], and `#cancel`; checks `client_id`, `redirect_uri` (prefix of the configured callback, when set) and `code_challenge_method=S256` |
//! | `POST /login/oauth/authorize` | the form's target: redirects (302) to `redirect_uri?code=…&state=…`, or `?error=access_denied&state=…` |
//! | `POST /login/oauth/access_token` | form or JSON; JSON answer with `Accept: application/json`, else urlencoded. A code gives `ghu_…` with `expires_in` ([`GithubEmulatorConfig::user_token_ttl`], GitHub: 8 h), `refresh_token` (`ghr_…`) and `refresh_token_expires_in` (6 months); `grant_type=refresh_token` trades a refresh token for a new pair, once: the old refresh and access tokens die. Errors are **HTTP 200** with `error`: `incorrect_client_credentials`, `bad_verification_code` (unknown, used, expired (10 min) code, or PKCE verifier not matching), `redirect_uri_mismatch`, `bad_refresh_token` (unknown, used or expired). Codes are single use |
//! | `GET /user`, `GET /user/emails` | the test user (user token); 401 `Bad credentials` otherwise, also for an expired token |
//! | `GET /user/installations` | installations visible to the user, `{total_count, installations}`, `Link` pagination |
//! | `GET /app/installations/{id}` | app JWT |
//! | `POST /app/installations/{id}/access_tokens` | app JWT (RS256 signature checked against the configured public key, `iss` = app id or client id, `iat` not in the future, `exp` ≤ now + 10 min, not expired); body `{repositories?: [name], repository_ids?: [id], permissions?: {…}}` → 201 `{token, expires_at, permissions, repository_selection, repositories?}`, the token limited to those repositories and permissions; a repository outside the installation or a permission beyond the app's ([`GithubEmulatorConfig::app_permissions`]) → 422; unknown → 404, suspended → 403 |
//! | `GET /installation/repositories` | installation token; `{total_count, repositories}`, `Link` pagination (`per_page` default 30, max 100) |
//! | `GET /repos/{owner}/{repo}`, `…/branches` (array, `Link` pagination), `…/branches/{branch}` | an installation token of an installation with the repository, or a user token of a user who sees one; anyone else 404 (private repositories are hidden). Shapes `full-repository`, `short-branch`, `branch-with-protection` (the `repos` module) |
//! | `GET /repos/{owner}/{repo}/installation`, `GET /app/installations` | app JWT; the installation holding the repository (else 404); every installation |
//! | `GET /user/repos`, `GET /user/installations/{id}/repositories` | user token; the repositories of the installations the user sees that the user may access ([`EmulatedInstallation::user_repositories`]), with `permissions` from their role (404 for an installation they do not see) |
//! | `GET /rate_limit` | `{resources: {core, search, graphql, integration_manifest}, rate}`; not counted |
//! | `GET /apps/{slug}/installations/new?as=<login>` | the install page, signed in as the test user or `as`: lists the repositories it grants, button `#install` (on the signed-in user) and `#install-on-<account>` per account they may install on (their own, [`GithubEmulatorConfig::install_accounts`]) |
//! | `POST /apps/{slug}/installations/new` | creates an installation on the chosen `account` (repositories from [`GithubEmulatorConfig::install_repositories`] under that account), sends the signed `installation` `created` webhook to [`GithubEmulatorConfig::webhook_url`], redirects to [`GithubEmulatorConfig::setup_url`] with `installation_id` and `setup_action=install`. A private app ([`GithubEmulatorConfig::app_public`], from the manifest's `public`) installs only on [`GithubEmulatorConfig::app_owner`]: 403 `#error` page otherwise |
//! | `GET /{owner}/{repo}.git/info/refs`, `POST …/git-upload-pack`, `POST …/git-receive-pack` | git's smart HTTP protocol over [`GithubEmulatorConfig::git_root`], credentials checked against each token's scope (the `git` module) |
//! | `POST /settings/apps/new`, `POST /organizations/{org}/settings/apps/new` | the App *manifest* flow's first step: form field `manifest` (JSON with at least `url`; `redirect_url`, `hook_attributes.url`, `setup_url`, `callback_urls`, `default_permissions`), `state` in the query or the form; answers a confirmation page with button `#create`; a missing or invalid manifest → 422 page |
//! | `POST /settings/apps/new/confirm` | the page's button: "creates" the app and redirects (302) to the manifest's `redirect_url` with `code` (single use, 1 hour) and `state` |
//! | `POST /app-manifests/{code}/conversions` | no authentication; 201 with the app (`id`, `slug`, `node_id`, `owner`, `name`, `html_url`, `permissions`, `events`, …) and its credentials `client_id`, `client_secret`, `webhook_secret`, `pem`; unknown, used or expired code → 404. The emulator stands for one app, so the credentials are the configured ones (the private key is [`TEST_APP_PRIVATE_KEY_PEM`]); from then on the manifest's `hook_attributes.url` and `setup_url` become [`GithubEmulatorConfig::webhook_url`] and [`GithubEmulatorConfig::setup_url`] |
//! | `GET /app` | app JWT; the authenticated app (`id`, `slug`, `client_id`, `permissions`, `installations_count`, …) |
//!
//! Every REST answer carries `X-RateLimit-Limit` (5000 per token, 60
//! without one), `-Remaining`, `-Used`, `-Reset` and `-Resource: core`;
//! past the limit, 403 `API rate limit exceeded`. Bodies follow GitHub's
//! REST description (`simple-user`, `private-user`, `installation`, …: the
//! `shapes` module). API errors are `{"message", "documentation_url"}`. Injected faults render
//! as 429 (with `x-ratelimit-remaining: 0`, `x-ratelimit-reset`, `retry-after`),
//! 500 and 503.
//!
//! [`GithubEmulator::send_webhook`] posts a delivery signed with
//! `X-Hub-Signature-256` to any URL (with `X-GitHub-Event`,
//! `X-GitHub-Delivery`); [`GithubEmulator::installation_payload`] and
//! [`GithubEmulator::installation_repositories_payload`] build the bodies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod git;
mod repos;
mod shapes;

use super::faults::{self, FaultPlan, InjectedError};
use super::{ServerTask, bearer, lock, rfc3339, unix_now};

/// OAuth client id of the emulated app.
pub const GITHUB_CLIENT_ID: &str = "Iv1.emulatorclient01";
/// OAuth client secret of the emulated app.
pub const GITHUB_CLIENT_SECRET: &str = "emulator-client-secret";
/// App id of the emulated app.
pub const GITHUB_APP_ID: &str = "424242";
/// Slug of the emulated app.
pub const GITHUB_APP_SLUG: &str = "sam-emulated";
/// Webhook secret of the emulated app.
pub const GITHUB_WEBHOOK_SECRET: &str = "emulator-webhook-secret";

/// The emulated app's private key (RSA 2048, PKCS#1 PEM). **For tests and the
/// dev mode only**: it is public, so it protects nothing.
pub const TEST_APP_PRIVATE_KEY_PEM: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA4CIsH/xyv2pulAN9Ku3aVC9SBoexwCfKQSDWfnIyu+t8iN5X
q0W9qXVtF73h2thEKtlYet7P+lLxR0pSy9WaYwNJdu5WeSOy/EKgPkXNxAElG+JT
mWvKa4ZZvbpDh/4LXIR0fmmk0gM27w9p0KZeusTUlXkoiPtyI6hawDXkf2eAiXE9
ZUB3QklQ7Kc9YnDO8Jrt6hARqVhRED75i7bGHPpC50MmZqBuci/ksUGoC9szaclc
C6FydBDVs5gLbbiJ+htrNvh72eYigpO/jFRq1Gp7DyCt7WKHKJk2s6Ds9hb1geGx
xnM+g03UqIuffuB+z//iyVPxDmaEgAE9qfpkWQIDAQABAoIBACGaFe3sscJPQUk4
9a62Lo2A86XteYFSpdCaTPXzhnYkYYz+cnvHrp3FcEfHLKFb22pmH8z58wm3Hhuf
Qabz/NubvkuRg07Rgo+tqGr1mZnpRwg1Z+2gGp6Aq5sVXfL5K/hgljtueKqQl0+D
SsygaKLNCAbpvWE9+zhr0MEwwzMzSAg7xoYnY+2G/LE54uqD2sssVqrymhEfOPlu
+rRFsg1fSaRHZirNph2U02NCFKLCmM3h+RbDoLxk/g+Ws7J05maW3Q9gcwZQPqni
kO2UjW8ejQ1XkOADzrmMihjGDBSft+L4vfPkOyj8Z71x9pVfAkBN1zJ3mJZb3oMU
DoMzwlUCgYEA+/5IP3FnrGSbG/Ltdbh35WVYXaEchSaDJVZcIsLVqMedJ0UBEwBX
5ULPgXfIvyHAcW5tyPvmWVMqIKS8yXcnjuAmYpleKy+DaNd0ZdyPyWtFnWW2kCad
jxjsgr9vIU3CEAb9iWwFxeySA/S/id7zvKkJfTeQf10/EJNAgxE1BIUCgYEA47J9
NzKpdE5JiwLXz75hLXgvH7zy+aultw2ICFrZsYIeLW8zn3y4xXHsXt7+/Jp5MY0f
m9//laVzoOvy0uKcqEjr52U2W0ANqxSiTX7S3OP5xb1AqBodmK7W9FC9P1UJu6mu
6LdWChoiq1LIDTnnIJTf298+jCwBjV6D3H6XYsUCgYBvUm5oWJkMN4WuWys8Djop
RRQ8iKgoylK1c+lQEfKBlW1/o6RN2KD7zwAMmfY9OZPiiH5Hg8DHRU4fDae4+MKp
A6zxcf9/5IWRE12Agmei+5jNZ9m25NhGFySkvh1CAS/yFKR8yRPj1BbNWJolNjFG
7wYaIynamj75+5NMU5WwYQKBgQDP0vT48ZO7JU14xOKHqeN2pfCVDlfTTDjXyFD2
Fz4FB5dVrt62Xhcjl+S/ftfLZY7ijEVid2QHiVjtcw5SLyX/b3dp33ZqeR9AnHe7
NdtuY+Jw+ljOVe/XkRV/L0ZcTNiyYaDUpamxVMN6DfesIsJzeY6NV8j2FaBhEPhX
w2+XZQKBgQDqB8GllVzPoUxGVFn896bp0fafPECw/76wNqRT+M38lqU6wFscAECU
d5I/AIuKsFBPRYJVdOiC27NJzOAsUjbf5buAJQTJ299zkPKB8Jh1/4tABImgXMur
ThjWn6oMtg65gQsryw27AmePpNEKJbjBlrxUjnamhkAtW1cT5arFFg==
-----END RSA PRIVATE KEY-----";
/// The public half of [`TEST_APP_PRIVATE_KEY_PEM`] (SPKI PEM).
pub const TEST_APP_PUBLIC_KEY_PEM: &str = r"-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4CIsH/xyv2pulAN9Ku3a
VC9SBoexwCfKQSDWfnIyu+t8iN5Xq0W9qXVtF73h2thEKtlYet7P+lLxR0pSy9Wa
YwNJdu5WeSOy/EKgPkXNxAElG+JTmWvKa4ZZvbpDh/4LXIR0fmmk0gM27w9p0KZe
usTUlXkoiPtyI6hawDXkf2eAiXE9ZUB3QklQ7Kc9YnDO8Jrt6hARqVhRED75i7bG
HPpC50MmZqBuci/ksUGoC9szaclcC6FydBDVs5gLbbiJ+htrNvh72eYigpO/jFRq
1Gp7DyCt7WKHKJk2s6Ds9hb1geGxxnM+g03UqIuffuB+z//iyVPxDmaEgAE9qfpk
WQIDAQAB
-----END PUBLIC KEY-----";

/// The user who signs in on the authorize page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedUser {
    /// Numeric id.
    pub id: i64,
    /// Login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// Primary verified email (returned by `/user/emails`).
    pub email: Option<String>,
}

impl Default for EmulatedUser {
    fn default() -> Self {
        Self {
            id: 583_231,
            login: "octocat".into(),
            name: Some("The Octocat".into()),
            email: Some("octocat@example.com".into()),
        }
    }
}

/// Settings of the GitHub emulator.
#[derive(Debug, Clone)]
pub struct GithubEmulatorConfig {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// App id (the app JWT's `iss`).
    pub app_id: String,
    /// App slug.
    pub app_slug: String,
    /// PEM public key the app JWT must verify against.
    pub app_public_key_pem: String,
    /// Webhook secret for [`GithubEmulator::send_webhook`].
    pub webhook_secret: String,
    /// The user the authorize page signs in (button `#sign-in`).
    pub user: EmulatedUser,
    /// Further test identities the authorize page offers (a button
    /// `#sign-in-<login>` each): other personal accounts, an organization's
    /// member, someone without any installation.
    pub other_users: Vec<EmulatedUser>,
    /// When set, `redirect_uri` must start with it.
    pub callback_prefix: Option<String>,
    /// Lifetime of installation tokens (GitHub: 1 hour).
    pub installation_token_ttl: Duration,
    /// Lifetime of user access tokens (`ghu_…`); `None` for tokens that do
    /// not expire (an app that opted out). GitHub: 8 hours, with a refresh
    /// token.
    pub user_token_ttl: Option<Duration>,
    /// Lifetime of refresh tokens (`ghr_…`; GitHub: 6 months).
    pub refresh_token_ttl: Duration,
    /// Whether any account may install the app (`public` in its manifest);
    /// a private app installs only on [`GithubEmulatorConfig::app_owner`].
    pub app_public: bool,
    /// Login of the account that owns the app (default: the test user).
    pub app_owner: Option<String>,
    /// The app's permissions (`contents`, `metadata`, …: `read` or
    /// `write`), which bound what an installation token may ask for. A
    /// manifest converted later replaces them with its `default_permissions`.
    pub app_permissions: BTreeMap<String, String>,
    /// Organizations the install page offers as targets besides the test
    /// user and [`GithubEmulatorConfig::other_users`] (button
    /// `#install-on-<login>` each).
    pub install_accounts: Vec<String>,
    /// Where the emulated repositories live as bare git repositories, served
    /// over git's smart HTTP protocol at `/{owner}/{repo}.git` (created on
    /// first use with one commit per branch). `None`: no git endpoint.
    pub git_root: Option<std::path::PathBuf>,
    /// Repositories (full name, branches) an installation made on the
    /// install page grants.
    pub install_repositories: Vec<(String, Vec<String>)>,
    /// Where the install page sends the signed `installation` `created`
    /// webhook, if anywhere.
    pub webhook_url: Option<String>,
    /// Where the install page redirects afterwards (GitHub's "setup URL"),
    /// with `installation_id` and `setup_action=install`.
    pub setup_url: Option<String>,
}

impl Default for GithubEmulatorConfig {
    fn default() -> Self {
        Self {
            client_id: GITHUB_CLIENT_ID.into(),
            client_secret: GITHUB_CLIENT_SECRET.into(),
            app_id: GITHUB_APP_ID.into(),
            app_slug: GITHUB_APP_SLUG.into(),
            app_public_key_pem: TEST_APP_PUBLIC_KEY_PEM.into(),
            webhook_secret: GITHUB_WEBHOOK_SECRET.into(),
            user: EmulatedUser::default(),
            other_users: Vec::new(),
            callback_prefix: None,
            installation_token_ttl: Duration::from_secs(3600),
            user_token_ttl: Some(Duration::from_secs(8 * 3600)),
            refresh_token_ttl: Duration::from_secs(184 * 24 * 3600),
            app_public: true,
            app_owner: None,
            app_permissions: [("contents", "write"), ("metadata", "read")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            install_accounts: Vec::new(),
            git_root: None,
            install_repositories: vec![
                ("octocat/hello-world".into(), vec!["main".into(), "dev".into()]),
                ("octocat/spoon-knife".into(), vec!["main".into()]),
            ],
            webhook_url: None,
            setup_url: None,
        }
    }
}

/// An installation of the emulated app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct EmulatedInstallation {
    /// Installation id.
    pub id: i64,
    /// Account login.
    pub account_login: String,
    /// Account id.
    pub account_id: i64,
    /// `User` or `Organization`.
    pub account_type: String,
    /// Suspended by the account.
    pub suspended: bool,
    /// Users (numeric ids) who can see it in `/user/installations`.
    pub visible_to: Vec<i64>,
    /// Repositories: full name → branches (the first is the default branch).
    pub repositories: BTreeMap<String, Vec<String>>,
    /// A user's role on the account's repositories (`admin`, `maintain`,
    /// `write`, `triage`, `read`), by user id; a user not listed has `admin`
    /// on a personal account and `write` on an organization's.
    #[serde(default)]
    pub roles: BTreeMap<i64, String>,
    /// The repositories of this installation a user can access, by user id
    /// (an organization member sees only the repositories their teams
    /// grant); a user not listed accesses all of them.
    #[serde(default)]
    pub user_repositories: BTreeMap<i64, Vec<String>>,
}

impl EmulatedInstallation {
    /// `user`'s role on this installation's repositories.
    pub fn role_of(&self, user: i64) -> &str {
        self.roles
            .get(&user)
            .map_or_else(|| if self.account_type == "User" { "admin" } else { "write" }, String::as_str)
    }

    /// Whether `user` can read `full_name` through this installation.
    pub fn user_reads(&self, user: i64, full_name: &str) -> bool {
        self.visible_to.contains(&user)
            && self.repositories.contains_key(full_name)
            && self.user_repositories.get(&user).is_none_or(|only| only.iter().any(|r| r == full_name))
    }

    /// Whether `user` can push to repositories through their role.
    pub fn user_pushes(&self, user: i64) -> bool {
        matches!(self.role_of(user), "admin" | "maintain" | "write")
    }

    /// This installation as `user` sees it: only the repositories they access.
    pub(crate) fn seen_by(&self, user: i64) -> Self {
        let mut seen = self.clone();
        seen.repositories.retain(|full, _| self.user_reads(user, full));
        seen
    }
}

/// What an installation token may do: the installation, its expiry, the
/// repositories it is limited to (`None`: all of the installation's) and its
/// `contents` permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstallationGrant {
    pub(crate) installation: i64,
    pub(crate) expires: Instant,
    pub(crate) repositories: Option<Vec<String>>,
    pub(crate) contents: String,
}

impl InstallationGrant {
    /// The installation as this token sees it.
    pub(crate) fn scope(&self, installation: &EmulatedInstallation) -> EmulatedInstallation {
        let mut seen = installation.clone();
        if let Some(only) = &self.repositories {
            seen.repositories.retain(|full, _| only.iter().any(|r| r == full));
        }
        seen
    }
}

/// A user access token's owner and expiry (unix seconds; `None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
struct UserToken {
    user: i64,
    expires: Option<u64>,
}

/// A refresh token: its user, expiry (unix seconds) and the access token it
/// was issued with (which dies with it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
struct RefreshToken {
    user: i64,
    expires: u64,
    access_token: String,
}

/// The outcome of [`GithubEmulator::send_webhook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// Status the receiver answered.
    pub status: u16,
    /// Body it answered (at most 64 KiB kept).
    pub body: String,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    user_id: i64,
    issued: Instant,
}

#[derive(Debug, Default)]
struct GState {
    codes: HashMap<String, CodeGrant>,
    user_tokens: HashMap<String, UserToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    installation_tokens: HashMap<String, InstallationGrant>,
    refreshes: u64,
    installations: BTreeMap<i64, EmulatedInstallation>,
    /// Users besides the configured one, who signed in through
    /// [`GithubEmulator::approve_as`].
    other_users: BTreeMap<i64, EmulatedUser>,
    token_mints: u64,
    exchanges: u64,
    /// Manifest-flow codes: code → (manifest, issued).
    manifest_codes: HashMap<String, (Value, Instant)>,
    /// Manifests converted into "the" app, oldest first.
    created_apps: Vec<Value>,
    /// Requests per credential in the current hour: (used, window end).
    rate: HashMap<String, (u64, u64)>,
}

#[derive(Debug)]
struct Inner {
    config: Mutex<GithubEmulatorConfig>,
    state: Mutex<GState>,
    faults: FaultPlan,
    base_url: OnceLock<String>,
    /// Held while a repository is created on disk.
    git_lock: tokio::sync::Mutex<()>,
}

/// Handle to a running GitHub emulator.
#[derive(Debug, Clone)]
pub struct GithubEmulator {
    inner: Arc<Inner>,
    base_url: String,
    client: reqwest::Client,
    _task: Arc<ServerTask>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if sam_core::secret::fill_random(&mut buf).is_err() {
        // The emulator's tokens only need to be distinct.
        let seed = Sha256::digest(format!("{:?}{}", Instant::now(), unix_now()).as_bytes());
        buf.iter_mut().zip(seed.iter().cycle()).for_each(|(b, s)| *b = *s);
    }
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex HMAC-SHA256 of body>`, GitHub's `X-Hub-Signature-256`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

impl GithubEmulator {
    /// Starts an emulator on a random loopback port.
    pub async fn start(config: GithubEmulatorConfig) -> std::io::Result<Self> {
        Self::start_from(config, None, std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Installations, signed-in users and their tokens (user tokens, and
    /// installation tokens with their expiry), the apps created from
    /// manifests and where they send webhooks, as JSON, for
    /// [`GithubEmulator::start_from`]. Authorization codes are not kept
    /// (they live minutes).
    pub fn snapshot(&self) -> Value {
        let (webhook_url, setup_url) = {
            let c = lock(&self.inner.config);
            (c.webhook_url.clone(), c.setup_url.clone())
        };
        let state = lock(&self.inner.state);
        let now = unix_now();
        let installation_tokens: BTreeMap<&String, Value> = state
            .installation_tokens
            .iter()
            .map(|(token, grant)| {
                let left = grant.expires.saturating_duration_since(Instant::now()).as_secs();
                (
                    token,
                    json!({"installation": grant.installation, "expires": now + left,
                               "repositories": grant.repositories, "contents": grant.contents}),
                )
            })
            .collect();
        json!({"installations": state.installations.values().collect::<Vec<_>>(),
               "user_tokens": state.user_tokens, "refresh_tokens": state.refresh_tokens,
               "installation_tokens": installation_tokens,
               "other_users": state.other_users.values().collect::<Vec<_>>(), "created_apps": state.created_apps,
               "webhook_url": webhook_url, "setup_url": setup_url})
    }

    /// Starts an emulator on `addr` (port 0: any free one) with the state of
    /// a [`GithubEmulator::snapshot`], if given.
    pub async fn start_from(
        mut config: GithubEmulatorConfig,
        snapshot: Option<Value>,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        ensure_jwt_provider();
        let mut state = GState::default();
        if let Some(saved) = snapshot {
            let field = |name: &str| saved.get(name).cloned().unwrap_or(Value::Null);
            let installations: Vec<EmulatedInstallation> =
                serde_json::from_value(field("installations")).map_err(std::io::Error::other)?;
            state.installations = installations.into_iter().map(|i| (i.id, i)).collect();
            state.user_tokens = serde_json::from_value(field("user_tokens")).unwrap_or_default();
            state.refresh_tokens = serde_json::from_value(field("refresh_tokens")).unwrap_or_default();
            #[derive(Deserialize)]
            struct SavedGrant {
                installation: i64,
                expires: u64,
                repositories: Option<Vec<String>>,
                contents: String,
            }
            let tokens: HashMap<String, SavedGrant> =
                serde_json::from_value(field("installation_tokens")).unwrap_or_default();
            let now = unix_now();
            state.installation_tokens = tokens
                .into_iter()
                .map(|(token, g)| {
                    let expires = Instant::now() + Duration::from_secs(g.expires.saturating_sub(now));
                    let grant = InstallationGrant {
                        installation: g.installation,
                        expires,
                        repositories: g.repositories,
                        contents: g.contents,
                    };
                    (token, grant)
                })
                .collect();
            let users: Vec<EmulatedUser> = serde_json::from_value(field("other_users")).unwrap_or_default();
            state.other_users = users.into_iter().map(|u| (u.id, u)).collect();
            state.created_apps = serde_json::from_value(field("created_apps")).unwrap_or_default();
            if let Some(manifest) = state.created_apps.last() {
                adopt_manifest(&mut config, manifest);
            }
            if let Some(url) = saved["webhook_url"].as_str() {
                config.webhook_url = Some(url.to_owned());
            }
            if let Some(url) = saved["setup_url"].as_str() {
                config.setup_url = Some(url.to_owned());
            }
        }
        let inner = Arc::new(Inner {
            config: Mutex::new(config),
            state: Mutex::new(state),
            faults: FaultPlan::default(),
            base_url: OnceLock::new(),
            git_lock: tokio::sync::Mutex::new(()),
        });
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize_page).post(authorize_submit))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(user_emails))
            .route("/user/installations", get(user_installations))
            .route("/app/installations", get(repos::app_installations))
            .route("/app/installations/{id}", get(app_installation))
            .route("/app/installations/{id}/access_tokens", post(mint_token))
            .route("/installation/repositories", get(installation_repositories))
            .route("/repos/{owner}/{repo}", get(repos::repository))
            .route("/repos/{owner}/{repo}/installation", get(repos::repository_installation))
            .route("/repos/{owner}/{repo}/branches", get(repos::branches))
            .route("/repos/{owner}/{repo}/branches/{branch}", get(repos::branch))
            .route("/user/repos", get(repos::user_repositories))
            .route("/user/installations/{id}/repositories", get(repos::user_installation_repositories))
            .route("/rate_limit", get(repos::rate_limit))
            .route("/apps/{slug}/installations/new", get(install_page).post(install_submit))
            .route("/settings/apps/new", post(manifest_page))
            .route("/organizations/{org}/settings/apps/new", post(manifest_page_org))
            .route("/settings/apps/new/confirm", post(manifest_confirm))
            .route("/app-manifests/{code}/conversions", post(manifest_conversion))
            .route("/app", get(authenticated_app))
            .route("/{owner}/{repo}/info/refs", get(git::info_refs))
            .route("/{owner}/{repo}/git-upload-pack", post(git::upload_pack))
            .route("/{owner}/{repo}/git-receive-pack", post(git::receive_pack))
            .fallback(|| async { api_error(StatusCode::NOT_FOUND, "Not Found") })
            .layer(axum::middleware::from_fn_with_state(api_error as super::ErrorRenderer, super::provider_errors))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), repos::rate_headers))
            .with_state(inner.clone())
            .layer(axum::middleware::from_fn_with_state(
                (inner.faults.clone(), render_fault as faults::Renderer),
                faults::middleware,
            ));
        let (addr, task) = super::serve_on(router, addr).await?;
        let base_url = format!("http://{addr}");
        let _ = inner.base_url.set(base_url.clone());
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(std::io::Error::other)?;
        Ok(Self { inner, base_url, client, _task: Arc::new(task) })
    }

    /// Base URL of both the web pages and the API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The fault plan.
    pub fn faults(&self) -> &FaultPlan {
        &self.inner.faults
    }

    /// The configuration in force.
    pub fn config(&self) -> GithubEmulatorConfig {
        lock(&self.inner.config).clone()
    }

    /// Changes the configuration from now on.
    pub fn configure(&self, change: impl FnOnce(&mut GithubEmulatorConfig)) {
        change(&mut lock(&self.inner.config));
    }

    /// Adds (or replaces) an installation of the app on `account_login`,
    /// visible to the test user, with `repositories` as `(full name, branches)`.
    pub fn add_installation(&self, id: i64, account_login: &str, repositories: &[(&str, &[&str])]) {
        let user = lock(&self.inner.config).user.id;
        let installation = EmulatedInstallation {
            id,
            account_login: account_login.to_owned(),
            account_id: 9_000_000 + id,
            account_type: if account_login.contains("org") { "Organization".into() } else { "User".into() },
            suspended: false,
            visible_to: vec![user],
            repositories: repositories
                .iter()
                .map(|(name, branches)| ((*name).to_owned(), branches.iter().map(|b| (*b).to_owned()).collect()))
                .collect(),
            roles: BTreeMap::new(),
            user_repositories: BTreeMap::new(),
        };
        lock(&self.inner.state).installations.insert(id, installation);
    }

    /// Suspends or unsuspends an installation.
    pub fn set_suspended(&self, id: i64, suspended: bool) {
        if let Some(i) = lock(&self.inner.state).installations.get_mut(&id) {
            i.suspended = suspended;
        }
    }

    /// Removes an installation (its tokens stop working).
    pub fn remove_installation(&self, id: i64) {
        let mut state = lock(&self.inner.state);
        state.installations.remove(&id);
        state.installation_tokens.retain(|_, grant| grant.installation != id);
    }

    /// Every installation.
    pub fn installations(&self) -> Vec<EmulatedInstallation> {
        lock(&self.inner.state).installations.values().cloned().collect()
    }

    /// Lets `user_id` access only `repositories` of installation `id` (as an
    /// organization member whose teams grant just those).
    pub fn restrict_user(&self, id: i64, user_id: i64, repositories: &[&str]) {
        if let Some(i) = lock(&self.inner.state).installations.get_mut(&id) {
            i.user_repositories.insert(user_id, repositories.iter().map(|r| (*r).to_owned()).collect());
        }
    }

    /// Makes every user access token expire now, as if their 8 hours had
    /// passed (refresh tokens keep working).
    pub fn expire_user_tokens(&self) {
        let now = unix_now();
        for token in lock(&self.inner.state).user_tokens.values_mut() {
            token.expires = Some(now.saturating_sub(1));
        }
    }

    /// Makes every refresh token dead (expired or revoked: the user must
    /// authorize again).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.inner.state).refresh_tokens.clear();
    }

    /// How many refresh-token exchanges succeeded.
    pub fn refreshes(&self) -> u64 {
        lock(&self.inner.state).refreshes
    }

    /// The repositories and `contents` permission of a live installation
    /// token (`None` for an unknown or expired one).
    pub fn token_scope(&self, token: &str) -> Option<(Option<Vec<String>>, String)> {
        let state = lock(&self.inner.state);
        let grant = state.installation_tokens.get(token).filter(|g| Instant::now() < g.expires)?;
        Some((grant.repositories.clone(), grant.contents.clone()))
    }

    /// How many installation tokens were minted.
    pub fn token_mints(&self) -> u64 {
        lock(&self.inner.state).token_mints
    }

    /// How many code exchanges were attempted.
    pub fn code_exchanges(&self) -> u64 {
        lock(&self.inner.state).exchanges
    }

    /// Approves a sign-in without the browser, as if the user clicked the
    /// button on the authorize page; returns the code.
    pub fn approve(&self, redirect_uri: &str, code_challenge: Option<&str>) -> String {
        let (client_id, user_id) = {
            let c = lock(&self.inner.config);
            (c.client_id.clone(), c.user.id)
        };
        issue_code(&self.inner, &client_id, redirect_uri, code_challenge.map(str::to_owned), user_id)
    }

    /// Approves a sign-in as `user`, who need not be the configured user (so
    /// a test can sign several people in); returns the code.
    pub fn approve_as(&self, user: EmulatedUser, redirect_uri: &str, code_challenge: Option<&str>) -> String {
        let client_id = lock(&self.inner.config).client_id.clone();
        let id = user.id;
        lock(&self.inner.state).other_users.insert(id, user);
        issue_code(&self.inner, &client_id, redirect_uri, code_challenge.map(str::to_owned), id)
    }

    /// Gives `user_id` `role` (`admin`, `maintain`, `write`, `triage`,
    /// `read`) on installation `id`'s repositories, as the `permissions` of
    /// the repositories the user reads show it.
    pub fn set_role(&self, id: i64, user_id: i64, role: &str) {
        if let Some(i) = lock(&self.inner.state).installations.get_mut(&id) {
            i.roles.insert(user_id, role.to_owned());
        }
    }

    /// Lets the user `user_id` see installation `id` in `/user/installations`.
    pub fn share_installation(&self, id: i64, user_id: i64) {
        if let Some(i) = lock(&self.inner.state).installations.get_mut(&id)
            && !i.visible_to.contains(&user_id)
        {
            i.visible_to.push(user_id);
        }
    }

    /// The payload of an `installation` event (`created`, `deleted`,
    /// `suspend`, `unsuspend`) for a known installation.
    pub fn installation_payload(&self, action: &str, installation: i64) -> Value {
        let app = app_identity(&self.inner);
        let user = lock(&self.inner.config).user.clone();
        let state = lock(&self.inner.state);
        let inst = state.installations.get(&installation).map_or_else(
            || json!({"id": installation, "account": {"login": "ghost", "id": 1, "type": "User"}, "suspended_at": null}),
            |i| installation_json(&app, i),
        );
        let repos: Vec<Value> = state
            .installations
            .get(&installation)
            .map(|i| i.repositories.keys().map(|n| repo_ref(n)).collect())
            .unwrap_or_default();
        json!({"action": action, "installation": inst, "repositories": repos,
               "sender": {"login": user.login, "id": user.id, "type": "User"}})
    }

    /// The payload of an `installation_repositories` event (`added` or
    /// `removed`) for `repositories` of an installation.
    pub fn installation_repositories_payload(&self, action: &str, installation: i64, repositories: &[&str]) -> Value {
        let mut payload = self.installation_payload(action, installation);
        let repos: Vec<Value> = repositories.iter().map(|n| repo_ref(n)).collect();
        if let Some(obj) = payload.as_object_mut() {
            obj.remove("repositories");
            obj.insert("repository_selection".into(), json!("selected"));
            let (added, removed) = if action == "added" { (repos, vec![]) } else { (vec![], repos) };
            obj.insert("repositories_added".into(), json!(added));
            obj.insert("repositories_removed".into(), json!(removed));
        }
        payload
    }

    /// Posts a webhook delivery to `url`, signed with the configured secret,
    /// with a fresh delivery id.
    pub async fn send_webhook(
        &self,
        url: &str,
        event: &str,
        payload: &Value,
    ) -> Result<WebhookDelivery, reqwest::Error> {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let secret = lock(&self.inner.config).webhook_secret.clone();
        let sig = signature(&secret, &body);
        self.send_webhook_raw(url, event, &uuid_like(), &body, Some(&sig)).await
    }

    /// Posts a delivery with exactly the given delivery id, body and
    /// signature header (`None` leaves the header out): for redeliveries and
    /// forged or unsigned requests.
    pub async fn send_webhook_raw(
        &self,
        url: &str,
        event: &str,
        delivery_id: &str,
        body: &[u8],
        signature_header: Option<&str>,
    ) -> Result<WebhookDelivery, reqwest::Error> {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/emulator")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery_id)
            .header("x-github-hook-id", "1")
            .header("x-github-hook-installation-target-type", "integration")
            .body(body.to_vec());
        if let Some(sig) = signature_header {
            request = request.header("x-hub-signature-256", sig);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok(WebhookDelivery { delivery_id: delivery_id.to_owned(), status, body: text.chars().take(65_536).collect() })
    }

    /// The manifest flow without a browser: as if the operator posted
    /// `manifest` to the new-app page and clicked "Create"; returns the code
    /// for `POST /app-manifests/{code}/conversions`.
    pub fn create_app_from_manifest(&self, manifest: &Value) -> String {
        let code = random_hex(10);
        lock(&self.inner.state).manifest_codes.insert(code.clone(), (manifest.clone(), Instant::now()));
        code
    }

    /// The manifests converted so far (what the operator's app was created
    /// from), oldest first.
    pub fn created_apps(&self) -> Vec<Value> {
        lock(&self.inner.state).created_apps.clone()
    }

    /// The `X-Hub-Signature-256` value the configured secret gives `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        signature(&lock(&self.inner.config).webhook_secret, body)
    }
}

fn uuid_like() -> String {
    let h = random_hex(16);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Installs jsonwebtoken's aws-lc-rs provider (idempotent), so signing works
/// even when another crate in the build enables a second backend.
pub(crate) fn ensure_jwt_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()})))
        .into_response()
}

fn render_fault(fault: InjectedError) -> Response {
    match fault {
        InjectedError::TooManyRequests => {
            let mut r = api_error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded");
            let h = r.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            h.insert("retry-after", HeaderValue::from_static("1"));
            if let Ok(v) = HeaderValue::from_str(&(unix_now() + 1).to_string()) {
                h.insert("x-ratelimit-reset", v);
            }
            r
        }
        InjectedError::Internal => api_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        InjectedError::Unavailable | InjectedError::ResourceUnavailable => {
            api_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        InjectedError::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            api_error(status, "Injected error")
        }
    }
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[derive(Deserialize, Debug, Default)]
struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    decision: Option<String>,
    /// Which identity signs in (a login of [`GithubEmulatorConfig::other_users`]).
    user: Option<String>,
}

fn check_authorize(inner: &Inner, p: &AuthorizeParams) -> Result<(String, String), Response> {
    let config = lock(&inner.config);
    if p.client_id.as_deref() != Some(config.client_id.as_str()) {
        return Err((StatusCode::NOT_FOUND, Html("<h1>404</h1><p>Unknown OAuth application.</p>")).into_response());
    }
    let redirect = p.redirect_uri.clone().unwrap_or_default();
    if redirect.is_empty() || reqwest::Url::parse(&redirect).is_err() {
        return Err((StatusCode::BAD_REQUEST, Html("<p>The redirect_uri is missing or invalid.</p>")).into_response());
    }
    if let Some(prefix) = &config.callback_prefix
        && !redirect.starts_with(prefix.as_str())
    {
        return Err((
            StatusCode::BAD_REQUEST,
            Html("<p>The redirect_uri is not associated with this application.</p>"),
        )
            .into_response());
    }
    if p.code_challenge.is_some() && p.code_challenge_method.as_deref().unwrap_or("plain") != "S256" {
        return Err(
            (StatusCode::BAD_REQUEST, Html("<p>Only the S256 code_challenge_method is supported.</p>")).into_response()
        );
    }
    Ok((config.client_id.clone(), redirect))
}

async fn authorize_page(State(inner): State<Arc<Inner>>, Query(p): Query<AuthorizeParams>) -> Response {
    if let Err(r) = check_authorize(&inner, &p) {
        return r;
    }
    let (user, others) = {
        let c = lock(&inner.config);
        (c.user.clone(), c.other_users.clone())
    };
    let other_buttons: String = others
        .iter()
        .map(|u| {
            format!(
                r#"<button type="submit" id="sign-in-{login}" name="user" value="{login}">Sign in as {login}</button>"#,
                login = escape(&u.login)
            )
        })
        .collect();
    let hidden = |name: &str, value: &Option<String>| {
        value
            .as_ref()
            .map_or_else(String::new, |v| format!(r#"<input type="hidden" name="{name}" value="{}">"#, escape(v)))
    };
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Authorize application</title></head>
<body><main><h1>Authorize application</h1>
<p>Signed in as <strong id="login">{login}</strong>{name}.</p>
<form method="post" action="/login/oauth/authorize">{f1}{f2}{f3}{f4}{f5}{f6}
<button type="submit" id="sign-in" name="decision" value="approve">Sign in as {login}</button>
{other_buttons}
<button type="submit" id="cancel" name="decision" value="deny">Cancel</button>
</form></main></body></html>"#,
        login = escape(&user.login),
        name = user.name.as_ref().map_or_else(String::new, |n| format!(" ({})", escape(n))),
        f1 = hidden("client_id", &p.client_id),
        f2 = hidden("redirect_uri", &p.redirect_uri),
        f3 = hidden("state", &p.state),
        f4 = hidden("scope", &p.scope),
        f5 = hidden("code_challenge", &p.code_challenge),
        f6 = hidden("code_challenge_method", &p.code_challenge_method),
    );
    Html(page).into_response()
}

fn issue_code(inner: &Inner, client_id: &str, redirect_uri: &str, challenge: Option<String>, user_id: i64) -> String {
    let code = random_hex(10);
    lock(&inner.state).codes.insert(
        code.clone(),
        CodeGrant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge,
            user_id,
            issued: Instant::now(),
        },
    );
    code
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

async fn authorize_submit(State(inner): State<Arc<Inner>>, Form(p): Form<AuthorizeParams>) -> Response {
    let (client_id, redirect) = match check_authorize(&inner, &p) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let state = p.state.clone().unwrap_or_default();
    // Another identity's button carries its login instead of a decision.
    let chosen = p.user.as_ref().and_then(|login| {
        let c = lock(&inner.config);
        c.other_users.iter().find(|u| &u.login == login).cloned()
    });
    if p.user.is_some() && chosen.is_none() {
        return api_error(StatusCode::UNPROCESSABLE_ENTITY, "unknown test identity");
    }
    if chosen.is_none() && p.decision.as_deref() != Some("approve") {
        let target = with_query(
            &redirect,
            &[
                ("error", "access_denied"),
                ("error_description", "The user has denied your application access."),
                ("state", &state),
            ],
        );
        return Redirect::to(&target).into_response();
    }
    let user_id = match chosen {
        Some(user) => {
            let id = user.id;
            lock(&inner.state).other_users.insert(id, user);
            id
        }
        None => lock(&inner.config).user.id,
    };
    let code = issue_code(&inner, &client_id, &redirect, p.code_challenge.clone(), user_id);
    Redirect::to(&with_query(&redirect, &[("code", &code), ("state", &state)])).into_response()
}

#[derive(Deserialize, Debug, Default)]
struct TokenParams {
    client_id: Option<String>,
    client_secret: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    grant_type: Option<String>,
    refresh_token: Option<String>,
}

fn oauth_answer(json_wanted: bool, fields: &[(&str, &str)]) -> Response {
    if json_wanted {
        // Lifetimes are numbers in GitHub's JSON answer.
        let value = |k: &str, v: &str| match v.parse::<u64>() {
            Ok(n) if k.ends_with("expires_in") => json!(n),
            _ => json!(v),
        };
        let map: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), value(k, v))).collect();
        Json(Value::Object(map)).into_response()
    } else {
        let mut s = reqwest::Url::parse("http://x/").map(|mut u| {
            u.query_pairs_mut().extend_pairs(fields.iter());
            u.query().unwrap_or_default().to_owned()
        });
        let body = s.as_mut().map(std::mem::take).unwrap_or_default();
        ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")], body).into_response()
    }
}

fn oauth_error(json_wanted: bool, error: &str, description: &str) -> Response {
    oauth_answer(
        json_wanted,
        &[("error", error), ("error_description", description), ("error_uri", "https://docs.github.com/apps/oauth")],
    )
}

async fn access_token(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let json_wanted = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("json"));
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    let params: TokenParams =
        if is_json { serde_json::from_slice(&body).unwrap_or_default() } else { serde_urlencoded_parse(&body) };
    let config = lock(&inner.config).clone();
    let mut state = lock(&inner.state);
    state.exchanges += 1;
    if params.client_id.as_deref() != Some(config.client_id.as_str())
        || params.client_secret.as_deref() != Some(config.client_secret.as_str())
    {
        return oauth_error(
            json_wanted,
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    if params.grant_type.as_deref() == Some("refresh_token") {
        // A refresh token works once: it and the access token issued with it
        // die, whether or not the answer reaches the caller.
        let now = unix_now();
        let used = params.refresh_token.as_ref().and_then(|t| state.refresh_tokens.remove(t));
        let Some(used) = used.filter(|r| r.expires > now) else {
            return oauth_error(json_wanted, "bad_refresh_token", "The refresh token passed is incorrect or expired.");
        };
        state.user_tokens.remove(&used.access_token);
        state.refreshes += 1;
        let fields = issue_user_tokens(&mut state, &config, used.user);
        return oauth_answer(json_wanted, &fields.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    }
    // A code is consumed by its first exchange, successful or not.
    let grant = params.code.as_ref().and_then(|c| state.codes.remove(c));
    let Some(grant) =
        grant.filter(|g| g.issued.elapsed() < Duration::from_secs(600) && g.client_id == config.client_id)
    else {
        return oauth_error(json_wanted, "bad_verification_code", "The code passed is incorrect or expired.");
    };
    if let Some(uri) = &params.redirect_uri
        && *uri != grant.redirect_uri
    {
        return oauth_error(
            json_wanted,
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let ok = params.code_verifier.as_deref().is_some_and(|v| sam_core::secret::pkce_challenge(v) == *challenge);
        if !ok {
            return oauth_error(
                json_wanted,
                "bad_verification_code",
                "The code_verifier does not match the code_challenge.",
            );
        }
    }
    let fields = issue_user_tokens(&mut state, &config, grant.user_id);
    oauth_answer(json_wanted, &fields.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>())
}

/// A new user access token for `user` (and, when user tokens expire, a
/// refresh token), as the fields of GitHub's token answer.
fn issue_user_tokens(state: &mut GState, config: &GithubEmulatorConfig, user: i64) -> Vec<(&'static str, String)> {
    let now = unix_now();
    let access = format!("ghu_{}", random_hex(18));
    let expires = config.user_token_ttl.map(|ttl| now + ttl.as_secs());
    state.user_tokens.insert(access.clone(), UserToken { user, expires });
    let mut fields = vec![("access_token", access.clone())];
    if let Some(ttl) = config.user_token_ttl {
        let refresh = format!("ghr_{}", random_hex(30));
        let refresh_ttl = config.refresh_token_ttl.as_secs();
        state
            .refresh_tokens
            .insert(refresh.clone(), RefreshToken { user, expires: now + refresh_ttl, access_token: access });
        fields.push(("expires_in", ttl.as_secs().to_string()));
        fields.push(("refresh_token", refresh));
        fields.push(("refresh_token_expires_in", refresh_ttl.to_string()));
    }
    fields.push(("token_type", "bearer".to_owned()));
    fields.push(("scope", String::new()));
    fields
}

fn serde_urlencoded_parse(body: &[u8]) -> TokenParams {
    let text = String::from_utf8_lossy(body);
    let url = reqwest::Url::parse(&format!("http://x/?{text}"));
    let mut p = TokenParams::default();
    if let Ok(url) = url {
        for (k, v) in url.query_pairs() {
            let v = Some(v.into_owned());
            match k.as_ref() {
                "client_id" => p.client_id = v,
                "client_secret" => p.client_secret = v,
                "code" => p.code = v,
                "redirect_uri" => p.redirect_uri = v,
                "code_verifier" => p.code_verifier = v,
                "grant_type" => p.grant_type = v,
                "refresh_token" => p.refresh_token = v,
                _ => {}
            }
        }
    }
    p
}

fn user_for(inner: &Inner, headers: &HeaderMap) -> Option<EmulatedUser> {
    let token = bearer(headers)?;
    let (id, other) = {
        let state = lock(&inner.state);
        let issued = *state.user_tokens.get(&token)?;
        if issued.expires.is_some_and(|at| at <= unix_now()) {
            return None;
        }
        (issued.user, state.other_users.get(&issued.user).cloned())
    };
    let user = lock(&inner.config).user.clone();
    if user.id == id { Some(user) } else { other }
}

fn bad_credentials() -> Response {
    api_error(StatusCode::UNAUTHORIZED, "Bad credentials")
}

async fn user(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let Some(u) = user_for(&inner, &headers) else {
        return bad_credentials();
    };
    let base = inner.base_url.get().cloned().unwrap_or_default();
    Json(shapes::private_user(&base, &u)).into_response()
}

async fn user_emails(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let Some(u) = user_for(&inner, &headers) else {
        return bad_credentials();
    };
    let mut emails = vec![
        json!({"email": format!("{}@users.noreply.github.com", u.login), "primary": false, "verified": true, "visibility": null}),
    ];
    if let Some(e) = &u.email {
        emails.insert(0, json!({"email": e, "primary": true, "verified": true, "visibility": "private"}));
    }
    Json(json!(emails)).into_response()
}

#[derive(Deserialize, Default)]
struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// Slices `items` for the page and builds the `Link` header.
fn paginate<T: Clone>(inner: &Inner, path: &str, items: &[T], q: &PageQuery) -> (Vec<T>, Option<String>) {
    let page = q.page.as_deref().and_then(|p| p.parse::<usize>().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let per_page =
        q.per_page.as_deref().and_then(|p| p.parse::<usize>().ok()).filter(|p| *p >= 1).unwrap_or(30).min(100);
    let last = items.len().div_ceil(per_page).max(1);
    let slice = items.iter().skip((page - 1).saturating_mul(per_page)).take(per_page).cloned().collect();
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let link = |p: usize, rel: &str| format!("<{base}{path}?per_page={per_page}&page={p}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    (slice, (!links.is_empty()).then(|| links.join(", ")))
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, v);
    }
    response
}

/// What installations show of the app; read before locking the state.
struct AppIdentity {
    base: String,
    app_id: String,
    slug: String,
    client_id: String,
}

fn app_identity(inner: &Inner) -> AppIdentity {
    let c = lock(&inner.config);
    AppIdentity {
        base: inner.base_url.get().cloned().unwrap_or_default(),
        app_id: c.app_id.clone(),
        slug: c.app_slug.clone(),
        client_id: c.client_id.clone(),
    }
}

fn installation_json(app: &AppIdentity, i: &EmulatedInstallation) -> Value {
    shapes::installation(&app.base, i, &app.app_id, &app.slug, &app.client_id)
}

fn repo_ref(full_name: &str) -> Value {
    let id = i64::from_str_radix(&sam_core::secret::sha256_hex(full_name.as_bytes())[..8], 16).unwrap_or(1);
    let name = full_name.split('/').nth(1).unwrap_or(full_name);
    json!({"id": id, "node_id": format!("R_{id}"), "name": name, "full_name": full_name, "private": true})
}

async fn user_installations(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some(u) = user_for(&inner, &headers) else {
        return bad_credentials();
    };
    let app = app_identity(&inner);
    let visible: Vec<Value> = lock(&inner.state)
        .installations
        .values()
        .filter(|i| i.visible_to.contains(&u.id))
        .map(|i| installation_json(&app, i))
        .collect();
    let total = visible.len();
    let (items, link) = paginate(&inner, "/user/installations", &visible, &q);
    with_link(Json(json!({"total_count": total, "installations": items})).into_response(), link)
}

#[derive(Deserialize)]
struct AppClaims {
    iat: i64,
    exp: i64,
    iss: Value,
}

/// Checks the app JWT the way GitHub does.
fn check_app_jwt(inner: &Inner, headers: &HeaderMap) -> Result<(), Response> {
    let token =
        bearer(headers).ok_or_else(|| api_error(StatusCode::UNAUTHORIZED, "A JSON web token could not be decoded"))?;
    let (pem, app_id, client_id) = {
        let c = lock(&inner.config);
        (c.app_public_key_pem.clone(), c.app_id.clone(), c.client_id.clone())
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| api_error(StatusCode::INTERNAL_SERVER_ERROR, "emulator: invalid app public key"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    let data = jsonwebtoken::decode::<AppClaims>(&token, &key, &validation).map_err(|e| {
        let message = match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
            _ => "A JSON web token could not be decoded",
        };
        api_error(StatusCode::UNAUTHORIZED, message)
    })?;
    let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    let claims = data.claims;
    if claims.iat > now + 1 {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "'Issued at' claim ('iat') must be an Integer representing a time in the past",
        ));
    }
    if claims.exp > now + 600 + 1 || claims.exp - claims.iat > 600 + 60 {
        return Err(api_error(StatusCode::UNAUTHORIZED, "'Expiration time' claim ('exp') is too far in the future"));
    }
    let iss = match &claims.iss {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if iss != app_id && iss != client_id {
        return Err(api_error(StatusCode::UNAUTHORIZED, "'Issuer' claim ('iss') must be an Integer"));
    }
    Ok(())
}

async fn app_installation(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(r) = check_app_jwt(&inner, &headers) {
        return r;
    }
    let app = app_identity(&inner);
    match lock(&inner.state).installations.get(&id) {
        Some(i) => Json(installation_json(&app, i)).into_response(),
        None => api_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The body of `POST /app/installations/{id}/access_tokens`.
#[derive(Deserialize, Default)]
struct MintRequest {
    repositories: Option<Vec<String>>,
    repository_ids: Option<Vec<i64>>,
    permissions: Option<BTreeMap<String, String>>,
}

fn level(access: &str) -> u8 {
    match access {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

async fn mint_token(State(inner): State<Arc<Inner>>, headers: HeaderMap, Path(id): Path<i64>, body: Bytes) -> Response {
    if let Err(r) = check_app_jwt(&inner, &headers) {
        return r;
    }
    let request: MintRequest = if body.iter().all(u8::is_ascii_whitespace) {
        MintRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => return api_error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    let (ttl, app_permissions) = {
        let c = lock(&inner.config);
        (c.installation_token_ttl, c.app_permissions.clone())
    };
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let mut state = lock(&inner.state);
    let Some(installation) = state.installations.get(&id).cloned() else {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if installation.suspended {
        return api_error(StatusCode::FORBIDDEN, "This installation has been suspended");
    }
    // Names are without the owner; ids are the repositories' ids.
    let mut scope: Option<Vec<String>> = None;
    let requested = request.repositories.iter().flatten().map(|name| format!("{}/{name}", installation.account_login));
    let by_id = request.repository_ids.iter().flatten().map(|wanted| {
        installation.repositories.keys().find(|full| shapes::id_of(full) == *wanted).cloned().unwrap_or_default()
    });
    for full in requested.chain(by_id) {
        if !installation.repositories.contains_key(&full) {
            return api_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "There is at least one repository that does not exist or is not accessible to the parent installation.",
            );
        }
        scope.get_or_insert_with(Vec::new).push(full);
    }
    let mut permissions = app_permissions.clone();
    if let Some(asked) = &request.permissions {
        for (name, access) in asked {
            let granted = app_permissions.get(name).map_or(0, |a| level(a));
            if level(access) == 0 || level(access) > granted {
                return api_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "The permissions requested are not granted to this installation.",
                );
            }
        }
        permissions = asked.clone();
    }
    let contents = permissions.get("contents").cloned().unwrap_or_default();
    let token = format!("ghs_{}", random_hex(18));
    let expires = time::OffsetDateTime::now_utc() + ttl;
    let grant =
        InstallationGrant { installation: id, expires: Instant::now() + ttl, repositories: scope.clone(), contents };
    state.installation_tokens.insert(token.clone(), grant);
    state.token_mints += 1;
    let expires_at = rfc3339(expires.replace_nanosecond(0).unwrap_or(expires));
    let mut answer = json!({"token": token, "expires_at": expires_at, "permissions": permissions,
                            "repository_selection": if scope.is_some() { "selected" } else { "all" }});
    if let Some(scope) = &scope {
        let owner = shapes::simple_user(
            &base,
            &installation.account_login,
            installation.account_id,
            &installation.account_type,
        );
        let repos: Vec<Value> = scope
            .iter()
            .map(|full| {
                let default =
                    installation.repositories.get(full).and_then(|b| b.first()).map_or("main", String::as_str);
                shapes::repository(&base, full, &owner, default, None, false)
            })
            .collect();
        answer["repositories"] = json!(repos);
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// The installation an installation token reads, limited to the token's
/// repositories.
fn installation_for(inner: &Inner, headers: &HeaderMap) -> Result<EmulatedInstallation, Response> {
    let token = bearer(headers).ok_or_else(bad_credentials)?;
    let state = lock(&inner.state);
    let grant = state.installation_tokens.get(&token).ok_or_else(bad_credentials)?;
    if Instant::now() >= grant.expires {
        return Err(bad_credentials());
    }
    state.installations.get(&grant.installation).map(|i| grant.scope(i)).ok_or_else(bad_credentials)
}

async fn installation_repositories(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let installation = match installation_for(&inner, &headers) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let repos = repos::repositories_of(&inner, std::slice::from_ref(&installation), None);
    let total = repos.len();
    let (items, link) = paginate(&inner, "/installation/repositories", &repos, &q);
    with_link(
        Json(json!({"total_count": total, "repository_selection": "selected", "repositories": items})).into_response(),
        link,
    )
}

/// The install page's query and form: who is signed in (`as`, a login of
/// the test user or [`GithubEmulatorConfig::other_users`]) and, on submit,
/// which account to install on.
#[derive(Deserialize, Default)]
struct InstallParams {
    #[serde(rename = "as")]
    acting: Option<String>,
    account: Option<String>,
}

/// The signed-in user of the install page: the test user, one of
/// [`GithubEmulatorConfig::other_users`], or someone who signed in through
/// [`GithubEmulator::approve_as`].
fn acting_user(inner: &Inner, config: &GithubEmulatorConfig, login: Option<&str>) -> Option<EmulatedUser> {
    match login {
        None => Some(config.user.clone()),
        Some(login) if login == config.user.login => Some(config.user.clone()),
        Some(login) => config
            .other_users
            .iter()
            .find(|u| u.login == login)
            .cloned()
            .or_else(|| lock(&inner.state).other_users.values().find(|u| u.login == login).cloned()),
    }
}

fn app_owner(config: &GithubEmulatorConfig) -> String {
    config.app_owner.clone().unwrap_or_else(|| config.user.login.clone())
}

async fn install_page(
    State(inner): State<Arc<Inner>>,
    Path(slug): Path<String>,
    Query(q): Query<InstallParams>,
) -> Response {
    let config = lock(&inner.config).clone();
    if slug != config.app_slug {
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1>")).into_response();
    }
    let Some(user) = acting_user(&inner, &config, q.acting.as_deref()) else {
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1><p>Unknown user.</p>")).into_response();
    };
    let list: String =
        config.install_repositories.iter().map(|(name, _)| format!("<li>{}</li>", escape(repo_name(name)))).collect();
    let accounts = std::iter::once(user.login.clone()).chain(config.install_accounts.iter().cloned());
    let buttons: String = accounts
        .map(|login| {
            format!(
                r#"<button type="submit" id="install-on-{l}" name="account" value="{l}">Install on {l}</button>"#,
                l = escape(&login)
            )
        })
        .collect();
    let acting = escape(&user.login);
    Html(format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Install {slug}</title></head>
<body><main><h1>Install {slug}</h1><p>Signed in as <strong id="login">{acting}</strong>. Install on
<strong>{acting}</strong> with access to:</p><ul>{list}</ul>
<form method="post" action="/apps/{slug}/installations/new?as={acting}"><button type="submit" id="install">Install</button>{buttons}</form>
</main></body></html>"#,
        slug = escape(&slug),
    ))
    .into_response()
}

/// `name` of `owner/name`.
fn repo_name(full: &str) -> &str {
    full.split_once('/').map_or(full, |(_, name)| name)
}

/// The install page's buttons: creates an installation on the chosen account
/// (the signed-in user's own, or an organization of
/// [`GithubEmulatorConfig::install_accounts`]) granting
/// [`GithubEmulatorConfig::install_repositories`] under that account, sends
/// the signed `installation` `created` webhook (when a URL is configured),
/// and redirects to the setup URL. A private app installs only on its owner.
async fn install_submit(
    State(inner): State<Arc<Inner>>,
    Path(slug): Path<String>,
    Query(q): Query<InstallParams>,
    body: Bytes,
) -> Response {
    // The form, if any (a bare POST installs on the signed-in user).
    let mut form = InstallParams::default();
    if let Ok(url) = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(&body))) {
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "account" => form.account = Some(v.into_owned()),
                "as" => form.acting = Some(v.into_owned()),
                _ => {}
            }
        }
    }
    let config = lock(&inner.config).clone();
    if slug != config.app_slug {
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1>")).into_response();
    }
    let Some(user) = acting_user(&inner, &config, q.acting.as_deref().or(form.acting.as_deref())) else {
        return (StatusCode::NOT_FOUND, Html("<h1>404</h1><p>Unknown user.</p>")).into_response();
    };
    let account = form.account.unwrap_or_else(|| user.login.clone());
    let is_org = config.install_accounts.contains(&account);
    if account != user.login && !is_org {
        return (StatusCode::FORBIDDEN, Html("<p id=\"error\">You cannot install apps on that account.</p>"))
            .into_response();
    }
    let owner = app_owner(&config);
    if !config.app_public && !account.eq_ignore_ascii_case(&owner) {
        let message = format!("{} is a private GitHub App: only its owner, {owner}, can install it.", config.app_slug);
        return (StatusCode::FORBIDDEN, Html(format!("<p id=\"error\">{}</p>", escape(&message)))).into_response();
    }
    let installation = {
        let mut state = lock(&inner.state);
        let id = 1_000 + i64::try_from(state.installations.len()).unwrap_or(0) * 7 + 1;
        let installation = EmulatedInstallation {
            id,
            account_login: account.clone(),
            account_id: if is_org { shapes::id_of(&account) } else { user.id },
            account_type: if is_org { "Organization".into() } else { "User".into() },
            suspended: false,
            visible_to: vec![user.id],
            repositories: config
                .install_repositories
                .iter()
                .map(|(name, branches)| (format!("{account}/{}", repo_name(name)), branches.clone()))
                .collect(),
            roles: if is_org { BTreeMap::from([(user.id, "admin".to_owned())]) } else { BTreeMap::new() },
            user_repositories: BTreeMap::new(),
        };
        state.installations.insert(id, installation.clone());
        if user.id != config.user.id {
            state.other_users.insert(user.id, user.clone());
        }
        installation
    };
    if let Some(url) = config.webhook_url.clone() {
        let repos: Vec<Value> = installation.repositories.keys().map(|n| repo_ref(n)).collect();
        let payload = json!({"action": "created", "installation": installation_json(&app_identity(&inner), &installation),
            "repositories": repos, "sender": {"login": user.login, "id": user.id, "type": "User"}});
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let sig = signature(&config.webhook_secret, &body);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-github-event", "installation")
                .header("x-github-delivery", uuid_like())
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await;
            if let Err(err) = sent {
                tracing::warn!(error = %err.without_url(), "emulated GitHub could not deliver the installation webhook");
            }
        });
    }
    let id = installation.id.to_string();
    match config.setup_url {
        Some(setup) => {
            Redirect::to(&with_query(&setup, &[("installation_id", &id), ("setup_action", "install")])).into_response()
        }
        None => {
            Html(format!("<!doctype html><p>Installed: installation <span id=\"installation-id\">{id}</span>.</p>"))
                .into_response()
        }
    }
}

#[derive(Deserialize, Default)]
struct ManifestForm {
    manifest: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize, Default)]
struct StateQuery {
    state: Option<String>,
}

fn manifest_problem(message: &str) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Html(format!("<!doctype html><p id=\"error\">{}</p>", escape(message))))
        .into_response()
}

/// Parses and checks a manifest the way the new-app page does.
fn parse_manifest(text: Option<&str>) -> Result<Value, Response> {
    let text = text.ok_or_else(|| manifest_problem("The manifest parameter is missing."))?;
    let manifest: Value =
        serde_json::from_str(text).map_err(|_| manifest_problem("The manifest is not valid JSON."))?;
    if !manifest.is_object() {
        return Err(manifest_problem("The manifest must be a JSON object."));
    }
    if manifest.get("url").and_then(Value::as_str).is_none_or(|u| reqwest::Url::parse(u).is_err()) {
        return Err(manifest_problem("url is a required, valid URL."));
    }
    for key in ["redirect_url", "setup_url"] {
        if manifest.get(key).and_then(Value::as_str).is_some_and(|u| reqwest::Url::parse(u).is_err()) {
            return Err(manifest_problem(&format!("{key} is not a valid URL.")));
        }
    }
    Ok(manifest)
}

async fn manifest_page(Query(q): Query<StateQuery>, Form(form): Form<ManifestForm>) -> Response {
    let manifest = match parse_manifest(form.manifest.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let state = form.state.or(q.state).unwrap_or_default();
    let name = manifest.get("name").and_then(Value::as_str).unwrap_or("");
    let permissions = manifest.get("default_permissions").map(Value::to_string).unwrap_or_else(|| "{}".into());
    Html(format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Create GitHub App</title></head>
<body><main><h1>Create GitHub App <span id="app-name">{name}</span></h1><p>Permissions: <code id="permissions">{permissions}</code></p>
<form method="post" action="/settings/apps/new/confirm"><input type="hidden" name="manifest" value="{manifest}"><input type="hidden" name="state" value="{state}">
<button type="submit" id="create">Create GitHub App</button></form></main></body></html>"#,
        name = escape(name),
        permissions = escape(&permissions),
        manifest = escape(&manifest.to_string()),
        state = escape(&state),
    ))
    .into_response()
}

async fn manifest_page_org(Path(_org): Path<String>, query: Query<StateQuery>, form: Form<ManifestForm>) -> Response {
    manifest_page(query, form).await
}

async fn manifest_confirm(State(inner): State<Arc<Inner>>, Form(form): Form<ManifestForm>) -> Response {
    let manifest = match parse_manifest(form.manifest.as_deref()) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let redirect = manifest
        .get("redirect_url")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{base}/settings/apps"), str::to_owned);
    let code = random_hex(10);
    lock(&inner.state).manifest_codes.insert(code.clone(), (manifest, Instant::now()));
    let state = form.state.unwrap_or_default();
    Redirect::to(&with_query(&redirect, &[("code", &code), ("state", &state)])).into_response()
}

/// What the app created from `manifest` is: public or private, and its
/// permissions.
fn adopt_manifest(config: &mut GithubEmulatorConfig, manifest: &Value) {
    // GitHub's manifest default is a private app.
    config.app_public = manifest.get("public").and_then(Value::as_bool).unwrap_or(false);
    if let Some(permissions) = manifest.get("default_permissions").and_then(Value::as_object) {
        config.app_permissions =
            permissions.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect();
    }
}

fn app_json(config: &GithubEmulatorConfig, base: &str, name: &str, permissions: &Value) -> Value {
    json!({"id": config.app_id.parse::<i64>().unwrap_or(0), "slug": config.app_slug,
        "node_id": format!("A_{}", config.app_id), "client_id": config.client_id,
        "owner": shapes::simple_user(base, &app_owner(config), shapes::id_of(&app_owner(config)), "User"),
        "name": name, "description": "", "external_url": base, "html_url": format!("{base}/apps/{}", config.app_slug),
        "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
        "permissions": permissions, "events": []})
}

async fn manifest_conversion(State(inner): State<Arc<Inner>>, Path(code): Path<String>) -> Response {
    let grant = lock(&inner.state).manifest_codes.remove(&code);
    let Some((manifest, _)) = grant.filter(|(_, issued)| issued.elapsed() < Duration::from_secs(3600)) else {
        return api_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let config = {
        let mut c = lock(&inner.config);
        if let Some(url) = manifest.pointer("/hook_attributes/url").and_then(Value::as_str) {
            c.webhook_url = Some(url.to_owned());
        }
        if let Some(url) = manifest.get("setup_url").and_then(Value::as_str) {
            c.setup_url = Some(url.to_owned());
        }
        adopt_manifest(&mut c, &manifest);
        c.clone()
    };
    lock(&inner.state).created_apps.push(manifest.clone());
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let name = manifest.get("name").and_then(Value::as_str).unwrap_or(&config.app_slug).to_owned();
    let permissions = manifest.get("default_permissions").cloned().unwrap_or_else(|| json!({}));
    let mut app = app_json(&config, &base, &name, &permissions);
    if let Some(obj) = app.as_object_mut() {
        obj.insert("client_secret".into(), json!(config.client_secret));
        obj.insert("webhook_secret".into(), json!(config.webhook_secret));
        obj.insert("pem".into(), json!(TEST_APP_PRIVATE_KEY_PEM));
    }
    (StatusCode::CREATED, Json(app)).into_response()
}

async fn authenticated_app(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if let Err(r) = check_app_jwt(&inner, &headers) {
        return r;
    }
    let config = lock(&inner.config).clone();
    let base = inner.base_url.get().cloned().unwrap_or_default();
    let (name, permissions, count) = {
        let state = lock(&inner.state);
        let last = state.created_apps.last();
        (
            last.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or(&config.app_slug).to_owned(),
            json!(config.app_permissions),
            state.installations.len(),
        )
    };
    let mut app = app_json(&config, &base, &name, &permissions);
    if let Some(obj) = app.as_object_mut() {
        obj.insert("installations_count".into(), json!(count));
    }
    Json(app).into_response()
}
