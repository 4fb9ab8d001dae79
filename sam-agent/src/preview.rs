//! Previews: the agent answers `p<port>-ws-<id>.<base>` (the same edge and
//! TLS path as the terminal's `ws-<id>.<base>`) by forwarding each request,
//! WebSockets included, to the server listening on `<port>` in the
//! workspace.
//!
//! Private: a preview host has its own host-only cookie, opened like the
//! terminal's by a one-time `workspace-preview` token of the owner
//! (`/__sam/preview/callback?token=&next=`). A page request without the
//! cookie is sent to the control plane, which checks the sign-in and sends
//! the browser back with a token; anything else without it is a 401. Only
//! ports the workspace's processes listen on are reachable (never the
//! host's other services), and the preview cookie never reaches the
//! previewed server.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::agent::Agent;
use crate::auth::AuthError;
use crate::ports::PortScope;

/// Where a preview token is redeemed, on the preview's own host. Under a
/// prefix a web application is unlikely to use.
pub const CALLBACK_PATH: &str = sam_core::wire::PREVIEW_CALLBACK_PATH;

/// Longest `next` path the callback moves on to.
const MAX_NEXT: usize = 2048;

/// Headers that belong to one connection, not to the request (RFC 9110
/// §7.6.1), plus the proxy's own.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Answers a request for the preview of `port`.
pub async fn handle(agent: Arc<Agent>, port: u16, request: Request) -> Response {
    if request.uri().path() == CALLBACK_PATH {
        let query = request.uri().query().unwrap_or_default().to_owned();
        let (parts, _) = request.into_parts();
        return callback(&agent, port, &query, &parts.headers).await;
    }
    let Some(session) = agent.auth.preview_session_key(request.headers(), port) else {
        return not_signed_in(&agent, port, &request);
    };
    if !agent.is_ready() {
        return message(StatusCode::SERVICE_UNAVAILABLE, "The workspace is still starting. Try again in a moment.");
    }
    let Some(scope) = agent.port_scope().await else {
        return message(StatusCode::SERVICE_UNAVAILABLE, "The workspace's container is not running.");
    };
    if !agent.listening_ports(scope).await.iter().any(|p| p.port == port) {
        return message(
            StatusCode::BAD_GATEWAY,
            &format!("Nothing in the workspace listens on port {port}. Start the server, then reload."),
        );
    }
    agent.activity.touch();
    forward(agent, session, scope, port, request).await
}

/// Redeems a preview token and moves on to `next` with the cookie set.
async fn callback(agent: &Agent, port: u16, query: &str, headers: &HeaderMap) -> Response {
    let mut token = String::new();
    let mut next = String::from("/");
    for (key, value) in url_pairs(query) {
        match key.as_str() {
            "token" => token = value,
            "next" if safe_next(&value) => next = value,
            _ => {}
        }
    }
    let redeemed = agent.auth.redeem_preview(&token, port).await;
    let cookie = match redeemed {
        Ok(value) => Some(agent.auth.set_preview_cookie(&value)),
        // A reload of the callback by a browser that has the session.
        Err(AuthError::Replayed) if agent.auth.check_preview(headers, port).is_some() => None,
        Err(error) => {
            tracing::warn!(workspace = %agent.workspace(), port, %error, "preview token refused");
            let status = match error {
                AuthError::BadRequest => StatusCode::BAD_REQUEST,
                AuthError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            };
            return message(status, "This preview link is not valid (any more). Open the preview from SAM again.");
        }
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&next) {
        headers.insert(LOCATION, location);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(SET_COOKIE, cookie);
    }
    response
}

