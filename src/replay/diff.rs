//! `cardbench trace diff A B`: two traces of the same plan aligned command by command and
//! compared: status words, response data outside the masks, lengths, commands, and the wire
//! time per command name.
//!
//! Commands are aligned by (case = `test_step`, plan step, repeat, command name, occurrence
//! of that name within the step), so two runs line up however their interleaving of heads or
//! their procedure bytes differ (a command is folded with its GET RESPONSE and re-send rows,
//! as the terminal saw it). Card and power events are not compared. The first trace's
//! commands are held in memory (a few hundred bytes each); the second is streamed.

use super::bytes::fold;
use super::compare::{compare, hexdiff};
use super::stream::{Selection, Unit, Units};
use super::timing::{Timing, TimingLine};
use crate::event::{Exchange, RowKind};
use crate::mask::Mask;
use crate::trace::{Rows, TraceError};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// Where a command sits in its plan, the same in every run of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub struct Key {
    pub case: String,
    pub step: String,
    pub repeat: u32,
    pub command_name: String,
    /// 1 for the first command of that name in the step, 2 for the second…
    pub occurrence: u32,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let case = if self.case.is_empty() { "-" } else { &self.case };
        let step = if self.step.is_empty() { String::new() } else { format!(" {}", self.step) };
        let repeat = if self.repeat > 1 { format!(" repeat {}", self.repeat) } else { String::new() };
        write!(f, "{case}{step}{repeat}: {} #{}", self.command_name, self.occurrence)
    }
}

/// One aligned command that differs beyond masks and timing, or that only one trace has.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    #[serde(flatten)]
    pub key: Key,
    pub line_a: Option<u64>,
    pub line_b: Option<u64>,
    /// `missing-in-b`, `missing-in-a`, or what `replay::compare` found (SW, length, data,
    /// command) in one line.
    pub what: String,
    pub sw_a: Option<String>,
    pub sw_b: Option<String>,
    pub diff: String,
}

/// Per-command differences hidden by the masks (dynamic bytes: randoms, signatures, MACs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub commands_a: u64,
    pub commands_b: u64,
    pub aligned: u64,
    pub same: u64,
    /// Aligned commands whose bytes differ only where a mask allows (response masks, and in
    /// commands the data fields the card spec says carry randoms or values derived from them).
    pub masked_only: u64,
    pub differences: Vec<Difference>,
    pub timing_threshold_pct: f64,
    /// Median wire time per command name, A as "captured" and B as "replayed".
    pub timing: Vec<TimingLine>,
}

impl DiffReport {
    pub fn same(&self) -> bool {
        self.differences.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "trace diff {} {}: {} commands in A, {} in B, {} aligned: {} same, {} differ only under masks, {} differences\n",
            self.a,
            self.b,
            self.commands_a,
            self.commands_b,
            self.aligned,
            self.same,
            self.masked_only,
            self.differences.len()
        );
        for d in &self.differences {
            let at = |l: Option<u64>| l.map_or("-".to_string(), |l| l.to_string());
            s += &format!("DIFF  {}  (A line {}, B line {}): {}\n", d.key, at(d.line_a), at(d.line_b), d.what);
            for l in d.diff.lines() {
                s += &format!("  {l}\n");
            }
        }
        if !self.timing.is_empty() {
            s += &format!("timing, median wire time per command (A → B; ! beyond {}%):\n", self.timing_threshold_pct);
            for t in &self.timing {
                s += &t.render();
                s.push('\n');
            }
        }
        s
    }
}

struct Side {
    line: u64,
    x: Exchange,
}

/// Folded commands of a trace with their alignment keys.
fn commands(path: &Path, mut each: impl FnMut(Key, Side)) -> Result<u64, TraceError> {
    let mut seen: HashMap<(String, String, u32, String), u32> = HashMap::new();
    let mut n = 0;
    for unit in Units::new(Rows::open(path)?, Selection::default()) {
        let Unit::Command { lines, rows } = unit? else { continue };
        let x = fold(&rows);
        let name = match x.command.as_slice() {
            [cla, ins, ..] => crate::cmds::name(*cla, *ins).to_string(),
            _ => "UNKNOWN".into(),
        };
        let occ = seen.entry((x.test_step.clone(), x.step.clone(), x.repeat, name.clone())).or_default();
        *occ += 1;
        let key = Key {
            case: x.test_step.clone(),
            step: x.step.clone(),
            repeat: x.repeat,
            command_name: name,
            occurrence: *occ,
        };
        n += 1;
        each(key, Side { line: lines[0], x });
    }
    Ok(n)
}

