//! The OpenAPI document of the API, generated from the handlers' annotations
//! and served at `GET /api/openapi.json`. The API tests check every response
//! they receive against it, so it cannot drift from what the server sends.

use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{agent, auth, credentials, github, system, tokens, webhook, workspaces};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SAM control plane",
        description = "Disposable cloud workspaces with a browser terminal. Errors are `{\"error\": code, \"message\": text}` (plus `field` on 422). State-changing requests from browsers must be same-origin (`Origin` or `Sec-Fetch-Site`).",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        system::health,
        system::ready,
        system::jwks,
        system::terminal_token,
        openapi_json,
        auth::start,
        auth::callback,
        auth::logout,
        auth::me,
        tokens::list,
        tokens::create,
        tokens::revoke,
        credentials::list,
        credentials::add,
        credentials::remove,
        github::list_installations,
        github::install_url,
        github::repositories,
        github::branches,
        webhook::receive,
        workspaces::list,
        workspaces::create,
        workspaces::get,
        workspaces::stop,
        workspaces::restart,
        workspaces::still_here,
        workspaces::open_preview,
        workspaces::options,
        workspaces::delete,
        workspaces::events,
        workspaces::stream,
        agent::bootstrap,
        agent::vm_boot_progress,
        agent::heartbeat,
        agent::preview_certificate,
        agent::report,
        agent::git_credential,
        agent::download,
        agent::devcontainer_cli,
    ),
    modifiers(&Security),
    tags(
        (name = "system", description = "Health, readiness, keys, this document"),
        (name = "auth", description = "GitHub sign-in and sessions"),
        (name = "credentials", description = "The user's cloud account"),
        (name = "github", description = "The GitHub App: installations, repositories, branches, webhooks"),
        (name = "workspaces", description = "Workspaces and their terminals"),
        (name = "agent", description = "Called by the agent on a workspace VM"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sam_session",
                "The session cookie set by sign-in (`__Host-sam_session` over https).",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sam_pat_…")
                    .description(Some(
                        "A personal access token (Settings): `read` for GET and HEAD, `write` for everything else; \
                         never for managing tokens, signing out or opening a preview (403 `browser_session_required`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The workspace callback token from the bootstrap grant."))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, rendered once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let rendered = serde_json::to_value(&doc).map(|mut value| {
            add_common_responses(&mut value);
            add_token_security(&mut value);
            value.to_string()
        });
        rendered.unwrap_or_else(|e| format!("{{\"error\":\"internal\",\"message\":\"{e}\"}}"))
    })
}

/// What every operation with a JSON body answers to a body it cannot take —
/// the body extractor's and the size limit's answers, the same everywhere,
/// so written once here rather than on each handler.
const BODY_RESPONSES: [(&str, &str); 3] = [
    ("400", "The body is not JSON (`invalid_json`)"),
    ("413", "The body is larger than the limit (`Connection: close`)"),
    ("415", "The body is not `application/json` (`unsupported_media_type`)"),
];

fn add_common_responses(doc: &mut serde_json::Value) {
    let error_body = serde_json::json!({
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for item in paths.values_mut().filter_map(serde_json::Value::as_object_mut) {
        for operation in item.values_mut().filter_map(serde_json::Value::as_object_mut) {
            let json_body = operation
                .get("requestBody")
                .and_then(|b| b.get("content"))
                .is_some_and(|c| c.get("application/json").is_some());
            if !json_body {
                continue;
            }
            let Some(responses) = operation.get_mut("responses").and_then(serde_json::Value::as_object_mut) else {
                continue;
            };
            for (status, description) in BODY_RESPONSES {
                responses.entry(status).or_insert_with(|| {
                    let mut response = error_body.clone();
                    response["description"] = serde_json::Value::from(description);
                    response
                });
            }
        }
    }
}

/// What needs the signed-in browser itself, not an access token.
const BROWSER_ONLY: [(&str, &str); 5] = [
    ("post", "/api/auth/logout"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("get", "/api/workspaces/{id}/ports/{port}/open"),
];

/// Every operation a session opens, a personal access token opens too,
/// except [`BROWSER_ONLY`]: said once here rather than on each handler.
fn add_token_security(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            if BROWSER_ONLY.contains(&(method.as_str(), path.as_str())) {
                continue;
            }
            let Some(security) = operation.get_mut("security").and_then(serde_json::Value::as_array_mut) else {
                continue;
            };
            if security.iter().any(|s| s.get("session").is_some()) {
                security.push(serde_json::json!({"token": []}));
            }
        }
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], document()).into_response()
}
