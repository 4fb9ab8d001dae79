//! Rate limits on the endpoints that mint things (sign-in, terminal tokens,
//! bootstrap redemption; the routers attach it): a fixed window per client
//! address. In-process, so
//! each replica limits on its own; that bounds abuse without shared state.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// A fixed-window limiter keyed by client address.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    buckets: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl RateLimiter {
    /// At most `limit` requests per `window` per address.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, buckets: Mutex::new(HashMap::new()) }
    }

    /// Counts a request; `Err(wait)` when over the limit.
    pub fn check(&self, key: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Bound memory under a flood of distinct addresses.
            buckets.retain(|_, (start, _)| now.duration_since(*start) < self.window);
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

/// The client address: behind a trusted proxy (`SAM_TRUST_FORWARDED_FOR`),
/// the right-most `X-Forwarded-For` entry, which that proxy appended;
/// otherwise the peer address. Left-hand entries are client-supplied and
/// never trusted.
fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
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

/// The middleware's state: the limiter and whether a proxy's
/// `X-Forwarded-For` names the client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The limiter.
    pub limiter: std::sync::Arc<RateLimiter>,
    /// Trust the right-most `X-Forwarded-For` entry.
    pub trust_forwarded_for: bool,
}

/// The middleware, attached to the routes that mint something (see
/// `api::router`).
pub async fn limit(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let limiter = &limits.limiter;
    let key = client_address(&request, limits.trust_forwarded_for);
    match limiter.check(key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            tracing::warn!(path = %super::loggable_path(request.uri().path()), client = ?key, "rate limited");
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
                    .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(RETRY_AFTER, v);
            }
            response
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
        assert_eq!(client_address(&r, true), Some(IpAddr::from([203, 0, 113, 7])));
        assert_eq!(client_address(&r, false), Some(IpAddr::from([10, 0, 0, 9])), "ignored unless trusted");
        assert_eq!(client_address(&request("garbage"), true), Some(IpAddr::from([10, 0, 0, 9])));
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
}
