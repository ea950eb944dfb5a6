//! The Timing panel's own state beside the batch's per-command timing (`stats::Timing`): a
//! timing spec run live on heads of the profile (`timing::run`, the code of `cardbench time`),
//! its samples summarized by `timing::stats` as they arrive, and two timing results compared by
//! `timing::compare` (`cardbench time compare`). Applied to the app here; drawn by
//! `panels::timing`.

use super::app::{App, LogKind};
use crate::timing::compare::{self, Comparison, MeasureChoice, Side, Unit};
use crate::timing::sample::Sample;
use crate::timing::stats::{summarize, OpStats};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The live figures are recomputed at most this often while samples arrive (and on the
/// ticker after the last one), not on every sample; and never more often than every
/// `COST_FACTOR` times what the last recompute took, so that a long op (100,000 iterations:
/// 0.25 s a recompute in a debug build) takes at most a fifth of the UI thread.
pub const RECOMPUTE: Duration = Duration::from_millis(250);
pub const COST_FACTOR: u32 = 5;

/// Threshold of a comparison before the operator changes it (as `--threshold`'s default).
pub const DEFAULT_THRESHOLD: f64 = 0.02;
/// What `+` / `-` change the threshold by.
pub const THRESHOLD_STEP: f64 = 0.005;

/// What the Timing panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimingMode {
    /// The batch's per head and command timing.
    #[default]
    Batch,
    /// A timing spec's run.
    Spec,
    /// Two timing results compared.
    Compare,
}

impl TimingMode {
    pub fn next(self) -> TimingMode {
        match self {
            TimingMode::Batch => TimingMode::Spec,
            TimingMode::Spec => TimingMode::Compare,
            TimingMode::Compare => TimingMode::Batch,
        }
    }
}

/// Run `spec` on the DUT heads `heads` of `profile` (each its own group, with the spec's
/// default peer when there is one head), writing under the profile's logs folder:
/// `cardbench time SPEC --profile P --head H… --run-id ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingRequest {
    pub spec: PathBuf,
    pub profile: PathBuf,
    pub heads: Vec<String>,
    pub run_id: String,
}

/// What a finished run says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingEnd {
    pub dir: PathBuf,
    pub samples: usize,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimingPhase {
    Starting,
    Running,
    Stopping,
    Finished,
    Stopped,
    Failed(String),
}

impl TimingPhase {
    pub fn word(&self) -> &'static str {
        match self {
            TimingPhase::Starting => "starting",
            TimingPhase::Running => "running",
            TimingPhase::Stopping => "stopping",
            TimingPhase::Finished => "finished",
            TimingPhase::Stopped => "stopped",
            TimingPhase::Failed(_) => "failed",
        }
    }

    pub fn active(&self) -> bool {
        matches!(self, TimingPhase::Starting | TimingPhase::Running | TimingPhase::Stopping)
    }
}

/// One op × head × card of a run: its samples, its op durations (for the histogram) and its
/// statistics as last computed (none until it has an op sample).
#[derive(Debug, Clone)]
pub struct LiveGroup {
    pub samples: Vec<Sample>,
    pub values: Vec<f64>,
    pub stats: Option<OpStats>,
    /// Samples arrived since `stats` was computed.
    pub stale: bool,
}

impl LiveGroup {
    fn holds(&self, s: &Sample) -> bool {
        self.samples.first().is_some_and(|f| f.op == s.op && f.head == s.head && f.card_id == s.card_id)
    }
}

/// A row of the spec view.
#[derive(Debug, Clone, Copy)]
pub struct LiveRow<'a> {
    pub stats: &'a OpStats,
    pub values: &'a [f64],
}

#[derive(Debug, Clone)]
pub struct LiveTiming {
    pub req: TimingRequest,
    pub phase: TimingPhase,
    pub dir: Option<PathBuf>,
    /// In the order each op × head × card first appeared (the order of timing.json).
    pub groups: Vec<LiveGroup>,
    /// Measured op samples (baselines not counted).
    pub measured: usize,
    /// Samples arrived since the figures were computed.
    pub stale: bool,
    pub computed_at: Option<Instant>,
    /// What the last recompute took (wall time).
    pub cost: Duration,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub stop: Option<Arc<AtomicBool>>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
}

