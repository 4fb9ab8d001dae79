//! [`AccessTokenStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::{AccessToken, Timestamp, UserId};
use sam_core::ports::{AccessTokenStore, StoreError, StoreErrorKind};

use super::statement::Statement;
use super::{Dialect, SqlStore, rows};

macro_rules! columns {
    () => {
        "token_hash, id, user_id, name, scope, created_at, expires_at, last_used_at"
    };
}

#[async_trait]
impl<D: Dialect> AccessTokenStore for SqlStore<D> {
    async fn insert_access_token(&self, token: &AccessToken, limit: u32) -> Result<(), StoreError> {
        // One statement: the count and the insert see the same snapshot.
        let statement = Statement::new(
            "INSERT INTO access_tokens (token_hash, id, user_id, name, scope, created_at, expires_at, last_used_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, NULL \
             WHERE (SELECT COUNT(*) FROM access_tokens WHERE user_id = $3) < $8",
        )
        .text(token.token_hash.as_str())
        .text(token.id.as_str())
        .text(token.user_id.to_string())
        .text(token.name.as_str())
        .text(token.scope.as_str())
        .time(token.created_at)?
        .opt_time(token.expires_at)?
        .int(i64::from(limit));
        if self.execute(statement, "insert access token").await? == 0 {
            return Err(StoreError::new(StoreErrorKind::QuotaExceeded, "access token limit reached"));
        }
        Ok(())
    }

    async fn list_access_tokens(&self, owner: UserId) -> Result<Vec<AccessToken>, StoreError> {
        let statement = Statement::new(concat!(
            "SELECT ",
            columns!(),
            " FROM access_tokens WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .text(owner.to_string());
        self.fetch_all(statement, "list access tokens").await?.iter().map(rows::access_token::<D>).collect()
    }

    async fn find_access_token(&self, token_hash: &str, now: Timestamp) -> Result<Option<AccessToken>, StoreError> {
        let statement = Statement::new(concat!(
            "SELECT ",
            columns!(),
            " FROM access_tokens WHERE token_hash = $1 AND (expires_at IS NULL OR expires_at > $2)"
        ))
        .text(token_hash)
        .time(now)?;
        self.fetch_optional(statement, "find access token").await?.as_ref().map(rows::access_token::<D>).transpose()
    }

    async fn touch_access_token(&self, token_hash: &str, at: Timestamp) -> Result<(), StoreError> {
        let statement = Statement::new("UPDATE access_tokens SET last_used_at = $2 WHERE token_hash = $1")
            .text(token_hash)
            .time(at)?;
        self.execute(statement, "touch access token").await?;
        Ok(())
    }

    async fn delete_access_token(&self, owner: UserId, id: &str) -> Result<bool, StoreError> {
        let statement =
            Statement::new("DELETE FROM access_tokens WHERE user_id = $1 AND id = $2").text(owner.to_string()).text(id);
        Ok(self.execute(statement, "delete access token").await? > 0)
    }
}
