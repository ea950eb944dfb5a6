//! `cardbench time compare A B`: is B faster or slower than A, op by op (docs/timing.md,
//! "Comparing lots").
//!
//! Per op, the shift B − A is the Hodges-Lehmann estimate (the median of all pairwise
//! differences b − a) with the distribution-free interval that goes with the Mann-Whitney
//! test (Moses; R's `wilcox.test(conf.int = TRUE)` with the normal approximation); the p-value
//! is the two-sided Mann-Whitney test with tie and continuity corrections. Durations are whole
//! nanoseconds, so the k-th pairwise difference is found exactly by a search over the integer
//! difference with a linear count per step: no n·m array even for pooled lots.

use super::sample::{read_csv, Sample, SampleError};
use super::stats::{paired_differences, Interval, CONFIDENCE};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};
use statrs::statistics::{Data, OrderStatistics};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Samples(#[from] SampleError),
    #[error("{}: {what}", path.display())]
    Input { path: PathBuf, what: String },
    #[error("{}:{line}:{column}: {what}", path.display())]
    Json { path: PathBuf, line: usize, column: usize, what: String },
    #[error("--threshold '{0}': a percentage such as 2% (0 or more)")]
    Threshold(String),
}

/// `2%`, `2` (also a percentage) or `0.5%` → a fraction (0.02, 0.02, 0.005).
pub fn parse_threshold(s: &str) -> Result<f64, CompareError> {
    let t = s.trim();
    let v: f64 = t.strip_suffix('%').unwrap_or(t).trim().parse().map_err(|_| CompareError::Threshold(s.into()))?;
    if !v.is_finite() || v < 0.0 {
        return Err(CompareError::Threshold(s.into()));
    }
    Ok(v / 100.0)
}

/// One timing run as read back: where it came from and its samples.
#[derive(Debug, Clone)]
pub struct Run {
    pub path: PathBuf,
    pub samples: Vec<Sample>,
}

/// One side of a comparison: one run, or the runs of a lot pooled.
#[derive(Debug, Clone)]
pub struct Side {
    pub label: String,
    pub runs: Vec<Run>,
}

impl Side {
    /// Read every path: a run folder (with `samples.csv`), a `samples.csv`, a `timing.json`
    /// (its folder's `samples.csv` is read), or a lot folder whose run folders are all taken.
    pub fn load(paths: &[PathBuf]) -> Result<Side, CompareError> {
        let mut runs = Vec::new();
        for p in paths {
            for csv in sample_files(p)? {
                runs.push(Run { samples: read_csv(&csv)?, path: csv });
            }
        }
        let label = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ");
        Ok(Side { label, runs })
    }

    /// Distinct (head, card) pairs seen.
    pub fn cards(&self) -> usize {
        let mut c: Vec<&str> = self.runs.iter().flat_map(|r| r.samples.iter().map(|s| s.card_id.as_str())).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    }

    /// The values of `op` for `measure`, one list per run × head × card (card time pairs
    /// within each of them).
    fn groups(&self, op: &str, measure: Measure) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        for r in &self.runs {
            // (head, card) → (op samples, baseline samples) as (iteration, ns).
            type Timed = Vec<(u32, u64)>;
            let mut groups: BTreeMap<(&str, &str), (Timed, Timed)> = BTreeMap::new();
            for s in r.samples.iter().filter(|s| s.op == op) {
                let g = groups.entry((&s.head, &s.card_id)).or_default();
                if s.baseline { &mut g.1 } else { &mut g.0 }.push((s.iteration, s.duration_ns));
            }
            for (ops, base) in groups.values() {
                let v: Vec<i64> = match measure {
                    Measure::Op => ops.iter().map(|(_, d)| *d as i64).collect(),
                    Measure::Card => paired_differences(ops, base).0,
                };
                if !v.is_empty() {
                    out.push(v);
                }
            }
        }
        out
    }

    /// What the test sees: every sample pooled, or one median per card.
    fn values(&self, op: &str, measure: Measure, unit: Unit) -> Vec<i64> {
        let groups = self.groups(op, measure);
        match unit {
            Unit::Sample => groups.concat(),
            Unit::Card => groups
                .into_iter()
                .map(|g| Data::new(g.iter().map(|x| *x as f64).collect::<Vec<_>>()).median().round() as i64)
                .collect(),
        }
    }

    fn ops(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for s in self.runs.iter().flat_map(|r| &r.samples) {
            if !s.baseline && !seen.contains(&s.op) {
                seen.push(s.op.clone());
            }
        }
        seen
    }

    /// Every run × head × card that measured `op` also measured its baseline: only then can
    /// the card time stand for the whole side (a lot with one run lacking baselines would
    /// otherwise lose that run silently).
    fn has_baseline(&self, op: &str) -> bool {
        self.runs.iter().all(|r| {
            let timed = |baseline: bool| {
                let mut v: Vec<(&str, &str)> = r
                    .samples
                    .iter()
                    .filter(|s| s.op == op && s.baseline == baseline)
                    .map(|s| (s.head.as_str(), s.card_id.as_str()))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            };
            let ops = timed(false);
            let base = timed(true);
            ops.iter().all(|g| base.contains(g))
        })
    }
}

