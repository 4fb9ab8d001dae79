//! The HTTP layer shared by the cloud adapters (Hetzner, Cloudflare, GitHub).
//!
//! - One [`RetryPolicy`] for every adapter: only errors whose
//!   [`ProviderError::is_retryable`] is true are retried, with exponential
//!   backoff and full jitter, a cap on attempts and on total time, and the
//!   server's own wait (`Retry-After`, `RateLimit-Reset`, `X-RateLimit-Reset`)
//!   honoured when it gave one.
//! - Every request has a timeout ([`HttpConfig::request_timeout`]) and every
//!   response body is read up to [`HttpConfig::max_body_bytes`].
//! - Every attempt runs in a `tracing` span `provider_call` with the provider,
//!   method, path (never the query string or a header), attempt, status and
//!   latency. Tokens travel in headers only and are never logged or put into
//!   an error message.
//!
//! Requests that are not idempotent (creating a server, exchanging an OAuth
//! code) are sent with [`HttpClient::send_once`] and the adapter wraps the
//! whole look-up-then-create step in [`HttpClient::retry`], so a retry after a
//! lost response finds what the first attempt created instead of creating it
//! twice.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use sam_core::ports::{ProviderError, ProviderErrorKind};
use sam_core::secret::SecretString;
use tracing::Instrument as _;

/// When and how often a failed call is tried again.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles for each further attempt.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first attempt,
    /// and no wait is started that would end after it.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Millisecond backoffs for tests against emulators: 5 attempts within 3 s.
    pub fn fast() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(3),
        }
    }

    /// The backoff before attempt `attempt + 1` (attempt counts from 1),
    /// with full jitter: uniformly random in `[0, min(max, initial * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let ceiling = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }
}

fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if sam_core::secret::fill_random(&mut buf).is_err() {
        // Jitter only spreads retries out; the clock is a fine fallback.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        return u64::from(now.subsec_nanos());
    }
    u64::from_le_bytes(buf)
}

/// Transport settings of one adapter.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Timeout of one attempt, from sending to the end of the body.
    pub request_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// Largest response body read; longer bodies fail the call.
    pub max_body_bytes: usize,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// `User-Agent` sent with every request (GitHub requires one).
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 4 * 1024 * 1024,
            retry: RetryPolicy::default(),
            user_agent: concat!("sam/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Settings for tests against emulators: short timeouts, [`RetryPolicy::fast`].
    pub fn fast() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::fast(),
            ..Self::default()
        }
    }
}

/// The body of a request. Its `Debug` shows only the shape (form field
/// names, not values), since bodies can carry secrets (an OAuth client
/// secret, a PKCE verifier).
#[derive(Clone)]
pub enum Body {
    /// No body.
    None,
    /// A JSON document.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, String)>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::None => f.write_str("None"),
            Body::Json(_) => f.write_str("Json(..)"),
            Body::Form(fields) => {
                f.debug_tuple("Form").field(&fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()).finish()
            }
        }
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No credential.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a SecretString),
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Method.
    pub method: Method,
    /// Full URL, including the query.
    pub url: Url,
    /// Credential.
    pub auth: Auth<'a>,
    /// Body.
    pub body: Body,
    /// Extra headers (never a credential: those go in `auth`).
    pub headers: Vec<(&'static str, String)>,
}

impl<'a> Request<'a> {
    /// A request without body or credential.
    pub fn new(method: Method, url: Url) -> Self {
        Self { method, url, auth: Auth::None, body: Body::None, headers: Vec::new() }
    }

