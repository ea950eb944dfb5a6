//! Replaying captured traces (docs/replay.md): `bytes` sends the captured commands again and
//! compares the answers under their masks; `diff` compares two traces of the same plan.

pub mod bytes;
pub mod card;
pub mod compare;
pub mod diff;
pub mod session;
pub mod stream;
pub mod timing;

use crate::event::{Exchange, Recorder};
use crate::lab::Lab;
use crate::sinks;
use crate::trace::{TraceCsv, TraceError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a replay could not run (exit 2); a divergence is an outcome, not an error.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Setup(String),
    #[error("{}:{line}: head {head}: {what}", file.display())]
    Head { file: PathBuf, line: u64, head: String, what: String },
}

/// A row whose replayed answer differs from the captured one.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    /// Line of the command row (or event row) in the source trace (1 is the header).
    pub line: u64,
    /// Line of the last row of its answer (its last GET RESPONSE / re-send row; `line` when
    /// the answer is one row).
    pub last_line: u64,
    pub seq: u64,
    pub trace_head: String,
    pub head: String,
    pub card_id: String,
    pub test_step: String,
    pub step: String,
    pub command_name: String,
    pub command: String,
    pub what: String,
    /// Expected and actual bytes with the differing ones marked (`replay::compare::hexdiff`).
    pub diff: String,
    #[serde(skip)]
    source: String,
}

impl Divergence {
    pub fn new(source: &Path, line: u64, row: &Exchange, head: &str, what: String, diff: String) -> Divergence {
        let command_name = match row.command.as_slice() {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins).to_string(),
            _ => row.kind.as_str().to_string(),
        };
        Divergence {
            line,
            last_line: line,
            seq: row.seq,
            trace_head: row.head.clone(),
            head: head.into(),
            card_id: row.card_id.clone(),
            test_step: row.test_step.clone(),
            step: row.step.clone(),
            command_name,
            command: hex::encode_upper(&row.command),
            what,
            diff,
            source: source.display().to_string(),
        }
    }

    /// The console lines: where, which command, what differs, the bytes.
    pub fn render(&self) -> String {
        let step = if self.step.is_empty() { String::new() } else { format!(" {}", self.step) };
        let through = if self.last_line > self.line {
            format!(", answer through line {}", self.last_line)
        } else {
            String::new()
        };
        let mut s = format!(
            "DIVERGED  {}:{} (seq {}, head {} on {}, card {}, {}{step}{through})\n  {} {}\n  {}",
            self.source,
            self.line,
            self.seq,
            self.trace_head,
            self.head,
            if self.card_id.is_empty() { "-" } else { &self.card_id },
            if self.test_step.is_empty() { "-" } else { &self.test_step },
            self.command_name,
            self.command,
            self.what
        );
        for l in self.diff.lines() {
            s.push_str("\n  ");
            s.push_str(l);
        }
        s
    }
}

/// A row replayed but not judged.
#[derive(Debug, Clone, Serialize)]
pub struct Flagged {
    pub line: u64,
    pub seq: u64,
    pub head: String,
    pub command_name: String,
    pub what: String,
}

/// What a replay found; written as replay.json.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub source_rows: u64,
    pub cut_last_row: Option<u64>,
    /// Commands sent (a command with its GET RESPONSE / re-send rows counts once).
    pub commands: u64,
    pub matched: u64,
    pub divergences: u64,
    /// The first divergences (at most 1000), in trace order.
    pub divergence_rows: Vec<Divergence>,
    /// Commands in doubt in the capture: sent, not compared.
    pub in_doubt: Vec<Flagged>,
    /// Personalization rows of cards the replay made again from an `insert` row's card plan
    /// (not compared: their data is redacted in the capture).
    pub skipped_perso: u64,
    /// Where a replay without --keep-going stopped.
    pub stopped_at_line: Option<u64>,
    pub timing_threshold_pct: f64,
    pub timing: Vec<timing::TimingLine>,
}

impl Outcome {
    pub fn matched_all(&self) -> bool {
        self.divergences == 0
    }
}

