//! The GitHub App *manifest* flow for `setup`, and the app check for
//! `doctor`. One GitHub App does both jobs SAM needs: its OAuth client signs
//! users in, its installations grant read access to repositories.

use anyhow::Context as _;
use sam_core::secret::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

/// Where GitHub sends the browser with the manifest `code` (nothing needs to
/// answer there: the code is in the address bar).
pub const MANIFEST_REDIRECT_PATH: &str = "/setup/github-app";

/// The app manifest for a control plane at `public_url`: repository contents
/// and metadata read-only, sign-in callback, post-install setup URL and
/// webhook (installation events are always delivered to an app).
pub fn manifest(public_url: &str, name: &str) -> Value {
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
        "public": false,
        "default_permissions": {"contents": "read", "metadata": "read"},
        "default_events": []
    })
}

/// The URL the manifest form posts to (a personal app, or an organization's).
pub fn new_app_url(web_url: &str, owner: Option<&str>, state: &str) -> String {
    let web = web_url.trim_end_matches('/');
    match owner {
        Some(org) => format!("{web}/organizations/{org}/settings/apps/new?state={state}"),
        None => format!("{web}/settings/apps/new?state={state}"),
    }
}

/// A page that posts the manifest to GitHub when opened (the operator opens
/// it in a browser signed in to GitHub).
pub fn manifest_page(action: &str, manifest: &Value) -> String {
    let escaped =
        manifest.to_string().replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Create the SAM GitHub App</title></head>
<body><form id="manifest-form" method="post" action="{action}">
<input type="hidden" name="manifest" value="{escaped}">
<p>This creates the GitHub App for SAM from a manifest (permissions: contents and metadata, read-only).</p>
<button type="submit">Create the GitHub App on GitHub</button></form>
<p>After creating it, GitHub sends you to an address ending in <code>?code=…</code>: paste that address (or just the code) into <code>sam-server setup</code>.</p>
</body></html>"#
    )
}

/// What the manifest conversion returns: the app's identity and credentials.
#[derive(Deserialize)]
pub struct AppCredentials {
    /// App id.
    pub id: i64,
    /// Slug (for the install URL).
    pub slug: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Webhook secret.
    pub webhook_secret: Option<String>,
    /// Private key (PEM).
    pub pem: String,
    /// The app's page.
    #[serde(default)]
    pub html_url: String,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials").field("id", &self.id).field("slug", &self.slug).finish_non_exhaustive()
    }
}

/// Extracts the code from what the operator pasted: a URL with `?code=` or
/// the bare code.
pub fn code_from_paste(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(url) = reqwest::Url::parse(text) {
        return url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
    }
    (!text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| text.to_owned())
}

/// `POST /app-manifests/{code}/conversions`.
pub async fn convert_manifest(api_url: &str, code: &str) -> anyhow::Result<AppCredentials> {
    let http = super::http_client()?;
    let url = format!("{}/app-manifests/{code}/conversions", api_url.trim_end_matches('/'));
    let response = http
        .post(url)
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GitHub manifest conversion: {}", e.without_url()))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!(
            "GitHub does not know this manifest code (codes are single-use and expire after an hour): create the app again"
        );
    }
    anyhow::ensure!(status.is_success(), "GitHub manifest conversion: HTTP {status}");
    response.json().await.context("GitHub manifest conversion answer")
}

/// `GET /app` with the app's JWT: the app GitHub knows for these credentials.
pub async fn authenticated_app(api_url: &str, jwt: &SecretString) -> anyhow::Result<Value> {
    let http = super::http_client()?;
    let response = http
        .get(format!("{}/app", api_url.trim_end_matches('/')))
        .bearer_auth(jwt.expose())
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GitHub GET /app: {}", e.without_url()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        anyhow::bail!("GitHub GET /app: HTTP {status}: {message}");
    }
    Ok(body)
}
