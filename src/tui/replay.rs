//! The Replay panel's state: a trace file opened and its rows, a live replay of it on a head
//! (each row's check as the replayer reports it, the first divergence), and a second trace
//! aligned beside the first for a diff. Applied to the app here; drawn by `panels::replay`.

use super::align::{align, Pair, Side};
use super::app::{App, LogKind};
use crate::event::{Event, Exchange, RowKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Which of the two traces of the panel a file goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The trace shown, replayed and taken as expected in a diff.
    Main,
    /// The trace beside it.
    Other,
}

#[derive(Debug, Clone)]
pub struct TraceFile {
    pub path: PathBuf,
    pub rows: Vec<Exchange>,
    /// File line where each row starts (the header is line 1): how a replayer names rows.
    pub lines: Vec<u64>,
    /// Line of a last row cut short (a killed run), left out.
    pub cut_last_row: Option<u64>,
}

impl TraceFile {
    /// Index of the row starting at `line`.
    pub fn row_at_line(&self, line: u64) -> Option<usize> {
        self.lines.binary_search(&line).ok()
    }

    pub fn line_of(&self, i: usize) -> u64 {
        self.lines.get(i).copied().unwrap_or(i as u64 + 2)
    }
}

/// Largest trace file the panel reads whole (its rows take about three times the file's size
/// in memory); larger ones are for the streaming `cardbench replay` and `trace diff`.
pub const MAX_FILE: u64 = 256 << 20;

/// Read a trace file for the panel: its rows (`trace::read_trace`, every field checked) and
/// the line each starts on.
pub fn load(path: &Path) -> Result<TraceFile, String> {
    load_limited(path, MAX_FILE)
}

pub fn load_limited(path: &Path, max: u64) -> Result<TraceFile, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size > max {
        return Err(format!(
            "{}: {} MB, more than the {} MB the UI reads whole: use `cardbench replay` or `cardbench trace diff`",
            path.display(),
            size >> 20,
            max >> 20
        ));
    }
    let t = crate::trace::read_trace(path).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(&bytes[..]);
    let mut lines: Vec<u64> = r
        .records()
        .map_while(Result::ok)
        .map(|rec| rec.position().map_or(0, |p| p.line()))
        .take(t.rows.len())
        .collect();
    if lines.len() != t.rows.len() {
        // Cannot happen for a file the reader accepted; one line a row is the best guess.
        lines = (0..t.rows.len() as u64).map(|i| i + 2).collect();
    }
    Ok(TraceFile { path: path.to_path_buf(), rows: t.rows, lines, cut_last_row: t.cut_last_row })
}

/// Replay `trace`'s rows of `trace_head` (and `card`) on the lab head `head` of `profile`:
/// what `cardbench replay TRACE --profile P --map TRACE_HEAD=HEAD [--card ID]` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub trace: PathBuf,
    pub profile: PathBuf,
    pub trace_head: String,
    pub head: String,
    pub card: Option<String>,
    /// Go on after a divergence (`--keep-going`) instead of stopping at the first.
    pub keep_going: bool,
}

/// What the replayer says when it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayEnd {
    /// Commands (with the rows folded into them) and events compared.
    pub checked: u64,
    pub diverged: u64,
    /// Stopped by the operator before the end of the trace.
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayPhase {
    Starting,
    Running,
    Stopping,
    Finished,
    Stopped,
    Failed(String),
}

impl ReplayPhase {
    pub fn word(&self) -> &'static str {
        match self {
            ReplayPhase::Starting => "starting",
            ReplayPhase::Running => "running",
            ReplayPhase::Stopping => "stopping",
            ReplayPhase::Finished => "finished",
            ReplayPhase::Stopped => "stopped",
            ReplayPhase::Failed(_) => "failed",
        }
    }

    pub fn active(&self) -> bool {
        matches!(self, ReplayPhase::Starting | ReplayPhase::Running | ReplayPhase::Stopping)
    }
}

/// A divergence as the replayer reported it (kept for diverging rows only: a long replay
/// that matches keeps one byte per row).
#[derive(Debug, Clone)]
pub struct Divergence {
    /// File lines of the rows it covers (a command and its GET RESPONSE / re-send rows).
    pub lines: Vec<u64>,
    /// What differs, in one line (`RowCheck::describe`).
    pub detail: String,
    /// Expected against actual hex, differing bytes in `[..]` (`replay::compare::hexdiff`).
    pub diff: String,
}

