//! The store port ([`Store`](sam_core::ports::Store) and its concerns) on SQL
//! databases with `sqlx`: SQLite (feature `sqlite`, the embedded default) and
//! PostgreSQL (feature `postgres`, for several server replicas).
//!
//! One implementation, [`SqlStore`], serves both: the SQL is written in the
//! common subset of both dialects (with `$N` placeholders, which SQLite also
//! accepts), and a [`Dialect`] supplies the little that differs: how a write
//! transaction starts, how the owner row is locked for the atomic quota check,
//! and how values are bound and read. Each concern of the port has its own
//! module here (`users`, `credentials`, `workspaces`, …), with rows decoded in
//! `rows`. Each dialect has its own migrations folder
//! (`sam-providers/migrations/{sqlite,postgres}`), embedded in the binary and
//! applied when a store is opened (or explicitly with `migrate`).
//!
//! Storage conventions, identical in both dialects:
//!
//! - ids are canonical hyphenated UUID text (`COLLATE "C"` on Postgres, so
//!   keyset pagination orders them bytewise, which for UUID v7 is time order);
//! - timestamps are 64-bit integers of **nanoseconds** since the Unix epoch
//!   (UTC), so every `OffsetDateTime` round-trips exactly (Postgres'
//!   `TIMESTAMPTZ` keeps only microseconds);
//! - a workspace's `version` is checked and bumped in the same `UPDATE`, so a
//!   stale write is refused without a lock;
//! - bootstrap tokens are consumed by one conditional `UPDATE … RETURNING`,
//!   leases by one conditional upsert, so both are atomic without explicit
//!   transactions.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use sam_core::ports::StoreError;
use sqlx::Pool;

#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod access_tokens;
pub mod admin;
mod bootstrap;
mod credentials;
mod dialect;
mod errors;
mod feed;
mod installations;
mod leases;
mod rows;
mod statement;
mod users;
mod values;
mod webhooks;
mod workspaces;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dialect::Dialect;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};

use errors::db_error;
use statement::Statement;

/// The store on a SQL database of dialect `D`. Use it through its aliases,
/// [`SqliteStore`] and [`PostgresStore`], whose constructors open the
/// database and apply the migrations.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pool: Pool<D>,
    /// The database file, for a file-backed SQLite store.
    file: Option<PathBuf>,
    /// The change feed, shared by every handle.
    shared: Arc<feed::Shared>,
}

// By hand: a derive would ask `D: Clone`, and the dialects are marker types.
impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), file: self.file.clone(), shared: self.shared.clone() }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The underlying pool (for health checks, benchmarks and tests).
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// Closes every connection (on SQLite, this checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one statement outside a transaction; the number of rows it changed.
    async fn execute(&self, statement: Statement, context: &'static str) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error(context))?;
        D::execute(&mut conn, statement).await.map_err(db_error(context))
    }

    /// At most one row of a query outside a transaction.
    async fn fetch_optional(&self, statement: Statement, context: &'static str) -> Result<Option<D::Row>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error(context))?;
        D::fetch_optional(&mut conn, statement).await.map_err(db_error(context))
    }

    /// Every row of a query outside a transaction.
    async fn fetch_all(&self, statement: Statement, context: &'static str) -> Result<Vec<D::Row>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error(context))?;
        D::fetch_all(&mut conn, statement).await.map_err(db_error(context))
    }

    /// Starts a transaction that will write (SQLite: `BEGIN IMMEDIATE`).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, D>, StoreError> {
        D::begin_write(&self.pool).await.map_err(db_error("begin write transaction"))
    }
}

/// Statuses that count towards the per-user quota, as a SQL list. Kept in sync
/// with `WorkspaceStatus::is_active` by a unit test.
macro_rules! active_statuses {
    () => {
        "'pending', 'creating', 'running', 'stopping'"
    };
}
use active_statuses;

/// The columns of a user row, as `rows::user` reads them.
macro_rules! user_columns {
    () => {
        "id, github_id, login, name, email, avatar_url, created_at, updated_at"
    };
}
use user_columns;

/// The columns of a workspace row, as `rows::workspace` reads them.
macro_rules! workspace_columns {
    () => {
        "id, owner, name, repository, branch, vm_size, vm_location, installation_id, status, reason, server_id, \
         server_ipv4, dns_record, agent_ready, error_message, idle_timeout_secs, last_activity_at, \
         last_heartbeat_at, status_changed_at, created_at, updated_at, version, origin_certificate, \
         agent_credential"
    };
}
use workspace_columns;

#[cfg(test)]
mod tests {
    use sam_core::lifecycle::WorkspaceStatus;

    #[test]
    fn active_status_list_matches_the_domain() {
        let active: Vec<String> =
            WorkspaceStatus::ALL.iter().filter(|s| s.is_active()).map(|s| format!("'{}'", s.as_str())).collect();
        assert_eq!(active.join(", "), active_statuses!());
    }
}