/// A path on this host: `/…`, not `//…` or `/\…` (which browsers read as
/// another host), without control characters.
fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= MAX_NEXT
        && !next.chars().any(char::is_control)
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        Some((percent_decode(key)?, percent_decode(value)?))
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Without the cookie: a page request goes to the control plane to be
/// signed in (it comes back through the callback), anything else is 401.
fn not_signed_in(agent: &Agent, port: u16, request: &Request) -> Response {
    let navigates = matches!(*request.method(), Method::GET | Method::HEAD) && !is_upgrade(request.headers());
    match (&agent.config.control_plane, navigates) {
        (Some(control_plane), true) => {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = format!(
                "{}/api/workspaces/{}/ports/{port}/open?path={}",
                control_plane.trim_end_matches('/'),
                agent.workspace(),
                sam_core::wire::url_encode(path)
            );
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, value);
            }
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        _ => message(StatusCode::UNAUTHORIZED, "Open this preview from SAM: it is private to the workspace's owner."),
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8"), (CACHE_CONTROL, "no-store")], text.to_owned())
        .into_response()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers (and those `Connection` names).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sends `request` to the server on `port` and its answer back; a
/// WebSocket (any upgrade) is spliced once both sides switched.
async fn forward(agent: Arc<Agent>, session: [u8; 32], scope: PortScope, port: u16, mut request: Request) -> Response {
    let upgrade = is_upgrade(request.headers()).then(|| request.headers().get(UPGRADE).cloned()).flatten();
    let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let original_host = request.headers().get(HOST).cloned();
    let cookies = agent.auth.cookies_without_preview(request.headers());

    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(COOKIE);
    if let Some(cookies) = cookies.and_then(|c| HeaderValue::from_str(&c).ok()) {
        parts.headers.insert(COOKIE, cookies);
    }
    // Dev servers check `Host` (Vite, webpack): to them this is localhost.
    if let Ok(host) = HeaderValue::from_str(&format!("localhost:{port}")) {
        parts.headers.insert(HOST, host);
    }
    if let Some(host) = original_host {
        parts.headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    let proto = if agent.config.cookie.secure { "https" } else { "http" };
    parts.headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    if let Some(upgrade) = &upgrade {
        parts.headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, upgrade.clone());
    }
    parts.uri = parts.uri.path_and_query().map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));

    let stream = match crate::ports::connect(scope, port).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(workspace = %agent.workspace(), port, %error, "preview connect failed");
            return message(StatusCode::BAD_GATEWAY, &format!("Could not connect to port {port} in the workspace."));
        }
    };
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(workspace = %agent.workspace(), port, %error, "preview handshake failed");
            return message(StatusCode::BAD_GATEWAY, "The previewed server did not answer.");
        }
    };
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "preview upstream connection ended");
        }
    });
    let mut answer = match sender.send_request(axum::http::Request::from_parts(parts, body)).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(workspace = %agent.workspace(), port, %error, "preview request failed");
            return message(StatusCode::BAD_GATEWAY, "The previewed server closed the connection without an answer.");
        }
    };
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return message(StatusCode::BAD_GATEWAY, "The previewed server switched protocols unasked.");
        };
        let server_side = hyper::upgrade::on(&mut answer);
        let workspace = agent.workspace();
        let mut ended = agent.auth.watch_ended();
        tokio::spawn(async move {
            let (client, server) = match tokio::try_join!(client_side, server_side) {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::debug!(%workspace, port, %error, "preview upgrade failed");
                    return;
                }
            };
            let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
            // Open until either side closes, or the sign-in it was opened
            // under ends (signed out at SAM): then both sides are dropped.
            let signed_out = async {
                while ended.changed().await.is_ok() {
                    if !agent.auth.still_signed_in(&session) {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                () = signed_out => tracing::info!(%workspace, port, "a preview's WebSocket closed: its sign-in ended"),
            }
        });
        let (parts, _) = answer.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_host() {
        for good in ["/", "/app?x=1#y", "/a/b"] {
            assert!(safe_next(good), "{good}");
        }
        for bad in ["", "//evil.example", "/\\evil.example", "https://evil.example", "/a\nb", "a"] {
            assert!(!safe_next(bad), "{bad:?}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let pairs: Vec<_> = url_pairs("token=a.b-c&next=%2Fx%3Fy%3D1+2").collect();
        assert_eq!(pairs, vec![("token".into(), "a.b-c".into()), ("next".into(), "/x?y=1 2".into())]);
        assert_eq!(url_pairs("next=%zz").count(), 0, "a bad escape is dropped");
    }

    #[test]
    fn connection_headers_are_not_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}
