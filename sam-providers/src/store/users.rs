//! [`UserStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::{NewSession, NewUser, Session, Timestamp, User, UserId};
use sam_core::ports::{StoreChange, StoreError, UserStore};

use super::errors::db_error;
use super::statement::Statement;
use super::{Dialect, SqlStore, rows, user_columns};

#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D> {
    async fn upsert_user(&self, profile: &NewUser, now: Timestamp) -> Result<User, StoreError> {
        let statement = Statement::new(concat!(
            "INSERT INTO users (id, github_id, login, name, email, avatar_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (github_id) DO UPDATE SET login = excluded.login, name = excluded.name, \
             email = excluded.email, avatar_url = excluded.avatar_url, updated_at = excluded.updated_at \
             RETURNING ",
            user_columns!()
        ))
        .text(UserId::new().to_string())
        .int(profile.github_id.0)
        .text(profile.login.as_str())
        .opt_text(profile.name.as_deref())
        .opt_text(profile.email.as_deref())
        .opt_text(profile.avatar_url.as_deref())
        .time(now)?;
        let row = self.fetch_optional(statement, "upsert user").await?;
        rows::user::<D>(&row.ok_or_else(|| super::values::corrupt("upserted user"))?)
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let statement =
            Statement::new(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1")).text(id.to_string());
        self.fetch_optional(statement, "get user").await?.as_ref().map(rows::user::<D>).transpose()
    }

    async fn create_session(&self, session: &NewSession, now: Timestamp) -> Result<Session, StoreError> {
        let statement = Statement::new(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $3, $4) \
             RETURNING id_hash, user_id, created_at, last_seen_at, expires_at",
        )
        .text(session.id_hash.as_str())
        .text(session.user_id.to_string())
        .time(now)?
        .time(session.expires_at)?;
        let row = self.fetch_optional(statement, "create session").await?;
        rows::session::<D>(&row.ok_or_else(|| super::values::corrupt("created session"))?)
    }

    async fn get_session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let statement = Statement::new(
            "SELECT id_hash, user_id, created_at, last_seen_at, expires_at FROM sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .text(id_hash)
        .time(now)?;
        self.fetch_optional(statement, "get session").await?.as_ref().map(rows::session::<D>).transpose()
    }

    async fn touch_session(&self, id_hash: &str, now: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError> {
        let statement = Statement::new(
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1 AND expires_at > $2",
        )
        .text(id_hash)
        .time(now)?
        .time(expires_at)?;
        Ok(self.execute(statement, "touch session").await? > 0)
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let statement = Statement::new("DELETE FROM sessions WHERE id_hash = $1 RETURNING user_id").text(id_hash);
        if let Some(row) = self.fetch_optional(statement, "delete session").await? {
            let user = D::text(&row, "user_id").map_err(db_error("read deleted session"))?;
            match user.as_deref().map(str::parse::<UserId>) {
                Some(Ok(user)) => self.changed(StoreChange::SignIns(user)),
                _ => self.changed(StoreChange::Resync),
            }
        }
        Ok(())
    }

    async fn delete_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let statement = Statement::new("DELETE FROM sessions WHERE user_id = $1").text(user.to_string());
        let removed = self.execute(statement, "delete user sessions").await?;
        if removed > 0 {
            self.changed(StoreChange::SignIns(user));
        }
        Ok(removed)
    }
}
