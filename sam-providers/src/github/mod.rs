//! GitHub adapter: sign-in through the OAuth web flow ([`IdentityProvider`]),
//! repository access through a GitHub App ([`RepoAccess`]), and webhook
//! verification ([`WebhookVerifier`]).
//!
//! - OAuth: `GET {web}/login/oauth/authorize` with `state` and a PKCE `S256`
//!   challenge; `POST {web}/login/oauth/access_token` with the verifier
//!   (`Accept: application/json`; GitHub reports errors such as
//!   `bad_verification_code` in an HTTP 200 body, and they are errors here);
//!   then `GET /user` and `GET /user/emails`. Users are bound to the numeric
//!   id, never the login. Expiring user tokens (`expires_in`) come with a
//!   `refresh_token`, traded once (`grant_type=refresh_token`, never
//!   resent) for a new pair; `bad_refresh_token` is `Unauthorized`.
//! - As the user (their token decides what they reach):
//!   `GET /user/installations`, `GET
//!   /user/installations/{id}/repositories` (with each repository's
//!   `permissions.push`), `GET /repos/{owner}/{repo}` and `GET
//!   /repos/{owner}/{repo}/branches`, following the `Link` header.
//! - App: an RS256 app JWT (`iat` = now − 60 s, `exp` = now + 9 min, `iss` =
//!   app id) for `POST /app/installations/{id}/access_tokens` with
//!   `repositories: [name]` and `permissions: {contents: read|write,
//!   metadata: read}`: every token is for one repository and is never cached
//!   or shared.
//! - Webhooks: `X-Hub-Signature-256` checked in constant time, deliveries
//!   de-duplicated by `X-GitHub-Delivery` through a [`DeliveryLog`], and
//!   `installation` / `installation_repositories` events parsed into
//!   [`WebhookEvent`].
//!
//! API errors map to kinds: 401 → `Unauthorized` (the token is dead: renew
//! it); 403/429 with `x-ratelimit-remaining: 0` or a `retry-after` →
//! `RateLimited` (wait from `retry-after` / `x-ratelimit-reset`), other 403
//! → `Forbidden` (a permission or policy; a new token will not help); 404 →
//! `NotFound`; 422 → `InvalidConfig`; 5xx and timeouts → `Transient`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::{Method, Url};
use sam_core::domain::{GithubUserId, InstallationId, NewUser, RepoFullName, Timestamp};
use sam_core::ports::{
    IdentityProvider, InstallationInfo, InstallationToken, Page, ProviderError, ProviderErrorKind, RepoAccess,
    Repository, TokenScope, UserTokens, VerifiedIdentity,
};
use sam_core::secret::SecretString;
use serde::Deserialize;

use crate::github_webhooks::GhInstallation;
pub use crate::github_webhooks::{
    DeliveryLog, InMemoryDeliveryLog, StoreDeliveryLog, VerifiedDelivery, WebhookError, WebhookEvent, WebhookHeaders,
    WebhookVerifier, parse_event, verify_signature,
};
use crate::http::{self, HttpClient, HttpConfig, Request, Response};

mod app_setup;

pub use app_setup::{AppCredentials, AppInfo, MANIFEST_REDIRECT_PATH, app_manifest, convert_manifest};

/// GitHub's web host (OAuth pages).
pub const DEFAULT_WEB_URL: &str = "https://github.com";
/// GitHub's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
const PROVIDER: &str = "github";
const MAX_PAGES: u32 = 100;

/// Configuration of the GitHub App SAM signs in with and reads repositories
/// through.
#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// Web base URL ([`DEFAULT_WEB_URL`] or an emulator's).
    pub web_base_url: String,
    /// API base URL ([`DEFAULT_API_URL`] or an emulator's).
    pub api_base_url: String,
    /// OAuth client id of the app.
    pub client_id: String,
    /// OAuth client secret of the app.
    pub client_secret: SecretString,
    /// App id (the app JWT's `iss`).
    pub app_id: String,
    /// App slug (for the install URL).
    pub app_slug: String,
    /// The app's private key, PEM.
    pub app_private_key_pem: SecretString,
    /// OAuth scope to request (`None` for GitHub Apps, which use permissions).
    pub scope: Option<String>,
    /// Repositories per page in [`RepoAccess::list_repositories`] (≤ 100).
    pub repositories_per_page: u32,
    /// Transport settings.
    pub http: HttpConfig,
}

