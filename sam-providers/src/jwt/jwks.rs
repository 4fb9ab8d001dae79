//! The agent's verifier: the control plane's JWKS, fetched over HTTP(S) and
//! cached, refetched once (rate-limited) when a token names an unknown `kid`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::rs256::RsaPublicKey;
use sam_core::domain::Timestamp;
use sam_core::ports::{Audience, Clock, JwkSet, SystemClock, TokenError, TokenErrorKind, TokenVerifier, VerifiedToken};
use tokio::sync::Mutex;

use super::{MAX_LEEWAY_SECS, header_kid, keys_from_jwks, verify_with_key};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Longest one key set fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Verifies tokens against the JWKS published at a URL (the control plane's
/// `/.well-known/jwks.json`). The key set is fetched on first use and cached;
/// a token whose `kid` is not in the cache triggers one refetch, at most once
/// per `min_refetch_interval` (default 30 s), so a flood of forged tokens
/// cannot turn the agent into a load generator against the control plane.
pub struct JwksVerifier {
    url: String,
    issuer: String,
    leeway_secs: u64,
    min_refetch_interval: Duration,
    /// Decides when the refetch interval has passed (injected, so tests move
    /// time instead of sleeping).
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: Arc<HashMap<String, RsaPublicKey>>,
    last_fetch: Option<Timestamp>,
    last_fetch_failed: bool,
    fetches: u64,
}

impl JwksVerifier {
    /// A verifier for tokens of `issuer`, with keys from `jwks_url`.
    pub fn new(jwks_url: impl Into<String>, issuer: impl Into<String>) -> Result<Self, TokenError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TokenError::new(TokenErrorKind::Unavailable, format!("HTTP client: {e}")))?;
        Ok(Self::with_client(jwks_url, issuer, client))
    }

    /// The same, fetching through `client` (a process that talks to the
    /// same server for other things shares one client, and so one store of
    /// trust anchors; whether redirects are followed is the client's
    /// choice). Every fetch still times out after 10 s.
    pub fn with_client(jwks_url: impl Into<String>, issuer: impl Into<String>, client: reqwest::Client) -> Self {
        Self {
            url: jwks_url.into(),
            issuer: issuer.into(),
            leeway_secs: MAX_LEEWAY_SECS,
            min_refetch_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            client,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Sets the minimum time between two fetches triggered by unknown `kid`s.
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Uses `clock` for the refetch rate limit (the system clock by default).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the leeway for `exp`/`nbf` (capped at five seconds).
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs.min(MAX_LEEWAY_SECS);
        self
    }

    /// Fetches the key set now (e.g. at start-up), regardless of the rate limit.
    pub async fn refresh(&self) -> Result<usize, TokenError> {
        let mut cache = self.cache.lock().await;
        self.fetch_into(&mut cache).await?;
        Ok(cache.keys.len())
    }

    /// How many times the key set was fetched (for tests and metrics).
    pub async fn fetch_count(&self) -> u64 {
        self.cache.lock().await.fetches
    }

    async fn fetch_into(&self, cache: &mut Cache) -> Result<(), TokenError> {
        cache.last_fetch = Some(self.clock.now());
        cache.fetches += 1;
        cache.last_fetch_failed = true;
        let unavailable = |what: String| TokenError::new(TokenErrorKind::Unavailable, what);
        let response = self
            .client
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(format!("JWKS fetch failed: {e}")))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("JWKS fetch answered {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(unavailable("JWKS document too large".into()));
        }
        let body = response.bytes().await.map_err(|e| unavailable(format!("JWKS read failed: {e}")))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(unavailable("JWKS document too large".into()));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("JWKS is not a key set: {e}")))?;
        let keys = keys_from_jwks(&set);
        tracing::debug!(keys = keys.len(), url = %self.url, "JWKS fetched");
        cache.keys = Arc::new(keys);
        cache.last_fetch_failed = false;
        Ok(())
    }

    /// The key for `kid`: from the cache, or after one rate-limited refetch.
    async fn key_for(&self, kid: &str) -> Result<RsaPublicKey, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        let now = self.clock.now();
        let may_fetch = cache.last_fetch.is_none_or(|at| now - at >= self.min_refetch_interval);
        if !may_fetch {
            return Err(if cache.last_fetch_failed {
                TokenError::new(TokenErrorKind::Unavailable, "the key set could not be fetched recently")
            } else {
                TokenError::new(TokenErrorKind::UnknownKey, "unknown kid (key set refetched recently)")
            });
        }
        let fetched = self.fetch_into(&mut cache).await;
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None => match fetched {
                Err(e) => Err(e),
                Ok(()) => Err(TokenError::new(TokenErrorKind::UnknownKey, "unknown kid")),
            },
        }
    }
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("url", &self.url)
            .field("issuer", &self.issuer)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<VerifiedToken, TokenError> {
        let kid = header_kid(token)?;
        let key = self.key_for(&kid).await?;
        verify_with_key(token, &key, &self.issuer, audience, self.leeway_secs, now)
    }
}
