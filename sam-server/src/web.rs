//! The web UI: a few HTML pages with small ES modules that call the JSON API,
//! embedded in the binary (no build step, no npm at build time).

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Pages may load only our own scripts and styles, talk only to us, and show
/// GitHub avatars (from GitHub's CDN, or from `avatar_origin`).
fn content_security_policy(avatar_origin: Option<&str>) -> String {
    let extra = avatar_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data: https://avatars.githubusercontent.com{extra}; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

struct Asset {
    name: &'static str,
    body: &'static str,
    content_type: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.css", body: include_str!("../web/app.css"), content_type: "text/css; charset=utf-8" },
    Asset { name: "app.js", body: include_str!("../web/app.js"), content_type: "text/javascript; charset=utf-8" },
    Asset { name: "index.js", body: include_str!("../web/index.js"), content_type: "text/javascript; charset=utf-8" },
    Asset {
        name: "settings.js",
        body: include_str!("../web/settings.js"),
        content_type: "text/javascript; charset=utf-8",
    },
    Asset { name: "new.js", body: include_str!("../web/new.js"), content_type: "text/javascript; charset=utf-8" },
    Asset {
        name: "workspace.js",
        body: include_str!("../web/workspace.js"),
        content_type: "text/javascript; charset=utf-8",
    },
];

fn page(csp: &HeaderValue, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (CONTENT_SECURITY_POLICY, csp.clone()),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    // Only the fixed list: no path from the request reaches the file system.
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
                (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The pages and their assets. `avatar_origin` is an origin avatars may load
/// from besides GitHub's CDN (GitHub Enterprise, or the emulators); anything
/// that is not a plain `scheme://host[:port]` is ignored.
pub fn router<S: Clone + Send + Sync + 'static>(avatar_origin: Option<&str>) -> Router<S> {
    let origin = avatar_origin.filter(|o| {
        (o.starts_with("https://") || o.starts_with("http://"))
            && o.split_once("://").is_some_and(|(_, host)| {
                !host.is_empty()
                    && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            })
    });
    let csp = HeaderValue::from_str(&content_security_policy(origin))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let serve = |body: &'static str| {
        let csp = csp.clone();
        get(move || async move { page(&csp, body) })
    };
    Router::new()
        .route("/", serve(include_str!("../web/index.html")))
        .route("/settings", serve(include_str!("../web/settings.html")))
        .route("/workspaces/new", serve(include_str!("../web/new.html")))
        .route("/workspaces/{id}", serve(include_str!("../web/workspace.html")))
        .route("/assets/{name}", get(asset))
}
