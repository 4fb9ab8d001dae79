//! [`WebhookDeliveryStore`] on SQL.

use async_trait::async_trait;
use sam_core::domain::Timestamp;
use sam_core::ports::{StoreError, WebhookDeliveryStore};

use super::statement::Statement;
use super::{Dialect, SqlStore};

#[async_trait]
impl<D: Dialect> WebhookDeliveryStore for SqlStore<D> {
    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let prune = Statement::new("DELETE FROM webhook_deliveries WHERE received_at < $1").time(forget_before)?;
        self.execute(prune, "prune webhook deliveries").await?;
        let record = Statement::new(
            "INSERT INTO webhook_deliveries (delivery_id, received_at) VALUES ($1, $2) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .text(delivery_id)
        .time(now)?;
        Ok(self.execute(record, "record webhook delivery").await? > 0)
    }

    async fn webhook_delivery_seen(&self, delivery_id: &str, forget_before: Timestamp) -> Result<bool, StoreError> {
        let seen =
            Statement::new("SELECT delivery_id FROM webhook_deliveries WHERE delivery_id = $1 AND received_at >= $2")
                .text(delivery_id)
                .time(forget_before)?;
        Ok(self.fetch_optional(seen, "webhook delivery seen").await?.is_some())
    }
}
