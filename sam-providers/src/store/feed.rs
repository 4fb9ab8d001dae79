//! The store's [`ChangeFeed`]: on SQLite the store announces its own writes
//! (one process owns the database file); on PostgreSQL triggers announce
//! every committed write with `NOTIFY` (migration 0005), from whichever
//! replica made it, and one listener per store forwards them.

#[cfg(feature = "postgres")]
use sam_core::domain::UserId;
use sam_core::ports::{CHANGE_FEED_CAPACITY, ChangeFeed, StoreChange};
use tokio::sync::{OnceCell, broadcast};

use super::{Dialect, SqlStore};

/// The channel PostgreSQL's triggers notify on.
#[cfg(feature = "postgres")]
pub(super) const CHANNEL: &str = "sam_changes";

/// What every handle of one store shares.
#[derive(Debug)]
pub(super) struct Shared {
    changes: broadcast::Sender<StoreChange>,
    /// The task forwarding the database's notifications (PostgreSQL), started
    /// by the first subscriber and stopped with the last handle of the store.
    listener: OnceCell<Option<AbortOnDrop>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self { changes: broadcast::Sender::new(CHANGE_FEED_CAPACITY), listener: OnceCell::new() }
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Announces a committed write, unless the database announces it itself.
    pub(super) fn changed(&self, change: StoreChange) {
        if !D::ANNOUNCES_CHANGES {
            let _ = self.shared.changes.send(change);
        }
    }
}

#[async_trait::async_trait]
impl<D: Dialect> ChangeFeed for SqlStore<D> {
    async fn subscribe_changes(&self) -> broadcast::Receiver<StoreChange> {
        // Listening before subscribing: what the database announces from
        // here on reaches this receiver.
        self.shared
            .listener
            .get_or_init(|| async {
                D::forward_changes(&self.pool, self.shared.changes.clone()).await.map(AbortOnDrop)
            })
            .await;
        self.shared.changes.subscribe()
    }
}

/// Reads a notification's payload: `workspaces:<user id>` or
/// `sign-ins:<user id>`. Anything else (a newer schema's kind) is a resync,
/// so an unknown change is never ignored.
#[cfg(feature = "postgres")]
pub(super) fn parse_payload(payload: &str) -> StoreChange {
    let parsed = payload.split_once(':').and_then(|(kind, id)| {
        let user: UserId = id.parse().ok()?;
        match kind {
            "workspaces" => Some(StoreChange::Workspaces(user)),
            "sign-ins" => Some(StoreChange::SignIns(user)),
            _ => None,
        }
    });
    parsed.unwrap_or(StoreChange::Resync)
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_kind_and_a_user() {
        let user = UserId::new();
        assert_eq!(parse_payload(&format!("workspaces:{user}")), StoreChange::Workspaces(user));
        assert_eq!(parse_payload(&format!("sign-ins:{user}")), StoreChange::SignIns(user));
        assert_eq!(parse_payload(&format!("servers:{user}")), StoreChange::Resync);
        assert_eq!(parse_payload("workspaces:not-a-uuid"), StoreChange::Resync);
        assert_eq!(parse_payload(""), StoreChange::Resync);
    }
}