impl LiveTiming {
    fn add(&mut self, s: Sample) {
        // Samples come op by op: the group of the last sample is the likely one.
        let i = match self.groups.iter().rposition(|g| g.holds(&s)) {
            Some(i) => i,
            None => {
                self.groups.push(LiveGroup { samples: Vec::new(), values: Vec::new(), stats: None, stale: false });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[i];
        if !s.baseline {
            g.values.push(s.duration_ns as f64);
            self.measured += 1;
        }
        g.samples.push(s);
        g.stale = true;
        self.stale = true;
    }

    /// Statistics of the groups that got samples since the last time. Ops run one after the
    /// other on each head, so that is the running op of each head, not the whole run: a
    /// recompute costs what those ops' samples cost, however long the run already is.
    fn recompute(&mut self, now: Instant) {
        let t0 = Instant::now();
        for g in self.groups.iter_mut().filter(|g| g.stale) {
            // `summarize` over one group's samples: the figures (and bootstrap seed) that the
            // whole run's timing.json has for it.
            g.stats = summarize(&g.samples).into_iter().next();
            g.stale = false;
        }
        self.stale = false;
        self.computed_at = Some(now);
        self.cost = t0.elapsed();
    }

    /// Whether the figures may be recomputed at `now`.
    fn due(&self, now: Instant) -> bool {
        let gap = RECOMPUTE.max(self.cost * COST_FACTOR);
        self.computed_at.is_none_or(|t| now.saturating_duration_since(t) >= gap)
    }

    /// The rows shown: every op × head × card with statistics.
    pub fn rows(&self) -> Vec<LiveRow<'_>> {
        self.groups.iter().filter_map(|g| Some(LiveRow { stats: g.stats.as_ref()?, values: &g.values })).collect()
    }
}

/// Two timing results compared.
#[derive(Debug, Clone)]
pub struct CompareView {
    pub a: Side,
    pub b: Side,
    pub result: Comparison,
    /// Per op of `result`, its two histograms on one scale (`compare::render_histograms`).
    pub histograms: Vec<String>,
}

impl CompareView {
    fn new(a: Side, b: Side, threshold: f64) -> CompareView {
        let result = compare::compare(&a, &b, threshold, MeasureChoice::Auto, Unit::Sample);
        let text = compare::render_histograms(&a, &b, &result);
        // One block per op: its title line (not indented), then its indented lines.
        let mut histograms: Vec<String> = Vec::new();
        for line in text.lines() {
            match histograms.last_mut() {
                Some(h) if line.starts_with(' ') => {
                    h.push('\n');
                    h.push_str(line);
                }
                _ => histograms.push(line.to_string()),
            }
        }
        CompareView { a, b, result, histograms }
    }

