//! The HTTP API, composed from one module per area.

mod agent;
mod auth;
mod body;
mod credentials;
mod csrf;
pub mod error;
pub mod extract;
mod github;
pub mod live_updates;
pub mod openapi;
pub mod ratelimit;
pub mod session;
mod system;
mod tokens;
pub mod user_limits;
mod webhook;
mod workspaces;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use agent::{agent_path, devcontainer_cli_file};

use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest a request may take; provider calls inside a request have their
/// own, shorter timeouts and retry budgets.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest webhook delivery taken (what the webhook verifier reads).
const WEBHOOK_MAX_BODY: usize = 1024 * 1024;

/// Boot reports (`POST /api/bootstrap/{token}/progress`) per client
/// address and minute: a VM sends about ten.
const VM_REPORTS_PER_MINUTE: u32 = 120;

/// `path` as logs may show it: a bootstrap token in the path
/// (`/api/bootstrap/{token}`, `…/{token}/progress`) is replaced by `***`,
/// since it is redeemable while the request is logged.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/api/bootstrap/") {
        Some(rest) => {
            let after = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/api/bootstrap/***{after}").into()
        }
        None => path.into(),
    }
}

/// The whole API with its middleware. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so rate limits are per
/// client address.
pub fn router(state: AppState) -> Router {
    let max_body = state.http.max_body_bytes;
    // One limiter for every endpoint that mints something (a session, a
    // terminal token, a bootstrap grant): a client's budget is shared.
    let limits = ratelimit::Limits {
        limiter: std::sync::Arc::new(ratelimit::RateLimiter::new(
            state.http.rate_limit_per_minute,
            Duration::from_secs(60),
        )),
        client_ip_header: state.http.client_ip_header.clone(),
        trust_forwarded_for: state.http.trust_forwarded_for,
    };
    let rate_limited = || axum::middleware::from_fn_with_state(limits.clone(), ratelimit::limit);
    // VMs reporting their own boot (a few reports each): a budget of their
    // own, so that many VMs booting behind one address (dev mode) never
    // take the sign-in budget.
    let vm_reports = ratelimit::Limits {
        limiter: std::sync::Arc::new(ratelimit::RateLimiter::new(VM_REPORTS_PER_MINUTE, Duration::from_secs(60))),
        client_ip_header: state.http.client_ip_header.clone(),
        trust_forwarded_for: state.http.trust_forwarded_for,
    };
    let same_origin = axum::middleware::from_fn_with_state(state.clone(), csrf::same_origin);

    // Anyone: liveness, keys, the contract, the agent binary.
    let public = Router::new()
        .route("/api/health", get(system::health))
        .route("/api/ready", get(system::ready))
        .route("/.well-known/jwks.json", get(system::jwks))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/api/agent/download", get(agent::download))
        .route("/api/agent/devcontainer-cli", get(agent::devcontainer_cli));
    // Browsers on their way in: rate-limited.
    let sign_in = Router::new()
        .route("/api/auth/github", get(auth::start))
        .route("/api/auth/callback/github", get(auth::callback))
        .route_layer(rate_limited());
    // Signed-in browsers: the session cookie, and state changes only from
    // our own origin. The check wraps each method's handler, not the
    // route: a method a route does not have is a 405, whatever the origin.
    let guard = |route: MethodRouter<AppState>| route.route_layer(same_origin.clone());
    let browser = Router::new()
        .route("/api/terminal/token", guard(post(system::terminal_token)))
        .route("/api/workspaces/{id}/ports/{port}/open", guard(get(workspaces::open_preview)))
        .route_layer(rate_limited())
        .route("/api/auth/logout", guard(post(auth::logout)))
        .route("/api/auth/me", guard(get(auth::me)))
        .route("/api/credentials", guard(get(credentials::list).post(credentials::add)))
        .route("/api/tokens", guard(get(tokens::list).post(tokens::create)))
        .route("/api/tokens/{id}", guard(delete(tokens::revoke)))
        .route("/api/credentials/{provider}", guard(delete(credentials::remove)))
        .route("/api/github/installations", guard(get(github::list_installations)))
        .route("/api/github/install-url", guard(get(github::install_url)))
        .route("/api/github/repositories", guard(get(github::repositories)))
        .route("/api/github/repositories/{owner}/{repo}/branches", guard(get(github::branches)))
        .route("/api/workspaces", guard(get(workspaces::list).post(workspaces::create)))
        .route("/api/workspaces/{id}", guard(get(workspaces::get).delete(workspaces::delete)))
        .route("/api/workspaces/{id}/stop", guard(post(workspaces::stop)))
        .route("/api/workspaces/{id}/restart", guard(post(workspaces::restart)))
        .route("/api/workspaces/{id}/activity", guard(post(workspaces::still_here)))
        .route("/api/workspace-options", guard(get(workspaces::options)))
        .route("/api/workspaces/{id}/events", guard(get(workspaces::events)));
    // Workspace agents: their own credentials (bootstrap token, callback
    // credential), no cookies, so no origin check.
    let agents = Router::new()
        .route("/api/bootstrap/{token}", post(agent::bootstrap))
        .route_layer(rate_limited())
        .route(
            "/api/bootstrap/{token}/progress",
            post(agent::vm_boot_progress)
                .route_layer(axum::middleware::from_fn_with_state(vm_reports, ratelimit::limit)),
        )
        .route("/api/workspaces/{id}/heartbeat", post(agent::heartbeat))
        .route("/api/workspaces/{id}/boot-progress", post(agent::report))
        .route("/api/workspaces/{id}/preview-certificate", post(agent::preview_certificate))
        // What one agent sends (a heartbeat a minute at most twice as
        // often, a boot report every few seconds) has a budget per workspace.
        .route_layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(ratelimit::RateLimiter::<String>::new(
                state.http.agent_reports_per_minute,
                Duration::from_secs(60),
            )),
            ratelimit::limit_by_path,
        ))
        .route("/api/workspaces/{id}/git-credential", post(agent::git_credential));
    // GitHub: HMAC-signed deliveries, up to the webhook verifier's 1 MiB.
    let webhooks = Router::new()
        .route("/api/github/webhook", post(webhook::receive))
        .layer(DefaultBodyLimit::max(WEBHOOK_MAX_BODY));

    let api = Router::new()
        .merge(public)
        .merge(sign_in)
        .merge(browser)
        .merge(agents)
        .merge(webhooks)
        .merge(crate::web::router(state.http.avatar_origin.as_deref()))
        .fallback(|| async { error::ApiError::not_found("route") })
        // Every request has a deadline, except the event stream, which is
        // meant to stay open (it is added after this layer; a GET, so the
        // origin check has nothing to refuse).
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .route("/api/workspaces/stream", get(workspaces::stream))
        .layer(axum::Extension(std::sync::Arc::new(user_limits::UserLimits::default())))
        .layer(axum::Extension(std::sync::Arc::new(live_updates::LiveUpdates::default())))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        // Outermost: every body is read before anything answers.
        .layer(axum::middleware::from_fn_with_state(
            body::body_first(max_body.max(WEBHOOK_MAX_BODY)),
            sam_providers::emulators::body::read_first,
        ));

    api.layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    let path = loggable_path(request.uri().path());
                    tracing::info_span!("request", method = %request.method(), path = %path, request_id = %request_id)
                })
                .on_response(|response: &axum::http::Response<_>, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        "response"
                    );
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn bootstrap_tokens_never_reach_a_logged_path() {
        assert_eq!(loggable_path("/api/bootstrap/AbC-123_x"), "/api/bootstrap/***");
        assert_eq!(loggable_path("/api/bootstrap/AbC-123_x/progress"), "/api/bootstrap/***/progress");
        assert_eq!(loggable_path("/api/workspaces/1/events"), "/api/workspaces/1/events");
    }
}
