//! Timing per head and command: a bounded window of recent durations, percentiles and a
//! histogram over that window, and totals over the whole run.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// How many recent durations each (head, command) keeps.
pub const WINDOW: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Most recent last, in nanoseconds.
    pub recent: VecDeque<u64>,
    pub count: u64,
    pub total_ns: u128,
}

impl Series {
    pub fn push(&mut self, ns: u64) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ns);
        self.count += 1;
        self.total_ns += ns as u128;
    }

    pub fn last(&self) -> Option<u64> {
        self.recent.back().copied()
    }

    /// p50, p95, p99 of the window (nearest rank).
    pub fn percentiles(&self) -> Option<[u64; 3]> {
        if self.recent.is_empty() {
            return None;
        }
        let mut v: Vec<u64> = self.recent.iter().copied().collect();
        v.sort_unstable();
        Some([0.50, 0.95, 0.99].map(|p| nearest_rank(&v, p)))
    }

    /// `buckets` equal-width buckets between the window's minimum and maximum:
    /// (lower bound ns, upper bound ns, count).
    pub fn histogram(&self, buckets: usize) -> Vec<(u64, u64, usize)> {
        let (Some(&lo), Some(&hi)) = (self.recent.iter().min(), self.recent.iter().max()) else {
            return Vec::new();
        };
        let buckets = buckets.max(1);
        let width = ((hi - lo) / buckets as u64).max(1);
        let mut out: Vec<(u64, u64, usize)> =
            (0..buckets as u64).map(|i| (lo + i * width, lo + (i + 1) * width, 0)).collect();
        for &x in &self.recent {
            let i = (((x - lo) / width) as usize).min(buckets - 1);
            out[i].2 += 1;
        }
        if let Some(last) = out.last_mut() {
            last.1 = hi;
        }
        // Trailing empty buckets say nothing when the range is narrow.
        while out.len() > 1 && out.last().is_some_and(|b| b.2 == 0) {
            out.pop();
        }
        out
    }
}

/// Nearest-rank percentile of sorted values.
pub fn nearest_rank(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// Durations by head, then by command name.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub by_head: BTreeMap<String, BTreeMap<&'static str, Series>>,
}

impl Timing {
    pub fn record(&mut self, head: &str, command: &'static str, ns: u64) {
        if let Some(h) = self.by_head.get_mut(head) {
            h.entry(command).or_default().push(ns);
        } else {
            self.by_head.entry(head.to_string()).or_default().entry(command).or_default().push(ns);
        }
    }

    /// Every (head, command, series), heads in name order, commands in name order.
    pub fn rows(&self) -> Vec<(&str, &'static str, &Series)> {
        self.by_head.iter().flat_map(|(h, m)| m.iter().map(move |(c, s)| (h.as_str(), *c, s))).collect()
    }

    pub fn len(&self) -> usize {
        self.by_head.values().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// "850ns", "12.3µs", "4.56ms", "1.20s".
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// "0:07", "12:34", "1:02:03".
pub fn fmt_hms(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Text sparkline of values scaled to the largest, one cell each.
pub fn spark_text(values: impl Iterator<Item = u64> + Clone) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.clone().max().unwrap_or(0).max(1);
    values.map(|v| BARS[((v as u128 * 7 + max as u128 / 2) / max as u128) as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut s = Series::default();
        for i in 1..=100 {
            s.push(i * 1000);
        }
        assert_eq!(s.percentiles(), Some([50_000, 95_000, 99_000]));
        let h = s.histogram(4);
        assert_eq!(h.iter().map(|b| b.2).sum::<usize>(), 100);
        assert_eq!(h[0].0, 1000);
        assert_eq!(h.last().unwrap().1, 100_000);
    }

    #[test]
    fn window_is_bounded() {
        let mut s = Series::default();
        for i in 0..(WINDOW as u64 * 3) {
            s.push(i);
        }
        assert_eq!(s.recent.len(), WINDOW);
        assert_eq!(s.count, WINDOW as u64 * 3);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ns(850), "850ns");
        assert_eq!(fmt_ns(12_345), "12.3µs");
        assert_eq!(fmt_ns(4_560_000), "4.56ms");
        assert_eq!(fmt_hms(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(fmt_hms(Duration::from_secs(7)), "0:07");
        assert_eq!(spark_text([0u64, 7, 14].into_iter()), "▁▅█");
    }
}