/// Row states kept for every row of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Unchecked,
    Matched,
    Diverged,
}

#[derive(Debug, Clone)]
pub struct LiveReplay {
    pub req: ReplayRequest,
    pub phase: ReplayPhase,
    /// One mark per row of the file.
    pub marks: Vec<Mark>,
    /// Divergences, by the index of their first row.
    pub diverging: BTreeMap<usize, Divergence>,
    /// Rows judged (a command and the rows folded into it count as theirs).
    pub checked: u64,
    /// Divergences (a command and the rows folded into it count once).
    pub diverged: u64,
    pub first_divergence: Option<usize>,
    /// Index of the last row checked.
    pub last: Option<usize>,
    pub stop: Option<Arc<AtomicBool>>,
}

impl LiveReplay {
    fn new(req: ReplayRequest, rows: usize) -> LiveReplay {
        LiveReplay {
            req,
            phase: ReplayPhase::Starting,
            marks: vec![Mark::Unchecked; rows],
            diverging: BTreeMap::new(),
            checked: 0,
            diverged: 0,
            first_divergence: None,
            last: None,
            stop: None,
        }
    }

    pub fn mark(&self, i: usize) -> Mark {
        self.marks.get(i).copied().unwrap_or(Mark::Unchecked)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ReplayView {
    /// Trace files the picker offers (found under `logs/` and `traces/`, and opened ones).
    pub traces: Vec<PathBuf>,
    pub file: Option<TraceFile>,
    pub other: Option<TraceFile>,
    /// The two traces aligned (when both are open).
    pub pairs: Vec<Pair>,
    /// Showing the two traces side by side (else the main trace alone).
    pub side_by_side: bool,
    /// Selected row of the main trace, or pair of the side-by-side view.
    pub sel: usize,
    pub pair_sel: usize,
    /// The selection follows the replay's last checked row.
    pub follow: bool,
    /// The selected row (or pair) opened whole.
    pub detail: bool,
    /// A file being read.
    pub loading: Option<PathBuf>,
    /// The replay being set up goes on after divergences (`R`).
    pub keep_going: bool,
    pub live: Option<LiveReplay>,
}

impl ReplayView {
    /// Number of rows of the current view.
    pub fn len(&self) -> usize {
        if self.side_by_side {
            self.pairs.len()
        } else {
            self.file.as_ref().map_or(0, |f| f.rows.len())
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Indices (in the current view) of the rows that differ: diverging rows of a replay,
    /// differing pairs of the side-by-side view.
    pub fn differences(&self) -> Vec<usize> {
        if self.side_by_side {
            self.pairs.iter().enumerate().filter(|(_, p)| p.differs()).map(|(i, _)| i).collect()
        } else {
            self.live.as_ref().map_or_else(Vec::new, |l| l.diverging.keys().copied().collect())
        }
    }

    /// The trace head and card the selected row belongs to: what a replay takes from it.
    pub fn stream_of_selection(&self) -> Option<(String, Option<String>)> {
        let rows = &self.file.as_ref()?.rows;
        let at = self.sel.min(rows.len().checked_sub(1)?);
        // Card and power events of a head name it too; a row without a head takes the
        // nearest one before it, then after it.
        let x = rows[..=at].iter().rev().chain(rows[at..].iter()).find(|x| !x.head.is_empty())?;
        Some((x.head.clone(), (!x.card_id.is_empty()).then(|| x.card_id.clone())))
    }

    /// Where a pair's rows are: (row of the main trace, row of the other).
    pub fn pair_rows(&self, p: &Pair) -> (Option<&Exchange>, Option<&Exchange>) {
        let a = |i: usize| self.file.as_ref().and_then(|f| f.rows.get(i));
        let b = |i: usize| self.other.as_ref().and_then(|f| f.rows.get(i));
        match p.side {
            Side::Both(i, j) => (a(i), b(j)),
            Side::OnlyA(i) => (a(i), None),
            Side::OnlyB(j) => (None, b(j)),
        }
    }

    fn realign(&mut self) {
        self.pairs = match (&self.file, &self.other) {
            (Some(a), Some(b)) => align(&a.rows, &b.rows),
            _ => Vec::new(),
        };
        self.pair_sel = self.pair_sel.min(self.pairs.len().saturating_sub(1));
    }
}

impl App {
    pub(super) fn trace_file_read(&mut self, slot: Slot, path: PathBuf, result: Result<TraceFile, String>) {
        if self.replay.loading.as_deref() == Some(path.as_path()) {
            self.replay.loading = None;
        }
        let file = match result {
            Ok(t) => t,
            Err(e) => {
                self.log(LogKind::Error, format!("cannot open the trace: {e}"));
                return;
            }
        };
        if slot == Slot::Main && self.replay.live.as_ref().is_some_and(|l| l.phase.active()) {
            self.log(LogKind::Error, "a replay is running: stop it (x) before opening another trace");
            return;
        }
        let rows = file.rows.len();
        let cut = file.cut_last_row.map_or(String::new(), |l| format!(" (cut last row at line {l} left out)"));
        self.log(LogKind::Info, format!("trace {} opened: {rows} rows{cut}", path.display()));
        if !self.replay.traces.iter().any(|p| p == &path) {
            self.replay.traces.insert(0, path.clone());
        }
        match slot {
            Slot::Main => {
                self.replay.file = Some(file);
                self.replay.live = None;
                self.replay.sel = 0;
                self.replay.side_by_side = false;
            }
            Slot::Other => {
                self.replay.other = Some(file);
                self.replay.side_by_side = self.replay.file.is_some();
                self.replay.pair_sel = 0;
            }
        }
        self.replay.detail = false;
        self.replay.realign();
    }

    /// A replay was asked for: the panel shows it from now on.
    pub(super) fn replay_requested(&mut self, req: ReplayRequest) {
        let rows = self.replay.file.as_ref().map_or(0, |f| f.rows.len());
        self.log(
            LogKind::Info,
            format!(
                "replaying {} (trace head {}{}) on head {}",
                req.trace.display(),
                req.trace_head,
                req.card.as_ref().map_or(String::new(), |c| format!(", card {c}")),
                req.head
            ),
        );
        self.replay.live = Some(LiveReplay::new(req, rows));
        self.replay.side_by_side = false;
        self.replay.follow = true;
        self.replay.detail = false;
    }

    pub(super) fn replay_launched(&mut self, stop: Arc<AtomicBool>) {
        if let Some(l) = self.replay.live.as_mut() {
            if l.phase == ReplayPhase::Starting {
                l.phase = ReplayPhase::Running;
            }
            // A stop pressed before the thread was up applies now.
            stop.store(l.phase == ReplayPhase::Stopping, std::sync::atomic::Ordering::Relaxed);
            l.stop = Some(stop);
        }
    }

    /// An event of the replayer's recorder.
    pub(super) fn replay_event(&mut self, e: Event) {
        let (Some(live), Some(file)) = (self.replay.live.as_mut(), self.replay.file.as_ref()) else { return };
        match e {
            Event::Exchange(_) if live.phase == ReplayPhase::Starting => live.phase = ReplayPhase::Running,
            Event::ReplayChecked { lines, matched, detail, diff } => {
                let rows: Vec<usize> = lines.iter().filter_map(|l| file.row_at_line(*l)).collect();
                let Some(&i) = rows.first() else {
                    let n = file.rows.len();
                    let at = lines.first().map_or("no line".into(), |l| format!("line {l}"));
                    self.log(LogKind::Error, format!("replay: {at} is not a row of the opened trace ({n} rows)"));
                    return;
                };
                live.checked += rows.len() as u64;
                live.last = Some(i);
                let mark = if matched { Mark::Matched } else { Mark::Diverged };
                for &r in &rows {
                    live.marks[r] = mark;
                }
                let line = lines[0];
                if !matched {
                    live.diverged += 1;
                    live.diverging.insert(i, Divergence { lines, detail: detail.clone(), diff });
                    if live.first_divergence.is_none() {
                        live.first_divergence = Some(i);
                        // The first divergence is what the operator came for: show it.
                        self.replay.follow = false;
                        self.replay.sel = i;
                        self.log(
                            LogKind::Error,
                            format!("replay: first divergence at row {} (line {line}): {detail}", i + 1),
                        );
                    }
                }
                if self.replay.follow && !self.replay.side_by_side {
                    self.replay.sel = i;
                }
            }
            Event::HeadError { head, error } => self.log(LogKind::Error, format!("replay: head {head}: {error}")),
            _ => {}
        }
    }

    pub(super) fn replay_ended(&mut self, r: Result<ReplayEnd, String>) {
        let Some(live) = self.replay.live.as_mut() else { return };
        live.stop = None;
        let msg = match r {
            Ok(end) => {
                live.phase = if end.stopped { ReplayPhase::Stopped } else { ReplayPhase::Finished };
                let first = live.first_divergence.map_or(String::new(), |i| format!(", first at row {}", i + 1));
                (
                    if end.diverged > 0 { LogKind::Error } else { LogKind::Info },
                    format!(
                        "replay {}: {} commands and events compared, {} diverged{first}",
                        live.phase.word(),
                        end.checked,
                        end.diverged
                    ),
                )
            }
            Err(e) => {
                live.phase = ReplayPhase::Failed(e.clone());
                (LogKind::Error, format!("replay failed: {e}"))
            }
        };
        self.log(msg.0, msg.1);
    }

    /// Stop the replay; false when none runs.
    pub(super) fn stop_replay(&mut self) -> bool {
        let Some(live) = self.replay.live.as_mut().filter(|l| l.phase.active()) else { return false };
        live.phase = ReplayPhase::Stopping;
        if let Some(s) = &live.stop {
            s.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.log(LogKind::Info, "stopping the replay after the row in progress");
        true
    }
}

/// Trace CSVs under `dirs` (a few levels deep), newest first: files whose first line is a
/// trace header (summary.csv and other CSVs are left out).
pub fn find_traces(dirs: &[&Path]) -> Vec<PathBuf> {
    const MAX: usize = 500;
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let mut stack: Vec<(PathBuf, u32)> = dirs.iter().map(|d| (d.to_path_buf(), 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() && depth < 4 {
                stack.push((p, depth + 1));
            } else if md.is_file() && p.extension().is_some_and(|x| x == "csv") && is_trace(&p) {
                found.push((md.modified().unwrap_or(std::time::UNIX_EPOCH), p));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.truncate(MAX);
    found.into_iter().map(|(_, p)| p).collect()
}

fn is_trace(p: &Path) -> bool {
    use std::io::{BufRead, BufReader, Read};
    let Ok(f) = std::fs::File::open(p) else { return false };
    let mut first = String::new();
    if BufReader::new(f).take(4096).read_line(&mut first).is_err() {
        return false;
    }
    let cols: Vec<&str> = first.trim_end().split(',').collect();
    ["seq", "head", "command", "response", "sw"].iter().all(|c| cols.contains(c))
}

/// What the Command column says for a row: the command's name, or for a card, power or
/// step row what it carries (the ATR, the card, the step's parameters).
pub fn event_text(x: &Exchange) -> String {
    if x.kind.is_wire() {
        return super::trace::command_name(&x.command).to_string();
    }
    match x.kind {
        RowKind::PowerOn | RowKind::WarmReset if !x.atr.is_empty() => format!("ATR {}", hex::encode_upper(&x.atr)),
        // An insert's note is the card plan as JSON: the card ID says which card it was.
        RowKind::Insert | RowKind::Remove if !x.card_id.is_empty() => format!("card {}", x.card_id),
        RowKind::Step => x.note.clone(),
        _ => x.error.clone(),
    }
}

/// The plan step of a row, with its repeat index when the step repeats.
pub fn step_text(x: &Exchange) -> String {
    if x.repeat > 1 {
        format!("{} rep {}", x.step, x.repeat)
    } else {
        x.step.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_too_large_is_refused_with_its_size_and_the_way_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.csv");
        std::fs::write(&p, vec![b'x'; 3 << 20]).unwrap();
        let e = load_limited(&p, 2 << 20).unwrap_err();
        assert!(e.contains("big.csv: 3 MB, more than the 2 MB") && e.contains("cardbench replay"), "{e}");
        let e = load(&d.path().join("none.csv")).unwrap_err();
        assert!(e.contains("none.csv"), "{e}");
    }

    #[test]
    fn rows_know_their_lines_when_a_note_spans_two() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        let mut w = crate::trace::TraceCsv::create(&p, "R", "plan").unwrap();
        let row = |note: &str| Exchange {
            head: "A".into(),
            command: vec![0, 0xA4, 4, 0],
            note: note.into(),
            ..Exchange::default()
        };
        for r in [row("one"), row("two\nlines"), row("three")] {
            w.write(&r).unwrap();
        }
        w.flush().unwrap();
        let f = load(&p).unwrap();
        assert_eq!(f.lines, vec![2, 3, 5]);
        assert_eq!(f.row_at_line(5), Some(2));
        assert_eq!(f.row_at_line(4), None);
    }
}
