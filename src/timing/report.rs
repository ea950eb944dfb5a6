//! What a timing run leaves and shows (docs/timing.md, "Outputs"): `timing.json`,
//! `timing.csv`, `timing.svg`, and the console table with a text histogram per op.

use super::sample::Sample;
use super::stats::{CardTime, Interval, OpStats, Summary, CONFIDENCE, RESAMPLES};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `schema` of timing.json; the part before the slash names the family, the number its version.
pub const SCHEMA: &str = "cardbench-timing/1";
pub const SCHEMA_FAMILY: &str = "cardbench-timing/";

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The content of timing.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingJson {
    pub schema: String,
    pub run_id: String,
    /// How the figures were computed, so a reader can defend them.
    pub method: Method,
    pub ops: Vec<OpStats>,
    /// Whatever the run adds about itself (host timer jitter, ...), kept at the top level.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    pub unit: String,
    pub quantiles: String,
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    pub card_time: String,
    pub outliers: String,
}

impl TimingJson {
    pub fn new(run_id: &str, ops: &[OpStats]) -> TimingJson {
        TimingJson {
            schema: SCHEMA.into(),
            run_id: run_id.into(),
            method: Method {
                unit: "ns".into(),
                quantiles: "Hyndman-Fan type 8 (statrs)".into(),
                confidence: CONFIDENCE,
                bootstrap_resamples: RESAMPLES,
                card_time: "median of op - baseline paired by iteration; percentile bootstrap over pairs".into(),
                outliers: "Tukey fences q1 - 1.5 IQR, q3 + 1.5 IQR; counted and kept".into(),
            },
            ops: ops.to_vec(),
            extra: Default::default(),
        }
    }
}

/// Write `text` to `path` through a temporary file in the same folder, so a reader never
/// sees half a file.
fn write_atomic(path: &Path, text: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError { path: path.into(), source };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

pub fn write_json(path: &Path, doc: &TimingJson) -> Result<(), ReportError> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| ReportError { path: path.into(), source: e.into() })?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// The columns of timing.csv: one row per op × head × card × measure (op, baseline, card).
pub const CSV_COLUMNS: [&str; 23] = [
    "op",
    "head",
    "card_id",
    "atr",
    "measure",
    "n",
    "min_ns",
    "p5_ns",
    "q1_ns",
    "median_ns",
    "q3_ns",
    "p95_ns",
    "p99_ns",
    "max_ns",
    "mean_ns",
    "sd_ns",
    "mad_ns",
    "ci_lo_ns",
    "ci_hi_ns",
    "fence_lo_ns",
    "fence_hi_ns",
    "outliers_low",
    "outliers_high",
];