    /// The histogram block of an op.
    pub fn histogram(&self, op: &str) -> Option<&str> {
        self.histograms.iter().find(|h| h.split(' ').next() == Some(op)).map(String::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct TimingView {
    pub mode: TimingMode,
    /// Timing specs the picker offers (`test-plans/timing/`, and typed ones).
    pub specs: Vec<PathBuf>,
    /// The spec chosen for the next run.
    pub spec: Option<PathBuf>,
    /// Heads marked in the head picker (names).
    pub marked: Vec<String>,
    /// Timing result folders the compare pickers offer (under `logs/`, newest first).
    pub results: Vec<PathBuf>,
    /// The first result chosen for a comparison, waiting for the second.
    pub compare_a: Option<PathBuf>,
    pub threshold: f64,
    pub live: Option<LiveTiming>,
    pub compare: Option<CompareView>,
    /// Selected row of the spec or compare view.
    pub sel: usize,
    /// A comparison being read.
    pub loading: bool,
    /// Quit once the timing run being stopped has written its files.
    pub quit_when_done: bool,
}

impl Default for TimingView {
    fn default() -> Self {
        TimingView {
            mode: TimingMode::Batch,
            specs: Vec::new(),
            spec: None,
            marked: Vec::new(),
            results: Vec::new(),
            compare_a: None,
            threshold: DEFAULT_THRESHOLD,
            live: None,
            compare: None,
            sel: 0,
            loading: false,
            quit_when_done: false,
        }
    }
}

impl TimingView {
    pub fn running(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.phase.active())
    }

    /// Rows of the current view (spec or compare).
    pub fn len(&self) -> usize {
        match self.mode {
            TimingMode::Spec => self.live.as_ref().map_or(0, |l| l.rows().len()),
            TimingMode::Compare => self.compare.as_ref().map_or(0, |c| c.result.ops.len()),
            TimingMode::Batch => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Timing result folders directly under each root (a folder with a `samples.csv`), newest
/// first.
pub fn find_results(roots: &[&Path]) -> Vec<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for root in roots {
        let Ok(rd) = std::fs::read_dir(root) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            let csv = e.path().join("samples.csv");
            if let Ok(m) = std::fs::metadata(&csv) {
                found.push((m.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Read both sides of a comparison (`compare::Side::load`).
pub fn load_sides(a: &Path, b: &Path) -> Result<(Side, Side), String> {
    let a = Side::load(&[a.to_path_buf()]).map_err(|e| e.to_string())?;
    let b = Side::load(&[b.to_path_buf()]).map_err(|e| e.to_string())?;
    Ok((a, b))
}

impl App {
    /// A run was asked for: the panel shows it from now on.
    pub(super) fn timing_requested(&mut self, req: TimingRequest) {
        self.log(
            LogKind::Info,
            format!("timing {} on head {} ({})", req.spec.display(), req.heads.join(", "), req.run_id),
        );
        self.timing_view.live = Some(LiveTiming {
            req,
            phase: TimingPhase::Starting,
            dir: None,
            groups: Vec::new(),
            measured: 0,
            stale: false,
            computed_at: None,
            cost: Duration::ZERO,
            started: self.now.mono,
            ended: None,
            stop: None,
            notes: Vec::new(),
            failures: Vec::new(),
        });
        self.timing_view.mode = TimingMode::Spec;
        self.timing_view.sel = 0;
    }

    pub(super) fn timing_launched(&mut self, dir: PathBuf, stop: Arc<AtomicBool>) {
        if let Some(l) = self.timing_view.live.as_mut() {
            if l.phase == TimingPhase::Starting {
                l.phase = TimingPhase::Running;
            }
            // A stop pressed before the thread was up applies now.
            stop.store(l.phase == TimingPhase::Stopping, std::sync::atomic::Ordering::Relaxed);
            l.stop = Some(stop);
            l.dir = Some(dir);
        }
    }

    pub(super) fn timing_sample(&mut self, s: Sample) {
        let now = self.now.mono;
        let Some(l) = self.timing_view.live.as_mut() else { return };
        if l.phase == TimingPhase::Starting {
            l.phase = TimingPhase::Running;
        }
        l.add(s);
        if l.due(now) {
            l.recompute(now);
        }
    }

    /// The ticker: figures left stale by samples that came too close together.
    pub(super) fn timing_tick(&mut self) {
        let now = self.now.mono;
        if let Some(l) = self.timing_view.live.as_mut().filter(|l| l.stale && l.due(now)) {
            l.recompute(now);
        }
    }

    /// `x` in the Timing panel: false when no run was there to stop.
    pub(super) fn stop_timing(&mut self) -> bool {
        let Some(l) =
            self.timing_view.live.as_mut().filter(|l| matches!(l.phase, TimingPhase::Starting | TimingPhase::Running))
        else {
            return false;
        };
        l.phase = TimingPhase::Stopping;
        if let Some(s) = &l.stop {
            s.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.log(LogKind::Info, "timing: stopping after the iterations in progress; the samples so far are written");
        true
    }

    pub(super) fn timing_ended(&mut self, r: Result<TimingEnd, String>) {
        let now = self.now.mono;
        let Some(l) = self.timing_view.live.as_mut() else { return };
        l.stop = None;
        l.ended = Some(now);
        // The last figures from every sample, as timing.json has them.
        l.recompute(now);
        let mut logs = Vec::new();
        match r {
            Ok(end) => {
                l.phase = if end.stopped { TimingPhase::Stopped } else { TimingPhase::Finished };
                logs.push((
                    if end.failures.is_empty() { LogKind::Info } else { LogKind::Error },
                    format!(
                        "timing {} {}: {} samples, {} ops; {}",
                        l.req.spec.display(),
                        l.phase.word(),
                        end.samples,
                        l.groups.len(),
                        end.dir.display()
                    ),
                ));
                logs.extend(end.notes.iter().map(|n| (LogKind::Info, format!("timing: {n}"))));
                logs.extend(end.failures.iter().map(|f| (LogKind::Error, format!("timing: {f}"))));
                l.dir = Some(end.dir);
                l.notes = end.notes;
                l.failures = end.failures;
            }
            Err(e) => {
                logs.push((LogKind::Error, format!("timing {}: {e}", l.req.spec.display())));
                l.phase = TimingPhase::Failed(e);
            }
        }
        for (k, m) in logs {
            self.log(k, m);
        }
        if self.timing_view.quit_when_done {
            self.quit = true;
        }
    }

    pub(super) fn timing_results_listed(&mut self, list: Vec<PathBuf>) {
        self.timing_view.results = list;
    }

    pub(super) fn compare_loaded(&mut self, r: Result<(Side, Side), String>) {
        self.timing_view.loading = false;
        match r {
            Ok((a, b)) => {
                let v = CompareView::new(a, b, self.timing_view.threshold);
                if v.result.ops.is_empty() {
                    self.log(
                        LogKind::Error,
                        format!("{} and {}: no op measured on both sides", v.result.a, v.result.b),
                    );
                }
                self.timing_view.compare = Some(v);
                self.timing_view.mode = TimingMode::Compare;
                self.timing_view.sel = 0;
            }
            Err(e) => self.log(LogKind::Error, format!("cannot compare: {e}")),
        }
    }

    /// A new threshold: the verdicts are judged again.
    pub(super) fn set_threshold(&mut self, t: f64) {
        let v = &mut self.timing_view;
        v.threshold = (t.max(0.0) * 1e6).round() / 1e6;
        if let Some(c) = v.compare.take() {
            v.compare = Some(CompareView::new(c.a, c.b, v.threshold));
        }
    }
}
