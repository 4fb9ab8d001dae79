//! Webhook deliveries already handled.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::Timestamp;

/// The ids of webhook deliveries already handled, so a replay is ignored.
#[async_trait]
pub trait WebhookDeliveryStore: Send + Sync {
    /// Records a webhook delivery id received at `now`; `true` the first time
    /// the id is seen. Ids received before `forget_before` are forgotten
    /// (and may be pruned in the same call), which keeps the log bounded.
    ///
    /// Kept in the store rather than in memory so that every replica behind a
    /// load balancer agrees on what was already handled.
    async fn record_webhook_delivery(
        &self,
        delivery_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Whether `delivery_id` was recorded at or after `forget_before`,
    /// without recording it: a delivery is checked before it is applied and
    /// recorded only after, so a crash in between leaves it to be applied
    /// again (its effects are idempotent) rather than lost.
    async fn webhook_delivery_seen(&self, delivery_id: &str, forget_before: Timestamp) -> Result<bool, StoreError>;
}
