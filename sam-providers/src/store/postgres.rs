//! The PostgreSQL store, for several server replicas sharing one database.

use std::future::Future;
use std::str::FromStr;

use std::time::Duration;

use sam_core::ports::{StoreChange, StoreError, StoreErrorKind};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Pool, Postgres, Row as _, SqlSafeStr as _, Transaction};
use tokio::sync::broadcast;

use super::dialect::sealed::Sealed;
use super::statement::Statement;
use super::{Dialect, SqlStore, db_error, feed};

/// [`Store`](sam_core::ports::Store) on PostgreSQL. Transactions run at READ
/// COMMITTED: version checks, token redemption and lease takeover are single
/// conditional statements (re-checked by Postgres after a concurrent writer
/// commits), and the quota check locks the owner's row (`FOR UPDATE`) so
/// concurrent inserts for one user are serialised.
///
/// ```no_run
/// # async fn demo() -> Result<(), sam_core::ports::StoreError> {
/// use sam_providers::store::PostgresStore;
/// let store = PostgresStore::connect("postgres://sam@db.internal/sam").await?;
/// # Ok(()) }
/// ```
pub type PostgresStore = SqlStore<Postgres>;

/// The embedded PostgreSQL migrations (`sam-providers/migrations/postgres`).
pub(crate) fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "webhook deliveries".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0002_webhook_deliveries.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "origin certificates".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0003_origin_certificates.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "agent credentials".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0004_agent_credentials.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "change feed".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0005_change_feed.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "access tokens".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0006_access_tokens.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with
    /// a pool of 10 connections and applies pending migrations. TLS (rustls)
    /// is negotiated when the server offers it; add `?sslmode=verify-full` to
    /// require it with certificate and host-name checks.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, "invalid PostgreSQL URL").with_source(e))?;
        Self::connect_with(options, 10).await
    }

    /// Connects with explicit options and pool size, then applies pending
    /// migrations.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(db_error("connect to PostgreSQL"))?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool and applies pending migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        let store = Self { pool, file: None, shared: Default::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (also done on connect; idempotent, and safe
    /// when several replicas start at once: sqlx holds an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run(&self.pool).await.map_err(|e| {
            StoreError::new(StoreErrorKind::Other, format!("PostgreSQL migration failed: {e}")).with_source(e)
        })
    }
}

/// Forwards the triggers' notifications to `changes`, on a connection of
/// its own (a pool of one, so the store's pool keeps all its connections),
/// until aborted, starting with `first` when it already listens. After every
/// reconnection subscribers are told to resynchronise: whatever was committed
/// while nobody listened is re-read.
async fn forward_notifications(
    options: PgConnectOptions,
    mut first: Option<PgListener>,
    changes: broadcast::Sender<StoreChange>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listener = match first.take() {
            Some(listener) => Ok(listener),
            None => listen(&options).await.inspect(|_| {
                let _ = changes.send(StoreChange::Resync);
            }),
        };
        match listener {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => {
                            let _ = changes.send(feed::parse_payload(notification.payload()));
                        }
                        // The connection dropped and was re-established:
                        // notifications in between are lost.
                        Ok(None) => {
                            tracing::warn!("change feed reconnected to PostgreSQL; live views resynchronise");
                            let _ = changes.send(StoreChange::Resync);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "change feed lost PostgreSQL; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "change feed cannot listen on PostgreSQL; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(feed::CHANNEL).await?;
    Ok(listener)
}

impl Sealed for Postgres {}

impl Dialect for Postgres {
    const LOCK_OWNER_SQL: &'static str = "SELECT id FROM users WHERE id = $1 FOR UPDATE";
    const ANNOUNCES_CHANGES: bool = true;

    async fn forward_changes(
        pool: &Pool<Self>,
        changes: broadcast::Sender<StoreChange>,
    ) -> Option<tokio::task::AbortHandle> {
        let options = (*pool.connect_options()).clone();
        let first = match listen(&options).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "change feed cannot listen on PostgreSQL; retrying");
                None
            }
        };
        Some(tokio::spawn(forward_notifications(options, first, changes)).abort_handle())
    }

    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send {
        pool.begin()
    }

    async fn execute(conn: &mut PgConnection, statement: Statement) -> Result<u64, sqlx::Error> {
        Ok(statement.into_query::<Self>().execute(conn).await?.rows_affected())
    }

    fn fetch_optional(
        conn: &mut PgConnection,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send {
        statement.into_query::<Self>().fetch_optional(conn)
    }

    fn fetch_all(
        conn: &mut PgConnection,
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