fn sample_files(p: &Path) -> Result<Vec<PathBuf>, CompareError> {
    let input = |what: String| CompareError::Input { path: p.into(), what };
    if p.is_file() {
        if p.extension().is_some_and(|e| e == "json") {
            check_timing_json(p)?;
            let csv = p.parent().unwrap_or(Path::new(".")).join("samples.csv");
            if !csv.is_file() {
                return Err(input(format!("no samples.csv beside it ({})", csv.display())));
            }
            return Ok(vec![csv]);
        }
        return Ok(vec![p.into()]);
    }
    if !p.is_dir() {
        return Err(input("no such file or folder".into()));
    }
    if p.join("samples.csv").is_file() {
        return Ok(vec![p.join("samples.csv")]);
    }
    // A lot: every run folder directly inside, in name order.
    let entries = std::fs::read_dir(p).map_err(|e| input(e.to_string()))?;
    let mut found: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path().join("samples.csv")).filter(|c| c.is_file()).collect();
    found.sort();
    if found.is_empty() {
        return Err(input("no samples.csv in this folder nor in the folders directly inside it".into()));
    }
    Ok(found)
}

/// A timing.json must at least be one (the figures compared come from samples.csv).
fn check_timing_json(p: &Path) -> Result<(), CompareError> {
    let text = std::fs::read_to_string(p).map_err(|e| CompareError::Input { path: p.into(), what: e.to_string() })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| CompareError::Json {
        path: p.into(),
        line: e.line(),
        column: e.column(),
        what: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
    })?;
    let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
    if !schema.starts_with(super::report::SCHEMA_FAMILY) {
        return Err(CompareError::Json {
            path: p.into(),
            line: 1,
            column: 1,
            what: format!("not a cardbench timing.json (schema '{schema}')"),
        });
    }
    Ok(())
}

/// What is compared for an op: the card time (op − baseline of the same iteration) or the
/// op's own duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    Card,
    Op,
}

/// What one observation of the test is. Pooling samples treats every sample of every card as
/// independent, which answers "is this lot's distribution of exchanges shifted"; with few
/// cards and real card-to-card spread, `Card` (one median per card, n = cards) is the honest
/// question "do this lot's cards differ", at the price of far fewer observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Sample,
    Card,
}

/// How the user asked to choose the measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureChoice {
    Auto,
    Card,
    Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "faster")]
    Faster,
    #[serde(rename = "slower")]
    Slower,
    #[serde(rename = "no significant difference")]
    NoSignificantDifference,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoSignificantDifference => "no significant difference",
        }
    }
}

/// The Hodges-Lehmann shift of B against A with its interval and the Mann-Whitney p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShiftTest {
    /// Median of all differences b − a (ns).
    pub shift: f64,
    pub ci: Interval,
    /// Two-sided Mann-Whitney p-value (normal approximation, tie and continuity corrected).
    pub p_value: f64,
    /// Mann-Whitney U of B (pairs with b > a, ties counting one half).
    pub u: f64,
}