/// Replay modes (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Bytes,
    Session,
}

/// Everything `cardbench replay` was asked.
pub struct ReplayArgs {
    pub source: PathBuf,
    pub profile: PathBuf,
    pub map: Vec<String>,
    pub card: Option<String>,
    pub keep_going: bool,
    pub timing_threshold: f64,
    pub run_id: String,
    pub logs: Option<PathBuf>,
    pub quiet: bool,
    /// A front end watching (the TUI): gets the recorder's events, `ReplayChecked` included,
    /// and nothing is printed.
    pub observer: Option<crossbeam_channel::Sender<crate::event::Event>>,
    /// Set by a front end to stop between units.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Where a replay wrote its record.
pub struct Written {
    pub dir: PathBuf,
    pub outcome: Outcome,
}

/// `--map TRACEHEAD=HEAD` pairs resolved against the lab; trace heads not mapped keep their
/// name. Every head of the chosen streams must land on a distinct lab head.
pub fn map_heads(
    lab: &Lab,
    trace_heads: &[String],
    pairs: &[String],
    keep: impl Fn(&str) -> bool,
) -> Result<HashMap<String, usize>, ReplayError> {
    let mut given = HashMap::new();
    for p in pairs {
        let (t, h) = p
            .split_once('=')
            .filter(|(t, h)| !t.is_empty() && !h.is_empty())
            .ok_or_else(|| ReplayError::Setup(format!("--map {p}: expected TRACEHEAD=HEAD")))?;
        if !trace_heads.iter().any(|x| x == t) {
            return Err(ReplayError::Setup(format!(
                "--map {p}: the trace has no head '{t}' (it has: {})",
                trace_heads.join(", ")
            )));
        }
        given.insert(t.to_string(), h.to_string());
    }
    let mut map = HashMap::new();
    for t in trace_heads.iter().filter(|t| keep(t)) {
        let want = given.get(t).cloned().unwrap_or_else(|| t.clone());
        let i = lab.head_index(&want).ok_or_else(|| {
            ReplayError::Setup(if given.contains_key(t) {
                format!("--map {t}={want}: the profile has no head or role '{want}'")
            } else {
                format!("trace head '{t}' is not a head of the profile: map it with --map {t}=HEAD")
            })
        })?;
        if let Some((other, _)) = map.iter().find(|(_, j)| **j == i) {
            return Err(ReplayError::Setup(format!(
                "trace heads '{other}' and '{t}' would both replay on head {}",
                lab.heads[i].name
            )));
        }
        map.insert(t.clone(), i);
    }
    Ok(map)
}

/// `cardbench replay --mode bytes`: check the whole trace, map its heads, then replay it with
/// its own trace, run.json and replay.json in `<logs>/<run_id>/`.
/// Seeded defects of the profile's cards, by card ID: a card a replay makes again gets the
/// defects its ID has in the replay's profile (how a trace is replayed on a defective card).
pub(crate) fn profile_defects(
    loaded: &crate::profile::Loaded,
) -> Result<HashMap<String, crate::lab::Defects>, crate::profile::ConfigError> {
    let mut defects = HashMap::new();
    for spec in &loaded.profile.cards {
        defects.insert(spec.get_ref().id.get_ref().to_uppercase(), crate::lab::card_defects(loaded, spec)?);
    }
    Ok(defects)
}

/// Where a replay writes: `<logs>/<run_id>/` with its own trace and a run.json naming the source.
pub(crate) struct Output {
    pub dir: PathBuf,
    pub trace_path: PathBuf,
    pub plan: String,
    pub sink: TraceCsv,
}

/// Create the replay's folder, trace and run.json (`mode` bytes or session; `terminal_rng`
/// when the replay's terminal randoms are worth recording).
pub(crate) fn open_output(
    a: &ReplayArgs,
    lab: &Lab,
    mode: &str,
    terminal_rng: Option<&str>,
) -> Result<Output, anyhow::Error> {
    use anyhow::Context;
    let dir = a.logs.clone().unwrap_or_else(|| lab.logs.clone()).join(&a.run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let trace_path = dir.join("trace.csv");
    let plan = first_plan(&a.source).unwrap_or_default();
    let sink = TraceCsv::create(&trace_path, &a.run_id, &plan)
        .with_context(|| format!("cannot create {}", trace_path.display()))?;
    let mut header = serde_json::json!({
        "run_id": a.run_id,
        "tool": concat!("cardbench ", env!("CARGO_PKG_VERSION")),
        "started": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "plan": plan,
        "profile": a.profile.display().to_string(),
        "replay_of": a.source.display().to_string(),
        "mode": mode,
    });
    if let Some(rng) = terminal_rng {
        header["terminal_rng"] = rng.into();
    }
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&header)? + "\n")
        .with_context(|| format!("cannot write {}", dir.join("run.json").display()))?;
    Ok(Output { dir, trace_path, plan, sink })
}

