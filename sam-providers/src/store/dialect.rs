//! What differs between the SQL databases a [`SqlStore`](super::SqlStore) runs on.

use std::future::Future;

use sqlx::{Pool, Transaction};

use super::statement::Statement;

/// Implemented by the two databases the schema exists for.
pub(super) mod sealed {
    pub trait Sealed {}
}

/// A SQL database a [`SqlStore`](super::SqlStore) runs on: `sqlx::Sqlite`
/// (feature `sqlite`) or `sqlx::Postgres` (feature `postgres`). Sealed: the
/// schema and its migrations exist for these two only.
///
/// The store's queries are written once against this trait; a dialect says
/// how a write transaction begins, how the owner row is locked, and how
/// parameters are bound and columns read in the storage types the schema uses
/// (text, 64-bit integers, booleans, bytes).
pub trait Dialect: sqlx::Database + sealed::Sealed {
    /// Locks the owner's row for the rest of the transaction (`$1` is the
    /// owner id); returns a row when the owner exists.
    #[doc(hidden)]
    const LOCK_OWNER_SQL: &'static str;

    /// Whether the database announces committed writes itself (triggers
    /// and `NOTIFY`); otherwise the store announces its own.
    #[doc(hidden)]
    const ANNOUNCES_CHANGES: bool;

    /// Starts forwarding the database's announcements to `changes`, when it
    /// makes them, once it listens (or failed to: it keeps trying); the
    /// task runs until aborted.
    #[doc(hidden)]
    fn forward_changes(
        pool: &Pool<Self>,
        changes: tokio::sync::broadcast::Sender<sam_core::ports::StoreChange>,
    ) -> impl Future<Output = Option<tokio::task::AbortHandle>> + Send;

    /// Starts a transaction that will write.
    #[doc(hidden)]
    fn begin_write(pool: &Pool<Self>) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Runs a statement; how many rows it changed.
    #[doc(hidden)]
    fn execute(
        conn: &mut Self::Connection,
        statement: Statement,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;

    /// At most one row.
    #[doc(hidden)]
    fn fetch_optional(
        conn: &mut Self::Connection,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;

    /// Every row.
    #[doc(hidden)]
    fn fetch_all(
        conn: &mut Self::Connection,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;

    /// A text column.
    #[doc(hidden)]
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;

    /// An integer column.
    #[doc(hidden)]
    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;

    /// A boolean column.
    #[doc(hidden)]
    fn flag(row: &Self::Row, column: &str) -> Result<bool, sqlx::Error>;

    /// A bytes column.
    #[doc(hidden)]
    fn bytes(row: &Self::Row, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}
