//! Prometheus metrics: `GET /metrics` in the text exposition format.
//!
//! `sam-core` records its series through the `metrics` facade (names and
//! meanings in [`sam_core::metrics`]); this module installs the process-wide
//! recorder that collects them and serves the scrape. Mount [`router`] on the
//! API router behind a scraper's token ([`router_with_token`],
//! `SAM_METRICS_TOKEN_FILE`) or serve it on a separate, private address with
//! [`serve`] (`SAM_METRICS_ADDR`); with neither, `sam-server serve` keeps it
//! off the public port altogether.
//!
//! The recorder is global to the process and can be installed only once, so
//! [`install`] is idempotent: every call returns a handle to the same
//! recorder (tests and embedders may call it freely). If another recorder was
//! installed first (an embedder exporting elsewhere), it fails with
//! [`MetricsError`] and SAM's series go to that recorder instead.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often recorded histogram samples are folded into their buckets when
/// nobody scrapes (bounds memory between scrapes).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A handle to the installed Prometheus recorder. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
}

impl MetricsHandle {
    /// The current values in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.prometheus.run_upkeep();
        self.prometheus.render()
    }
}

/// Why the recorder could not be installed.
#[derive(Debug)]
pub struct MetricsError(String);

impl std::fmt::Display for MetricsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "metrics recorder not installed: {}", self.0)
    }
}

impl std::error::Error for MetricsError {}

static INSTALLED: OnceLock<Result<MetricsHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics`
/// recorder (once; later calls return the same handle), registers the help
/// texts of SAM's series, and, when called inside a Tokio runtime, starts the
/// periodic upkeep of histogram samples.
pub fn install() -> Result<MetricsHandle, MetricsError> {
    INSTALLED
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in sam_core::metrics::HISTOGRAM_BUCKETS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                    .map_err(|e| e.to_string())?;
            }
            let recorder = builder.build_recorder();
            let prometheus = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            sam_core::metrics::describe();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = prometheus.clone();
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(UPKEEP_INTERVAL);
                    loop {
                        every.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            tracing::info!("prometheus metrics recorder installed");
            Ok(MetricsHandle { prometheus })
        })
        .clone()
        .map_err(MetricsError)
}

/// `GET /metrics`, for any router state: merge it into the API router or serve
/// it alone.
pub fn router<S: Clone + Send + Sync + 'static>(handle: MetricsHandle) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { (StatusCode::OK, [(CONTENT_TYPE, CONTENT_TYPE_TEXT)], handle.render()).into_response() }
        }),
    )
}

/// `GET /metrics` for the public listener: only with `Authorization: Bearer
/// <token>` (a scraper's secret, `SAM_METRICS_TOKEN_FILE`); anything else is a
/// 404, as if there were no such route, so the public port tells nobody what
/// the deployment runs or how busy it is. The comparison takes the same time
/// whatever the guess.
pub fn router_with_token<S: Clone + Send + Sync + 'static>(
    handle: MetricsHandle,
    token: sam_core::secret::SecretString,
) -> Router<S> {
    use sha2::Digest as _;
    let expected: [u8; 32] = sha2::Sha256::digest(token.expose().as_bytes()).into();
    Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let handle = handle.clone();
            async move {
                let presented = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                // Digests, so the comparison's length is the same whatever was sent.
                let digest: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
                if !sam_core::secret::constant_time_eq(&digest, &expected) {
                    return StatusCode::NOT_FOUND.into_response();
                }
                (StatusCode::OK, [(CONTENT_TYPE, CONTENT_TYPE_TEXT)], handle.render()).into_response()
            }
        }),
    )
}

/// Serves only `GET /metrics` on `listener` (e.g. bound to `SAM_METRICS_ADDR`)
/// until the process stops.
pub async fn serve(listener: tokio::net::TcpListener, handle: MetricsHandle) -> std::io::Result<()> {
    axum::serve(listener, router::<()>(handle)).await
}
