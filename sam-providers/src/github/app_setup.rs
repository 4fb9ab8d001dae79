//! Creating and checking the GitHub App, for operators: the app manifest SAM
//! needs, the manifest *conversion* that turns GitHub's one-time code into the
//! app's credentials (`POST /app-manifests/{code}/conversions`), and the app
//! as GitHub knows it for a JWT (`GET /app`).
//!
//! One GitHub App does both jobs SAM needs: its OAuth client signs users in,
//! its installations grant access to repositories.

use reqwest::{Method, Url};
use sam_core::ports::{ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GithubApp, PROVIDER, classify};
use crate::http::{self, HttpClient, HttpConfig, Request};

/// Where GitHub sends the browser with the manifest `code` (nothing needs to
/// answer there: the code is in the address bar).
pub const MANIFEST_REDIRECT_PATH: &str = "/setup/github-app";

/// The app manifest for a control plane at `public_url`: repository contents
/// read and write (workspaces clone, and push when the user may: each
/// workspace's token is narrowed to its repository and, without the user's
/// push permission, to read), metadata read, the sign-in callback, the
/// post-install setup URL and the webhook (installation events are always
/// delivered to an app). `public`: any account may install it (a shared
/// deployment); else only the account that creates it.
pub fn app_manifest(public_url: &str, name: &str, public: bool) -> Value {
    let public_url = public_url.trim_end_matches('/');
    json!({
        "name": name,
        "url": public_url,
        "description": "SAM: disposable cloud workspaces with a browser terminal.",
        "hook_attributes": {"url": format!("{public_url}/api/github/webhook"), "active": true},
        "redirect_url": format!("{public_url}{MANIFEST_REDIRECT_PATH}"),
        "callback_urls": [format!("{public_url}/api/auth/callback/github")],
        "setup_url": format!("{public_url}/settings"),
        "setup_on_update": true,
        "request_oauth_on_install": false,
        "public": public,
        "default_permissions": {"contents": "write", "metadata": "read"},
        "default_events": []
    })
}

/// The app's identity and credentials, as the manifest conversion returns
/// them. `Debug` shows only the identity.
pub struct AppCredentials {
    /// App id.
    pub id: i64,
    /// Slug (for the install URL).
    pub slug: String,
    /// The app's page on GitHub.
    pub html_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
    /// Webhook secret, when GitHub made one.
    pub webhook_secret: Option<SecretString>,
    /// The app's private key (PEM).
    pub private_key_pem: SecretString,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials").field("id", &self.id).field("slug", &self.slug).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Conversion {
    id: i64,
    slug: String,
    #[serde(default)]
    html_url: String,
    client_id: String,
    client_secret: String,
    webhook_secret: Option<String>,
    pem: String,
}

/// Trades the one-time `code` GitHub hands out after the operator created the
/// app from its manifest for the app's credentials. Sent once (a code is
/// single use); an unknown, used or expired code is `NotFound`.
pub async fn convert_manifest(api_url: &str, code: &str, http: HttpConfig) -> Result<AppCredentials, ProviderError> {
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ProviderError::new(ProviderErrorKind::InvalidConfig, "github: malformed manifest code"));
    }
    let client = HttpClient::new(PROVIDER, http)?;
    let url = http::join(&http::parse_base(PROVIDER, api_url)?, &format!("app-manifests/{code}/conversions"))?;
    let request = Request::new(Method::POST, url).header("accept", "application/vnd.github+json");
    let conversion: Conversion = client.send_once(&request, classify).await?.json(PROVIDER)?;
    Ok(AppCredentials {
        id: conversion.id,
        slug: conversion.slug,
        html_url: conversion.html_url,
        client_id: conversion.client_id,
        client_secret: conversion.client_secret.into(),
        webhook_secret: conversion.webhook_secret.filter(|s| !s.is_empty()).map(SecretString::from),
        private_key_pem: conversion.pem.into(),
    })
}

/// The app as GitHub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppInfo {
    /// App id.
    pub id: i64,
    /// Slug.
    pub slug: String,
    /// OAuth client id (absent on very old apps).
    #[serde(default)]
    pub client_id: String,
    /// What installations grant it (`contents` → `read` or `write`, …).
    #[serde(default)]
    pub permissions: std::collections::BTreeMap<String, String>,
}

impl GithubApp {
    /// `GET /app` with a fresh app JWT: the app GitHub knows for this id and
    /// private key. `Unauthorized` when GitHub rejects the key.
    pub async fn authenticated_app(&self) -> Result<AppInfo, ProviderError> {
        let jwt = self.app_jwt()?;
        let url: Url = self.api_url("app", &[])?;
        let response = self.http.send(&self.api_request(Method::GET, url, &jwt), classify).await?;
        response.json(PROVIDER)
    }
}
