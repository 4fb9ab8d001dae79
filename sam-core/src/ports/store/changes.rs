//! The store's change feed: what committed writes changed, for views kept
//! live (the dashboard's event stream) without polling the database.

use crate::domain::UserId;

/// What a committed write changed, as far as a live view cares. Carries ids
/// only: a subscriber re-reads what it shows, through the owner-scoped reads
/// of the store, so the feed never needs to be trusted with rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum StoreChange {
    /// One of this owner's workspaces was created, changed (a transition or
    /// new activity) or removed.
    Workspaces(UserId),
    /// One or more of this user's sign-ins ended (signed out, revoked).
    SignIns(UserId),
    /// Changes may have been missed (the feed reconnected to the database):
    /// every subscriber re-reads everything it shows.
    Resync,
}

/// A feed of [`StoreChange`]s committed after a subscription, by this
/// process and, where the database can tell (PostgreSQL's `LISTEN/NOTIFY`),
/// by every other replica writing to the same database.
///
/// A receiver that falls behind gets `RecvError::Lagged` from tokio's
/// broadcast channel: treat it as [`StoreChange::Resync`]. Delivery is after
/// commit, so a re-read on a change sees it. A change is announced at least
/// whenever what a view shows changed (a heartbeat that brings no new
/// activity may or may not be announced).
///
/// ```
/// # use sam_core::ports::{ChangeFeed, StoreChange};
/// # use sam_core::testkit::fakes::MemoryStore;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let mut changes = store.subscribe_changes().await;
/// assert!(changes.try_recv().is_err()); // nothing written yet
/// # });
/// ```
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Every change committed after this returns. The first subscriber of a
    /// store may wait while the feed connects to the database.
    async fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<StoreChange>;
}

/// How many changes a subscriber may fall behind before it lags (and
/// resynchronises).
pub const CHANGE_FEED_CAPACITY: usize = 1024;
