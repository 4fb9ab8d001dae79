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
