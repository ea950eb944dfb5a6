//! The campaign report: one row per fault point (sequence × fault point → outcome), then
//! per-sequence totals and one closing line.

use super::campaign::PointResult;
use super::invariants::Verdict;
use std::io::{self, Write};

/// Counts of each verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub points: usize,
    pub by_verdict: [usize; 6],
}

impl Totals {
    pub fn of<'r>(rows: impl IntoIterator<Item = &'r PointResult>) -> Totals {
        let mut t = Totals::default();
        for r in rows {
            t.points += 1;
            t.by_verdict[Verdict::ALL.iter().position(|v| *v == r.verdict).expect("every verdict is listed")] += 1;
        }
        t
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.by_verdict[Verdict::ALL.iter().position(|x| *x == v).expect("every verdict is listed")]
    }

    pub fn violations(&self) -> usize {
        self.count(Verdict::Violation)
    }
}

/// One line per fault point (only the violations with `only_violations`).
pub fn write_rows(out: &mut impl Write, rows: &[PointResult], only_violations: bool) -> io::Result<()> {
    let w = rows.iter().map(|r| r.sequence.len()).max().unwrap_or(8).max(8);
    let p = rows.iter().map(|r| r.point.to_string().len()).max().unwrap_or(11).max(11);
    writeln!(out, "{:<w$}  {:<p$}  {:<9}  DETAIL", "SEQUENCE", "FAULT POINT", "OUTCOME")?;
    for r in rows.iter().filter(|r| !only_violations || r.verdict == Verdict::Violation) {
        writeln!(out, "{:<w$}  {:<p$}  {:<9}  {}", r.sequence, r.point.to_string(), r.verdict.word(), r.detail)?;
    }
    Ok(())
}

/// The matrix of totals: one line per sequence, one per verdict column, and the total.
pub fn write_totals(out: &mut impl Write, rows: &[PointResult]) -> io::Result<Totals> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.sequence.as_str()) {
            names.push(&r.sequence);
        }
    }
    let w = names.iter().map(|n| n.len()).max().unwrap_or(8).max(8);
    write!(out, "{:<w$}  {:>6}", "SEQUENCE", "POINTS")?;
    for v in Verdict::ALL {
        write!(out, "  {:>9}", v.word())?;
    }
    writeln!(out)?;
    let line = |out: &mut dyn Write, name: &str, t: &Totals| -> io::Result<()> {
        write!(out, "{name:<w$}  {:>6}", t.points)?;
        for n in t.by_verdict {
            write!(out, "  {n:>9}")?;
        }
        writeln!(out)
    };
    for n in &names {
        line(out, n, &Totals::of(rows.iter().filter(|r| r.sequence == *n)))?;
    }
    let all = Totals::of(rows);
    line(out, "total", &all)?;
    Ok(all)
}

/// The closing line.
pub fn summary(t: &Totals, sequences: usize, settle: &str) -> String {
    let parts: Vec<String> = Verdict::ALL.iter().map(|v| format!("{} {}", t.count(*v), v.word())).collect();
    format!("tear: {} fault points in {sequences} sequences (settle: {settle}): {}", t.points, parts.join(", "))
}
