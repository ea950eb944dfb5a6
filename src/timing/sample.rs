//! One timed exchange and the `samples.csv` file that holds them (docs/timing.md, "Outputs").

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One timed exchange (or one timed engine run). `baseline` is true for the neutral command
/// measured interleaved with `op`: a baseline row carries the name of the op it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub op: String,
    pub iteration: u32,
    pub head: String,
    pub card_id: String,
    pub atr: String,
    pub duration_ns: u64,
    pub baseline: bool,
}

/// The largest duration a sample may hold: 2^53 ns (104 days) is exact as an f64 and leaves
/// room for differences in i64; anything above is a broken file, not a measurement.
pub const MAX_DURATION_NS: u64 = 1 << 53;

/// The columns of `samples.csv`, in order.
pub const COLUMNS: [&str; 7] = ["op", "iteration", "head", "card_id", "atr", "duration_ns", "baseline"];

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {what}", path.display())]
    Bad { path: PathBuf, line: u64, what: String },
}

/// Write samples as `samples.csv` (header row, then one row per sample, in the order given).
pub fn write_csv(path: &Path, samples: &[Sample]) -> Result<(), SampleError> {
    let io = |source| SampleError::Io { path: path.into(), source };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    write_to(&mut w, samples).map_err(io)?;
    w.flush().map_err(io)
}

/// The CSV text of `samples` (header included) into any writer.
pub fn write_to(w: &mut impl Write, samples: &[Sample]) -> std::io::Result<()> {
    let mut c = csv::Writer::from_writer(w);
    c.write_record(COLUMNS)?;
    for s in samples {
        c.write_record([
            s.op.as_str(),
            &s.iteration.to_string(),
            &s.head,
            &s.card_id,
            &s.atr,
            &s.duration_ns.to_string(),
            if s.baseline { "true" } else { "false" },
        ])?;
    }
    c.flush()
}

/// Read a `samples.csv`. Columns are found by name (extra columns are ignored); every bad
/// field is an error naming the file and the line.
pub fn read_csv(path: &Path) -> Result<Vec<Sample>, SampleError> {
    let bytes = std::fs::read(path).map_err(|source| SampleError::Io { path: path.into(), source })?;
    read_bytes(path, &bytes)
}

/// `read_csv` over bytes already in memory; `path` only names them in errors.
pub fn read_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<Sample>, SampleError> {
    let bad = |line: u64, what: String| SampleError::Bad { path: path.into(), line, what };
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = r.headers().map_err(|e| bad(1, format!("header: {e}")))?.clone();
    if headers.is_empty() || headers.get(0) == Some("") {
        return Err(bad(1, "empty file: no header row".into()));
    }
    let mut idx = [0usize; COLUMNS.len()];
    for (i, name) in COLUMNS.iter().enumerate() {
        idx[i] = headers
            .iter()
            .position(|h| h == *name)
            .ok_or_else(|| bad(1, format!("no column `{name}` in the header")))?;
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let field = |i: usize| -> Result<&str, SampleError> {
            rec.get(idx[i]).ok_or_else(|| bad(line, format!("missing field `{}`", COLUMNS[i])))
        };
        let op = field(0)?;
        if op.is_empty() {
            return Err(bad(line, "empty `op`".into()));
        }
        let iteration = field(1)?
            .parse::<u32>()
            .map_err(|_| bad(line, format!("`iteration` is not a whole number: '{}'", field(1).unwrap_or(""))))?;
        let duration_ns = field(5)?.parse::<u64>().map_err(|_| {
            bad(line, format!("`duration_ns` is not a whole number of ns: '{}'", field(5).unwrap_or("")))
        })?;
        if duration_ns > MAX_DURATION_NS {
            return Err(bad(line, format!("`duration_ns` {duration_ns} is beyond {MAX_DURATION_NS} ns (104 days)")));
        }
        let baseline = match field(6)? {
            "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(bad(line, format!("`baseline` must be true or false, not '{other}'"))),
        };
        out.push(Sample {
            op: op.to_string(),
            iteration,
            head: field(2)?.to_string(),
            card_id: field(3)?.to_string(),
            atr: field(4)?.to_string(),
            duration_ns,
            baseline,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(op: &str, i: u32, d: u64, baseline: bool) -> Sample {
        Sample {
            op: op.into(),
            iteration: i,
            head: "dut".into(),
            card_id: "C1".into(),
            atr: "3B00".into(),
            duration_ns: d,
            baseline,
        }
    }

    #[test]
    fn round_trip() {
        let v = vec![s("sign", 0, 40_000_000, false), s("sign", 0, 1_000_000, true)];
        let mut buf = Vec::new();
        write_to(&mut buf, &v).unwrap();
        assert_eq!(read_bytes(Path::new("x.csv"), &buf).unwrap(), v);
    }

    #[test]
    fn bad_field_is_located() {
        let text = "op,iteration,head,card_id,atr,duration_ns,baseline\nsign,0,dut,C1,3B,12,false\nsign,1,dut,C1,3B,1x2,false\n";
        let e = read_bytes(Path::new("s.csv"), text.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("s.csv:3: `duration_ns`"), "{e}");
        let text = "op,iteration,head,card_id,atr,duration_ns,baseline\nsign,0,dut,C1,3B,18446744073709551615,false\n";
        let e = read_bytes(Path::new("s.csv"), text.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("s.csv:2: `duration_ns` 18446744073709551615 is beyond"), "{e}");
        let text = "op,iteration,head\n";
        let e = read_bytes(Path::new("s.csv"), text.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, "s.csv:1: no column `card_id` in the header");
    }
}