/// `None` when a side is empty.
pub fn shift_test(a: &[i64], b: &[i64], confidence: f64) -> Option<ShiftTest> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    let (n, m) = (a.len() as f64, b.len() as f64);
    let total = a.len() as u64 * b.len() as u64;
    let shift = if total % 2 == 1 {
        kth_difference(&a, &b, total.div_ceil(2)) as f64
    } else {
        (kth_difference(&a, &b, total / 2) as f64 + kth_difference(&a, &b, total / 2 + 1) as f64) / 2.0
    };
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    let z = normal.inverse_cdf(1.0 - (1.0 - confidence) / 2.0);
    let k = (n * m / 2.0 - z * (n * m * (n + m + 1.0) / 12.0).sqrt()).floor().max(1.0) as u64;
    let ci = Interval {
        lo: kth_difference(&a, &b, k.min(total)) as f64,
        hi: kth_difference(&a, &b, (total + 1).saturating_sub(k).max(1)) as f64,
    };
    let (u, p_value) = mann_whitney(&a, &b, &normal);
    Some(ShiftTest { shift, ci, p_value, u })
}

/// The k-th smallest (1-based) of the differences b_j − a_i, both slices ascending.
fn kth_difference(a: &[i64], b: &[i64], k: u64) -> i64 {
    // Differences ≤ t: for each b_j, the a_i ≥ b_j − t; the cut moves right as b_j grows.
    let count_le = |t: i64| -> u64 {
        let mut cut = 0usize;
        let mut count = 0u64;
        for &bj in b {
            let floor = bj.saturating_sub(t);
            while cut < a.len() && a[cut] < floor {
                cut += 1;
            }
            count += (a.len() - cut) as u64;
        }
        count
    };
    let (mut lo, mut hi) = (b[0].saturating_sub(a[a.len() - 1]), b[b.len() - 1].saturating_sub(a[0]));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if count_le(mid) >= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// (U of B, two-sided p) over ascending slices.
fn mann_whitney(a: &[i64], b: &[i64], normal: &Normal) -> (f64, f64) {
    let mut all: Vec<(i64, bool)> = a.iter().map(|x| (*x, false)).chain(b.iter().map(|x| (*x, true))).collect();
    all.sort_unstable();
    let big_n = all.len() as f64;
    let (mut rank_b, mut ties) = (0.0f64, 0.0f64);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0; // mean of the 1-based ranks i+1 ..= j
        let t = (j - i) as f64;
        ties += t * t * t - t;
        rank_b += avg * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let u = rank_b - m * (m + 1.0) / 2.0;
    let var = n * m / 12.0 * ((big_n + 1.0) - ties / (big_n * (big_n - 1.0)));
    if var <= 0.0 || !var.is_finite() {
        return (u, 1.0);
    }
    let dev = u - n * m / 2.0;
    let corrected = (dev.abs() - 0.5).max(0.0);
    let p = (2.0 * normal.sf(corrected / var.sqrt())).min(1.0);
    (u, p)
}

/// One op compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpComparison {
    pub op: String,
    pub measure: Measure,
    pub n_a: usize,
    pub n_b: usize,
    pub median_a: f64,
    pub median_b: f64,
    #[serde(flatten)]
    pub test: ShiftTest,
    /// shift / median_a, and its interval likewise.
    pub relative: f64,
    pub relative_ci: Interval,
    pub significant: bool,
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub runs_a: usize,
    pub runs_b: usize,
    pub cards_a: usize,
    pub cards_b: usize,
    pub threshold: f64,
    pub confidence: f64,
    pub unit: Unit,
    pub ops: Vec<OpComparison>,
    /// Ops measured on one side only.
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
}

impl Comparison {
    /// A significant regression beyond the threshold: what exit code 1 means.
    pub fn regressed(&self) -> bool {
        self.ops.iter().any(|o| o.verdict == Verdict::Slower)
    }
}

