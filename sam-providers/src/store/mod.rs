//! [`Store`](sam_core::ports::Store) on SQL databases with `sqlx`: SQLite
//! (feature `sqlite`, the embedded default) and PostgreSQL (feature `postgres`,
//! for several server replicas).
//!
//! Both adapters share one implementation (the SQL is written in the common
//! subset of both dialects, with `$N` placeholders that SQLite also accepts)
//! and differ only in how a write transaction starts and how the owner row is
//! locked for the atomic quota check. Each dialect has its own migrations
//! folder (`sam-providers/migrations/{sqlite,postgres}`), embedded in the
//! binary and applied when a store is opened (or explicitly with `migrate`).
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

use sam_core::domain::Timestamp;
use sam_core::ports::{StoreError, StoreErrorKind};
use sqlx::error::ErrorKind as DbErrorKind;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqliteStore};

/// Statuses that count towards the per-user quota, as a SQL list. Kept in sync
/// with `WorkspaceStatus::is_active` by a unit test.
macro_rules! active_statuses {
    () => {
        "'pending', 'creating', 'running', 'stopping'"
    };
}
pub(crate) use active_statuses;

#[cfg(test)]
const ACTIVE_STATUSES_SQL: &str = active_statuses!();

/// The columns of a workspace row, in the order `workspace_from_row` reads them.
macro_rules! ws_cols {
    () => {
        "id, owner, name, repository, branch, vm_size, vm_location, installation_id, status, reason, server_id, \
         server_ipv4, dns_record, agent_ready, error_message, idle_timeout_secs, last_activity_at, \
         last_heartbeat_at, status_changed_at, created_at, updated_at, version"
    };
}
pub(crate) use ws_cols;

/// Columns of a user row.
macro_rules! user_cols {
    () => {
        "id, github_id, login, name, email, avatar_url, created_at, updated_at"
    };
}
pub(crate) use user_cols;

/// Nanoseconds since the epoch, as stored.
pub(crate) fn ts(t: Timestamp) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "timestamp outside the storable range (1677-2262)"))
}

/// Optional timestamp, as stored.
pub(crate) fn ts_opt(t: Option<Timestamp>) -> Result<Option<i64>, StoreError> {
    t.map(ts).transpose()
}

/// A stored timestamp back.
pub(crate) fn from_ts(nanos: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|_| StoreError::new(StoreErrorKind::Corrupt, "stored timestamp out of range"))
}

/// An optional stored timestamp back.
pub(crate) fn from_ts_opt(nanos: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    nanos.map(from_ts).transpose()
}

/// A stored value that does not parse into its domain type.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("stored {what} is invalid"))
}

/// Parses a stored text column into a domain type.
pub(crate) fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| corrupt(what))
}

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

/// A comma-framed status list (`,pending,running,`) for the portable
/// `$n LIKE '%,' || status || ',%'` filter; empty means every status.
pub(crate) fn status_list(statuses: &[sam_core::lifecycle::WorkspaceStatus]) -> String {
    if statuses.is_empty() {
        return String::new();
    }
    let mut out = String::from(",");
    for s in statuses {
        out.push_str(s.as_str());
        out.push(',');
    }
    out
}

