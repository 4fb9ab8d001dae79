//! `sqlx` errors as [`StoreError`] kinds.

use sam_core::ports::{StoreError, StoreErrorKind};
use sqlx::error::ErrorKind as DbErrorKind;

/// Maps a `sqlx` error to a [`StoreError`] kind: busy, locked, serialisation
/// failures and connection problems are `Unavailable` (retryable), decoding
/// problems `Corrupt`, a foreign-key violation `NotFound` (the parent row does
/// not exist), everything else `Other`. The message never contains bound
/// values.
pub(crate) fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| {
        let kind = classify(&err);
        if kind == StoreErrorKind::Unavailable {
            tracing::debug!(context, error = %err, "database unavailable");
        }
        StoreError::new(kind, format!("{context}: {}", short_message(&err))).with_source(err)
    }
}

fn short_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => format!("database error {}", db.code().as_deref().unwrap_or("?")),
        other => other.to_string(),
    }
}

fn classify(err: &sqlx::Error) -> StoreErrorKind {
    match err {
        sqlx::Error::Database(db) => {
            match db.kind() {
                DbErrorKind::ForeignKeyViolation => return StoreErrorKind::NotFound,
                DbErrorKind::UniqueViolation => return StoreErrorKind::Other,
                _ => {}
            }
            if is_unavailable_db_error(db.as_ref()) { StoreErrorKind::Unavailable } else { StoreErrorKind::Other }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreErrorKind::Unavailable,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

fn is_unavailable_db_error(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    #[cfg(feature = "postgres")]
    if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        return is_unavailable_sqlstate(&code);
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return code.parse::<u32>().is_ok_and(is_unavailable_sqlite_code);
    }
    false
}

/// SQLite: `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with any extended code.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
fn is_unavailable_sqlite_code(code: u32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

/// Postgres: serialisation failure, deadlock, lock not available, connection
/// exceptions (class 08), too many connections, shutdown.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn is_unavailable_sqlstate(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

/// Whether the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == DbErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes_are_retryable() {
        assert!(is_unavailable_sqlite_code(5));
        assert!(is_unavailable_sqlite_code(517)); // SQLITE_BUSY_SNAPSHOT
        assert!(is_unavailable_sqlite_code(262)); // SQLITE_LOCKED_SHAREDCACHE
        assert!(!is_unavailable_sqlite_code(2067)); // SQLITE_CONSTRAINT_UNIQUE
        assert!(is_unavailable_sqlstate("40001"));
        assert!(is_unavailable_sqlstate("40P01"));
        assert!(is_unavailable_sqlstate("08006"));
        assert!(!is_unavailable_sqlstate("23505"));
    }
}