pub fn csv_text(stats: &[OpStats]) -> String {
    // Three decimals of a nanosecond are more than any timer resolves; the rest is float noise.
    let num = |x: f64| if x.is_finite() { format!("{}", (x * 1000.0).round() / 1000.0) } else { String::new() };
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS);
    for s in stats {
        let id = [s.op.clone(), s.head.clone(), s.card_id.clone(), s.atr.clone()];
        let summary_row = |measure: &str, m: &Summary| -> Vec<String> {
            let mut r = id.to_vec();
            r.push(measure.into());
            r.push(m.n.to_string());
            for x in [m.min, m.p5, m.q1, m.median, m.q3, m.p95, m.p99, m.max, m.mean, m.sd, m.mad] {
                r.push(num(x));
            }
            for x in [m.median_ci.lo, m.median_ci.hi, m.fence_lo, m.fence_hi] {
                r.push(num(x));
            }
            r.push(m.outliers_low.to_string());
            r.push(m.outliers_high.to_string());
            r
        };
        let _ = w.write_record(summary_row("op", &s.op_time));
        if let Some(b) = &s.baseline {
            let _ = w.write_record(summary_row("baseline", b));
        }
        if let Some(c) = &s.card_time {
            let mut r = id.to_vec();
            r.push("card".into());
            r.push(c.pairs.to_string());
            let mut cells = vec![String::new(); 17];
            cells[3] = num(c.median);
            cells[8] = num(c.mean);
            cells[9] = num(c.sd);
            cells[11] = num(c.ci.lo);
            cells[12] = num(c.ci.hi);
            r.extend(cells);
            let _ = w.write_record(r);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

pub fn write_csv(path: &Path, stats: &[OpStats]) -> Result<(), ReportError> {
    write_atomic(path, csv_text(stats).as_bytes())
}

/// Files written by `write_outputs`.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub json: PathBuf,
    pub csv: PathBuf,
    pub svg: PathBuf,
}

/// timing.json, timing.csv and timing.svg into a run folder.
pub fn write_outputs(dir: &Path, doc: &TimingJson, samples: &[Sample]) -> Result<Outputs, ReportError> {
    let out = Outputs { json: dir.join("timing.json"), csv: dir.join("timing.csv"), svg: dir.join("timing.svg") };
    write_json(&out.json, doc)?;
    write_csv(&out.csv, &doc.ops)?;
    write_atomic(&out.svg, svg(&doc.run_id, samples, &doc.ops).as_bytes())?;
    Ok(out)
}

/// Everything a finished timing run reports, in one call: summarize the samples, write
/// timing.json (with `extra` at its top level, e.g. the host timer jitter), timing.csv and
/// timing.svg into `dir`, and return the written paths, the statistics and the console text.
pub fn finish_run(
    dir: &Path,
    run_id: &str,
    samples: &[Sample],
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<(Outputs, Vec<OpStats>, String), ReportError> {
    let stats = super::stats::summarize(samples);
    let mut doc = TimingJson::new(run_id, &stats);
    doc.extra = extra;
    let out = write_outputs(dir, &doc, samples)?;
    let text = console(samples, &stats);
    Ok((out, stats, text))
}

/// A duration in ns with a unit that keeps 4-6 significant digits.
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if !ns.is_finite() {
        "-".into()
    } else if a >= 1e9 {
        format!("{:.4} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The op's own durations from the samples of one `OpStats`.
fn op_values(samples: &[Sample], s: &OpStats) -> Vec<f64> {
    samples
        .iter()
        .filter(|x| !x.baseline && x.op == s.op && x.head == s.head && x.card_id == s.card_id)
        .map(|x| x.duration_ns as f64)
        .collect()
}

/// The range a histogram shows: the values inside the Tukey fences (outliers are counted at
/// the ends instead of squashing the body into one bin).
fn shown_range(values: &[f64], m: &Summary) -> (f64, f64) {
    let inside = values.iter().copied().filter(|v| !m.is_outlier(*v));
    let (lo, hi) = inside.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 0.5, lo + 0.5)
    } else {
        (m.min - 0.5, m.max + 0.5)
    }
}

/// Counts per bin over `range`, and the counts below and above it.
fn bin(values: &[f64], range: (f64, f64), bins: usize) -> (Vec<usize>, usize, usize) {
    let mut counts = vec![0usize; bins];
    let (mut below, mut above) = (0, 0);
    let width = (range.1 - range.0) / bins as f64;
    for v in values {
        if *v < range.0 {
            below += 1;
        } else if *v > range.1 {
            above += 1;
        } else {
            counts[(((v - range.0) / width) as usize).min(bins - 1)] += 1;
        }
    }
    (counts, below, above)
}

/// How many bins to draw: about 2·√n (so a few dozen samples do not scatter into single
/// counts), at most `width`, and at most one bin per step when the values come in steps (a
/// timer's resolution), so quantized values do not draw a comb of empty bins.
fn bins_for(values: &[f64], range: (f64, f64), width: usize) -> usize {
    let width = width.min(((2.0 * (values.len() as f64).sqrt()).ceil() as usize).max(8));
    let mut inside: Vec<f64> = values.iter().copied().filter(|v| *v >= range.0 && *v <= range.1).collect();
    inside.sort_by(f64::total_cmp);
    inside.dedup();
    let step = inside.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    if !step.is_finite() || step <= 0.0 {
        return width;
    }
    (((range.1 - range.0) / step).round() as usize + 1).clamp(1, width)
}

/// A text histogram of `values` on two lines: the bars (unicode blocks, height ∝ count) and
/// under them the median `┃` and its confidence interval `[ ]`. Outliers beyond the Tukey
/// fences are not drawn but counted at the ends (`3‹`, `›2`); the left count has a fixed
/// width so that histograms printed one under the other line up.
pub fn text_histogram(values: &[f64], m: &Summary, width: usize) -> [String; 2] {
    let range = shown_range(values, m);
    let [bars, marks] = text_histogram_in(values, m, width, range);
    [format!("{bars}  {} … {}", fmt_ns(range.0), fmt_ns(range.1)), marks]
}

/// `text_histogram` over a given range (e.g. one shared by two results being compared), without
/// the range written after it; values outside it are counted at the ends.
pub fn text_histogram_in(values: &[f64], m: &Summary, width: usize, range: (f64, f64)) -> [String; 2] {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let width = width.max(8);
    let nb = bins_for(values, range, width);
    let (counts, below, above) = bin(values, range, nb);
    let peak = counts.iter().copied().max().unwrap_or(0).max(1);
    // Each of the `width` characters shows the bin under it (a bin spans several characters
    // when there are fewer bins than characters).
    let bars: String = (0..width)
        .map(|ch| counts[ch * nb / width])
        .map(|c| if c == 0 { ' ' } else { BLOCKS[((c * 8).div_ceil(peak)).clamp(1, 8) - 1] })
        .collect();
    let mut marks = vec![' '; width];
    let pos = |x: f64| {
        let f = (x - range.0) / (range.1 - range.0) * width as f64;
        (f.max(0.0) as usize).min(width - 1)
    };
    marks[pos(m.median_ci.lo)] = '[';
    marks[pos(m.median_ci.hi)] = ']';
    marks[pos(m.median)] = '┃';
    let left = if below > 0 { format!("{below}‹") } else { String::new() };
    let right = if above > 0 { format!("›{above}") } else { String::new() };
    [format!("{left:>6}{bars}{right}"), format!("{:6}{}", "", marks.into_iter().collect::<String>())]
}

/// The range `text_histogram` would show for these values.
pub fn histogram_range(values: &[f64], m: &Summary) -> (f64, f64) {
    shown_range(values, m)
}

fn ci_text(ci: &Interval) -> String {
    format!("[{}, {}]", fmt_ns(ci.lo), fmt_ns(ci.hi))
}

/// The console's table: per op × head × card the op, baseline and card-time figures, then the
/// op's histogram.
pub fn console(samples: &[Sample], stats: &[OpStats]) -> String {
    let mut s = String::new();
    let pct = (CONFIDENCE * 100.0).round();
    let w = stats.iter().map(|o| o.op.chars().count()).max().unwrap_or(0).max(2);
    let hw = stats.iter().map(|o| o.head.chars().count()).max().unwrap_or(0).max(4);
    let _ = writeln!(
        s,
        "{:<w$} {:<hw$} {:<9} {:>6} {:>12} {:>27} {:>12} {:>12} {:>10} {:>9}",
        "OP",
        "HEAD",
        "MEASURE",
        "N",
        "MEDIAN",
        format!("{pct}% CI OF MEDIAN"),
        "P5",
        "P95",
        "MAD",
        "OUTLIERS"
    );
    for o in stats {
        let card = if o.card_id.len() > 8 { &o.card_id[..8] } else { &o.card_id };
        let row = |s: &mut String, what: &str, m: &Summary| {
            let _ = writeln!(
                s,
                "{:<w$} {:<hw$} {:<9} {:>6} {:>12} {:>27} {:>12} {:>12} {:>10} {:>9}",
                o.op,
                o.head,
                what,
                m.n,
                fmt_ns(m.median),
                ci_text(&m.median_ci),
                fmt_ns(m.p5),
                fmt_ns(m.p95),
                fmt_ns(m.mad),
                m.outliers()
            );
        };
        row(&mut s, "op", &o.op_time);
        if let Some(b) = &o.baseline {
            row(&mut s, "baseline", b);
        }
        if let Some(CardTime { pairs, median, ci, unpaired, .. }) = &o.card_time {
            let note = if *unpaired > 0 { format!("  ({unpaired} unpaired)") } else { String::new() };
            let _ = writeln!(
                s,
                "{:<w$} {:<hw$} {:<9} {:>6} {:>12} {:>27}{note}",
                o.op,
                o.head,
                "card",
                pairs,
                fmt_ns(*median),
                ci_text(ci)
            );
        }
        let [bars, marks] = text_histogram(&op_values(samples, o), &o.op_time, 48);
        let _ = writeln!(s, "  card {card:<8}{}", bars.trim_end());
        let _ = writeln!(s, "  {:<13}{}", "", marks.trim_end());
    }
    s
}

fn xml_escape(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const PANEL: (u32, u32) = (800, 280);

/// One op's histogram panel as a standalone SVG document (plotters' SVG backend).
fn panel(values: &[f64], o: &OpStats) -> String {
    use plotters::prelude::*;
    let mut buf = String::new();
    let m = &o.op_time;
    let range = shown_range(values, m);
    let (counts, below, above) = bin(values, range, bins_for(values, range, 40));
    let peak = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let ms = |ns: f64| ns / 1e6;
    {
        let root = SVGBackend::with_string(&mut buf, PANEL).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut caption = format!(
            "{} · {} · card {}   median {} {}",
            o.op,
            o.head,
            o.card_id,
            fmt_ns(m.median),
            ci_text(&m.median_ci)
        );
        if let Some(c) = &o.card_time {
            let _ = write!(caption, " · card time {} {}", fmt_ns(c.median), ci_text(&c.ci));
        }
        let built = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(44)
            .build_cartesian_2d(ms(range.0)..ms(range.1), 0.0..peak * 1.1);
        if let Ok(mut chart) = built {
            let note = match (below, above) {
                (0, 0) => String::new(),
                (b, a) => format!("; {b} below, {a} above the Tukey fences, not drawn"),
            };
            let _ = chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(format!(
                    "op duration, ms (n = {}); red line: median, band: {}% CI of the median{note}",
                    m.n,
                    (CONFIDENCE * 100.0).round()
                ))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .y_desc("count")
                .draw();
            let width = (range.1 - range.0) / counts.len() as f64;
            let _ = chart.draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
                let x0 = range.0 + i as f64 * width;
                Rectangle::new([(ms(x0), 0.0), (ms(x0 + width), *c as f64)], RGBColor(70, 110, 170).filled())
            }));
            // The confidence interval of the median as a translucent band over the bars.
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(ms(m.median_ci.lo), 0.0), (ms(m.median_ci.hi), peak * 1.1)],
                RGBColor(230, 80, 60).mix(0.3).filled(),
            )));
            let _ = chart.draw_series(std::iter::once(PathElement::new(
                vec![(ms(m.median), 0.0), (ms(m.median), peak * 1.1)],
                RGBColor(200, 30, 30).stroke_width(2),
            )));
        }
        let _ = root.present();
    }
    buf
}