impl GithubConfig {
    /// A configuration for github.com.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        app_id: impl Into<String>,
        app_slug: impl Into<String>,
        app_private_key_pem: SecretString,
    ) -> Self {
        Self {
            web_base_url: DEFAULT_WEB_URL.into(),
            api_base_url: DEFAULT_API_URL.into(),
            client_id: client_id.into(),
            client_secret,
            app_id: app_id.into(),
            app_slug: app_slug.into(),
            app_private_key_pem,
            scope: None,
            repositories_per_page: 100,
            http: HttpConfig::default(),
        }
    }
}

#[cfg(feature = "emulators")]
impl GithubConfig {
    /// A configuration for the GitHub emulator at `base_url` (web and API),
    /// with the emulator's app credentials and its public test key.
    pub fn emulated(base_url: &str) -> Self {
        use crate::emulators::{
            GITHUB_APP_ID, GITHUB_APP_SLUG, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, TEST_APP_PRIVATE_KEY_PEM,
        };
        let mut config = Self::new(
            GITHUB_CLIENT_ID,
            SecretString::new(GITHUB_CLIENT_SECRET),
            GITHUB_APP_ID,
            GITHUB_APP_SLUG,
            SecretString::new(TEST_APP_PRIVATE_KEY_PEM),
        );
        config.web_base_url = base_url.to_owned();
        config.api_base_url = base_url.to_owned();
        config
    }
}

/// The GitHub adapter: [`IdentityProvider`] and [`RepoAccess`].
pub struct GithubApp {
    http: HttpClient,
    web: Url,
    api: Url,
    client_id: String,
    client_secret: SecretString,
    app_id: String,
    app_slug: String,
    app_key: jsonwebtoken::EncodingKey,
    scope: Option<String>,
    per_page: u32,
}

impl std::fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApp")
            .field("web", &self.web.as_str())
            .field("api", &self.api.as_str())
            .field("client_id", &self.client_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidConfig, message)
}

/// Installs jsonwebtoken's aws-lc-rs provider (idempotent), so signing works
/// even when another crate in the build enables a second backend.
fn ensure_jwt_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[derive(serde::Serialize)]
struct AppClaims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

