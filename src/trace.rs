//! The CSV trace (docs/trace-format.md): one row per wire exchange or card event, written
//! batch by batch by the sinks thread and flushed after every batch, so a crash or a kill
//! leaves a parseable file that lacks at most the last `queue::GATHER` of rows, and never an
//! in-doubt row (the link waits until that one is flushed).

use crate::event::{Event, Exchange, RowKind};
use crate::sinks::Sink;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
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

/// Read a whole trace CSV into memory. Every field is checked: a bad one is an error naming
/// the file, the line and the column. The one exception is the last line when it is cut short
/// (no newline, too few fields): the trace of a killed run is read up to it. Traces written
/// before the `kind` and `error` columns existed are read too (the kind comes from `note`).
/// The parser is `Rows`; use it directly for traces too long to hold in memory.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    collect(Rows::open(path)?)
}

/// `read_trace` over bytes already in memory; `path` only names them in errors.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Trace, TraceError> {
    let ends_whole = bytes.last().is_none_or(|b| *b == b'\n');
    collect(Rows::from_reader(path, bytes, ends_whole)?)
}

fn collect<R: Read>(mut rows: Rows<R>) -> Result<Trace, TraceError> {
    let mut out = Trace::default();
    for row in rows.by_ref() {
        out.rows.push(row?);
    }
    out.cut_last_row = rows.cut_last_row();
    Ok(out)
}

/// Where each field sits in the file's header (older traces lack some columns).
struct Columns {
    idx: [usize; 12],
    kind: Option<usize>,
    error: Option<usize>,
    /// Columns 18-21 (`atr`, `step`, `repeat`, `mask`); traces older than them read as empty.
    atr: Option<usize>,
    step: Option<usize>,
    repeat: Option<usize>,
    mask: Option<usize>,
    width: usize,
}

/// A trace read row by row from a file, with the checks of `read_trace`: memory stays the
/// same whatever the length of the trace (one row and the one after it, which tells whether
/// a short row is a cut last line). After the first error the iterator ends.
pub struct Rows<R: Read> {
    path: PathBuf,
    r: csv::Reader<R>,
    cols: Columns,
    ends_whole: bool,
    ahead: Option<Result<csv::StringRecord, csv::Error>>,
    line: u64,
    cut_last_row: Option<u64>,
    done: bool,
}

impl Rows<BufReader<File>> {
    /// Open a trace file and check its header.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let io = |source| TraceError::Io { path: path.into(), source };
        let mut f = File::open(path).map_err(io)?;
        // Whether the file ends with a newline decides if a short last row is a cut write
        // (tolerated) or a bad row (an error), so look at the last byte before reading.
        let len = f.metadata().map_err(io)?.len();
        let ends_whole = if len == 0 {
            true
        } else {
            let mut last = [0u8];
            f.seek(SeekFrom::End(-1)).and_then(|_| f.read_exact(&mut last)).map_err(io)?;
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            last[0] == b'\n'
        };
        Rows::from_reader(path, BufReader::with_capacity(1 << 16, f), ends_whole)
    }
}

impl<R: Read> Rows<R> {
    /// Rows from any reader; `path` names the source in errors and `ends_whole` says whether
    /// the data ends with a newline.
    pub fn from_reader(path: &Path, reader: R, ends_whole: bool) -> Result<Self, TraceError> {
        let bad = |line: u64, what: String| TraceError::Bad { path: path.into(), line, what };
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
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
        let cols = Columns {
            idx,
            kind: col("kind"),
            error: col("error"),
            atr: col("atr"),
            step: col("step"),
            repeat: col("repeat"),
            mask: col("mask"),
            width: headers.len(),
        };
        let mut rows =
            Rows { path: path.into(), r, cols, ends_whole, ahead: None, line: 1, cut_last_row: None, done: false };
        rows.ahead = rows.read_one();
        Ok(rows)
    }

    /// The file (or name) the rows come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Line of the row last returned (1 is the header).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The line of a last row left out because it was cut short (known once the rows ran out).
    pub fn cut_last_row(&self) -> Option<u64> {
        self.cut_last_row
    }

