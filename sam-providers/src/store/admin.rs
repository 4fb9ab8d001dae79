//! Database administration for operators: which kind of database a URL
//! names, what it holds (migrations, rows), a consistent copy of it (SQLite
//! `VACUUM INTO`, an online copy; PostgreSQL `pg_dump --format=custom`), putting
//! a copy back (`pg_restore` in one transaction; for SQLite a rename, with the
//! file it replaces kept aside), and dropping it. `sam-server backup`,
//! `restore`, `doctor` and `teardown` are built on these.
//!
//! Every function opens its own short-lived connection; none applies
//! migrations. Errors never contain the database password. Needs both store
//! features (`sqlite` and `postgres`), since a URL may name either.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sam_core::ports::{StoreError, StoreErrorKind};
use sqlx::Connection as _;

use super::errors::db_error;

/// The kind of database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:<path>`.
    Sqlite,
    /// `postgres://…`.
    Postgres,
}

impl DatabaseKind {
    /// The kind of `url`, or an error naming the accepted forms.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(other("SAM_DATABASE_URL must start with sqlite: or postgres://"))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The name of a dump of this kind in a backup directory.
    pub fn dump_file_name(self) -> &'static str {
        match self {
            Self::Sqlite => "database.sqlite",
            Self::Postgres => "database.pgdump",
        }
    }
}

/// `postgres://user:password@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The file of a `sqlite:` URL (`None` for in-memory databases).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Migrations recorded in a database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Applied successfully.
    pub applied: u64,
    /// Recorded as failed.
    pub failed: u64,
    /// Highest applied version.
    pub latest: i64,
    /// Highest version this build ships.
    pub expected: i64,
}

/// Rows that make a database "in use".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    /// Users.
    pub users: i64,
    /// Stored cloud credentials.
    pub credentials: i64,
    /// Workspaces.
    pub workspaces: i64,
}

impl RowCounts {
    /// Nothing anyone would miss.
    pub fn is_empty(&self) -> bool {
        self.users == 0 && self.credentials == 0 && self.workspaces == 0
    }
}

fn other(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Other, message)
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// A connection to `url`; `None` when it is a SQLite file that does not
/// exist (it is not created).
async fn connect(url: &str) -> Result<Option<Conn>, StoreError> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => {
            if sqlite_path(url).is_some_and(|path| !path.exists()) {
                return Ok(None);
            }
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(db_error("SAM_DATABASE_URL"))?;
            let conn = sqlx::SqliteConnection::connect_with(&options).await.map_err(db_error("open SQLite"))?;
            Ok(Some(Conn::Sqlite(conn)))
        }
        DatabaseKind::Postgres => {
            let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(db_error("SAM_DATABASE_URL"))?;
            let conn = sqlx::PgConnection::connect_with(&options).await.map_err(db_error("connect to PostgreSQL"))?;
            Ok(Some(Conn::Postgres(conn)))
        }
    }
}

impl Conn {
    async fn has_table(&mut self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = match self {
            Self::Sqlite(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
                    .bind(table)
                    .fetch_one(c)
                    .await
                    .map_err(db_error("list tables"))?
            }
            Self::Postgres(c) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1",
            )
            .bind(table)
            .fetch_one(c)
            .await
            .map_err(db_error("list tables"))?,
        };
        Ok(n > 0)
    }

    async fn count(&mut self, table: &'static str) -> Result<i64, StoreError> {
        if !self.has_table(table).await? {
            return Ok(0);
        }
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self {
            Self::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await,
            Self::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await,
        }
        .map_err(db_error("count rows"))
    }

    async fn migrations(&mut self) -> Result<(u64, u64, i64), StoreError> {
        if !self.has_table("_sqlx_migrations").await? {
            return Ok((0, 0, 0));
        }
        let (applied, failed, latest): (i64, i64, i64) = match self {
            Self::Sqlite(c) => sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0), COALESCE(MAX(version), 0) FROM _sqlx_migrations",
            )
            .fetch_one(c)
            .await,
            Self::Postgres(c) => sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0)::BIGINT, \
                 COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0)::BIGINT, COALESCE(MAX(version), 0)::BIGINT \
                 FROM _sqlx_migrations",
            )
            .fetch_one(c)
            .await,
        }
        .map_err(db_error("read migrations"))?;
        Ok((u64::try_from(applied).unwrap_or(0), u64::try_from(failed).unwrap_or(0), latest))
    }
}

