//! Helpers shared by SAM's benchmarks.
//!
//! Machines here are noisy, so no benchmark reports an absolute time alone:
//! each measures a baseline in the same run and prints its figure as a ratio
//! to that baseline.

use std::time::{Duration, Instant};

/// Runs `f` `iterations` times, `rounds` times over, and returns the median
/// time per iteration.
pub fn median_per_iteration(rounds: usize, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations.max(1)
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}