#[derive(Deserialize)]
struct OAuthAnswer {
    access_token: Option<String>,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl OAuthAnswer {
    /// The tokens of a successful answer; the error of a failed one (GitHub
    /// reports errors in an HTTP 200 body).
    fn into_tokens(self) -> Result<UserTokens, ProviderError> {
        if let Some(error) = self.error {
            let kind = match error.as_str() {
                "bad_verification_code" | "bad_refresh_token" | "unverified_user_email" | "access_denied" => {
                    ProviderErrorKind::Unauthorized
                }
                "incorrect_client_credentials" | "redirect_uri_mismatch" => ProviderErrorKind::InvalidConfig,
                _ => ProviderErrorKind::Other,
            };
            let description: String = self.error_description.unwrap_or_default().chars().take(200).collect();
            return Err(ProviderError::new(kind, format!("github: OAuth error {error}: {description}")));
        }
        let access_token =
            self.access_token.filter(|t| !t.is_empty()).map(SecretString::new).ok_or_else(|| {
                ProviderError::new(ProviderErrorKind::Other, "github: token response without a token")
            })?;
        let now = time::OffsetDateTime::now_utc();
        let after = |seconds: Option<i64>| seconds.filter(|s| *s > 0).map(|s| now + time::Duration::seconds(s));
        Ok(UserTokens {
            access_token,
            expires_at: after(self.expires_in),
            refresh_token: self.refresh_token.filter(|t| !t.is_empty()).map(SecretString::new),
            refresh_expires_at: after(self.refresh_token_expires_in),
        })
    }
}

#[derive(Deserialize)]
struct GhUser {
    id: i64,
    login: String,
    name: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GhEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct GhInstallations {
    installations: Vec<GhInstallation>,
}

#[derive(Deserialize)]
struct GhRepo {
    full_name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    permissions: Option<GhPermissions>,
}

#[derive(Deserialize)]
struct GhPermissions {
    #[serde(default)]
    push: bool,
}

impl GhRepo {
    fn into_repository(self) -> Option<Repository> {
        Some(Repository {
            full_name: RepoFullName::new(self.full_name).ok()?,
            private: self.private,
            default_branch: self.default_branch.unwrap_or_else(|| "main".into()),
            push: self.permissions.is_some_and(|p| p.push),
        })
    }
}

#[derive(Deserialize)]
struct GhRepos {
    repositories: Vec<GhRepo>,
}

#[derive(Deserialize)]
struct GhBranch {
    name: String,
}

#[derive(Deserialize)]
struct GhToken {
    token: String,
    expires_at: String,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl GithubApp {
    /// An adapter for `config`; fails with `InvalidConfig` on a bad URL or key.
    pub fn new(config: GithubConfig) -> Result<Self, ProviderError> {
        ensure_jwt_provider();
        let app_key = jsonwebtoken::EncodingKey::from_rsa_pem(config.app_private_key_pem.expose().as_bytes())
            .map_err(|_| invalid("github: the app private key is not an RSA PEM key"))?;
        Ok(Self {
            http: HttpClient::new(PROVIDER, config.http)?,
            web: http::parse_base(PROVIDER, &config.web_base_url)?,
            api: http::parse_base(PROVIDER, &config.api_base_url)?,
            client_id: config.client_id,
            client_secret: config.client_secret,
            app_id: config.app_id,
            app_slug: config.app_slug,
            app_key,
            scope: config.scope,
            per_page: config.repositories_per_page.clamp(1, 100),
        })
    }

    /// A fresh app JWT (RS256, `iat` 60 s in the past, `exp` 9 minutes ahead).
    pub fn app_jwt(&self) -> Result<SecretString, ProviderError> {
        let now = unix_now();
        let claims = AppClaims { iat: now.saturating_sub(60), exp: now + 540, iss: &self.app_id };
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, &claims, &self.app_key)
            .map(SecretString::new)
            .map_err(|_| ProviderError::new(ProviderErrorKind::Other, "github: cannot sign the app JWT"))
    }

    fn api_url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ProviderError> {
        let mut url = http::join(&self.api, path)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn api_request<'a>(&self, method: Method, url: Url, token: &'a SecretString) -> Request<'a> {
        Request::new(method, url)
            .bearer(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    async fn get(&self, token: &SecretString, url: Url) -> Result<Response, ProviderError> {
        self.http.send(&self.api_request(Method::GET, url, token), classify).await
    }

    async fn mint(&self, installation: InstallationId, scope: &TokenScope) -> Result<InstallationToken, ProviderError> {
        let jwt = self.app_jwt()?;
        let url = self.api_url(&format!("app/installations/{installation}/access_tokens"), &[])?;
        let contents = if scope.write { "write" } else { "read" };
        let body = serde_json::json!({
            "repositories": [scope.repository.name()],
            "permissions": {"contents": contents, "metadata": "read"},
        });
        // Minting is safe to repeat: a retry only yields another token.
        let request = self.api_request(Method::POST, url, &jwt).json(body);
        let response = self.http.send(&request, classify).await?;
        let token: GhToken = response.json(PROVIDER)?;
        let expires_at = Timestamp::parse(&token.expires_at, &time::format_description::well_known::Rfc3339)
            .map_err(|_| ProviderError::new(ProviderErrorKind::Other, "github: invalid token expiry"))?;
        Ok(InstallationToken { token: SecretString::new(token.token), expires_at })
    }

    async fn all_branches(
        &self,
        token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError> {
        let mut names = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let url = self.api_url(
                &format!("repos/{}/{}/branches", repository.owner(), repository.name()),
                &[("per_page", "100".into()), ("page", page.to_string())],
            )?;
            let response = self.get(token, url).await?;
            let branches: Vec<GhBranch> = response.json(PROVIDER)?;
            names.extend(branches.into_iter().map(|b| b.name));
            match next_page(&response) {
                Some(next) if next > page => page = next,
                _ => return Ok(names),
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "github: too many pages of branches"))
    }
}

/// The `page` of the `rel="next"` link of a response, if any.
fn next_page(response: &Response) -> Option<u32> {
    let link = response.header("link")?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.split(';').any(|p| p.trim() == "rel=\"next\"") {
            return None;
        }
        let url = Url::parse(url.trim().trim_start_matches('<').trim_end_matches('>')).ok()?;
        url.query_pairs().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok())
    })
}