/// The command bytes of `b` with its dynamic bytes (`mask::dynamic_command`) replaced by
/// `a`'s, when the two commands have the same header and length: what is left to compare is
/// what must be equal.
fn with_dynamic_from(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    if a.len() != b.len() || a.len() < 5 || a[..4] != b[..4] {
        return None;
    }
    let mut out = b.to_vec();
    for (s, e) in crate::mask::dynamic_command(b).clip(b.len()).iter() {
        out[s..=e].copy_from_slice(&a[s..=e]);
    }
    Some(out)
}

fn union(a: &Mask, b: &Mask, len: usize) -> Mask {
    let covered: Vec<usize> = (0..len).filter(|i| a.covers(*i) || b.covers(*i)).collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for i in covered {
        match ranges.last_mut() {
            Some((_, e)) if *e + 1 == i => *e = i,
            _ => ranges.push((i, i)),
        }
    }
    Mask::ranges(&ranges)
}

/// Compare two traces; `threshold_pct` flags timing changes.
pub fn diff(a: &Path, b: &Path, threshold_pct: f64) -> Result<DiffReport, TraceError> {
    let mut left: HashMap<Key, Side> = HashMap::new();
    let mut r = DiffReport {
        a: a.display().to_string(),
        b: b.display().to_string(),
        timing_threshold_pct: threshold_pct,
        ..DiffReport::default()
    };
    r.commands_a = commands(a, |k, s| {
        left.insert(k, s);
    })?;
    let mut timing = Timing::default();
    let mut diffs = Vec::new();
    r.commands_b = commands(b, |k, sb| {
        let Some(sa) = left.remove(&k) else {
            diffs.push(Difference {
                key: k,
                line_a: None,
                line_b: Some(sb.line),
                what: "missing in A".into(),
                sw_a: None,
                sw_b: Some(format!("{:04X}", sb.x.sw)),
                diff: String::new(),
            });
            return;
        };
        r.aligned += 1;
        let (xa, mut xb) = (sa.x, sb.x);
        if xa.kind != RowKind::InDoubt && xb.kind != RowKind::InDoubt {
            timing.add(&k.command_name, xa.duration_ns, xb.duration_ns);
        }
        let raw_same = xa.command == xb.command && xa.response == xb.response && xa.sw == xb.sw && xa.kind == xb.kind;
        if raw_same {
            r.same += 1;
            return;
        }
        if let Some(c) = with_dynamic_from(&xa.command, &xb.command) {
            xb.command = c;
        }
        let mut expected = xa.clone();
        expected.mask = union(&xa.mask, &xb.mask, xa.response.len().max(xb.response.len()));
        let check = compare(&expected, &xb);
        if check.is_match() {
            r.masked_only += 1;
            return;
        }
        let bytes = |x: &Exchange| [&x.response[..], &x.sw.to_be_bytes()].concat();
        diffs.push(Difference {
            key: k,
            line_a: Some(sa.line),
            line_b: Some(sb.line),
            what: check.describe(),
            sw_a: Some(format!("{:04X}", xa.sw)),
            sw_b: Some(format!("{:04X}", xb.sw)),
            diff: hexdiff(&bytes(&xa), &bytes(&xb), &expected.mask),
        });
    })?;
    let mut missing: Vec<(Key, Side)> = left.into_iter().collect();
    missing.sort_by_key(|(_, s)| s.line);
    for (k, s) in missing {
        diffs.push(Difference {
            key: k,
            line_a: Some(s.line),
            line_b: None,
            what: "missing in B".into(),
            sw_a: Some(format!("{:04X}", s.x.sw)),
            sw_b: None,
            diff: String::new(),
        });
    }
    diffs.sort_by_key(|d| (d.line_a.unwrap_or(u64::MAX), d.line_b));
    r.differences = diffs;
    r.timing = timing.lines(threshold_pct);
    Ok(r)
}
