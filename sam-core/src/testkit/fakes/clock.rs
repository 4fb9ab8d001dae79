use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::Timestamp;
use crate::ports::Clock;
use crate::testkit::lock;

/// A clock that moves only when told; clones share the same time.
///
/// ```
/// use sam_core::ports::Clock;
/// use sam_core::testkit::fakes::ManualClock;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(std::time::Duration::from_secs(90));
/// assert_eq!((clock.now() - t0).whole_seconds(), 90);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// A clock at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        Self::at(time::macros::datetime!(2026-01-01 00:00:00 UTC))
    }

    /// A clock at `t`.
    pub fn at(t: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.0);
        *now += by;
    }

    /// Sets the time (may move backwards, to test clock skew).
    pub fn set(&self, t: Timestamp) {
        *lock(&self.0) = t;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.0)
    }
}
