//! The SQLite store: the embedded default.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sam_core::ports::{StoreError, StoreErrorKind};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Row as _, SqlSafeStr as _, Sqlite, Transaction};

use super::dialect::sealed::Sealed;
use super::statement::Statement;
use super::{Dialect, SqlStore, db_error};

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Connections in the pool (at least 1). Writers are serialised by SQLite
    /// anyway; more connections let reads proceed while a write is running.
    pub max_connections: u32,
    /// How long a connection waits for another writer's lock before the call
    /// fails with [`StoreErrorKind::Unavailable`].
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { max_connections: 4, busy_timeout: Duration::from_secs(5) }
    }
}

/// [`Store`](sam_core::ports::Store) on SQLite: WAL journal, `synchronous =
/// NORMAL` (durable against a crash of the process; a power loss may lose the
/// last transactions but never corrupts the file), a busy timeout, and foreign
/// keys on. Write transactions start with `BEGIN IMMEDIATE`, so two writers
/// never deadlock on a lock upgrade.
///
/// ```no_run
/// # async fn demo() -> Result<(), sam_core::ports::StoreError> {
/// use sam_providers::store::SqliteStore;
/// let store = SqliteStore::open("/var/lib/sam/sam.db").await?;
/// let in_memory = SqliteStore::in_memory().await?;
/// # Ok(()) }
/// ```
pub type SqliteStore = SqlStore<Sqlite>;

/// The embedded SQLite migrations (`sam-providers/migrations/sqlite`).
pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "webhook deliveries".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0002_webhook_deliveries.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "origin certificates".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0003_origin_certificates.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "agent credentials".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0004_agent_credentials.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "access tokens".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0005_access_tokens.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database file at `path` with default
    /// options and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database file at `path` with `options` and applies pending
    /// migrations.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect)
            .await
            .map_err(db_error("open SQLite database"))?;
        let store = Self { pool, file: Some(path.to_owned()), shared: Default::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// A private in-memory database (one connection, so every call sees the
    /// same data; it lives as long as the store).
    pub async fn in_memory() -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db_error("in-memory SQLite options"))?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect)
            .await
            .map_err(db_error("open in-memory SQLite database"))?;
        let store = Self { pool, file: None, shared: Default::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens `url`: `sqlite::memory:` / `:memory:` for an in-memory database,
    /// otherwise a file path, optionally prefixed `sqlite://` or `sqlite:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        match url {
            ":memory:" | "sqlite::memory:" | "sqlite://:memory:" => Self::in_memory().await,
            _ => {
                let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
                if path.is_empty() {
                    return Err(StoreError::new(StoreErrorKind::Other, "empty SQLite path"));
                }
                Self::open(path).await
            }
        }
    }

    /// Applies pending migrations (also done on open; idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Other, format!("SQLite migration failed: {e}")).with_source(e))
    }

    /// The file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl Sealed for Sqlite {}

impl Dialect for Sqlite {
    const LOCK_OWNER_SQL: &'static str = "SELECT id FROM users WHERE id = $1";
    // One process owns the file: the store announces its own writes.
    const ANNOUNCES_CHANGES: bool = false;

    async fn forward_changes(
        _pool: &Pool<Self>,
        _changes: tokio::sync::broadcast::Sender<sam_core::ports::StoreChange>,
    ) -> Option<tokio::task::AbortHandle> {
        None
    }

    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send {
        pool.begin_with("BEGIN IMMEDIATE")
    }

    async fn execute(conn: &mut SqliteConnection, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(statement.into_query::<Self>().execute(conn).await?.rows_affected())
    }

    fn fetch_optional(
        conn: &mut SqliteConnection,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send {
        statement.into_query::<Self>().fetch_optional(conn)
    }

    fn fetch_all(
        conn: &mut SqliteConnection,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send {
        statement.into_query::<Self>().fetch_all(conn)
    }

    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }

    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn flag(row: &Self::Row, column: &str) -> Result<bool, sqlx::Error> {
        row.try_get(column)
    }

    fn bytes(row: &Self::Row, column: &str) -> Result<Vec<u8>, sqlx::Error> {
        row.try_get(column)
    }
}
