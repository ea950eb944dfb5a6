//! One captured exchange against its replay: same command, kind, status word, response
//! length, and the same response bytes wherever the captured row's mask does not say they are
//! dynamic by nature (randoms, signatures, MACs, ciphertexts).
//!
//! Written by replay-bytes behind the API of the lead's contract (helper-brief.md) because
//! main did not have it yet; the lead's version replaces this file at the merge.

use crate::event::Exchange;
use crate::mask::Mask;

/// What differs between an expected and an actual exchange (empty = a match).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowCheck {
    pub command: bool,
    pub kind: Option<(String, String)>,
    pub sw: Option<(u16, u16)>,
    pub length: Option<(usize, usize)>,
    /// Offsets of response bytes that differ outside the mask.
    pub bytes: Vec<usize>,
    /// Response bytes that differ under the mask (allowed).
    pub masked: usize,
}

impl RowCheck {
    pub fn is_match(&self) -> bool {
        !self.command && self.kind.is_none() && self.sw.is_none() && self.length.is_none() && self.bytes.is_empty()
    }

    /// One line saying what differs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.command {
            parts.push("command bytes differ".to_string());
        }
        if let Some((e, a)) = &self.kind {
            parts.push(format!("kind {a} instead of {e}"));
        }
        if let Some((e, a)) = self.sw {
            parts.push(format!("SW {a:04X} instead of {e:04X}"));
        }
        if let Some((e, a)) = self.length {
            parts.push(format!("{a} response bytes instead of {e}"));
        }
        if !self.bytes.is_empty() {
            let shown: Vec<String> = self.bytes.iter().take(8).map(|b| b.to_string()).collect();
            let more = if self.bytes.len() > 8 { ", …" } else { "" };
            parts.push(format!(
                "{} response byte{} differ{} outside the mask (at {}{more})",
                self.bytes.len(),
                if self.bytes.len() == 1 { "" } else { "s" },
                if self.bytes.len() == 1 { "s" } else { "" },
                shown.join(", ")
            ));
        }
        if parts.is_empty() {
            return if self.masked > 0 {
                format!("match ({} masked bytes differ)", self.masked)
            } else {
                "match".into()
            };
        }
        parts.join("; ")
    }
}

pub fn compare(expected: &Exchange, actual: &Exchange) -> RowCheck {
    let mut c = RowCheck { command: expected.command != actual.command, ..RowCheck::default() };
    if expected.kind != actual.kind {
        c.kind = Some((expected.kind.as_str().into(), actual.kind.as_str().into()));
    }
    if expected.sw != actual.sw {
        c.sw = Some((expected.sw, actual.sw));
    }
    let (e, a) = (&expected.response, &actual.response);
    if e.len() != a.len() {
        c.length = Some((e.len(), a.len()));
    }
    for i in 0..e.len().min(a.len()) {
        if e[i] != a[i] {
            if expected.mask.covers(i) {
                c.masked += 1;
            } else {
                c.bytes.push(i);
            }
        }
    }
    c
}

/// Two lines, `expected:` and `actual:`, in hex: differing bytes in `[..]`, bytes under the
/// mask shown as `??` on the expected line; a byte only one side has is a difference too.
pub fn hexdiff(expected: &[u8], actual: &[u8], mask: &Mask) -> String {
    let n = expected.len().max(actual.len());
    let (mut e, mut a) = (vec!["expected:".to_string()], vec!["actual:  ".to_string()]);
    for i in 0..n {
        let (x, y) = (expected.get(i), actual.get(i));
        let differ = x != y && !(mask.covers(i) && x.is_some() && y.is_some());
        let show = |b: Option<&u8>, masked: bool| match (b, masked) {
            (None, _) => "  ".to_string(),
            (Some(_), true) => "??".to_string(),
            (Some(b), false) => format!("{b:02X}"),
        };
        let (se, sa) = (show(x, mask.covers(i)), show(y, false));
        if differ {
            e.push(format!("[{se}]"));
            a.push(format!("[{sa}]"));
        } else {
            e.push(se);
            a.push(sa);
        }
    }
    format!("{}\n{}", e.join(" ").trim_end(), a.join(" ").trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_bytes_are_bracketed_and_masked_ones_hidden() {
        let d = hexdiff(&[0x01, 0x02, 0x03, 0x90, 0x00], &[0x01, 0x07, 0x04, 0x90, 0x00], &Mask::ranges(&[(2, 2)]));
        assert_eq!(d, "expected: 01 [02] ?? 90 00\nactual:   01 [07] 04 90 00");
    }
}
