//! Live updates for the event streams: one subscription to the store's
//! change feed per replica, fanned out to the open streams of each user.
//! A stream wakes only when its user's workspaces or sign-ins changed (on
//! any replica: PostgreSQL announces every replica's writes), instead of
//! every open stream querying the database every second.
//!
//! Each user with an open stream has a `watch` channel of [`Epochs`]: a
//! change bumps the user's epoch, and a stream busy re-reading when it
//! happens still sees it afterwards (a watch keeps the latest value, so a
//! burst of changes costs one re-read, not one per change).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use sam_core::domain::UserId;
use sam_core::engine::Engine;
use sam_core::ports::StoreChange;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OnceCell, watch};

/// How often a user's changes of each kind were announced (wrapping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Epochs {
    /// Changes to the user's workspaces.
    pub workspaces: u64,
    /// Ended sign-ins of the user.
    pub sign_ins: u64,
}

/// The fan-out of one replica.
#[derive(Debug, Default)]
pub struct LiveUpdates {
    users: Mutex<HashMap<UserId, watch::Sender<Epochs>>>,
    /// Set once the change feed is subscribed and the fan-out runs.
    running: OnceCell<()>,
}

/// One stream's view of its user's changes; leaving drops the user's
/// channel when it was the last.
#[derive(Debug)]
pub struct UserChanges {
    receiver: watch::Receiver<Epochs>,
    user: UserId,
    hub: Arc<LiveUpdates>,
}

impl UserChanges {
    /// Waits for the next change of the user's and returns the epochs then;
    /// `None` when the fan-out stopped (the replica is shutting down).
    pub async fn next(&mut self) -> Option<Epochs> {
        self.receiver.changed().await.ok()?;
        Some(*self.receiver.borrow_and_update())
    }

    /// The epochs now.
    pub fn current(&mut self) -> Epochs {
        *self.receiver.borrow_and_update()
    }
}

impl Drop for UserChanges {
    fn drop(&mut self) {
        let mut users = self.hub.lock();
        // This receiver still counts until the fields are dropped.
        if users.get(&self.user).is_some_and(|tx| tx.receiver_count() <= 1) {
            users.remove(&self.user);
        }
    }
}

impl LiveUpdates {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, watch::Sender<Epochs>>> {
        // The map holds channels only; a panic elsewhere cannot leave it
        // half-updated in a way that matters.
        self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to `user`'s changes. Everything committed after this
    /// returns is seen: read what the stream shows *after* calling it.
    pub async fn watch(self: &Arc<Self>, engine: &Engine, user: UserId) -> UserChanges {
        self.running
            .get_or_init(|| async {
                let feed = engine.subscribe_changes().await;
                tokio::spawn(fan_out(Arc::downgrade(self), feed));
            })
            .await;
        let receiver = self.lock().entry(user).or_insert_with(|| watch::Sender::new(Epochs::default())).subscribe();
        UserChanges { receiver, user, hub: self.clone() }
    }

    /// Users with an open stream on this replica.
    pub fn users_watched(&self) -> usize {
        self.lock().len()
    }

    fn bump(&self, user: UserId, kind: impl Fn(&mut Epochs)) {
        if let Some(tx) = self.lock().get(&user) {
            tx.send_modify(kind);
        }
    }

    fn bump_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|e| {
                e.workspaces = e.workspaces.wrapping_add(1);
                e.sign_ins = e.sign_ins.wrapping_add(1);
            });
        }
    }
}

/// Delivers the feed's changes until the hub is gone or the feed closes. A
/// lag (more changes than the feed buffers arrived while this task was
/// busy) is a resync: every stream re-reads.
async fn fan_out(hub: Weak<LiveUpdates>, mut feed: tokio::sync::broadcast::Receiver<StoreChange>) {
    loop {
        let change = feed.recv().await;
        let Some(hub) = hub.upgrade() else { return };
        match change {
            Ok(StoreChange::Workspaces(user)) => hub.bump(user, |e| e.workspaces = e.workspaces.wrapping_add(1)),
            Ok(StoreChange::SignIns(user)) => hub.bump(user, |e| e.sign_ins = e.sign_ins.wrapping_add(1)),
            Ok(_) => hub.bump_all(),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "live updates fell behind the change feed; every stream re-reads");
                hub.bump_all();
            }
            Err(RecvError::Closed) => return,
        }
    }
}
