//! Timing per head and command: a bounded window of recent durations, percentiles and a
//! histogram over that window, and count, total, minimum and maximum over the whole run; the
//! Timing panel's table (per head, or every DUT head pooled per command), sorted and exported.

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
    /// Over every duration recorded, not only the window.
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Series {
    pub fn push(&mut self, ns: u64) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ns);
        if self.count == 0 {
            (self.min_ns, self.max_ns) = (ns, ns);
        } else {
            self.min_ns = self.min_ns.min(ns);
            self.max_ns = self.max_ns.max(ns);
        }
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
        histogram(self.recent.iter().copied(), buckets)
    }
}

/// `buckets` equal-width buckets between the values' minimum and maximum:
/// (lower bound ns, upper bound ns, count).
pub fn histogram(values: impl Iterator<Item = u64> + Clone, buckets: usize) -> Vec<(u64, u64, usize)> {
    let (Some(lo), Some(hi)) = (values.clone().min(), values.clone().max()) else {
        return Vec::new();
    };
    let buckets = buckets.max(1);
    let width = ((hi - lo) / buckets as u64).max(1);
    let mut out: Vec<(u64, u64, usize)> =
        (0..buckets as u64).map(|i| (lo + i * width, lo + (i + 1) * width, 0)).collect();
    for x in values {
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

/// A column of the Timing panel's table that it can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Head, then command (name order).
    #[default]
    Name,
    N,
    Min,
    P50,
    P95,
    P99,
    Max,
    Mean,
}

impl SortBy {
    pub const ALL: [SortBy; 8] =
        [SortBy::Name, SortBy::N, SortBy::Min, SortBy::P50, SortBy::P95, SortBy::P99, SortBy::Max, SortBy::Mean];

    pub fn next(self) -> SortBy {
        let i = SortBy::ALL.iter().position(|x| *x == self).unwrap_or(0);
        SortBy::ALL[(i + 1) % SortBy::ALL.len()]
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::N => "n",
            SortBy::Min => "min",
            SortBy::P50 => "p50",
            SortBy::P95 => "p95",
            SortBy::P99 => "p99",
            SortBy::Max => "max",
            SortBy::Mean => "mean",
        }
    }
}

/// One row of the Timing panel: a head's command, or a command over every DUT head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The head, or `ALL_DUTS` for the pooled view.
    pub head: String,
    pub command: &'static str,
    /// Over the whole run.
    pub n: u64,
    pub min: u64,
    pub max: u64,
    pub mean: u64,
    /// Over the recent window (of each head pooled).
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    /// The recent window's durations, sorted (the histogram's values).
    pub window: Vec<u64>,
}

/// The head column of the pooled view.
pub const ALL_DUTS: &str = "all DUTs";

impl Summary {
    fn of<'a>(head: &str, command: &'static str, series: impl Iterator<Item = &'a Series>) -> Summary {
        let (mut n, mut total, mut min, mut max) = (0u64, 0u128, u64::MAX, 0u64);
        let mut window = Vec::new();
        for s in series.filter(|s| s.count > 0) {
            n += s.count;
            total += s.total_ns;
            min = min.min(s.min_ns);
            max = max.max(s.max_ns);
            window.extend(s.recent.iter().copied());
        }
        window.sort_unstable();
        let pct = |p| if window.is_empty() { 0 } else { nearest_rank(&window, p) };
        Summary {
            head: head.to_string(),
            command,
            n,
            min: if n == 0 { 0 } else { min },
            max,
            mean: if n == 0 { 0 } else { (total / n as u128) as u64 },
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            window,
        }
    }

    fn key(&self, by: SortBy) -> u64 {
        match by {
            SortBy::Name => 0,
            SortBy::N => self.n,
            SortBy::Min => self.min,
            SortBy::P50 => self.p50,
            SortBy::P95 => self.p95,
            SortBy::P99 => self.p99,
            SortBy::Max => self.max,
            SortBy::Mean => self.mean,
        }
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
    /// Durations of one head and command, in order.
    pub fn record_all(&mut self, head: &str, command: &'static str, ns: &[u64]) {
        let series = match self.by_head.get_mut(head) {
            Some(h) => h.entry(command).or_default(),
            None => self.by_head.entry(head.to_string()).or_default().entry(command).or_default(),
        };
        for &n in ns {
            series.push(n);
        }
    }

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

    /// The Timing panel's rows: per head and command, or (`duts` given) per command over the
    /// heads `duts` names, pooled (the peer cards' heads left out); sorted by `by`, largest
    /// first when `desc` (name order breaks ties).
    pub fn summaries(&self, duts: Option<&dyn Fn(&str) -> bool>, by: SortBy, desc: bool) -> Vec<Summary> {
        let mut out = match duts {
            None => self
                .by_head
                .iter()
                .flat_map(|(h, m)| m.iter().map(move |(c, s)| Summary::of(h, c, std::iter::once(s))))
                .collect::<Vec<_>>(),
            Some(is_dut) => {
                let mut by_cmd: BTreeMap<&'static str, Vec<&Series>> = BTreeMap::new();
                for m in self.by_head.iter().filter(|(h, _)| is_dut(h)).map(|(_, m)| m) {
                    for (c, s) in m {
                        by_cmd.entry(c).or_default().push(s);
                    }
                }
                by_cmd.into_iter().map(|(c, v)| Summary::of(ALL_DUTS, c, v.into_iter())).collect()
            }
        };
        out.sort_by(|a, b| {
            let k = a.key(by).cmp(&b.key(by));
            let k = if desc { k.reverse() } else { k };
            k.then_with(|| a.head.cmp(&b.head)).then_with(|| a.command.cmp(b.command))
        });
        if desc && by == SortBy::Name {
            out.reverse();
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The table as CSV (durations in nanoseconds): what `E` in the Timing panel writes.
pub fn summaries_csv(rows: &[Summary]) -> String {
    let mut out = String::from("head,command,n,min_ns,p50_ns,p95_ns,p99_ns,max_ns,mean_ns,window\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.head),
            csv_field(r.command),
            r.n,
            r.min,
            r.p50,
            r.p95,
            r.p99,
            r.max,
            r.mean,
            r.window.len()
        ));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
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
    fn pooled_rows_sum_the_duts_and_sort() {
        let mut t = Timing::default();
        for ns in [10, 20, 30] {
            t.record("D1", "SELECT", ns);
        }
        t.record("D2", "SELECT", 5);
        t.record("D2", "READ BINARY", 100);
        t.record("D1.peer", "SELECT", 9_999);
        let is_dut = |h: &str| !h.contains('.');
        let rows = t.summaries(Some(&is_dut), SortBy::Name, false);
        assert_eq!(rows.iter().map(|r| r.command).collect::<Vec<_>>(), ["READ BINARY", "SELECT"]);
        let sel = &rows[1];
        assert_eq!((sel.n, sel.min, sel.max, sel.mean, sel.p50), (4, 5, 30, 16, 10));
        let by_max = t.summaries(Some(&is_dut), SortBy::Max, true);
        assert_eq!(by_max[0].command, "READ BINARY");
        let per_head = t.summaries(None, SortBy::N, true);
        assert_eq!((per_head[0].head.as_str(), per_head[0].n), ("D1", 3));
        assert_eq!(per_head.len(), 4);
        let csv = summaries_csv(&rows);
        assert_eq!(csv.lines().nth(2), Some("all DUTs,SELECT,4,5,10,30,30,30,16,4"));
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
