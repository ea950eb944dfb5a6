//! Captured vs replayed wire time per command name: medians from log-linear histograms (a
//! fixed few kilobytes per command name however many rows), and the commands whose median
//! moved by more than a threshold.

use serde::Serialize;
use std::collections::BTreeMap;

/// Sub-buckets per power of two: a median is exact to 1/64 (1.6 %) of its value, well inside
/// any useful threshold.
const SUB: u64 = 64;
const BUCKETS: usize = 64 * SUB as usize;

/// Durations in nanoseconds, counted in buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], n: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let octave = 63 - v.leading_zeros() as u64; // >= 6
    let sub = (v >> (octave - 6)) - SUB; // the 6 bits after the leading one
    ((octave - 5) * SUB + sub) as usize
}

/// Middle of a bucket's value range.
fn value(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let octave = b / SUB + 5;
    let sub = b % SUB;
    let low = (SUB + sub) << (octave - 6);
    low + (1u64 << (octave - 6)) / 2
}

impl Histogram {
    pub fn add(&mut self, ns: u64) {
        let b = bucket(ns).min(BUCKETS - 1);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.n += 1;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The median (lower median for an even count), to the bucket's precision.
    pub fn median(&self) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = self.n.div_ceil(2);
        let mut seen = 0u64;
        for (b, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(value(b));
            }
        }
        None
    }
}

/// One command name's timing, as the console and replay.json show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimingLine {
    pub command: String,
    pub count: u64,
    pub captured_median_ns: u64,
    pub replayed_median_ns: u64,
    /// (replayed - captured) / captured, in percent; none when the capture has no times
    /// (imports of logs that record none, e.g. scriptor's).
    pub change_pct: Option<f64>,
    /// Whether |change| is above the threshold.
    pub flagged: bool,
}

/// Captured and replayed durations of each command name (a command with its GET RESPONSE
/// and re-send rows counts as one: the time the terminal waited for the whole answer).
#[derive(Default)]
pub struct Timing {
    by_name: BTreeMap<String, (Histogram, Histogram)>,
}

impl Timing {
    pub fn add(&mut self, name: &str, captured_ns: u64, replayed_ns: u64) {
        let (c, r) = self.by_name.entry(name.to_string()).or_default();
        c.add(captured_ns);
        r.add(replayed_ns);
    }

    /// One line per command name, flagged when the medians differ by more than `threshold_pct`.
    pub fn lines(&self, threshold_pct: f64) -> Vec<TimingLine> {
        self.by_name
            .iter()
            .filter_map(|(name, (c, r))| {
                let (cm, rm) = (c.median()?, r.median()?);
                let change_pct = (cm != 0).then(|| (rm as f64 - cm as f64) * 100.0 / cm as f64);
                Some(TimingLine {
                    command: name.clone(),
                    count: c.count(),
                    captured_median_ns: cm,
                    replayed_median_ns: rm,
                    change_pct: change_pct.map(|p| (p * 10.0).round() / 10.0),
                    flagged: change_pct.is_some_and(|p| p.abs() > threshold_pct),
                })
            })
            .collect()
    }
}

impl TimingLine {
    /// One console line: `! READ ALL   12 x   850 ns →   1.2 us  +41.2%`.
    pub fn render(&self) -> String {
        format!(
            "  {} {:<26} {:>7} x  {:>10} → {:>10}  {}",
            if self.flagged { "!" } else { " " },
            self.command,
            self.count,
            if self.captured_median_ns == 0 { "-".to_string() } else { human(self.captured_median_ns) },
            human(self.replayed_median_ns),
            self.change_pct.map_or("(no captured time)".to_string(), |p| format!("{p:+.1}%"))
        )
    }
}

/// A duration for people: `850 ns`, `12.4 us`, `3.10 ms`, `1.200 s`.
pub fn human(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} us", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_within_the_bucket_precision() {
        for v in [0u64, 1, 63, 64, 65, 1000, 12_345, 987_654_321, 3_000_000_000_000] {
            let got = value(bucket(v));
            assert!((got as f64 - v as f64).abs() <= v as f64 / 64.0 + 1.0, "{v} -> {got}");
        }
        let mut h = Histogram::default();
        for v in [100u64, 5_000, 5_100, 5_050, 900_000] {
            h.add(v);
        }
        let m = h.median().unwrap();
        assert!((m as f64 - 5_050.0).abs() < 5_050.0 / 64.0, "{m}");
    }

    #[test]
    fn a_change_beyond_the_threshold_is_flagged() {
        let mut t = Timing::default();
        t.add("READ ALL", 1_000_000, 1_100_000);
        t.add("DEBIT", 1_000_000, 1_500_000);
        let lines = t.lines(20.0);
        assert_eq!(
            lines.iter().map(|l| (l.command.as_str(), l.flagged)).collect::<Vec<_>>(),
            [("DEBIT", true), ("READ ALL", false)]
        );
    }
}
