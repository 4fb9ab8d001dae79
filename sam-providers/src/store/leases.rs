//! [`LeaseStore`] on SQL.

use std::time::Duration;

use async_trait::async_trait;
use sam_core::domain::Timestamp;
use sam_core::ports::{LeaseStore, StoreError};

use super::statement::Statement;
use super::{Dialect, SqlStore};

#[async_trait]
impl<D: Dialect> LeaseStore for SqlStore<D> {
    async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // One conditional upsert: taken when free, expired, or already ours.
        let statement = Statement::new(
            "INSERT INTO leases (key, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .text(key)
        .text(holder)
        .time(now + ttl)?
        .time(now)?;
        Ok(self.execute(statement, "acquire lease").await? > 0)
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        let statement = Statement::new("DELETE FROM leases WHERE key = $1 AND holder = $2").text(key).text(holder);
        self.execute(statement, "release lease").await?;
        Ok(())
    }
}
