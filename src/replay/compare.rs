//! One captured row against one replayed row: the rule every replay mode, the trace diff
//! and the TUI share. Command bytes, row kind, status word and response length must be
//! equal; response bytes must be equal outside the captured row's mask.

use crate::event::{Exchange, RowKind};
use crate::mask::Mask;
use std::fmt::Write;

/// The outcome of comparing one expected (captured) row with the actual (replayed) one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCheck {
    pub kind: (RowKind, RowKind),
    pub command_equal: bool,
    pub sw: (u16, u16),
    pub len: (usize, usize),
    /// Response offsets outside the mask whose bytes differ (within the shorter response).
    pub differing: Vec<usize>,
}

impl RowCheck {
    pub fn is_match(&self) -> bool {
        self.kind.0 == self.kind.1
            && self.command_equal
            && self.sw.0 == self.sw.1
            && self.len.0 == self.len.1
            && self.differing.is_empty()
    }

    /// One line naming every difference, e.g. `SW 9000 expected, 6985 received; 96 response
    /// bytes expected, 0 received`.
    pub fn describe(&self) -> String {
        if self.is_match() {
            return "match".into();
        }
        let mut parts = Vec::new();
        if self.kind.0 != self.kind.1 {
            parts.push(format!("{} row expected, {} received", self.kind.0.as_str(), self.kind.1.as_str()));
        }
        if !self.command_equal {
            parts.push("command differs".to_string());
        }
        if self.sw.0 != self.sw.1 && self.kind.0.is_wire() {
            parts.push(format!("SW {:04X} expected, {:04X} received", self.sw.0, self.sw.1));
        }
        if self.len.0 != self.len.1 {
            parts.push(format!("{} response bytes expected, {} received", self.len.0, self.len.1));
        }
        if !self.differing.is_empty() {
            parts.push(format!("response bytes {} differ", ranges(&self.differing)));
        }
        parts.join("; ")
    }
}

/// Compare a captured row with a replayed one under the captured row's mask.
pub fn compare(expected: &Exchange, actual: &Exchange) -> RowCheck {
    let mask = &expected.mask;
    let differing = expected
        .response
        .iter()
        .zip(&actual.response)
        .enumerate()
        .filter(|(i, (e, a))| e != a && !mask.covers(*i))
        .map(|(i, _)| i)
        .collect();
    RowCheck {
        kind: (expected.kind, actual.kind),
        command_equal: expected.command == actual.command,
        sw: (expected.sw, actual.sw),
        len: (expected.response.len(), actual.response.len()),
        differing,
    }
}

/// Two hex lines, expected above actual, 16 bytes a line: differing bytes bracketed
/// (`[3F]`), masked bytes of the expected side shown as `??`.
pub fn hexdiff(expected: &[u8], actual: &[u8], mask: &Mask) -> String {
    let n = expected.len().max(actual.len());
    let cell = |b: Option<&u8>, other: Option<&u8>, i: usize, masked_as_q: bool| -> String {
        match b {
            None => "    ".into(),
            Some(_) if masked_as_q && mask.covers(i) => " ?? ".into(),
            Some(b) if mask.covers(i) || other == Some(b) => format!(" {b:02X} "),
            Some(b) => format!("[{b:02X}]"),
        }
    };
    let mut out = String::new();
    for start in (0..n.max(1)).step_by(16) {
        let end = (start + 16).min(n);
        let _ = write!(out, "{start:04X} expected ");
        for i in start..end {
            out += &cell(expected.get(i), actual.get(i), i, true);
        }
        out = out.trim_end().to_string();
        let _ = write!(out, "\n{start:04X} actual   ");
        for i in start..end {
            out += &cell(actual.get(i), expected.get(i), i, false);
        }
        out = out.trim_end().to_string();
        out.push('\n');
    }
    out
}

/// `3 7-9` for offsets [3, 7, 8, 9].
fn ranges(v: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cmd: &str, resp: &str, sw: u16, mask: &str) -> Exchange {
        Exchange {
            command: hex::decode(cmd).unwrap(),
            response: hex::decode(resp).unwrap(),
            sw,
            mask: mask.parse().unwrap(),
            ..Exchange::default()
        }
    }

    #[test]
    fn masked_bytes_may_differ_others_may_not() {
        let e = row("80880000", "00112233", 0x9000, "2-3");
        assert!(compare(&e, &row("80880000", "0011FFFF", 0x9000, "")).is_match());
        let c = compare(&e, &row("80880000", "FF11FFFF", 0x9000, ""));
        assert_eq!(c.describe(), "response bytes 0 differ");
        let c = compare(&e, &row("80880000", "", 0x6985, ""));
        assert_eq!(c.describe(), "SW 9000 expected, 6985 received; 4 response bytes expected, 0 received");
        assert_eq!(compare(&e, &row("80880001", "00112233", 0x9000, "")).describe(), "command differs");
    }

    #[test]
    fn hexdiff_brackets_differences_and_hides_masked_bytes() {
        let d = hexdiff(&[0x00, 0x11, 0x22], &[0x00, 0x12, 0x23], &"2".parse().unwrap());
        assert_eq!(d, "0000 expected  00 [11] ??\n0000 actual    00 [12] 23\n");
    }

    #[test]
    fn offsets_print_as_ranges() {
        assert_eq!(ranges(&[3, 7, 8, 9, 12]), "3 7-9 12");
    }
}