    fn read_one(&mut self) -> Option<Result<csv::StringRecord, csv::Error>> {
        let mut rec = csv::StringRecord::new();
        match self.r.read_record(&mut rec) {
            Ok(true) => Some(Ok(rec)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn bad(&self, line: u64, what: String) -> TraceError {
        TraceError::Bad { path: self.path.clone(), line, what }
    }

    fn parse(&self, rec: &csv::StringRecord, line: u64) -> Result<Exchange, TraceError> {
        let bad = |what: String| self.bad(line, what);
        let c = &self.cols;
        let f = |i: usize| rec.get(c.idx[i]).unwrap_or("");
        let num = |i: usize, name: &str| {
            f(i).parse::<u64>().map_err(|_| bad(format!("{name} `{}` is not a whole number", f(i))))
        };
        let hexf =
            |i: usize, name: &str| hex::decode(f(i)).map_err(|_| bad(format!("{name} `{}` is not hex bytes", f(i))));
        let kind = match c.kind.map(|k| rec.get(k).unwrap_or("")) {
            Some(k) => RowKind::parse(k).ok_or_else(|| bad(format!("kind `{k}` is not a row kind")))?,
            None if f(11).starts_with("GET RESPONSE") => RowKind::GetResponse,
            None if f(11).starts_with("re-sent with Le") => RowKind::Resend6C,
            None => RowKind::Command,
        };
        let sw = match f(9) {
            "" if kind == RowKind::InDoubt || !kind.is_wire() => 0,
            s if s.len() == 4 => {
                u16::from_str_radix(s, 16).map_err(|_| bad(format!("sw `{s}` is not 4 hex digits")))?
            }
            s => return Err(bad(format!("sw `{s}` is not 4 hex digits"))),
        };
        let opt = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("");
        let atr = hex::decode(opt(c.atr)).map_err(|_| bad(format!("atr `{}` is not hex bytes", opt(c.atr))))?;
        let repeat = match opt(c.repeat) {
            "" => 0,
            s => s.parse::<u32>().map_err(|_| bad(format!("repeat `{s}` is not a whole number")))?,
        };
        let mask = opt(c.mask).parse::<crate::mask::Mask>().map_err(|e| bad(e.to_string()))?;
        Ok(Exchange {
            seq: num(0, "seq")?,
            wall: chrono::DateTime::parse_from_rfc3339(f(1))
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| bad(format!("wall_time `{}` is not an RFC 3339 time", f(1))))?,
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
            error: opt(c.error).into(),
            atr,
            step: opt(c.step).into(),
            repeat,
            mask,
        })
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<Exchange, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some(current) = self.ahead.take() else {
            self.done = true;
            return None;
        };
        self.ahead = self.read_one();
        let last = self.ahead.is_none();
        let cut = last && !self.ends_whole;
        let result = match current {
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                if cut {
                    self.cut_last_row = Some(line);
                    self.done = true;
                    return None;
                }
                Err(self.bad(line, e.to_string()))
            }
            Ok(rec) => {
                let line = rec.position().map_or(0, |p| p.line());
                self.line = line;
                if rec.len() != self.cols.width {
                    if cut && rec.len() < self.cols.width {
                        self.cut_last_row = Some(line);
                        self.done = true;
                        return None;
                    }
                    Err(self.bad(line, format!("{} fields, the header has {}", rec.len(), self.cols.width)))
                } else {
                    self.parse(&rec, line)
                }
            }
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "seq,wall_time,mono_ns,head,card_id,test_step,protocol_step,command,response,sw,duration_ns,note";

    fn row(seq: u64, sw: &str) -> String {
        format!("{seq},2026-12-01T12:00:00.000000Z,{seq}000,A,,t,s,80B2010008,CB00,{sw},500,")
    }

    #[test]
    fn rows_stream_with_their_lines_and_stop_at_the_first_bad_one() {
        let text = [HEAD.to_string(), row(1, "9000"), row(2, "6A82"), row(3, "9X00"), row(4, "9000")].join("\n") + "\n";
        let mut rows = Rows::from_reader(Path::new("t.csv"), text.as_bytes(), true).unwrap();
        let first = rows.next().unwrap().unwrap();
        assert_eq!((first.seq, first.sw, rows.line()), (1, 0x9000, 2));
        assert_eq!(rows.next().unwrap().unwrap().sw, 0x6A82);
        assert_eq!(rows.line(), 3);
        let e = rows.next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "t.csv:4: sw `9X00` is not 4 hex digits");
        assert!(rows.next().is_none(), "nothing after an error");
    }

    #[test]
    fn a_cut_last_row_ends_the_rows_and_is_reported() {
        let text = [HEAD.to_string(), row(1, "9000"), "2,2026-12-01T12:00:00.0".to_string()].join("\n");
        let mut rows = Rows::from_reader(Path::new("t.csv"), text.as_bytes(), false).unwrap();
        assert!(rows.next().unwrap().is_ok());
        assert!(rows.next().is_none());
        assert_eq!(rows.cut_last_row(), Some(3));
        // The same short row with a newline after it is damage, not a cut.
        let whole = text + "\n";
        let mut rows = Rows::from_reader(Path::new("t.csv"), whole.as_bytes(), true).unwrap();
        assert!(rows.next().unwrap().is_ok());
        assert_eq!(rows.next().unwrap().unwrap_err().to_string(), "t.csv:3: 2 fields, the header has 12");
    }
}
