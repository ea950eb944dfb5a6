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

impl Sink for TraceCsv {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        if let Event::Exchange(x) = e {
            self.write(x)?;
        }
        Ok(())
    }
}
