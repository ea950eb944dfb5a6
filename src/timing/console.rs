//! A minimal console table (n, medians, op − baseline) printed by `cardbench time` until
//! `timing::stats` and `timing::report` (the statistics: CIs, outliers, histograms) are
//! merged; `run::outputs` is the one place that switches to them.

use super::sample::Sample;
use std::collections::BTreeMap;

/// One row per op × head × card: n, median of the op, of the baseline, and the median of
/// the paired differences (op − baseline of the same iteration), in milliseconds.
pub fn table(samples: &[Sample]) -> Vec<String> {
    type Key<'a> = (&'a str, &'a str, &'a str);
    /// Durations by iteration: the op's and the baseline's.
    type Pair = (BTreeMap<u32, u64>, BTreeMap<u32, u64>);
    let mut by: BTreeMap<Key, Pair> = BTreeMap::new();
    let mut order: Vec<Key> = Vec::new();
    for s in samples {
        let k = (s.op.as_str(), s.head.as_str(), s.card_id.as_str());
        if !by.contains_key(&k) {
            order.push(k);
        }
        let e = by.entry(k).or_default();
        if s.baseline {
            e.1.insert(s.iteration, s.duration_ns);
        } else {
            e.0.insert(s.iteration, s.duration_ns);
        }
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.3}", x / 1e6));
    let mut out = vec![format!(
        "{:<32} {:<6} {:<16} {:>5} {:>12} {:>12} {:>12}",
        "OP", "HEAD", "CARD", "N", "MEDIAN ms", "BASELINE ms", "OP-BASE ms"
    )];
    for k in order {
        let (op, base) = &by[&k];
        let diffs: Vec<f64> = op.iter().filter_map(|(i, d)| base.get(i).map(|b| *d as f64 - *b as f64)).collect();
        out.push(format!(
            "{:<32} {:<6} {:<16} {:>5} {:>12} {:>12} {:>12}",
            k.0,
            k.1,
            k.2,
            op.len(),
            ms(median(op.values().map(|d| *d as f64).collect())),
            ms(median(base.values().map(|d| *d as f64).collect())),
            ms(median(diffs)),
        ));
    }
    out
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}