/// The migrations applied to the database at `url`, and the latest this
/// build ships (none are applied here). `NotFound` when the SQLite file does
/// not exist.
pub async fn migration_status(url: &str) -> Result<MigrationStatus, StoreError> {
    let kind = DatabaseKind::of(url)?;
    let Some(mut conn) = connect(url).await? else {
        return Err(StoreError::new(StoreErrorKind::NotFound, "the database file does not exist"));
    };
    let (applied, failed, latest) = conn.migrations().await?;
    let shipped = match kind {
        DatabaseKind::Sqlite => super::sqlite::migrator(),
        DatabaseKind::Postgres => super::postgres::migrator(),
    };
    let expected = shipped.iter().map(|m| m.version).max().unwrap_or(0);
    Ok(MigrationStatus { applied, failed, latest, expected })
}

/// Users, credentials and workspaces in the database (zeros when the SQLite
/// file does not exist yet).
pub async fn row_counts(url: &str) -> Result<RowCounts, StoreError> {
    let Some(mut conn) = connect(url).await? else {
        return Ok(RowCounts::default());
    };
    Ok(RowCounts {
        users: conn.count("users").await?,
        credentials: conn.count("credentials").await?,
        workspaces: conn.count("workspaces").await?,
    })
}

/// Deletes the database: the SQLite file (with its journal), or every table
/// of the PostgreSQL schema (the database itself stays, empty). Says what it
/// deleted.
pub async fn drop_database(url: &str) -> Result<String, StoreError> {
    match connect(url).await? {
        None | Some(Conn::Sqlite(_)) => {
            let path = sqlite_path(url).ok_or_else(|| other("an in-memory database has nothing to delete"))?;
            let removed = remove_sqlite_files(&path)?;
            Ok(format!("deleted {}", if removed.is_empty() { "nothing (no file)".into() } else { removed.join(", ") }))
        }
        Some(Conn::Postgres(mut conn)) => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT tablename::TEXT FROM pg_tables WHERE schemaname = current_schema()")
                    .fetch_all(&mut conn)
                    .await
                    .map_err(db_error("list tables"))?;
            for table in &tables {
                let sql = format!("DROP TABLE IF EXISTS \"{}\" CASCADE", table.replace('"', "\"\""));
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(db_error("drop table"))?;
            }
            Ok(format!("dropped {} tables in {}", tables.len(), redact_url(url)))
        }
    }
}

/// Removes a SQLite file and its journal files; the names removed.
fn remove_sqlite_files(path: &Path) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        // No exists() check first: SQLite deletes its -wal and -shm files
        // when a closing connection (ours, just released) is the last one, so
        // a file seen a moment ago may be gone.
        match std::fs::remove_file(&file) {
            Ok(()) => removed.push(file.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(other(format!("deleting {}", file.display())).with_source(e)),
        }
    }
    Ok(removed)
}

/// Writes a consistent copy of the database at `url` to `target` (mode
/// 0600): SQLite `VACUUM INTO` (online: writers are not blocked), PostgreSQL
/// `pg_dump --format=custom`.
pub async fn dump(url: &str, target: &Path) -> Result<(), StoreError> {
    let target_text = target.to_str().ok_or_else(|| other("the backup path is not UTF-8"))?;
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => {
            let Some(Conn::Sqlite(mut conn)) = connect(url).await? else {
                return Err(StoreError::new(StoreErrorKind::NotFound, "the SQLite database does not exist"));
            };
            sqlx::query("VACUUM INTO ?").bind(target_text).execute(&mut conn).await.map_err(db_error("VACUUM INTO"))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| other("making the copy private").with_source(e))?;
            }
            Ok(())
        }
        DatabaseKind::Postgres => run_pg_tool(
            "pg_dump",
            &["--format=custom", "--no-owner", "--no-privileges", &format!("--file={target_text}")],
            url,
        ),
    }
}

/// Whether what [`load_dump`] needs for this kind is installed
/// (`pg_restore` for PostgreSQL).
pub fn can_load_dump(kind: DatabaseKind) -> bool {
    kind == DatabaseKind::Sqlite || pg_tool("pg_restore").is_some()
}

