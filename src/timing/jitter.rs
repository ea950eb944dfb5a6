//! The host's own timer, measured beside a run: what a duration read with `Instant` can be
//! trusted to. Back-to-back clock reads give the clock's resolution and cost; their spread
//! (scheduler preemption, interrupts, frequency changes) is the jitter any single sample may
//! carry on this host at this moment, independent of the reader and the card.

use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimerJitter {
    /// Back-to-back reads taken.
    pub reads: u32,
    /// Smallest non-zero step between two reads: the clock's resolution as seen here.
    pub resolution_ns: u64,
    /// Median gap between two reads: what reading the clock costs.
    pub median_ns: u64,
    /// 99th percentile and largest gap: how far one timed interval can be stretched by
    /// the host alone.
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// Measure with `reads` back-to-back clock reads (200 000 take a few milliseconds).
pub fn measure(reads: u32) -> TimerJitter {
    let n = reads.max(2) as usize;
    let mut gaps = Vec::with_capacity(n - 1);
    let mut last = Instant::now();
    for _ in 1..n {
        let now = Instant::now();
        gaps.push(now.duration_since(last).as_nanos() as u64);
        last = now;
    }
    gaps.sort_unstable();
    // Rank picks on a sorted array of integers: exact order statistics, no interpolation.
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
    TimerJitter {
        reads: n as u32,
        resolution_ns: gaps.iter().copied().find(|g| *g > 0).unwrap_or(0),
        median_ns: at(0.5),
        p99_ns: at(0.99),
        max_ns: *gaps.last().unwrap_or(&0),
    }
}

impl std::fmt::Display for TimerJitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resolution {} ns, read {} ns, p99 {} ns, max {:.1} µs over {} reads",
            self.resolution_ns,
            self.median_ns,
            self.p99_ns,
            self.max_ns as f64 / 1000.0,
            self.reads
        )
    }
}
