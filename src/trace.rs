//! The CSV trace (docs/trace-format.md): one row per wire exchange or card event, written
//! batch by batch by the sinks thread and flushed after every batch, so a crash or a kill
//! leaves a parseable file that lacks at most the last `queue::GATHER` of rows, and never an
//! in-doubt row (the link waits until that one is flushed).

use crate::event::{Event, Exchange, RowKind};
use crate::sinks::Sink;
use std::fs::File;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const HEADER: [&str; 21] = [
    "run_id",
    "seq",
    "wall_time",
    "mono_ns",
    "head",
    "card_id",
    "plan",
    "test_step",
    "protocol_step",
    "command",
    "response",
    "sw",
    "duration_ns",
    "note",
    "command_name",
    "kind",
    "error",
    "atr",
    "step",
    "repeat",
    "mask",
];

pub struct TraceCsv {
    w: csv::Writer<File>,
    run_id: String,
    plan: String,
    rows: u64,
}

impl TraceCsv {
    /// Create the file and write the header. Fails if the file exists: a run never
    /// overwrites another run's trace.
    pub fn create(path: &Path, run_id: &str, plan: &str) -> std::io::Result<TraceCsv> {
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut w = csv::Writer::from_writer(f);
        w.write_record(HEADER)?;
        w.flush()?;
        Ok(TraceCsv { w, run_id: run_id.into(), plan: plan.into(), rows: 0 })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn write(&mut self, x: &Exchange) -> std::io::Result<()> {
        let name = match x.command.as_slice() {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins),
            _ => "UNKNOWN",
        };
        let sw = if x.kind.is_wire() && x.kind != RowKind::InDoubt { format!("{:04X}", x.sw) } else { String::new() };
        self.w.write_record([
            self.run_id.as_str(),
            &x.seq.to_string(),
            &x.wall.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &x.mono_ns.to_string(),
            &x.head,
            &x.card_id,
            &self.plan,
            &x.test_step,
            &x.protocol_step,
            &hex::encode_upper(&x.command),
            &hex::encode_upper(&x.response),
            &sw,
            &x.duration_ns.to_string(),
            &x.note,
            if x.kind.is_wire() { name } else { "" },
            x.kind.as_str(),
            &x.error,
            &hex::encode_upper(&x.atr),
            &x.step,
            &if x.repeat == 0 { String::new() } else { x.repeat.to_string() },
            &x.mask.to_string(),
        ])?;
        self.rows += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// `run.json` beside a trace: what the run was, so a trace can be tied to its plan, tool and
/// terminal randomness (the seed of a reproducible virtual-lab run; `os` otherwise).
pub fn write_run_header(
    dir: &Path,
    run_id: &str,
    plan: &crate::plan::Plan,
    profile: &str,
    rng: &crate::lab::TerminalRng,
) -> std::io::Result<()> {
    let header = serde_json::json!({
        "run_id": run_id,
        "tool": concat!("cardbench ", env!("CARGO_PKG_VERSION")),
        "started": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "plan": plan.id,
        "plan_path": plan.path.display().to_string(),
        "profile": profile,
        "terminal_rng": rng.describe(),
    });
    std::fs::write(dir.join("run.json"), serde_json::to_string_pretty(&header)? + "\n")
}

/// A trace that cannot be read, located.
#[derive(Debug, Error)]
pub enum TraceError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {what}", path.display())]
    Bad { path: PathBuf, line: u64, what: String },
}

/// A trace read back: every whole row, and whether a cut last row (a kill mid-write) was
/// left out.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub rows: Vec<Exchange>,
    pub cut_last_row: Option<u64>,
}

/// Read a trace CSV (docs/trace-format.md) back into rows; see `read_trace`.
pub fn read(path: &Path) -> Result<Vec<Exchange>, TraceError> {
    read_trace(path).map(|t| t.rows)
}

/// Read a trace CSV. Every field is checked: a bad one is an error naming the file, the
/// line and the column. The one exception is the last line when it is cut short (no
/// newline, too few fields): the trace of a killed run is read up to it. Traces written
/// before the `kind` and `error` columns existed are read too (the kind comes from `note`).
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let bytes = std::fs::read(path).map_err(|source| TraceError::Io { path: path.into(), source })?;
    read_bytes(path, &bytes)
}