/// Compare every op of A with the same op of B.
///
/// Verdict: significant when the Mann-Whitney p-value is under 1 − confidence; then slower
/// (faster) when the estimated shift is more than `threshold` of A's median above (below)
/// zero; anything else is no significant difference (a real but smaller shift is within the
/// threshold the user accepts).
pub fn compare(a: &Side, b: &Side, threshold: f64, choice: MeasureChoice, unit: Unit) -> Comparison {
    let ops_a = a.ops();
    let ops_b = b.ops();
    let mut ops = Vec::new();
    for op in ops_a.iter().filter(|o| ops_b.contains(o)) {
        let measure = match choice {
            MeasureChoice::Op => Measure::Op,
            MeasureChoice::Card => Measure::Card,
            MeasureChoice::Auto if a.has_baseline(op) && b.has_baseline(op) => Measure::Card,
            MeasureChoice::Auto => Measure::Op,
        };
        let (va, vb) = (a.values(op, measure, unit), b.values(op, measure, unit));
        let Some(test) = shift_test(&va, &vb, CONFIDENCE) else { continue };
        let median = |v: &[i64]| Data::new(v.iter().map(|x| *x as f64).collect::<Vec<_>>()).median();
        let (median_a, median_b) = (median(&va), median(&vb));
        let scale = median_a.abs();
        let rel = |x: f64| if scale > 0.0 { x / scale } else { f64::NAN };
        let significant = test.p_value < 1.0 - CONFIDENCE;
        let relative = rel(test.shift);
        let verdict = if significant && relative > threshold {
            Verdict::Slower
        } else if significant && relative < -threshold {
            Verdict::Faster
        } else {
            Verdict::NoSignificantDifference
        };
        ops.push(OpComparison {
            op: op.clone(),
            measure,
            n_a: va.len(),
            n_b: vb.len(),
            median_a,
            median_b,
            relative,
            relative_ci: Interval { lo: rel(test.ci.lo), hi: rel(test.ci.hi) },
            test,
            significant,
            verdict,
        });
    }
    Comparison {
        a: a.label.clone(),
        b: b.label.clone(),
        runs_a: a.runs.len(),
        runs_b: b.runs.len(),
        cards_a: a.cards(),
        cards_b: b.cards(),
        threshold,
        confidence: CONFIDENCE,
        unit,
        ops,
        only_a: ops_a.iter().filter(|o| !ops_b.contains(o)).cloned().collect(),
        only_b: ops_b.iter().filter(|o| !ops_a.contains(o)).cloned().collect(),
    }
}

/// Per op, the two sides' histograms on one scale (A above B), each with its median `┃` and
/// the median's confidence interval `[ ]`.
pub fn render_histograms(a: &Side, b: &Side, c: &Comparison) -> String {
    use super::report::{histogram_range, text_histogram_in};
    use super::stats::{seed_for, Options, Summary};
    use std::fmt::Write;
    let mut s = String::new();
    for o in &c.ops {
        let side = |x: &Side, name: &str| {
            let v: Vec<f64> = x.values(&o.op, o.measure, c.unit).iter().map(|d| *d as f64).collect();
            let m = Summary::of(&v, seed_for(&[&o.op, name, "compare"]), &Options::default());
            (v, m)
        };
        let ((va, ma), (vb, mb)) = (side(a, "A"), side(b, "B"));
        let (Some(ma), Some(mb)) = (ma, mb) else { continue };
        let (ra, rb) = (histogram_range(&va, &ma), histogram_range(&vb, &mb));
        let range = (ra.0.min(rb.0), ra.1.max(rb.1));
        let what = match o.measure {
            Measure::Card => "card time",
            Measure::Op => "op duration",
        };
        let _ =
            writeln!(s, "{} ({what}, {} … {}):", o.op, super::report::fmt_ns(range.0), super::report::fmt_ns(range.1));
        for (name, v, m) in [("A", &va, &ma), ("B", &vb, &mb)] {
            let [bars, marks] = text_histogram_in(v, m, 56, range);
            let _ = writeln!(s, "  {name}{}", bars.trim_end());
            let _ = writeln!(s, "   {}", marks.trim_end());
        }
    }
    s
}

/// The verdict, and for a real shift smaller than the threshold, that it is one.
fn verdict_text(o: &OpComparison, threshold: f64) -> String {
    if o.significant && o.verdict == Verdict::NoSignificantDifference {
        format!("{} (shift real, but within ±{}%)", o.verdict.word(), pct_text(threshold))
    } else {
        o.verdict.word().to_string()
    }
}