pub fn run_bytes(a: &ReplayArgs) -> Result<Written, anyhow::Error> {
    let survey = stream::Survey::of(&a.source)?;
    let loaded = crate::profile::load(&a.profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    let keep = |h: &str| a.card.as_ref().is_none_or(|c| survey.cards.get(h).is_some_and(|s| s.contains(c)));
    if let Some(c) = &a.card {
        if survey.heads_of(c).is_empty() {
            anyhow::bail!("{}: card {c} does not appear in the trace", a.source.display());
        }
    }
    let map = map_heads(&lab, &survey.heads, &a.map, keep)?;
    let defects = profile_defects(&loaded)?;
    // The mapped heads must be usable before the replay's folder is made.
    crate::head::usable::open(&mut lab.heads, map.values().copied())?;
    let Output { dir, trace_path, plan, sink } = open_output(a, &lab, "bytes", None)?;
    let (rec, rx) = Recorder::new(&plan);
    let mut list: Vec<Box<dyn sinks::Sink>> = vec![Box::new(sink)];
    if let Some(tx) = &a.observer {
        list.push(Box::new(sinks::Forward(tx.clone())));
    }
    let sinks = sinks::spawn(rx, list);
    let opts = bytes::BytesOptions {
        map,
        card: a.card.clone(),
        keep_going: a.keep_going,
        timing_threshold: a.timing_threshold,
        defects,
        quiet: a.quiet || a.observer.is_some(),
        watched: a.observer.is_some(),
        stop: a.stop.clone(),
    };
    let result = bytes::replay(&a.source, &survey, &mut lab, &rec, &opts);
    drop(rec);
    let outcome = result?;
    finish(a, &dir, &trace_path, sinks, "bytes", outcome.matched_all(), &outcome)?;
    Ok(Written { dir, outcome })
}

/// After a replay: wait for its trace to be written (an unwritten trace is an error: the
/// replay is not on record), then write replay.json, atomically.
pub(crate) fn finish<T: Serialize>(
    a: &ReplayArgs,
    dir: &Path,
    trace_path: &Path,
    sinks: std::thread::JoinHandle<Vec<String>>,
    mode: &str,
    matched: bool,
    outcome: &T,
) -> Result<(), anyhow::Error> {
    use anyhow::Context;
    let sink_errors = sinks.join().unwrap_or_else(|_| vec!["sink thread panicked".into()]);
    if let Some(e) = sink_errors.first() {
        anyhow::bail!("writing {}: {e}", trace_path.display());
    }
    let json = serde_json::json!({
        "run_id": a.run_id,
        "source": a.source.display().to_string(),
        "mode": mode,
        "result": if matched { "match" } else { "diverged" },
        "outcome": outcome,
    });
    let text = serde_json::to_string_pretty(&json)? + "\n";
    crate::report::atomic::write_atomically(&dir.join("replay.json"), |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", dir.join("replay.json").display()))
}

/// The plan column of a trace's first row (replays record the same plan).
fn first_plan(path: &Path) -> Option<String> {
    let mut r = csv::Reader::from_path(path).ok()?;
    let col = r.headers().ok()?.iter().position(|h| h == "plan")?;
    r.records().next()?.ok()?.get(col).map(str::to_string)
}
