//! Activity tracking: activity is terminal input **or** output on any
//! session. Updated from the PTY reader tasks and the socket tasks with one
//! relaxed atomic store, read by `/health` and the heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// When the last input or output happened.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    started_at: OffsetDateTime,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// Activity starting now.
    pub fn new() -> Self {
        Self { started: Instant::now(), started_at: OffsetDateTime::now_utc(), last_ms: AtomicU64::new(0) }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last activity (or since start).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Wall-clock time of the last activity.
    pub fn last_activity_at(&self) -> OffsetDateTime {
        self.started_at + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Time since the agent started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_resets_idle() {
        let a = Activity::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(a.idle() >= Duration::from_millis(30));
        a.touch();
        assert!(a.idle() < Duration::from_millis(30));
        assert!(a.last_activity_at() >= a.started_at);
    }
}