/// `read_trace` over bytes already in memory; `path` only names them in errors.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Trace, TraceError> {
    let bad = |line: u64, what: String| TraceError::Bad { path: path.into(), line, what };
    let ends_whole = bytes.last().is_none_or(|b| *b == b'\n');
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = r.headers().map_err(|e| bad(1, format!("header: {e}")))?.clone();
    if headers.is_empty() || headers.get(0) == Some("") {
        return Err(bad(1, "empty file: no header row".into()));
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| col(name).ok_or_else(|| bad(1, format!("no column `{name}` in the header")));
    let idx = [
        need("seq")?,
        need("wall_time")?,
        need("mono_ns")?,
        need("head")?,
        need("card_id")?,
        need("test_step")?,
        need("protocol_step")?,
        need("command")?,
        need("response")?,
        need("sw")?,
        need("duration_ns")?,
        need("note")?,
    ];
    let (kind_col, error_col) = (col("kind"), col("error"));
    let (atr_col, step_col, repeat_col, mask_col) = (col("atr"), col("step"), col("repeat"), col("mask"));
    let mut out = Trace::default();
    let mut records = r.records().peekable();
    while let Some(rec) = records.next() {
        let last = records.peek().is_none();
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                if last && !ends_whole {
                    out.cut_last_row = Some(line);
                    break;
                }
                return Err(bad(line, e.to_string()));
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != headers.len() {
            if last && !ends_whole && rec.len() < headers.len() {
                out.cut_last_row = Some(line);
                break;
            }
            return Err(bad(line, format!("{} fields, the header has {}", rec.len(), headers.len())));
        }
        let f = |i: usize| rec.get(idx[i]).unwrap_or("");
        let num = |i: usize, name: &str| {
            f(i).parse::<u64>().map_err(|_| bad(line, format!("{name} `{}` is not a whole number", f(i))))
        };
        let hexf = |i: usize, name: &str| {
            hex::decode(f(i)).map_err(|_| bad(line, format!("{name} `{}` is not hex bytes", f(i))))
        };
        let kind = match kind_col.map(|c| rec.get(c).unwrap_or("")) {
            Some(k) => RowKind::parse(k).ok_or_else(|| bad(line, format!("kind `{k}` is not a row kind")))?,
            None if f(11).starts_with("GET RESPONSE") => RowKind::GetResponse,
            None if f(11).starts_with("re-sent with Le") => RowKind::Resend6C,
            None => RowKind::Command,
        };
        let sw = match f(9) {
            "" if kind == RowKind::InDoubt || !kind.is_wire() => 0,
            s if s.len() == 4 => {
                u16::from_str_radix(s, 16).map_err(|_| bad(line, format!("sw `{s}` is not 4 hex digits")))?
            }
            s => return Err(bad(line, format!("sw `{s}` is not 4 hex digits"))),
        };
        let opt = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("");
        let atr =
            hex::decode(opt(atr_col)).map_err(|_| bad(line, format!("atr `{}` is not hex bytes", opt(atr_col))))?;
        let repeat = match opt(repeat_col) {
            "" => 0,
            s => s.parse::<u32>().map_err(|_| bad(line, format!("repeat `{s}` is not a whole number")))?,
        };
        let mask = opt(mask_col).parse::<crate::mask::Mask>().map_err(|e| bad(line, e.to_string()))?;
        out.rows.push(Exchange {
            seq: num(0, "seq")?,
            wall: chrono::DateTime::parse_from_rfc3339(f(1))
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| bad(line, format!("wall_time `{}` is not an RFC 3339 time", f(1))))?,
            mono_ns: num(2, "mono_ns")?,
            head: f(3).into(),
            card_id: f(4).into(),
            test_step: f(5).into(),
            protocol_step: f(6).into(),
            command: hexf(7, "command")?,
            response: hexf(8, "response")?,
            sw,
            duration_ns: num(10, "duration_ns")?,
            note: f(11).into(),
            kind,
            error: opt(error_col).into(),
            atr,
            step: opt(step_col).into(),
            repeat,
            mask,
        });
    }
    Ok(out)
}

impl Sink for TraceCsv {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        if let Event::Exchange(x) = e {
            self.write(x)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        TraceCsv::flush(self)
    }

    fn essential(&self) -> bool {
        true
    }
}
