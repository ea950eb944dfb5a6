//! Statistics of timing samples (docs/timing.md, "Statistics").
//!
//! Quantiles are Hyndman & Fan's type 8 (median-unbiased whatever the distribution; R's
//! `quantile(type = 8)`), as computed by `statrs`' `OrderStatistics`. Confidence intervals of
//! medians are percentile bootstraps with a seed derived from what is summarized, so the same
//! samples always give the same figures.

use super::sample::Sample;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use statrs::statistics::{Data, OrderStatistics, Statistics};

/// Confidence level of every interval this module reports.
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples per interval: enough that the 2.5% and 97.5% points of the bootstrap
/// distribution move by well under one sample's spacing from one seed to another.
pub const RESAMPLES: usize = 2000;

/// A two-sided interval `[lo, hi]` (ns unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// The summary of one set of durations (ns). `sd` is NaN (null in JSON) under two values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p5: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator).
    #[serde(deserialize_with = "nan_if_null")]
    pub sd: f64,
    /// Median absolute deviation from the median, unscaled (× 1.4826 estimates sd for a
    /// normal distribution).
    pub mad: f64,
    /// Tukey fences: q1 − 1.5·IQR and q3 + 1.5·IQR. Values outside are outliers: flagged and
    /// counted, never dropped (every figure above includes them).
    pub fence_lo: f64,
    pub fence_hi: f64,
    pub outliers_low: usize,
    pub outliers_high: usize,
    /// Bootstrap confidence interval of the median.
    pub median_ci: Interval,
}

/// JSON has no NaN: serde_json writes it as null, and this reads null back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// How to compute the intervals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub resamples: usize,
    pub confidence: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { resamples: RESAMPLES, confidence: CONFIDENCE }
    }
}

impl Summary {
    /// Summarize `values` (any order); `None` when there are none. `seed` feeds the bootstrap.
    pub fn of(values: &[f64], seed: [u8; 32], opts: &Options) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut d = Data::new(sorted.clone());
        let q = |d: &mut Data<Vec<f64>>, tau: f64| d.quantile(tau);
        let (q1, median, q3) = (q(&mut d, 0.25), q(&mut d, 0.5), q(&mut d, 0.75));
        let iqr = q3 - q1;
        let (fence_lo, fence_hi) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
        let mut dev = Data::new(sorted.iter().map(|x| (x - median).abs()).collect::<Vec<_>>());
        let mut rng = ChaCha8Rng::from_seed(seed);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p5: q(&mut d, 0.05),
            q1,
            median,
            q3,
            p95: q(&mut d, 0.95),
            p99: q(&mut d, 0.99),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().mean(),
            sd: if sorted.len() < 2 { f64::NAN } else { sorted.iter().std_dev() },
            mad: dev.median(),
            fence_lo,
            fence_hi,
            outliers_low: sorted.iter().take_while(|x| **x < fence_lo).count(),
            outliers_high: sorted.iter().rev().take_while(|x| **x > fence_hi).count(),
            median_ci: bootstrap_median_ci(&sorted, opts, &mut rng),
        })
    }

    pub fn outliers(&self) -> usize {
        self.outliers_low + self.outliers_high
    }

    pub fn is_outlier(&self, x: f64) -> bool {
        x < self.fence_lo || x > self.fence_hi
    }
}

/// The card's own time: op − baseline over the iterations that have both.
///
/// Iteration i's op is paired with iteration i's baseline (measured right after it), and the
/// figure is the median of the paired differences. Pairing is what interleaving is for: host
/// and transport drift slower than one iteration is common to both members of a pair and
/// cancels in the difference, which an unpaired difference of medians would keep as noise.
/// With the transport's own jitter independent from one exchange to the next, the difference
/// of two jitters is symmetric about zero, so the median of the differences estimates the
/// op's card time minus the baseline's without bias even when the jitter is skewed.
/// The interval is a bootstrap over pairs (a pair is resampled whole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardTime {
    /// Iterations with both an op and a baseline sample.
    pub pairs: usize,
    /// Op or baseline samples without a partner of the same iteration (left out here only).
    pub unpaired: usize,
    pub median: f64,
    pub ci: Interval,
    pub mean: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub sd: f64,
}

