//! The operator's side of the GitHub App *manifest* flow in `setup`: the
//! page that posts the manifest and reading the code back from what the
//! operator pastes. The manifest itself and the conversion are
//! `sam_providers::github` (`app_manifest`, `convert_manifest`).

use serde_json::Value;

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
