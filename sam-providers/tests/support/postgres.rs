//! A fresh PostgreSQL database per test, in the throw-away cluster that
//! `scripts/test.d/10-postgres.sh` starts (`SAM_TEST_POSTGRES_URL`).
//!
//! Without `SAM_TEST_POSTGRES_URL` a test fails, unless `SAM_SKIP_POSTGRES=1`
//! says explicitly to skip it.

#![allow(dead_code)] // each test binary uses the part it needs

use std::str::FromStr;

use sam_providers::store::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _};

/// Connection options of a fresh, empty database; `None` only when skipping
/// was asked for.
pub async fn fresh_database() -> Option<PgConnectOptions> {
    let Ok(url) = std::env::var("SAM_TEST_POSTGRES_URL") else {
        if std::env::var("SAM_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("SAM_SKIP_POSTGRES=1: skipping a PostgreSQL test");
            return None;
        }
        panic!(
            "SAM_TEST_POSTGRES_URL is not set: run the tests through ./scripts/test, or \
             `source scripts/test.d/10-postgres.sh` first (set SAM_SKIP_POSTGRES=1 to skip explicitly)"
        );
    };
    let admin = PgConnectOptions::from_str(&url).expect("SAM_TEST_POSTGRES_URL is a PostgreSQL URL");
    let name = format!("sam_test_{}", sam_core::domain::WorkspaceId::new().as_uuid().simple());
    let mut conn = sqlx::PgConnection::connect_with(&admin).await.expect("connect to the test cluster");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create database");
    conn.close().await.expect("close");
    Some(admin.database(&name))
}

/// The URL of a fresh, empty database (for processes configured by URL);
/// `None` only when skipping was asked for.
pub async fn fresh_database_url() -> Option<String> {
    let options = fresh_database().await?;
    Some(format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database was chosen")
    ))
}

/// A store on a fresh, empty database; `None` only when skipping was asked for.
pub async fn fresh_store(max_connections: u32) -> Option<PostgresStore> {
    let options = fresh_database().await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .expect("connect to the test database");
    Some(PostgresStore::from_pool(pool).await.expect("migrate"))
}
