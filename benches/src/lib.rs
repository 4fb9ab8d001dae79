//! Helpers shared by SAM's benchmarks.
//!
//! Machines here are noisy, so no benchmark reports an absolute time alone:
//! each measures a baseline in the same run and prints its figure as a ratio
//! to that baseline.

use std::time::{Duration, Instant};

/// Runs `f` `iterations` times, `rounds` times over, and returns the median
/// time per iteration.
pub fn median_per_iteration(rounds: usize, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations.max(1)
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// A store on a fresh PostgreSQL database named `<prefix>_<pid>` (dropped
/// first if a run before left it), in the cluster at `url` (as
/// `SAM_TEST_POSTGRES_URL` gives it), with a pool of 10.
///
/// # Panics
/// When the cluster cannot be reached or the database not created: a
/// benchmark reports failure by panicking.
#[allow(clippy::unwrap_used)]
pub async fn fresh_postgres(url: &str, prefix: &str) -> sam_providers::store::PostgresStore {
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let admin = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
    let name = format!("{prefix}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
    for statement in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    sam_providers::store::PostgresStore::connect_with(admin.database(&name), 10).await.unwrap()
}

/// The control plane as the HTTP benchmarks run it: the real router, engine
/// and accounts over `store`, fake clouds and GitHub, a real RS256 issuer,
/// and the request budgets raised past what one load generator sends. The
/// server stops when this is dropped.
#[derive(Debug)]
pub struct ControlPlane {
    /// Signs the tokens the benchmarks present (callback credentials).
    pub issuer: std::sync::Arc<sam_providers::jwt::JwtIssuer>,
    /// Where it listens (loopback, a free port).
    pub addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ControlPlane {
    /// Starts it on a free loopback port.
    ///
    /// # Panics
    /// When no key can be generated or no port bound.
    #[allow(clippy::unwrap_used)]
    pub async fn start(store: std::sync::Arc<dyn sam_core::ports::Store>) -> Self {
        use sam_core::testkit::fakes::{FakeCipher, FakeCloud, FakeDnsZone, FakeGithub};
        use std::sync::Arc;
        let key = sam_providers::jwt::RsaSigningKey::generate(2048).unwrap();
        let issuer = Arc::new(sam_providers::jwt::JwtIssuer::new("http://127.0.0.1", key));
        let github = Arc::new(FakeGithub::new(30));
        let ports = sam_core::engine::Ports {
            store,
            compute: Arc::new(FakeCloud::new()),
            dns: Arc::new(FakeDnsZone::new()),
            repos: github.clone(),
            cipher: Arc::new(FakeCipher::new(1, "bench")),
            tokens: issuer.clone(),
            clock: Arc::new(sam_core::ports::SystemClock),
        };
        let config = sam_core::engine::EngineConfig::new("ws.bench.test", "http://127.0.0.1");
        let state = sam_server::state::AppState {
            engine: Arc::new(sam_core::engine::Engine::new(ports.clone(), config)),
            accounts: Arc::new(sam_core::accounts::Accounts::new(ports, github, Default::default())),
            issuer: issuer.clone(),
            verifier: issuer.clone(),
            webhooks: None,
            http: sam_server::state::HttpSettings {
                rate_limit_per_minute: 1_000_000,
                // One workspace's heartbeats at full speed: past the budget
                // of a real agent.
                agent_reports_per_minute: 1_000_000,
                ..sam_server::state::HttpSettings::new("http://127.0.0.1", std::env::temp_dir())
            },
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = sam_server::api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        Self { issuer, addr, server }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.server.abort();
    }
}
