//! Two traces of the same plan side by side: their rows aligned by case, step, kind and
//! command (CLA/INS), so that a command one trace has and the other lacks leaves a gap instead of
//! shifting every row after it.

use super::check::{compare, Compared};
use crate::event::Exchange;

/// How far ahead a missing row is looked for before two rows are shown as a changed pair.
pub const LOOKAHEAD: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Row `a` of the first trace beside row `b` of the second (indices into the rows).
    Both(usize, usize),
    OnlyA(usize),
    OnlyB(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub side: Side,
    /// None for a row only one trace has; else the comparison, the first trace expected.
    pub check: Option<Compared>,
}

impl Pair {
    pub fn differs(&self) -> bool {
        self.check.as_ref().is_none_or(|c| !c.matched)
    }
}

/// What makes two rows "the same row" of a plan: case, plan step and its repeat, seed step,
/// kind and CLA/INS. Heads, card IDs, times and the rest of the bytes may differ.
type Key<'a> = (&'a str, &'a str, u32, &'a str, crate::event::RowKind, Option<(u8, u8)>);

fn key(x: &Exchange) -> Key<'_> {
    let ins = match x.command.as_slice() {
        [cla, ins, ..] => Some((*cla, *ins)),
        _ => None,
    };
    (&x.test_step, &x.step, x.repeat, &x.protocol_step, x.kind, ins)
}

/// Rows of `a` and `b` in order, paired where their keys agree. Where they do not, the
/// nearer of "rows only in b" or "rows only in a" (within `LOOKAHEAD`) is taken; rows with
/// neither are paired as changed. Linear in the rows for traces that mostly agree.
pub fn align(a: &[Exchange], b: &[Exchange]) -> Vec<Pair> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let both = |i: usize, j: usize| Pair { side: Side::Both(i, j), check: Some(compare(&a[i], &b[j])) };
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if key(&a[i]) == key(&b[j]) {
            out.push(both(i, j));
            i += 1;
            j += 1;
            continue;
        }
        let in_b = (1..=LOOKAHEAD).take_while(|d| j + d < b.len()).find(|d| key(&b[j + d]) == key(&a[i]));
        let in_a = (1..=LOOKAHEAD).take_while(|d| i + d < a.len()).find(|d| key(&a[i + d]) == key(&b[j]));
        match (in_b, in_a) {
            (Some(d), e) if e.is_none_or(|e| d <= e) => {
                out.extend((j..j + d).map(|k| Pair { side: Side::OnlyB(k), check: None }));
                j += d;
            }
            (_, Some(e)) => {
                out.extend((i..i + e).map(|k| Pair { side: Side::OnlyA(k), check: None }));
                i += e;
            }
            _ => {
                out.push(both(i, j));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend((i..a.len()).map(|k| Pair { side: Side::OnlyA(k), check: None }));
    out.extend((j..b.len()).map(|k| Pair { side: Side::OnlyB(k), check: None }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(case: &str, ins: u8, sw: u16) -> Exchange {
        Exchange {
            head: "D1".into(),
            test_step: case.into(),
            command: vec![0x80, ins, 0, 0],
            sw,
            ..Exchange::default()
        }
    }

    #[test]
    fn a_missing_row_leaves_a_gap_and_a_changed_sw_is_a_differing_pair() {
        let a = vec![x("T1", 0xA4, 0x9000), x("T1", 0xB0, 0x9000), x("T2", 0xB2, 0x9000), x("T3", 0xD2, 0x9000)];
        let b = vec![x("T1", 0xA4, 0x9000), x("T2", 0xB2, 0x6A82), x("T3", 0xD2, 0x9000), x("T4", 0x01, 0x9000)];
        let p = align(&a, &b);
        let sides: Vec<Side> = p.iter().map(|p| p.side).collect();
        assert_eq!(sides, vec![Side::Both(0, 0), Side::OnlyA(1), Side::Both(2, 1), Side::Both(3, 2), Side::OnlyB(3)]);
        let differs: Vec<bool> = p.iter().map(Pair::differs).collect();
        assert_eq!(differs, vec![false, true, true, false, true]);
    }

    #[test]
    fn rows_with_no_counterpart_nearby_pair_as_changed() {
        let a = vec![x("T1", 0xA4, 0x9000), x("T1", 0xB0, 0x9000)];
        let b = vec![x("T9", 0x10, 0x9000), x("T9", 0x11, 0x9000)];
        let sides: Vec<Side> = align(&a, &b).iter().map(|p| p.side).collect();
        assert_eq!(sides, vec![Side::Both(0, 0), Side::Both(1, 1)]);
    }
}