    /// With a bearer token.
    pub fn bearer(mut self, token: &'a SecretString) -> Self {
        self.auth = Auth::Bearer(token);
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// With a form body.
    pub fn form(mut self, fields: Vec<(String, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    /// With an extra header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response read in full (up to the size limit).
#[derive(Debug, Clone)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON of type `T`; a body that does not parse is
    /// [`ProviderErrorKind::Other`].
    pub fn json<T: serde::de::DeserializeOwned>(&self, provider: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::new(ProviderErrorKind::Other, format!("{provider}: unexpected response body ({e})"))
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Turns a response with a non-success status (or, for APIs that report
/// errors in a 200 body, any response) into `Ok` or the provider's error.
pub type Classifier = fn(&Response) -> Result<(), ProviderError>;

/// A `reqwest` client with the adapter's name, timeouts, size limit and retry
/// policy.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: HttpConfig,
    provider: &'static str,
}

/// Installs the process-wide rustls crypto provider (aws-lc-rs) if none is
/// installed yet. Safe to call any number of times, from a library.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl HttpClient {
    /// A client for `provider` (used in spans and messages).
    pub fn new(provider: &'static str, config: HttpConfig) -> Result<Self, ProviderError> {
        ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ProviderError::new(ProviderErrorKind::InvalidConfig, format!("{provider}: cannot build HTTP client"))
                    .with_source(e.without_url())
            })?;
        Ok(Self { client, config, provider })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The provider name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Sends `request` with retries (for idempotent requests).
    pub async fn send(&self, request: &Request<'_>, classify: Classifier) -> Result<Response, ProviderError> {
        let method = request.method.clone();
        let path = request.url.path().to_owned();
        self.retry(&format!("{method} {path}"), |attempt| self.attempt(request, classify, attempt)).await
    }

    /// Sends `request` exactly once (for requests that are not idempotent).
    pub async fn send_once(&self, request: &Request<'_>, classify: Classifier) -> Result<Response, ProviderError> {
        self.attempt(request, classify, 1).await
    }

    /// Runs `op` (given the attempt number, from 1) until it succeeds, fails
    /// with an error that is not retryable, or the policy is exhausted. Waits
    /// the longer of the jittered backoff and the server's requested wait; if
    /// that wait would end past `max_elapsed`, returns the error instead.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let policy = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 1u32;
        loop {
            let span = tracing::debug_span!("provider_op", provider = self.provider, what, attempt);
            let err = match op(attempt).instrument(span).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.is_retryable() || attempt >= policy.max_attempts.max(1) {
                return Err(err.with_attempts(attempt));
            }
            let backoff = policy.backoff(attempt);
            let wait = err.retry_after().map_or(backoff, |server| server.max(backoff));
            if started.elapsed().saturating_add(wait) > policy.max_elapsed {
                tracing::debug!(
                    provider = self.provider,
                    what,
                    attempt,
                    kind = err.kind().code(),
                    "retry budget exhausted"
                );
                return Err(err.with_attempts(attempt));
            }
            tracing::debug!(
                provider = self.provider,
                what,
                attempt,
                kind = err.kind().code(),
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        request: &Request<'_>,
        classify: Classifier,
        attempt: u32,
    ) -> Result<Response, ProviderError> {
        let span = tracing::info_span!(
            "provider_call",
            provider = self.provider,
            method = %request.method,
            path = request.url.path(),
            attempt,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            let result = self.attempt_inner(request).await;
            let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let span = tracing::Span::current();
            span.record("latency_ms", latency);
            let response = match result {
                Ok(response) => response,
                Err(err) => {
                    tracing::debug!(kind = err.kind().code(), "request failed");
                    return Err(err);
                }
            };
            span.record("status", response.status.as_u16());
            match classify(&response) {
                Ok(()) => {
                    tracing::debug!("ok");
                    Ok(response)
                }
                Err(err) => {
                    tracing::debug!(kind = err.kind().code(), "provider error");
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn attempt_inner(&self, request: &Request<'_>) -> Result<Response, ProviderError> {
        let provider = self.provider;
        let what = format!("{} {}", request.method, request.url.path());
        let mut builder = self.client.request(request.method.clone(), request.url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Auth::Bearer(token) = request.auth {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                ProviderError::new(
                    ProviderErrorKind::Unauthorized,
                    format!("{provider}: the token is not valid header text"),
                )
            })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(fields) => builder.form(fields),
        };
        let mut response = builder.send().await.map_err(|e| transport_error(provider, &what, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.config.max_body_bytes;
        if response.content_length().is_some_and(|len| len > limit as u64) {
            return Err(ProviderError::new(
                ProviderErrorKind::Other,
                format!("{provider}: response to {what} exceeds {limit} bytes"),
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(provider, &what, e))? {
            if body.len() + chunk.len() > limit {
                return Err(ProviderError::new(
                    ProviderErrorKind::Other,
                    format!("{provider}: response to {what} exceeds {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    }
}

fn transport_error(provider: &str, what: &str, err: reqwest::Error) -> ProviderError {
    let reason = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    ProviderError::new(ProviderErrorKind::Transient, format!("{provider}: {what} {reason}"))
        .with_source(err.without_url())
}

/// How long the server asked the client to wait, from `Retry-After` (seconds
/// or an HTTP date), else `RateLimit-Reset` / `X-RateLimit-Reset` (a Unix
/// time when larger than 10^9, as Hetzner and GitHub send it; otherwise
/// seconds from now, as in the IETF draft).
pub fn server_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(value) = text("retry-after") {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
        }
    }
    let reset = text("ratelimit-reset").or_else(|| text("x-ratelimit-reset"))?;
    let value = reset.parse::<u64>().ok()?;
    if value > 1_000_000_000 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(Duration::from_secs(value).saturating_sub(now).min(Duration::from_secs(3600)))
    } else {
        Some(Duration::from_secs(value))
    }
}

/// The default kind for an HTTP status when the body says nothing more
/// specific.
pub fn kind_for_status(status: StatusCode, headers: &HeaderMap) -> ProviderErrorKind {
    match status.as_u16() {
        401 | 403 => ProviderErrorKind::Unauthorized,
        404 | 410 => ProviderErrorKind::NotFound,
        429 => ProviderErrorKind::RateLimited { retry_after: server_wait(headers) },
        408 | 500..=599 => ProviderErrorKind::Transient,
        400 | 409 | 422 => ProviderErrorKind::InvalidConfig,
        _ => ProviderErrorKind::Other,
    }
}

/// Joins `path` (relative, without a leading slash) onto `base`, keeping the
/// base's own path (`https://api.hetzner.cloud/v1` + `servers`).
pub fn join(base: &Url, path: &str) -> Result<Url, ProviderError> {
    let mut text = base.as_str().trim_end_matches('/').to_owned();
    text.push('/');
    text.push_str(path.trim_start_matches('/'));
    Url::parse(&text)
        .map_err(|_| ProviderError::new(ProviderErrorKind::InvalidConfig, format!("cannot build a URL for {path}")))
}

/// Parses a configured base URL.
pub fn parse_base(provider: &str, url: &str) -> Result<Url, ProviderError> {
    Url::parse(url).map_err(|_| {
        ProviderError::new(ProviderErrorKind::InvalidConfig, format!("{provider}: invalid base URL {url:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            max_elapsed: Duration::from_secs(10),
        };
        for attempt in 1..10 {
            let b = policy.backoff(attempt);
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1).min(3)));
            assert!(b <= ceiling, "attempt {attempt}: {b:?} > {ceiling:?}");
        }
    }

    #[test]
    fn server_wait_reads_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(server_wait(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("3"));
        assert_eq!(server_wait(&h), Some(Duration::from_secs(3)));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&(now + 5).to_string()).unwrap());
        let wait = server_wait(&h).unwrap();
        assert!(wait > Duration::from_secs(3) && wait <= Duration::from_secs(5), "{wait:?}");
        assert_eq!(server_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn request_debug_hides_secrets() {
        let token = SecretString::new("tok-123");
        let request = Request::new(Method::POST, Url::parse("http://127.0.0.1:1/x").unwrap())
            .bearer(&token)
            .form(vec![("client_secret".into(), "shh-456".into())]);
        let text = format!("{request:?}");
        assert!(text.contains("client_secret"), "{text}");
        assert!(!text.contains("shh-456") && !text.contains("tok-123"), "{text}");
    }

    #[test]
    fn join_keeps_base_path() {
        let base = Url::parse("http://127.0.0.1:1/v1/").unwrap();
        assert_eq!(join(&base, "servers").unwrap().as_str(), "http://127.0.0.1:1/v1/servers");
        let base = Url::parse("http://127.0.0.1:1/v1").unwrap();
        assert_eq!(join(&base, "/servers/1").unwrap().as_str(), "http://127.0.0.1:1/v1/servers/1");
    }
}