#[async_trait]
impl IdentityProvider for GithubApp {
    fn authorize_url(&self, state: &str, pkce_challenge: &str, redirect_uri: &str) -> String {
        let mut url = match http::join(&self.web, "login/oauth/authorize") {
            Ok(url) => url,
            Err(_) => self.web.clone(),
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id);
            q.append_pair("redirect_uri", redirect_uri);
            q.append_pair("state", state);
            q.append_pair("code_challenge", pkce_challenge);
            q.append_pair("code_challenge_method", "S256");
            q.append_pair("allow_signup", "true");
            if let Some(scope) = &self.scope {
                q.append_pair("scope", scope);
            }
        }
        url.into()
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<VerifiedIdentity, ProviderError> {
        let url = http::join(&self.web, "login/oauth/access_token")?;
        let request = Request::new(Method::POST, url).header("accept", "application/json").form(vec![
            ("client_id".into(), self.client_id.clone()),
            ("client_secret".into(), self.client_secret.expose().to_owned()),
            ("code".into(), code.to_owned()),
            ("redirect_uri".into(), redirect_uri.to_owned()),
            ("code_verifier".into(), pkce_verifier.expose().to_owned()),
        ]);
        // A code is single use: never resend the exchange.
        let response = self.http.send_once(&request, classify).await?;
        let tokens = response.json::<OAuthAnswer>(PROVIDER)?.into_tokens()?;
        let token = tokens.access_token.clone();
        let user: GhUser = self.get(&token, self.api_url("user", &[])?).await?.json(PROVIDER)?;
        let email = match self.get(&token, self.api_url("user/emails", &[])?).await {
            Ok(response) => {
                response.json::<Vec<GhEmail>>(PROVIDER)?.into_iter().find(|e| e.primary && e.verified).map(|e| e.email)
            }
            // Without the email permission GitHub answers 403/404: fall back.
            Err(err)
                if matches!(
                    err.kind(),
                    ProviderErrorKind::NotFound | ProviderErrorKind::Unauthorized | ProviderErrorKind::Forbidden
                ) =>
            {
                None
            }
            Err(err) => return Err(err),
        };
        Ok(VerifiedIdentity {
            profile: NewUser {
                github_id: GithubUserId(user.id),
                login: user.login,
                name: user.name.filter(|n| !n.is_empty()),
                email: email.or(user.email),
                avatar_url: user.avatar_url,
            },
            tokens,
        })
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<UserTokens, ProviderError> {
        let url = http::join(&self.web, "login/oauth/access_token")?;
        let request = Request::new(Method::POST, url).header("accept", "application/json").form(vec![
            ("client_id".into(), self.client_id.clone()),
            ("client_secret".into(), self.client_secret.expose().to_owned()),
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh_token.expose().to_owned()),
        ]);
        // A refresh token works once: a resent request would only meet a
        // dead token and sign the user out.
        self.http.send_once(&request, classify).await?.json::<OAuthAnswer>(PROVIDER)?.into_tokens()
    }
}

#[async_trait]
impl RepoAccess for GithubApp {
    fn install_url(&self) -> String {
        http::join(&self.web, &format!("apps/{}/installations/new", self.app_slug))
            .map(String::from)
            .unwrap_or_default()
    }