/// The run's plot: one `<g class="op">` per op × head × card, each a histogram of the op's
/// durations with the median (red line) and its confidence interval (shaded band).
pub fn svg(run_id: &str, samples: &[Sample], stats: &[OpStats]) -> String {
    let (w, h) = PANEL;
    let total = h as usize * stats.len().max(1);
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total}" viewBox="0 0 {w} {total}">"#
    );
    let _ = writeln!(s, "<title>cardbench timing {}</title>", xml_escape(run_id));
    for (i, o) in stats.iter().enumerate() {
        let body = panel(&op_values(samples, o), o);
        let body = body.trim_start_matches(|c: char| c.is_whitespace());
        let body = if body.starts_with("<?xml") { body.split_once("?>").map_or(body, |(_, r)| r) } else { body };
        let _ = writeln!(
            s,
            r#"<g class="op" data-op="{}" data-head="{}" data-card="{}" transform="translate(0,{})">"#,
            xml_escape(&o.op),
            xml_escape(&o.head),
            xml_escape(&o.card_id),
            i * h as usize
        );
        let _ = writeln!(s, "<title>{} on {}</title>", xml_escape(&o.op), xml_escape(&o.head));
        let _ = writeln!(s, "{}", body.trim());
        let _ = writeln!(s, "</g>");
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::stats::{Options, Summary};

    #[test]
    fn units() {
        assert_eq!(fmt_ns(40_012_345.0), "40.012 ms");
        assert_eq!(fmt_ns(950.0), "950 ns");
        assert_eq!(fmt_ns(12_500.0), "12.500 µs");
    }

    #[test]
    fn quantized_values_draw_no_comb() {
        // A 10 ns timer: 21 distinct values over 48 characters. One bin per step, each drawn
        // over two or three characters: no empty character inside the body.
        let v: Vec<f64> = (0..1000).map(|i| f64::from((i * 5) % 21) * 10.0).collect();
        let m = Summary::of(&v, [1; 32], &Options::default()).unwrap();
        let [bars, _] = text_histogram_in(&v, &m, 48, (0.0, 200.0));
        assert_eq!(bars.trim().chars().count(), 48, "{bars}");
        assert!(!bars.trim().contains(' '), "{bars}");
    }

    #[test]
    fn histogram_marks_median_and_ci() {
        let mut v: Vec<f64> = (0..100).map(|i| 1000.0 + f64::from(i % 10)).collect();
        v.push(5000.0);
        let m = Summary::of(&v, [1; 32], &Options::default()).unwrap();
        let [bars, marks] = text_histogram(&v, &m, 20);
        assert!(bars.ends_with(&format!("›1  {} … {}", fmt_ns(1000.0), fmt_ns(1009.0))), "{bars}");
        assert!(marks.contains('┃'), "{marks}");
        assert_eq!(bars.split('›').next().unwrap().chars().count(), 26, "{bars}");
        assert_eq!(marks.chars().count(), 26);
    }
}
