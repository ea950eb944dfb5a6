//! The CSV trace (docs/trace-format.md): one row per wire exchange, written and flushed one
//! by one so a crash leaves a parseable file.

use crate::event::{Event, Exchange};
use crate::sinks::Sink;
use std::fs::File;
use std::path::Path;

pub const HEADER: [&str; 15] = [
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
            &format!("{:04X}", x.sw),
            &x.duration_ns.to_string(),
            &x.note,
            name,
        ])?;
        self.w.flush()?;
        self.rows += 1;
        Ok(())
    }
}

/// Read a card's trace CSV (docs/trace-format.md) back into exchanges.
pub fn read(path: &Path) -> Result<Vec<Exchange>, String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = r.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| format!("no column {name}"));
    let c = [
        "seq",
        "wall_time",
        "mono_ns",
        "head",
        "card_id",
        "test_step",
        "protocol_step",
        "command",
        "response",
        "sw",
        "duration_ns",
        "note",
    ]
    .map(col);
    let mut idx = [0usize; 12];
    for (i, x) in c.into_iter().enumerate() {
        idx[i] = x?;
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| e.to_string())?;
        let f = |i: usize| rec.get(idx[i]).unwrap_or("");
        out.push(Exchange {
            seq: f(0).parse().unwrap_or(0),
            wall: chrono::DateTime::parse_from_rfc3339(f(1)).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_default(),
            mono_ns: f(2).parse().unwrap_or(0),
            head: f(3).into(),
            card_id: f(4).into(),
            test_step: f(5).into(),
            protocol_step: f(6).into(),
            command: hex::decode(f(7)).unwrap_or_default(),
            response: hex::decode(f(8)).unwrap_or_default(),
            sw: u16::from_str_radix(f(9), 16).unwrap_or(0),
            duration_ns: f(10).parse().unwrap_or(0),
            note: f(11).into(),
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
}
