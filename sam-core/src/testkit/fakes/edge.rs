use async_trait::async_trait;

use super::faults::{FaultPlan, after};
use crate::ports::{EdgeNetwork, EdgeRanges, ProviderError};
use crate::testkit::lock;

/// An edge that publishes ranges a test sets, with fault injection
/// (operation `source_ranges`).
#[derive(Debug)]
pub struct FakeEdge {
    ranges: std::sync::Mutex<EdgeRanges>,
    calls: std::sync::atomic::AtomicU64,
    /// Faults to inject.
    pub faults: FaultPlan,
}

impl FakeEdge {
    /// An edge publishing `ipv4` and `ipv6`.
    pub fn new(ipv4: &[&str], ipv6: &[&str]) -> Self {
        let to_vec = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            ranges: std::sync::Mutex::new(EdgeRanges { ipv4: to_vec(ipv4), ipv6: to_vec(ipv6) }),
            calls: std::sync::atomic::AtomicU64::new(0),
            faults: FaultPlan::default(),
        }
    }

    /// How many times the ranges were asked for.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Publishes other ranges from now on.
    pub fn publish(&self, ranges: EdgeRanges) {
        *lock(&self.ranges) = ranges;
    }
}

#[async_trait]
impl EdgeNetwork for FakeEdge {
    async fn source_ranges(&self) -> Result<EdgeRanges, ProviderError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pending = self.faults.before("source_ranges")?;
        let ranges = lock(&self.ranges).clone();
        after("source_ranges", pending, ranges)
    }
}
