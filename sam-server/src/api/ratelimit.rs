//! Rate limits on the endpoints that mint things (sign-in, terminal tokens,
//! bootstrap redemption; the routers attach it): a fixed window per client
//! address — behind a proxy, the address it names (`SAM_CLIENT_IP_HEADER`,
//! e.g. Cloudflare's `CF-Connecting-IP`, or the right-most
//! `X-Forwarded-For` entry), never the proxy's own, which every client
//! would share. And per workspace, on what its agent sends (heartbeats,
//! boot reports). In-process, so each replica limits on its own; that
//! bounds abuse without shared state. Memory is bounded: past
//! [`MAX_KEYS`] live keys, new ones share one bucket.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Keys (addresses, workspaces) a limiter tracks at most; past them, new
/// keys share one bucket (a flood of distinct addresses is limited as one
/// client instead of growing memory).
pub const MAX_KEYS: usize = 100_000;

/// A fixed-window limiter keyed by `K` (a client address by default).
#[derive(Debug)]
pub struct RateLimiter<K = Option<IpAddr>> {
    limit: u32,
    window: Duration,
    max_keys: usize,
    /// `None`: the shared bucket of keys over [`MAX_KEYS`].
    buckets: Mutex<HashMap<Option<K>, (Instant, u32)>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// At most `limit` requests per `window` per key.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, max_keys: MAX_KEYS, buckets: Mutex::new(HashMap::new()) }
    }

    /// The number of keys tracked.
    pub fn keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Counts a request; `Err(wait)` when over the limit.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key = Some(key);
        if buckets.len() >= self.max_keys && !buckets.contains_key(&key) {
            buckets.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if buckets.len() >= self.max_keys {
                key = None;
            }
        }
        let (start, count) = buckets.entry(key).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
        Ok(())
    }
}

/// The client address: behind a proxy that names the client in a header of
/// its own (`SAM_CLIENT_IP_HEADER`, e.g. `CF-Connecting-IP`), that header;
/// behind one that appends to `X-Forwarded-For` (`SAM_TRUST_FORWARDED_FOR`),
/// its right-most entry; otherwise the peer address. Left-hand
/// `X-Forwarded-For` entries are client-supplied and never trusted.
fn client_address(request: &Request, client_ip_header: Option<&str>, trust_forwarded_for: bool) -> Option<IpAddr> {
    if let Some(ip) = client_ip_header
        .and_then(|name| request.headers().get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(ip);
    }
    if trust_forwarded_for
        && let Some(ip) = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return Some(ip);
    }
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The middleware's state: the limiter and how the client is named.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The limiter.
    pub limiter: std::sync::Arc<RateLimiter>,
    /// The header a proxy names the client in (`CF-Connecting-IP`).
    pub client_ip_header: Option<String>,
    /// Trust the right-most `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}

fn too_many(wait: Duration) -> Response {
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down").into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, v);
    }
    response
}

/// The middleware, attached to the routes that mint something (see
/// `api::router`).
pub async fn limit(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let key = client_address(&request, limits.client_ip_header.as_deref(), limits.trust_forwarded_for);
    match limits.limiter.check(key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            tracing::warn!(path = %super::loggable_path(request.uri().path()), client = ?key, "rate limited");
            too_many(wait)
        }
    }
}

/// Per-path limits (a workspace's heartbeats, its boot reports: the path
/// names the workspace), whatever address they come from.
pub async fn limit_by_path(
    State(limiter): State<std::sync::Arc<RateLimiter<String>>>,
    request: Request,
    next: Next,
) -> Response {
    match limiter.check(request.uri().path().to_owned(), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            tracing::warn!(path = %super::loggable_path(request.uri().path()), "rate limited (per workspace)");
            too_many(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_when_trusted_and_right_most() {
        let request = |xff: &str| {
            let mut r = Request::new(axum::body::Body::empty());
            r.headers_mut().insert("x-forwarded-for", xff.parse().unwrap());
            r.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 9], 1234))));
            r
        };
        let r = request("1.1.1.1, 203.0.113.7");
        assert_eq!(client_address(&r, None, true), Some(IpAddr::from([203, 0, 113, 7])));
        assert_eq!(client_address(&r, None, false), Some(IpAddr::from([10, 0, 0, 9])), "ignored unless trusted");
        assert_eq!(client_address(&request("garbage"), None, true), Some(IpAddr::from([10, 0, 0, 9])));
        // Cloudflare's header, when configured (and only then).
        let mut r = request("1.1.1.1");
        r.headers_mut().insert("cf-connecting-ip", "198.51.100.4".parse().unwrap());
        assert_eq!(client_address(&r, Some("CF-Connecting-IP"), false), Some(IpAddr::from([198, 51, 100, 4])));
        assert_eq!(client_address(&r, None, false), Some(IpAddr::from([10, 0, 0, 9])));
    }

    #[test]
    fn window_resets() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(limiter.check(ip, t0).is_ok());
        assert!(limiter.check(ip, t0).is_ok());
        let wait = limiter.check(ip, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(Some(IpAddr::from([10, 0, 0, 1])), t0).is_ok(), "per address");
        assert!(limiter.check(ip, t0 + Duration::from_secs(60)).is_ok(), "a new window");
    }

    /// A flood of distinct keys grows the table no further than its bound;
    /// past it, the newcomers share one bucket (and are limited together).
    #[test]
    fn memory_is_bounded_under_churning_keys() {
        let mut limiter = RateLimiter::<u32>::new(2, Duration::from_secs(60));
        limiter.max_keys = 1000;
        let t0 = Instant::now();
        for key in 0..1000 {
            assert!(limiter.check(key, t0).is_ok());
        }
        assert!(limiter.check(5000, t0).is_ok());
        assert!(limiter.check(5001, t0).is_ok());
        assert!(limiter.check(5002, t0).is_err(), "the overflow bucket is one client");
        assert_eq!(limiter.keys(), 1001);
        // Once the window passed, expired keys make room again.
        assert!(limiter.check(6000, t0 + Duration::from_secs(61)).is_ok());
        assert!(limiter.keys() <= 2);
    }
}