/// The comparison as the console shows it.
pub fn render(c: &Comparison) -> String {
    use super::report::fmt_ns;
    use std::fmt::Write;
    let mut s = String::new();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(s, "A: {} ({}, {})", c.a, count(c.runs_a, "run"), count(c.cards_a, "card"));
    let _ = writeln!(s, "B: {} ({}, {})", c.b, count(c.runs_b, "run"), count(c.cards_b, "card"));
    let _ = writeln!(
        s,
        "shift B − A: Hodges-Lehmann, {:.0}% CI; Mann-Whitney p; threshold {}%; {}",
        c.confidence * 100.0,
        pct_text(c.threshold),
        match c.unit {
            Unit::Sample => "every sample of every card pooled",
            Unit::Card => "one median per card (N = cards)",
        }
    );
    let w = c.ops.iter().map(|o| o.op.chars().count()).max().unwrap_or(0).max(2);
    let _ = writeln!(
        s,
        "{:<w$} {:<4} {:>6} {:>6} {:>11} {:>11} {:>12} {:>28} {:>8} {:>19} {:>8}  VERDICT",
        "OP", "OF", "N A", "N B", "MEDIAN A", "MEDIAN B", "SHIFT", "95% CI", "REL", "REL CI", "P"
    );
    for o in &c.ops {
        let signed = |x: f64| if x >= 0.0 { format!("+{}", fmt_ns(x)) } else { format!("-{}", fmt_ns(-x)) };
        let pct = |x: f64| format!("{:+.3}%", x * 100.0);
        let p = if o.test.p_value < 0.001 { "<0.001".to_string() } else { format!("{:.3}", o.test.p_value) };
        let measure = match o.measure {
            Measure::Card => "card",
            Measure::Op => "op",
        };
        let _ = writeln!(
            s,
            "{:<w$} {:<4} {:>6} {:>6} {:>11} {:>11} {:>12} {:>28} {:>8} {:>19} {:>8}  {}",
            o.op,
            measure,
            o.n_a,
            o.n_b,
            fmt_ns(o.median_a),
            fmt_ns(o.median_b),
            signed(o.test.shift),
            format!("[{}, {}]", signed(o.test.ci.lo), signed(o.test.ci.hi)),
            pct(o.relative),
            format!("[{}, {}]", pct(o.relative_ci.lo), pct(o.relative_ci.hi)),
            p,
            verdict_text(o, c.threshold)
        );
    }
    for op in &c.only_a {
        let _ = writeln!(s, "{op}: only in A, not compared");
    }
    for op in &c.only_b {
        let _ = writeln!(s, "{op}: only in B, not compared");
    }
    let slower: Vec<&str> = c.ops.iter().filter(|o| o.verdict == Verdict::Slower).map(|o| o.op.as_str()).collect();
    if slower.is_empty() {
        let _ = writeln!(s, "no significant regression beyond {}%", pct_text(c.threshold));
    } else {
        let _ = writeln!(s, "significant regression beyond {}%: {}", pct_text(c.threshold), slower.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_kth(a: &[i64], b: &[i64], k: u64) -> i64 {
        let mut d: Vec<i64> = b.iter().flat_map(|y| a.iter().map(move |x| y - x)).collect();
        d.sort_unstable();
        d[k as usize - 1]
    }

    #[test]
    fn kth_difference_matches_brute_force() {
        let a = vec![3, 3, 7, 10, 15, 22];
        let b = vec![-4, 1, 8, 8, 30];
        for k in 1..=30 {
            assert_eq!(kth_difference(&a, &b, k), brute_kth(&a, &b, k), "k={k}");
        }
    }

    #[test]
    fn hodges_lehmann_and_wilcox_reference() {
        // Reference figures by direct enumeration of all pairs (an independent computation):
        // U = 15, normal approximation with tie and continuity corrections p = 0.24462,
        // median of the 50 differences y - x = -30.5.
        let x = [80, 83, 189, 104, 145, 138, 191, 164, 73, 146];
        let y = [115, 88, 90, 74, 121];
        let t = shift_test(&x, &y, 0.95).unwrap();
        assert_eq!(t.u, 15.0);
        assert!((t.p_value - 0.244_623_605).abs() < 1e-6, "{}", t.p_value);
        assert_eq!(t.shift, -30.5);
    }

    #[test]
    fn thresholds() {
        assert_eq!(parse_threshold("2%").unwrap(), 0.02);
        assert_eq!(parse_threshold("0.5").unwrap(), 0.005);
        assert!(parse_threshold("-1%").is_err() && parse_threshold("two").is_err());
    }
}

/// A fraction as a percentage for people: 0.035 → `3.5`, 0.02 → `2` (no binary-float tail).
fn pct_text(fraction: f64) -> String {
    let s = format!("{:.4}", fraction * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod pct_text_tests {
    #[test]
    fn thresholds_print_without_float_noise() {
        assert_eq!(super::pct_text(0.035), "3.5");
        assert_eq!(super::pct_text(0.02), "2");
        assert_eq!(super::pct_text(0.001), "0.1");
    }
}
