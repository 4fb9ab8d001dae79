//! Webhook deliveries ([`WebhookDeliveryStore`](crate::ports::WebhookDeliveryStore)).

use crate::domain::WorkspaceId;
use crate::ports::Store;

use super::at;

/// A delivery id is new once; forgotten ids may be seen again.
pub async fn webhook_deliveries(store: &dyn Store) {
    let id = format!("delivery-{}", WorkspaceId::new());
    let other = format!("delivery-{}", WorkspaceId::new());
    assert!(!store.webhook_delivery_seen(&id, at(0)).await.expect("seen before"), "not seen before it is recorded");
    assert!(!store.webhook_delivery_seen(&id, at(0)).await.expect("seen again"), "asking does not record");
    assert!(store.record_webhook_delivery(&id, at(100), at(0)).await.expect("first"));
    assert!(store.webhook_delivery_seen(&id, at(50)).await.expect("seen"), "recorded");
    assert!(!store.webhook_delivery_seen(&id, at(101)).await.expect("seen"), "recorded before the window");
    assert!(!store.record_webhook_delivery(&id, at(110), at(10)).await.expect("replay"));
    assert!(store.record_webhook_delivery(&other, at(120), at(20)).await.expect("another id"));
    assert!(!store.record_webhook_delivery(&other, at(130), at(30)).await.expect("replay of another id"));
    assert!(
        store.record_webhook_delivery(&id, at(300), at(200)).await.expect("after retention"),
        "an id older than the retention window is forgotten"
    );
    assert!(!store.record_webhook_delivery(&id, at(310), at(210)).await.expect("recorded again"));
}