/// Replaces the database at `url` with the copy `source` written by
/// [`dump`]. PostgreSQL: `pg_restore` in one transaction, so a failure
/// leaves the database as it was. SQLite: the copy is renamed into place and
/// the file it replaces is kept, with its journal files, as
/// `<file>.replaced-<stamp>`, whose path is returned.
pub fn load_dump(url: &str, source: &Path, stamp: i64) -> Result<Option<PathBuf>, StoreError> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => load_sqlite(url, source, stamp),
        DatabaseKind::Postgres => {
            let source_text = source.to_str().ok_or_else(|| other("the backup path is not UTF-8"))?;
            run_pg_tool(
                "pg_restore",
                &["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction", source_text],
                url,
            )?;
            Ok(None)
        }
    }
}

fn load_sqlite(url: &str, source: &Path, stamp: i64) -> Result<Option<PathBuf>, StoreError> {
    let io = |what: String| move |e: std::io::Error| other(what).with_source(e);
    let target = sqlite_path(url).ok_or_else(|| other("SAM_DATABASE_URL names no file"))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let tmp = PathBuf::from(format!("{}.restoring", target.display()));
    std::fs::copy(source, &tmp).map_err(io(format!("copying {}", source.display())))?;
    let mut kept = None;
    if target.exists() {
        // Kept, with its journal files, under a name SQLite opens them
        // together by.
        let mut aside = PathBuf::from(format!("{}.replaced-{stamp}", target.display()));
        for n in 1.. {
            if !aside.exists() {
                break;
            }
            aside = PathBuf::from(format!("{}.replaced-{stamp}-{n}", target.display()));
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            let file = PathBuf::from(format!("{}{suffix}", target.display()));
            // As in `remove_sqlite_files`: SQLite may remove these as the
            // last connection closes.
            match std::fs::rename(&file, format!("{}{suffix}", aside.display())) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("moving {} aside", file.display()))(e)),
            }
        }
        std::fs::rename(&target, &aside).map_err(io(format!("moving {} aside", target.display())))?;
        kept = Some(aside);
    }
    std::fs::rename(&tmp, &target).map_err(io(format!("replacing {}", target.display())))?;
    Ok(kept)
}

/// A PostgreSQL client tool: on `PATH`, else the newest under
/// `/usr/lib/postgresql/*/bin` (Debian).
pub fn pg_tool(name: &str) -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let tool = e.path().join("bin").join(name);
            tool.is_file().then_some((version, tool))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Runs a PostgreSQL tool against `url`, the password passed through the
/// environment (never on the command line).
fn run_pg_tool(tool: &str, args: &[&str], url: &str) -> Result<(), StoreError> {
    let path = pg_tool(tool).ok_or_else(|| {
        other(format!("{tool} not found: install the PostgreSQL client (Debian: apt-get install postgresql-client)"))
    })?;
    let (url, password) = split_password(url);
    let mut command = std::process::Command::new(&path);
    command.args(args).arg(format!("--dbname={url}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().map_err(|e| other(format!("running {}", path.display())).with_source(e))?;
    if !output.status.success() {
        return Err(other(format!(
            "{tool} failed ({}): {}",
            output.status,
            redact_url(String::from_utf8_lossy(&output.stderr).trim())
        )));
    }
    Ok(())
}

/// The URL without its password, and the password itself (decoded: the URL
/// holds it percent-encoded, the tools want it as it is).
fn split_password(url: &str) -> (String, Option<String>) {
    let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else { return (url.to_owned(), None) };
    if at < scheme {
        return (url.to_owned(), None);
    }
    match url[scheme + 3..at].split_once(':') {
        Some((user, password)) => {
            (format!("{}{user}{}", &url[..scheme + 3], &url[at..]), Some(percent_decode(password)))
        }
        None => (url.to_owned(), None),
    }
}

/// `%xx` escapes decoded (as a URL's user info holds them); an invalid
/// escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
            && let Ok(byte) = u8::try_from(h * 16 + l)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%2Fw%3Ard"), "p@ss/w:rd");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn the_password_leaves_the_url() {
        assert_eq!(
            split_password("postgres://sam:p%40ss@db:5432/sam?sslmode=require"),
            ("postgres://sam@db:5432/sam?sslmode=require".to_owned(), Some("p@ss".to_owned()))
        );
        assert_eq!(split_password("postgres://sam@db/sam"), ("postgres://sam@db/sam".to_owned(), None));
        assert_eq!(redact_url("postgres://sam:secret@db/sam"), "postgres://sam:***@db/sam");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite:/var/lib/sam/sam.db?mode=rwc"), Some(PathBuf::from("/var/lib/sam/sam.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(DatabaseKind::of("mysql://x").map_err(|e| e.kind()), Err(StoreErrorKind::Other));
    }
}