/// Implements `Store` for a struct with a `pool: sqlx::Pool<$db>` field and
/// the dialect hooks `begin_write` and `LOCK_OWNER_SQL`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn user_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::User, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, parse};
                let e = db_error("decode user");
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<String, _>("id")?,
                        r.try_get::<i64, _>("github_id")?,
                        r.try_get::<String, _>("login")?,
                        r.try_get::<Option<String>, _>("name")?,
                        r.try_get::<Option<String>, _>("email")?,
                        r.try_get::<Option<String>, _>("avatar_url")?,
                        r.try_get::<i64, _>("created_at")?,
                        r.try_get::<i64, _>("updated_at")?,
                    ))
                };
                let (id, github_id, login, name, email, avatar_url, created_at, updated_at) = get(row).map_err(e)?;
                Ok(sam_core::domain::User {
                    id: parse(&id, "user id")?,
                    github_id: sam_core::domain::GithubUserId(github_id),
                    login,
                    name,
                    email,
                    avatar_url,
                    created_at: from_ts(created_at)?,
                    updated_at: from_ts(updated_at)?,
                })
            }

            fn session_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::Session, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, parse};
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<String, _>("id_hash")?,
                        r.try_get::<String, _>("user_id")?,
                        r.try_get::<i64, _>("created_at")?,
                        r.try_get::<i64, _>("last_seen_at")?,
                        r.try_get::<i64, _>("expires_at")?,
                    ))
                };
                let (id_hash, user_id, created_at, last_seen_at, expires_at) =
                    get(row).map_err(db_error("decode session"))?;
                Ok(sam_core::domain::Session {
                    id_hash,
                    user_id: parse(&user_id, "session user id")?,
                    created_at: from_ts(created_at)?,
                    last_seen_at: from_ts(last_seen_at)?,
                    expires_at: from_ts(expires_at)?,
                })
            }

            fn credential_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::Credential, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, from_ts_opt, parse};
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<String, _>("user_id")?,
                        r.try_get::<String, _>("provider")?,
                        r.try_get::<Vec<u8>, _>("ciphertext")?,
                        r.try_get::<Option<i64>, _>("validated_at")?,
                        r.try_get::<i64, _>("created_at")?,
                        r.try_get::<i64, _>("updated_at")?,
                    ))
                };
                let (user_id, provider, ciphertext, validated_at, created_at, updated_at) =
                    get(row).map_err(db_error("decode credential"))?;
                Ok(sam_core::domain::Credential {
                    user_id: parse(&user_id, "credential user id")?,
                    provider: parse(&provider, "credential provider")?,
                    ciphertext,
                    validated_at: from_ts_opt(validated_at)?,
                    created_at: from_ts(created_at)?,
                    updated_at: from_ts(updated_at)?,
                })
            }

            fn installation_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::GithubInstallation, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, from_ts_opt};
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<i64, _>("id")?,
                        r.try_get::<String, _>("account_login")?,
                        r.try_get::<String, _>("account_type")?,
                        r.try_get::<i64, _>("account_id")?,
                        r.try_get::<bool, _>("suspended")?,
                        r.try_get::<Option<i64>, _>("removed_at")?,
                        r.try_get::<i64, _>("updated_at")?,
                    ))
                };
                let (id, account_login, account_type, account_id, suspended, removed_at, updated_at) =
                    get(row).map_err(db_error("decode installation"))?;
                Ok(sam_core::domain::GithubInstallation {
                    id: sam_core::domain::InstallationId(id),
                    account_login,
                    account_type,
                    account_id: sam_core::domain::GithubUserId(account_id),
                    suspended,
                    removed_at: from_ts_opt(removed_at)?,
                    updated_at: from_ts(updated_at)?,
                })
            }

            fn workspace_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::Workspace, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{corrupt, db_error, from_ts, from_ts_opt, parse};
                let e = || db_error("decode workspace");
                let text = |name: &str| row.try_get::<String, _>(name).map_err(e());
                let opt_text = |name: &str| row.try_get::<Option<String>, _>(name).map_err(e());
                let int = |name: &str| row.try_get::<i64, _>(name).map_err(e());
                let opt_int = |name: &str| row.try_get::<Option<i64>, _>(name).map_err(e());

                let server = match (opt_text("server_id")?, opt_text("server_ipv4")?) {
                    (Some(id), Some(ip)) => Some(sam_core::lifecycle::ServerRef {
                        id: sam_core::domain::ServerId(id),
                        ipv4: parse(&ip, "server address")?,
                    }),
                    (None, None) => None,
                    _ => return Err(corrupt("server reference")),
                };
                let idle_timeout_secs = match opt_int("idle_timeout_secs")? {
                    Some(n) => Some(u32::try_from(n).map_err(|_| corrupt("idle timeout"))?),
                    None => None,
                };
                Ok(sam_core::domain::Workspace {
                    id: parse(&text("id")?, "workspace id")?,
                    owner: parse(&text("owner")?, "workspace owner")?,
                    spec: sam_core::domain::WorkspaceSpec {
                        name: parse(&text("name")?, "workspace name")?,
                        repository: parse(&text("repository")?, "repository")?,
                        branch: parse(&text("branch")?, "branch")?,
                        vm_size: parse(&text("vm_size")?, "vm size")?,
                        vm_location: parse(&text("vm_location")?, "vm location")?,
                    },
                    installation_id: sam_core::domain::InstallationId(int("installation_id")?),
                    lifecycle: sam_core::lifecycle::LifecycleState {
                        status: parse(&text("status")?, "status")?,
                        reason: parse(&text("reason")?, "reason")?,
                        server,
                        dns_record: opt_text("dns_record")?,
                        agent_ready: row.try_get::<bool, _>("agent_ready").map_err(e())?,
                        error_message: opt_text("error_message")?,
                    },
                    idle_timeout_secs,
                    last_activity_at: from_ts_opt(opt_int("last_activity_at")?)?,
                    last_heartbeat_at: from_ts_opt(opt_int("last_heartbeat_at")?)?,
                    status_changed_at: from_ts(int("status_changed_at")?)?,
                    created_at: from_ts(int("created_at")?)?,
                    updated_at: from_ts(int("updated_at")?)?,
                    version: u64::try_from(int("version")?).map_err(|_| corrupt("version"))?,
                })
            }

            fn event_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::domain::WorkspaceEvent, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, parse};
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<String, _>("workspace_id")?,
                        r.try_get::<String, _>("from_status")?,
                        r.try_get::<String, _>("to_status")?,
                        r.try_get::<String, _>("event")?,
                        r.try_get::<String, _>("reason")?,
                        r.try_get::<Option<String>, _>("message")?,
                        r.try_get::<i64, _>("at")?,
                    ))
                };
                let (workspace_id, from, to, event, reason, message, at) =
                    get(row).map_err(db_error("decode workspace event"))?;
                Ok(sam_core::domain::WorkspaceEvent {
                    workspace_id: parse(&workspace_id, "event workspace id")?,
                    from: parse(&from, "event status")?,
                    to: parse(&to, "event status")?,
                    event,
                    reason: parse(&reason, "event reason")?,
                    message,
                    at: from_ts(at)?,
                })
            }

            fn token_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<sam_core::ports::BootstrapToken, sam_core::ports::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{db_error, from_ts, parse};
                let get = |r: &<$db as sqlx::Database>::Row| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<String, _>("token_hash")?,
                        r.try_get::<String, _>("workspace_id")?,
                        r.try_get::<String, _>("owner")?,
                        r.try_get::<i64, _>("created_at")?,
                        r.try_get::<i64, _>("expires_at")?,
                    ))
                };
                let (token_hash, workspace_id, owner, created_at, expires_at) =
                    get(row).map_err(db_error("decode bootstrap token"))?;
                Ok(sam_core::ports::BootstrapToken {
                    token_hash,
                    workspace_id: parse(&workspace_id, "token workspace id")?,
                    owner: parse(&owner, "token owner")?,
                    created_at: from_ts(created_at)?,
                    expires_at: from_ts(expires_at)?,
                })
            }

            async fn insert_event(
                tx: &mut sqlx::Transaction<'static, $db>,
                workspace: sam_core::domain::WorkspaceId,
                event: &sam_core::domain::WorkspaceEvent,
            ) -> Result<(), sam_core::ports::StoreError> {
                sqlx::query(
                    "INSERT INTO workspace_events (workspace_id, from_status, to_status, event, reason, message, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(workspace.to_string())
                .bind(event.from.as_str())
                .bind(event.to.as_str())
                .bind(event.event.as_str())
                .bind(event.reason.as_str())
                .bind(event.message.as_deref())
                .bind($crate::store::ts(event.at)?)
                .execute(&mut **tx)
                .await
                .map_err($crate::store::db_error("append workspace event"))?;
                Ok(())
            }

            /// Whether a workspace with this id exists for this owner.
            async fn workspace_exists(
                &self,
                owner: sam_core::domain::UserId,
                id: sam_core::domain::WorkspaceId,
            ) -> Result<bool, sam_core::ports::StoreError> {
                let row = sqlx::query("SELECT 1 AS one FROM workspaces WHERE id = $1 AND owner = $2")
                    .bind(id.to_string())
                    .bind(owner.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::db_error("look up workspace"))?;
                Ok(row.is_some())
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::UserStore for $store {
            async fn upsert_user(
                &self,
                profile: &sam_core::domain::NewUser,
                now: sam_core::domain::Timestamp,
            ) -> Result<sam_core::domain::User, sam_core::ports::StoreError> {
                let row = sqlx::query(concat!(
                    "INSERT INTO users (id, github_id, login, name, email, avatar_url, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (github_id) DO UPDATE SET login = excluded.login, name = excluded.name, \
                     email = excluded.email, avatar_url = excluded.avatar_url, updated_at = excluded.updated_at \
                     RETURNING ",
                    $crate::store::user_cols!()
                ))
                .bind(sam_core::domain::UserId::new().to_string())
                .bind(profile.github_id.0)
                .bind(profile.login.as_str())
                .bind(profile.name.as_deref())
                .bind(profile.email.as_deref())
                .bind(profile.avatar_url.as_deref())
                .bind($crate::store::ts(now)?)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::db_error("upsert user"))?;
                Self::user_from_row(&row)
            }

            async fn get_user(
                &self,
                id: sam_core::domain::UserId,
            ) -> Result<Option<sam_core::domain::User>, sam_core::ports::StoreError> {
                let row = sqlx::query(concat!("SELECT ", $crate::store::user_cols!(), " FROM users WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::db_error("get user"))?;
                row.as_ref().map(Self::user_from_row).transpose()
            }

            async fn create_session(
                &self,
                session: &sam_core::domain::NewSession,
                now: sam_core::domain::Timestamp,
            ) -> Result<sam_core::domain::Session, sam_core::ports::StoreError> {
                let row = sqlx::query(
                    "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) \
                     VALUES ($1, $2, $3, $3, $4) \
                     RETURNING id_hash, user_id, created_at, last_seen_at, expires_at",
                )
                .bind(session.id_hash.as_str())
                .bind(session.user_id.to_string())
                .bind($crate::store::ts(now)?)
                .bind($crate::store::ts(session.expires_at)?)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::db_error("create session"))?;
                Self::session_from_row(&row)
            }

            async fn get_session(
                &self,
                id_hash: &str,
                now: sam_core::domain::Timestamp,
            ) -> Result<Option<sam_core::domain::Session>, sam_core::ports::StoreError> {
                let row = sqlx::query(
                    "SELECT id_hash, user_id, created_at, last_seen_at, expires_at FROM sessions \
                     WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind($crate::store::ts(now)?)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::db_error("get session"))?;
                row.as_ref().map(Self::session_from_row).transpose()
            }

            async fn touch_session(
                &self,
                id_hash: &str,
                now: sam_core::domain::Timestamp,
                expires_at: sam_core::domain::Timestamp,
            ) -> Result<bool, sam_core::ports::StoreError> {
                let done = sqlx::query(
                    "UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind($crate::store::ts(now)?)
                .bind($crate::store::ts(expires_at)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("touch session"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_session(&self, id_hash: &str) -> Result<(), sam_core::ports::StoreError> {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("delete session"))?;
                Ok(())
            }

            async fn delete_user_sessions(
                &self,
                user: sam_core::domain::UserId,
            ) -> Result<u64, sam_core::ports::StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("delete user sessions"))?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::CredentialStore for $store {
            async fn put_credential(
                &self,
                credential: &sam_core::domain::Credential,
            ) -> Result<(), sam_core::ports::StoreError> {
                sqlx::query(
                    "INSERT INTO credentials (user_id, provider, ciphertext, validated_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (user_id, provider) DO UPDATE SET ciphertext = excluded.ciphertext, \
                     validated_at = excluded.validated_at, created_at = excluded.created_at, \
                     updated_at = excluded.updated_at",
                )
                .bind(credential.user_id.to_string())
                .bind(credential.provider.as_str())
                .bind(credential.ciphertext.as_slice())
                .bind($crate::store::ts_opt(credential.validated_at)?)
                .bind($crate::store::ts(credential.created_at)?)
                .bind($crate::store::ts(credential.updated_at)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("put credential"))?;
                Ok(())
            }

            async fn get_credential(
                &self,
                owner: sam_core::domain::UserId,
                provider: sam_core::domain::CredentialProvider,
            ) -> Result<Option<sam_core::domain::Credential>, sam_core::ports::StoreError> {
                let row = sqlx::query(
                    "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
                     WHERE user_id = $1 AND provider = $2",
                )
                .bind(owner.to_string())
                .bind(provider.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::db_error("get credential"))?;
                row.as_ref().map(Self::credential_from_row).transpose()
            }

            async fn list_credentials(
                &self,
                owner: sam_core::domain::UserId,
            ) -> Result<Vec<sam_core::domain::Credential>, sam_core::ports::StoreError> {
                let rows = sqlx::query(
                    "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
                     WHERE user_id = $1 ORDER BY provider",
                )
                .bind(owner.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::db_error("list credentials"))?;
                rows.iter().map(Self::credential_from_row).collect()
            }

            async fn delete_credential_unless_in_use(
                &self,
                owner: sam_core::domain::UserId,
                provider: sam_core::domain::CredentialProvider,
            ) -> Result<sam_core::ports::CredentialRemoval, sam_core::ports::StoreError> {
                use sam_core::ports::CredentialRemoval;
                use $crate::store::db_error;
                let owner = owner.to_string();
                let mut tx = self.begin_write().await?;
                // The same per-owner lock as `insert_workspace`, so no
                // workspace is created between the count and the delete.
                sqlx::query(Self::LOCK_OWNER_SQL)
                    .bind(owner.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error("lock owner"))?;
                let in_use: i64 = sqlx::query_scalar(concat!(
                    "SELECT COUNT(*) FROM workspaces WHERE owner = $1 AND (status IN (",
                    $crate::store::active_statuses!(),
                    ") OR server_id IS NOT NULL OR dns_record IS NOT NULL)"
                ))
                .bind(owner.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error("count workspaces using a credential"))?;
                if in_use > 0 {
                    return Ok(CredentialRemoval::InUse { workspaces: in_use.unsigned_abs() });
                }
                let done = sqlx::query("DELETE FROM credentials WHERE user_id = $1 AND provider = $2")
                    .bind(owner.as_str())
                    .bind(provider.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error("delete credential"))?;
                tx.commit().await.map_err(db_error("commit"))?;
                Ok(if done.rows_affected() > 0 { CredentialRemoval::Removed } else { CredentialRemoval::NotFound })
            }

            async fn list_all_credentials(
                &self,
                provider: sam_core::domain::CredentialProvider,
            ) -> Result<Vec<sam_core::domain::Credential>, sam_core::ports::StoreError> {
                let rows = sqlx::query(
                    "SELECT user_id, provider, ciphertext, validated_at, created_at, updated_at FROM credentials \
                     WHERE provider = $1 ORDER BY user_id",
                )
                .bind(provider.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::db_error("list all credentials"))?;
                rows.iter().map(Self::credential_from_row).collect()
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::InstallationStore for $store {
            async fn upsert_installation(
                &self,
                installation: &sam_core::domain::GithubInstallation,
            ) -> Result<(), sam_core::ports::StoreError> {
                sqlx::query(
                    "INSERT INTO installations (id, account_login, account_type, account_id, suspended, removed_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET account_login = excluded.account_login, \
                     account_type = excluded.account_type, account_id = excluded.account_id, \
                     suspended = excluded.suspended, removed_at = excluded.removed_at, updated_at = excluded.updated_at",
                )
                .bind(installation.id.0)
                .bind(installation.account_login.as_str())
                .bind(installation.account_type.as_str())
                .bind(installation.account_id.0)
                .bind(installation.suspended)
                .bind($crate::store::ts_opt(installation.removed_at)?)
                .bind($crate::store::ts(installation.updated_at)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("upsert installation"))?;
                Ok(())
            }

            async fn get_installation(
                &self,
                id: sam_core::domain::InstallationId,
            ) -> Result<Option<sam_core::domain::GithubInstallation>, sam_core::ports::StoreError> {
                let row = sqlx::query(
                    "SELECT id, account_login, account_type, account_id, suspended, removed_at, updated_at \
                     FROM installations WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::db_error("get installation"))?;
                row.as_ref().map(Self::installation_from_row).transpose()
            }

            async fn mark_installation_removed(
                &self,
                id: sam_core::domain::InstallationId,
                at: sam_core::domain::Timestamp,
            ) -> Result<bool, sam_core::ports::StoreError> {
                let done = sqlx::query("UPDATE installations SET removed_at = $2, updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::ts(at)?)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("mark installation removed"))?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::WorkspaceStore for $store {
            async fn insert_workspace(
                &self,
                workspace: &sam_core::domain::Workspace,
                event: Option<&sam_core::domain::WorkspaceEvent>,
                limits: sam_core::ports::WorkspaceLimits,
            ) -> Result<sam_core::domain::Workspace, sam_core::ports::StoreError> {
                use sam_core::ports::{StoreError, StoreErrorKind};
                use $crate::store::{db_error, ts, ts_opt};
                let w = workspace;
                let owner = w.owner.to_string();
                let mut tx = self.begin_write().await?;
                // Serialises inserts per owner (Postgres: row lock; SQLite: the
                // write transaction already excludes every other writer).
                let user = sqlx::query(Self::LOCK_OWNER_SQL)
                    .bind(owner.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error("lock owner"))?;
                if user.is_none() {
                    return Err(StoreError::new(StoreErrorKind::NotFound, "user not found"));
                }
                let taken = sqlx::query("SELECT 1 AS one FROM workspaces WHERE owner = $1 AND name = $2")
                    .bind(owner.as_str())
                    .bind(w.spec.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error("check workspace name"))?;
                if taken.is_some() {
                    return Err(StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name already exists"));
                }
                if let Some(provider) = limits.required_credential {
                    let held = sqlx::query("SELECT 1 AS one FROM credentials WHERE user_id = $1 AND provider = $2")
                        .bind(owner.as_str())
                        .bind(provider.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error("check credential"))?;
                    if held.is_none() {
                        return Err(StoreError::new(
                            StoreErrorKind::CredentialMissing,
                            "no credential for the workspace's cloud",
                        ));
                    }
                }
                if w.status().is_active() {
                    let active: i64 = sqlx::query_scalar(concat!(
                        "SELECT COUNT(*) FROM workspaces WHERE owner = $1 AND status IN (",
                        $crate::store::active_statuses!(),
                        ")"
                    ))
                    .bind(owner.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error("count active workspaces"))?;
                    if active >= i64::from(limits.max_active_per_user) {
                        return Err(StoreError::new(
                            StoreErrorKind::QuotaExceeded,
                            format!("at most {} active workspaces per user", limits.max_active_per_user),
                        ));
                    }
                }
                let server = w.lifecycle.server.as_ref();
                let row = sqlx::query(concat!(
                    "INSERT INTO workspaces (",
                    $crate::store::ws_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                     $19, $20, $21, 1) RETURNING ",
                    $crate::store::ws_cols!()
                ))
                .bind(w.id.to_string())
                .bind(owner.as_str())
                .bind(w.spec.name.as_str())
                .bind(w.spec.repository.as_str())
                .bind(w.spec.branch.as_str())
                .bind(w.spec.vm_size.as_str())
                .bind(w.spec.vm_location.as_str())
                .bind(w.installation_id.0)
                .bind(w.lifecycle.status.as_str())
                .bind(w.lifecycle.reason.as_str())
                .bind(server.map(|s| s.id.0.clone()))
                .bind(server.map(|s| s.ipv4.to_string()))
                .bind(w.lifecycle.dns_record.as_deref())
                .bind(w.lifecycle.agent_ready)
                .bind(w.lifecycle.error_message.as_deref())
                .bind(w.idle_timeout_secs.map(i64::from))
                .bind(ts_opt(w.last_activity_at)?)
                .bind(ts_opt(w.last_heartbeat_at)?)
                .bind(ts(w.status_changed_at)?)
                .bind(ts(w.created_at)?)
                .bind(ts(w.updated_at)?)
                .fetch_one(&mut *tx)
                .await
                .map_err(|err| {
                    if $crate::store::is_unique_violation(&err) {
                        StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name or id already exists")
                    } else {
                        db_error("insert workspace")(err)
                    }
                })?;
                let stored = Self::workspace_from_row(&row)?;
                if let Some(event) = event {
                    Self::insert_event(&mut tx, w.id, event).await?;
                }
                tx.commit().await.map_err(db_error("commit workspace insert"))?;
                Ok(stored)
            }

            async fn get_workspace(
                &self,
                owner: sam_core::domain::UserId,
                id: sam_core::domain::WorkspaceId,
            ) -> Result<Option<sam_core::domain::Workspace>, sam_core::ports::StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::ws_cols!(),
                    " FROM workspaces WHERE id = $1 AND owner = $2"
                ))
                .bind(id.to_string())
                .bind(owner.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::db_error("get workspace"))?;
                row.as_ref().map(Self::workspace_from_row).transpose()
            }

            async fn list_workspaces(
                &self,
                owner: sam_core::domain::UserId,
                status: Option<sam_core::lifecycle::WorkspaceStatus>,
            ) -> Result<Vec<sam_core::domain::Workspace>, sam_core::ports::StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::ws_cols!(),
                    " FROM workspaces WHERE owner = $1 AND ($2 IS NULL OR status = $2) \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(owner.to_string())
                .bind(status.map(|s| s.as_str()))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::db_error("list workspaces"))?;
                rows.iter().map(Self::workspace_from_row).collect()
            }

            async fn update_workspace(
                &self,
                workspace: &sam_core::domain::Workspace,
                events: &[sam_core::domain::WorkspaceEvent],
            ) -> Result<sam_core::domain::Workspace, sam_core::ports::StoreError> {
                use sam_core::ports::{StoreError, StoreErrorKind};
                use $crate::store::{db_error, ts};
                let w = workspace;
                let version = i64::try_from(w.version)
                    .map_err(|_| StoreError::new(StoreErrorKind::StaleVersion, "version out of range"))?;
                let server = w.lifecycle.server.as_ref();
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(concat!(
                    "UPDATE workspaces SET name = $3, repository = $4, branch = $5, vm_size = $6, \
                     vm_location = $7, installation_id = $8, status = $9, reason = $10, server_id = $11, \
                     server_ipv4 = $12, dns_record = $13, agent_ready = $14, error_message = $15, \
                     idle_timeout_secs = $16, status_changed_at = $17, created_at = $18, updated_at = $19, \
                     version = version + 1 \
                     WHERE id = $1 AND owner = $2 AND version = $20 RETURNING ",
                    $crate::store::ws_cols!()
                ))
                .bind(w.id.to_string())
                .bind(w.owner.to_string())
                .bind(w.spec.name.as_str())
                .bind(w.spec.repository.as_str())
                .bind(w.spec.branch.as_str())
                .bind(w.spec.vm_size.as_str())
                .bind(w.spec.vm_location.as_str())
                .bind(w.installation_id.0)
                .bind(w.lifecycle.status.as_str())
                .bind(w.lifecycle.reason.as_str())
                .bind(server.map(|s| s.id.0.clone()))
                .bind(server.map(|s| s.ipv4.to_string()))
                .bind(w.lifecycle.dns_record.as_deref())
                .bind(w.lifecycle.agent_ready)
                .bind(w.lifecycle.error_message.as_deref())
                .bind(w.idle_timeout_secs.map(i64::from))
                .bind(ts(w.status_changed_at)?)
                .bind(ts(w.created_at)?)
                .bind(ts(w.updated_at)?)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|err| {
                    if $crate::store::is_unique_violation(&err) {
                        StoreError::new(StoreErrorKind::NameTaken, "a workspace with this name already exists")
                    } else {
                        db_error("update workspace")(err)
                    }
                })?;
                let Some(row) = row else {
                    drop(tx);
                    return Err(if self.workspace_exists(w.owner, w.id).await? {
                        StoreError::new(StoreErrorKind::StaleVersion, "workspace changed since it was read")
                    } else {
                        StoreError::new(StoreErrorKind::NotFound, "workspace not found")
                    });
                };
                let stored = Self::workspace_from_row(&row)?;
                for event in events {
                    Self::insert_event(&mut tx, w.id, event).await?;
                }
                tx.commit().await.map_err(db_error("commit workspace update"))?;
                Ok(stored)
            }

            async fn record_heartbeat(
                &self,
                owner: sam_core::domain::UserId,
                id: sam_core::domain::WorkspaceId,
                at: sam_core::domain::Timestamp,
                last_activity_at: sam_core::domain::Timestamp,
            ) -> Result<bool, sam_core::ports::StoreError> {
                let done = sqlx::query(
                    "UPDATE workspaces SET last_heartbeat_at = $3, last_activity_at = CASE \
                     WHEN last_activity_at IS NULL OR last_activity_at < $4 THEN $4 ELSE last_activity_at END \
                     WHERE id = $1 AND owner = $2",
                )
                .bind(id.to_string())
                .bind(owner.to_string())
                .bind($crate::store::ts(at)?)
                .bind($crate::store::ts(last_activity_at)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("record heartbeat"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_workspace(
                &self,
                owner: sam_core::domain::UserId,
                id: sam_core::domain::WorkspaceId,
                expected_version: u64,
            ) -> Result<(), sam_core::ports::StoreError> {
                use sam_core::ports::{StoreError, StoreErrorKind};
                let version = i64::try_from(expected_version)
                    .map_err(|_| StoreError::new(StoreErrorKind::StaleVersion, "version out of range"))?;
                // Events and bootstrap tokens go with the row (ON DELETE CASCADE).
                let done = sqlx::query("DELETE FROM workspaces WHERE id = $1 AND owner = $2 AND version = $3")
                    .bind(id.to_string())
                    .bind(owner.to_string())
                    .bind(version)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("delete workspace"))?;
                if done.rows_affected() > 0 {
                    return Ok(());
                }
                Err(if self.workspace_exists(owner, id).await? {
                    StoreError::new(StoreErrorKind::StaleVersion, "workspace changed since it was read")
                } else {
                    StoreError::new(StoreErrorKind::NotFound, "workspace not found")
                })
            }

            async fn list_workspace_events(
                &self,
                owner: sam_core::domain::UserId,
                id: sam_core::domain::WorkspaceId,
            ) -> Result<Vec<sam_core::domain::WorkspaceEvent>, sam_core::ports::StoreError> {
                use sam_core::ports::{StoreError, StoreErrorKind};
                // One statement, so the ownership check and the history are one snapshot.
                let rows = sqlx::query(
                    "SELECT w.id AS owner_check, e.workspace_id, e.from_status, e.to_status, e.event, e.reason, \
                     e.message, e.at FROM workspaces w LEFT JOIN workspace_events e ON e.workspace_id = w.id \
                     WHERE w.id = $1 AND w.owner = $2 ORDER BY e.seq",
                )
                .bind(id.to_string())
                .bind(owner.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::db_error("list workspace events"))?;
                if rows.is_empty() {
                    return Err(StoreError::new(StoreErrorKind::NotFound, "workspace not found"));
                }
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    use sqlx::Row as _;
                    let has_event = row
                        .try_get::<Option<String>, _>("workspace_id")
                        .map_err($crate::store::db_error("decode workspace event"))?
                        .is_some();
                    if has_event {
                        events.push(Self::event_from_row(row)?);
                    }
                }
                Ok(events)
            }

            async fn scan_workspaces(
                &self,
                scan: &sam_core::ports::WorkspaceScan,
            ) -> Result<Vec<sam_core::domain::Workspace>, sam_core::ports::StoreError> {
                // Two statements rather than `($2 IS NULL OR id > $2)`: with the
                // OR the planner cannot seek the id index, and every page would
                // rescan from the first row (quadratic over a large table).
                let rows = match scan.after {
                    Some(after) => sqlx::query(concat!(
                        "SELECT ",
                        $crate::store::ws_cols!(),
                        " FROM workspaces WHERE id > $2 AND ($1 = '' OR $1 LIKE '%,' || status || ',%') \
                         ORDER BY id LIMIT $3"
                    ))
                    .bind($crate::store::status_list(&scan.statuses))
                    .bind(after.to_string())
                    .bind(i64::from(scan.limit)),
                    None => sqlx::query(concat!(
                        "SELECT ",
                        $crate::store::ws_cols!(),
                        " FROM workspaces WHERE ($1 = '' OR $1 LIKE '%,' || status || ',%') ORDER BY id LIMIT $2"
                    ))
                    .bind($crate::store::status_list(&scan.statuses))
                    .bind(i64::from(scan.limit)),
                }
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::db_error("scan workspaces"))?;
                rows.iter().map(Self::workspace_from_row).collect()
            }

            async fn count_workspaces_by_status(
                &self,
            ) -> Result<Vec<(sam_core::lifecycle::WorkspaceStatus, u64)>, sam_core::ports::StoreError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT status, COUNT(*) FROM workspaces GROUP BY status")
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::store::db_error("count workspaces"))?;
                rows.into_iter()
                    .map(|(status, n)| {
                        let status = status.parse().map_err(|_| $crate::store::corrupt("workspace status"))?;
                        Ok((status, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::BootstrapTokenStore for $store {
            async fn create_bootstrap_token(
                &self,
                token: &sam_core::ports::BootstrapToken,
            ) -> Result<(), sam_core::ports::StoreError> {
                use sam_core::ports::{StoreError, StoreErrorKind};
                let done = sqlx::query(
                    "INSERT INTO bootstrap_tokens (token_hash, workspace_id, owner, created_at, expires_at) \
                     SELECT $1, id, owner, $4, $5 FROM workspaces WHERE id = $2 AND owner = $3",
                )
                .bind(token.token_hash.as_str())
                .bind(token.workspace_id.to_string())
                .bind(token.owner.to_string())
                .bind($crate::store::ts(token.created_at)?)
                .bind($crate::store::ts(token.expires_at)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("create bootstrap token"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::new(StoreErrorKind::NotFound, "workspace not found"));
                }
                Ok(())
            }

            async fn redeem_bootstrap_token(
                &self,
                token_hash: &str,
                now: sam_core::domain::Timestamp,
            ) -> Result<Option<sam_core::ports::BootstrapToken>, sam_core::ports::StoreError> {
                let row = sqlx::query(
                    "UPDATE bootstrap_tokens SET redeemed_at = $2 \
                     WHERE token_hash = $1 AND redeemed_at IS NULL AND expires_at > $2 \
                     RETURNING token_hash, workspace_id, owner, created_at, expires_at",
                )
                .bind(token_hash)
                .bind($crate::store::ts(now)?)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::db_error("redeem bootstrap token"))?;
                row.as_ref().map(Self::token_from_row).transpose()
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::LeaseStore for $store {
            async fn try_acquire_lease(
                &self,
                key: &str,
                holder: &str,
                ttl: std::time::Duration,
                now: sam_core::domain::Timestamp,
            ) -> Result<bool, sam_core::ports::StoreError> {
                let until = $crate::store::ts(now + ttl)?;
                let done = sqlx::query(
                    "INSERT INTO leases (key, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
                )
                .bind(key)
                .bind(holder)
                .bind(until)
                .bind($crate::store::ts(now)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("acquire lease"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn release_lease(&self, key: &str, holder: &str) -> Result<(), sam_core::ports::StoreError> {
                sqlx::query("DELETE FROM leases WHERE key = $1 AND holder = $2")
                    .bind(key)
                    .bind(holder)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("release lease"))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl sam_core::ports::WebhookDeliveryStore for $store {
            async fn record_webhook_delivery(
                &self,
                delivery_id: &str,
                now: sam_core::domain::Timestamp,
                forget_before: sam_core::domain::Timestamp,
            ) -> Result<bool, sam_core::ports::StoreError> {
                sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
                    .bind($crate::store::ts(forget_before)?)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::db_error("prune webhook deliveries"))?;
                let done = sqlx::query(
                    "INSERT INTO webhook_deliveries (delivery_id, received_at) VALUES ($1, $2) \
                     ON CONFLICT (delivery_id) DO NOTHING",
                )
                .bind(delivery_id)
                .bind($crate::store::ts(now)?)
                .execute(&self.pool)
                .await
                .map_err($crate::store::db_error("record webhook delivery"))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_sql_store;

#[cfg(test)]
mod tests {
    use sam_core::lifecycle::WorkspaceStatus;

    use super::*;

    #[test]
    fn active_status_list_matches_the_domain() {
        let active: Vec<String> =
            WorkspaceStatus::ALL.iter().filter(|s| s.is_active()).map(|s| format!("'{}'", s.as_str())).collect();
        assert_eq!(active.join(", "), ACTIVE_STATUSES_SQL);
    }

    #[test]
    fn timestamps_round_trip_with_nanoseconds() {
        let t = Timestamp::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
        assert_eq!(from_ts(ts(t).unwrap()).unwrap(), t);
    }

    #[test]
    fn status_lists_are_comma_framed() {
        assert_eq!(status_list(&[]), "");
        assert_eq!(status_list(&[WorkspaceStatus::Pending, WorkspaceStatus::Error]), ",pending,error,");
    }

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