    async fn list_installations(&self, user_token: &SecretString) -> Result<Vec<InstallationInfo>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let url = self.api_url("user/installations", &[("per_page", "100".into()), ("page", page.to_string())])?;
            let response = self.get(user_token, url).await?;
            let body: GhInstallations = response.json(PROVIDER)?;
            out.extend(body.installations.into_iter().map(GhInstallation::into_info));
            match next_page(&response) {
                Some(next) if next > page => page = next,
                _ => return Ok(out),
            }
        }
        Err(ProviderError::new(ProviderErrorKind::Other, "github: too many pages of installations"))
    }

    async fn list_repositories(
        &self,
        user_token: &SecretString,
        installation: InstallationId,
        page: u32,
    ) -> Result<Page<Repository>, ProviderError> {
        let url = self.api_url(
            &format!("user/installations/{installation}/repositories"),
            &[("per_page", self.per_page.to_string()), ("page", page.max(1).to_string())],
        )?;
        let response = self.get(user_token, url).await?;
        let body: GhRepos = response.json(PROVIDER)?;
        let items = body.repositories.into_iter().filter_map(GhRepo::into_repository).collect();
        Ok(Page { items, next_page: next_page(&response) })
    }

    async fn repository(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Repository, ProviderError> {
        let url = self.api_url(&format!("repos/{}/{}", repository.owner(), repository.name()), &[])?;
        let repo: GhRepo = self.get(user_token, url).await?.json(PROVIDER)?;
        repo.into_repository().ok_or_else(|| ProviderError::new(ProviderErrorKind::Other, "github: invalid repository"))
    }

    async fn list_branches(
        &self,
        user_token: &SecretString,
        repository: &RepoFullName,
    ) -> Result<Vec<String>, ProviderError> {
        self.all_branches(user_token, repository).await
    }

    async fn installation_token(
        &self,
        installation: InstallationId,
        scope: &TokenScope,
    ) -> Result<InstallationToken, ProviderError> {
        self.mint(installation, scope).await
    }
}

/// Maps a GitHub API response to `Ok` (2xx) or an error kind.
pub fn classify(response: &Response) -> Result<(), ProviderError> {
    let status = response.status;
    if status.is_success() {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct GhError {
        #[serde(default)]
        message: String,
    }
    let message = serde_json::from_slice::<GhError>(&response.body).map(|e| e.message).unwrap_or_default();
    let exhausted = response.header("x-ratelimit-remaining") == Some("0");
    let kind = match status.as_u16() {
        401 => ProviderErrorKind::Unauthorized,
        403 | 429 if exhausted || response.header("retry-after").is_some() || status.as_u16() == 429 => {
            ProviderErrorKind::RateLimited { retry_after: http::server_wait(&response.headers) }
        }
        403 => ProviderErrorKind::Forbidden,
        404 => ProviderErrorKind::NotFound,
        422 => ProviderErrorKind::InvalidConfig,
        _ => http::kind_for_status(status, &response.headers),
    };
    let message: String = message.chars().take(200).collect();
    Err(ProviderError::new(kind, format!("github: {}: {message}", status.as_u16())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        Response { status: StatusCode::from_u16(status).unwrap(), headers: map, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn api_statuses_map_to_kinds() {
        let kind = |r: Response| classify(&r).unwrap_err().kind();
        assert_eq!(kind(response(401, &[], r#"{"message":"Bad credentials"}"#)), ProviderErrorKind::Unauthorized);
        assert_eq!(
            kind(response(403, &[("x-ratelimit-remaining", "0"), ("retry-after", "3")], "{}")),
            ProviderErrorKind::RateLimited { retry_after: Some(Duration::from_secs(3)) }
        );
        assert_eq!(kind(response(403, &[], r#"{"message":"suspended"}"#)), ProviderErrorKind::Forbidden);
        assert_eq!(kind(response(404, &[], "{}")), ProviderErrorKind::NotFound);
        assert_eq!(kind(response(422, &[], "{}")), ProviderErrorKind::InvalidConfig);
        assert_eq!(kind(response(502, &[], "")), ProviderErrorKind::Transient);
        assert!(classify(&response(200, &[], "{}")).is_ok());
    }

    #[test]
    fn next_page_comes_from_the_link_header() {
        let r = response(
            200,
            &[(
                "link",
                r#"<https://api.github.com/x?per_page=2&page=1>; rel="prev", <https://api.github.com/x?per_page=2&page=3>; rel="next""#,
            )],
            "[]",
        );
        assert_eq!(next_page(&r), Some(3));
        assert_eq!(next_page(&response(200, &[], "[]")), None);
    }
}