impl CardTime {
    /// From (op, baseline) samples grouped by iteration; `None` without a single pair.
    pub fn of(op: &[(u32, u64)], baseline: &[(u32, u64)], seed: [u8; 32], opts: &Options) -> Option<CardTime> {
        let (diffs, unpaired) = paired_differences(op, baseline);
        if diffs.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = diffs.iter().map(|d| *d as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let mut rng = ChaCha8Rng::from_seed(seed);
        Some(CardTime {
            pairs: sorted.len(),
            unpaired,
            median: Data::new(sorted.clone()).median(),
            ci: bootstrap_median_ci(&sorted, opts, &mut rng),
            mean: sorted.iter().mean(),
            sd: if sorted.len() < 2 { f64::NAN } else { sorted.iter().std_dev() },
        })
    }
}

/// op − baseline for every iteration that has both, and the count of samples left without a
/// partner. Several samples of one iteration on one side pair in the order they came.
pub fn paired_differences(op: &[(u32, u64)], baseline: &[(u32, u64)]) -> (Vec<i64>, usize) {
    use std::collections::{BTreeMap, VecDeque};
    let mut base: BTreeMap<u32, VecDeque<u64>> = BTreeMap::new();
    for (i, d) in baseline {
        base.entry(*i).or_default().push_back(*d);
    }
    let mut diffs = Vec::with_capacity(op.len());
    let mut unpaired = 0;
    for (i, d) in op {
        match base.get_mut(i).and_then(VecDeque::pop_front) {
            // In i128: no overflow whatever the two u64 are; samples.csv caps them far below.
            Some(b) => diffs.push((*d as i128 - b as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            None => unpaired += 1,
        }
    }
    unpaired += base.values().map(VecDeque::len).sum::<usize>();
    (diffs, unpaired)
}

/// Percentile-bootstrap interval of the median of `sorted` (ascending).
///
/// A resample's median is drawn directly, in O(1) whatever n: the resample's k-th smallest of
/// n positions drawn uniformly from 1..=n is ⌈n·U₍ₖ₎⌉, where U₍ₖ₎, the k-th order statistic
/// of n uniforms, is Beta(k, n − k + 1); for even n the next one is
/// U₍ₖ₊₁₎ = U₍ₖ₎ + (1 − U₍ₖ₎)·(1 − V^(1/(n−k))) with V uniform. This is the same statistic as
/// resampling n values and taking their median (the unit test checks the two against each
/// other), without touching n values per resample.
pub fn bootstrap_median_ci(sorted: &[f64], opts: &Options, rng: &mut impl RngCore) -> Interval {
    use rand_distr::{Beta, Distribution};
    let n = sorted.len();
    if n < 2 || opts.resamples == 0 {
        let x = sorted.first().copied().unwrap_or(f64::NAN);
        return Interval { lo: x, hi: x };
    }
    let k = n.div_ceil(2); // 1-based rank of the (lower) middle
    let nf = n as f64;
    let Ok(beta) = Beta::new(k as f64, (n - k + 1) as f64) else {
        return Interval { lo: f64::NAN, hi: f64::NAN };
    };
    let at = |u: f64| sorted[((nf * u).ceil() as usize).clamp(1, n) - 1];
    let mut medians = Vec::with_capacity(opts.resamples);
    for _ in 0..opts.resamples {
        let u = beta.sample(rng);
        let m = if n % 2 == 1 {
            at(u)
        } else {
            let v = unit_open(rng);
            let next = u + (1.0 - u) * (1.0 - v.powf(1.0 / (n - k) as f64));
            (at(u) + at(next)) / 2.0
        };
        medians.push(m);
    }
    let alpha = 1.0 - opts.confidence;
    let mut m = Data::new(medians);
    Interval { lo: m.quantile(alpha / 2.0), hi: m.quantile(1.0 - alpha / 2.0) }
}

/// A uniform variate in (0, 1).
fn unit_open(rng: &mut impl RngCore) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A bootstrap seed that depends only on what is summarized.
pub fn seed_for(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new().chain_update(b"cardbench timing bootstrap");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The statistics of one op on one head and card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    pub op: String,
    pub head: String,
    pub card_id: String,
    pub atr: String,
    /// The op's own exchanges, transport included.
    pub op_time: Summary,
    /// The neutral command measured interleaved with the op, if any.
    pub baseline: Option<Summary>,
    /// op − baseline from paired iterations, if there are baselines.
    pub card_time: Option<CardTime>,
    /// Iterations whose op sample lies outside the Tukey fences of `op_time`.
    pub outlier_iterations: Vec<u32>,
}

/// Statistics per op × head × card, in the order each first appears in `samples`.
pub fn summarize(samples: &[Sample]) -> Vec<OpStats> {
    summarize_with(samples, &Options::default())
}

/// `summarize` with other interval options (e.g. fewer resamples in a live view).
pub fn summarize_with(samples: &[Sample], opts: &Options) -> Vec<OpStats> {
    struct Group<'a> {
        first: &'a Sample,
        op: Vec<(u32, u64)>,
        base: Vec<(u32, u64)>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str, &str), usize> = std::collections::HashMap::new();
    for s in samples {
        let key = (s.op.as_str(), s.head.as_str(), s.card_id.as_str());
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(Group { first: s, op: Vec::new(), base: Vec::new() });
            groups.len() - 1
        });
        let g = &mut groups[g];
        if s.baseline { &mut g.base } else { &mut g.op }.push((s.iteration, s.duration_ns));
    }
    let mut out = Vec::new();
    for g in groups {
        let f = g.first;
        let seed = |what: &str| seed_for(&[&f.op, &f.head, &f.card_id, what]);
        let values = |v: &[(u32, u64)]| v.iter().map(|(_, d)| *d as f64).collect::<Vec<_>>();
        // A group with baselines only has no op to summarize: nothing to report for it.
        let Some(op_time) = Summary::of(&values(&g.op), seed("op"), opts) else { continue };
        let outlier_iterations = g.op.iter().filter(|(_, d)| op_time.is_outlier(*d as f64)).map(|(i, _)| *i).collect();
        out.push(OpStats {
            op: f.op.clone(),
            head: f.head.clone(),
            card_id: f.card_id.clone(),
            atr: f.atr.clone(),
            baseline: Summary::of(&values(&g.base), seed("baseline"), opts),
            card_time: CardTime::of(&g.op, &g.base, seed("card"), opts),
            op_time,
            outlier_iterations,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(v: &[f64]) -> Summary {
        Summary::of(v, [7; 32], &Options::default()).unwrap()
    }

    #[test]
    fn type8_quantiles_of_1_to_10() {
        // R: quantile(1:10, c(.05,.25,.5,.75,.95,.99), type = 8)
        //    1.000000 2.916667 5.500000 8.083333 10.000000 10.000000
        let s = summary(&(1..=10).map(f64::from).collect::<Vec<_>>());
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(s.p5, 1.0), "{}", s.p5);
        assert!(close(s.q1, 2.0 + 11.0 / 12.0), "{}", s.q1);
        assert!(close(s.median, 5.5));
        assert!(close(s.q3, 8.0 + 1.0 / 12.0), "{}", s.q3);
        assert!(close(s.p95, 10.0) && close(s.p99, 10.0));
        assert!(close(s.mean, 5.5));
        assert!(close(s.sd, 3.0276503540974917));
        assert!(close(s.mad, 2.5));
        assert_eq!((s.min, s.max, s.outliers()), (1.0, 10.0, 0));
    }

    #[test]
    fn tukey_outliers_are_counted_and_kept() {
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        v.extend([100.0, 200.0, -50.0]);
        let s = summary(&v);
        assert_eq!((s.outliers_low, s.outliers_high, s.n), (1, 2, 23));
        assert_eq!((s.min, s.max), (-50.0, 200.0));
        assert!(s.is_outlier(100.0) && !s.is_outlier(20.0));
    }

    #[test]
    fn one_value() {
        let s = summary(&[5.0]);
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(back.sd.is_nan() && back.median == 5.0);
        assert_eq!((s.median, s.median_ci, s.n), (5.0, Interval { lo: 5.0, hi: 5.0 }, 1));
        assert!(s.sd.is_nan());
        assert!(Summary::of(&[], [0; 32], &Options::default()).is_none());
    }

    /// The median of a resample given as counts per position of the sorted values: the plain
    /// bootstrap, resampling n values, that `bootstrap_median_ci` must match.
    fn resample_median(sorted: &[f64], counts: &[u32]) -> f64 {
        let n = sorted.len();
        let (k1, k2) = if n % 2 == 1 { (n.div_ceil(2), n.div_ceil(2)) } else { (n / 2, n / 2 + 1) };
        let (mut seen, mut v1) = (0usize, None);
        for (x, c) in sorted.iter().zip(counts) {
            seen += *c as usize;
            if v1.is_none() && seen >= k1 {
                v1 = Some(*x);
            }
            if seen >= k2 {
                return (v1.unwrap_or(*x) + x) / 2.0;
            }
        }
        sorted[n - 1]
    }

    fn plain_bootstrap_medians(sorted: &[f64], resamples: usize, rng: &mut impl RngCore) -> Vec<f64> {
        let n = sorted.len();
        let mut counts = vec![0u32; n];
        (0..resamples)
            .map(|_| {
                counts.iter_mut().for_each(|c| *c = 0);
                for _ in 0..n {
                    counts[((rng.next_u64() as u128 * n as u128) >> 64) as usize] += 1;
                }
                resample_median(sorted, &counts)
            })
            .collect()
    }

    #[test]
    fn order_statistic_draw_matches_plain_resampling() {
        // The distribution of a resample's median, drawn both ways, 40 000 times each, on an
        // odd and an even n: every decile of the two agrees within one sample spacing.
        for n in [11usize, 12, 60] {
            let sorted: Vec<f64> = (0..n).map(|i| (i * i) as f64).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
            let mut plain = Data::new(plain_bootstrap_medians(&sorted, 40_000, &mut rng));
            let opts = Options { resamples: 40_000, confidence: 0.8 };
            let mut fast: Vec<f64> = Vec::new();
            // Central intervals of 80%, 60%, 40% and 20% end at the deciles of the fast draw.
            for c in [0.8, 0.6, 0.4, 0.2] {
                let ci = bootstrap_median_ci(&sorted, &Options { confidence: c, ..opts }, &mut rng);
                fast.push(ci.lo);
                fast.push(ci.hi);
            }
            let taus = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6];
            for (f, tau) in fast.iter().zip(taus) {
                let p = plain.quantile(tau);
                let spacing = (n + 2) as f64; // one position: (i+1)² − i² = 2i + 1 ≈ n near the middle
                assert!((f - p).abs() <= spacing, "n={n} tau={tau}: fast {f} plain {p}");
            }
        }
    }

    #[test]
    fn resample_median_walks_counts() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(resample_median(&sorted, &[0, 2, 0, 2]), 3.0);
        assert_eq!(resample_median(&sorted, &[4, 0, 0, 0]), 1.0);
        assert_eq!(resample_median(&[1.0, 2.0, 3.0], &[1, 0, 2]), 3.0);
    }

    #[test]
    fn pairs_by_iteration() {
        let (d, unpaired) = paired_differences(&[(0, 50), (1, 60), (2, 70)], &[(1, 10), (0, 20), (3, 5)]);
        assert_eq!((d, unpaired), (vec![30, 50], 2));
        let (d, _) = paired_differences(&[(0, u64::MAX)], &[(0, 0)]);
        assert_eq!(d, [i64::MAX]);
    }

    #[test]
    fn same_samples_same_interval() {
        let v: Vec<f64> = (0..101).map(|i| f64::from(i * 37 % 101)).collect();
        assert_eq!(summary(&v).median_ci, summary(&v).median_ci);
        let ci = summary(&v).median_ci;
        assert!(ci.lo < 50.0 && ci.hi > 50.0, "{ci:?}");
    }
}
