//! One captured row against another (a replayed exchange, or the same row of a second
//! trace), as the Replay panel shows it: the verdict and line of `crate::replay::compare`,
//! and its hex diff cut into pieces the screen can highlight.

use crate::event::Exchange;

/// The comparison of an expected row with an actual one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub matched: bool,
    /// One line naming what differs; empty when the rows match.
    pub detail: String,
    /// `replay::compare::hexdiff` of the data and SW: differing bytes in `[..]`, masked
    /// expected bytes `??`; empty when the rows match.
    pub hexdiff: String,
}

pub fn compare(expected: &Exchange, actual: &Exchange) -> Compared {
    let c = crate::replay::compare::compare(expected, actual);
    if c.is_match() {
        // Most pairs of two traces match: no text kept for them.
        return Compared { matched: true, detail: String::new(), hexdiff: String::new() };
    }
    // The status word is part of what differs: shown after the data, as the replayer does.
    let with_sw = |x: &Exchange| {
        let mut v = x.response.clone();
        if x.kind.is_wire() && x.kind != crate::event::RowKind::InDoubt {
            v.extend_from_slice(&x.sw.to_be_bytes());
        }
        v
    };
    Compared {
        matched: false,
        detail: c.describe(),
        hexdiff: crate::replay::compare::hexdiff(&with_sw(expected), &with_sw(actual), &expected.mask),
    }
}

/// A piece of a hex diff line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Same(String),
    /// Bytes that differ (`[..]` in the hex diff), without the brackets.
    Differ(String),
    /// Bytes the mask leaves out of the comparison (`??`).
    Masked(String),
}

/// Cut one hex diff line into what is equal, what differs and what is masked.
pub fn pieces(line: &str) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut same = String::new();
    let mut rest = line;
    let flush = |same: &mut String, out: &mut Vec<Piece>| {
        if !same.is_empty() {
            out.push(Piece::Same(std::mem::take(same)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some(end) = rest.find(']') {
                flush(&mut same, &mut out);
                out.push(Piece::Differ(rest[1..end].to_string()));
                rest = &rest[end + 1..];
                continue;
            }
        }
        if rest.starts_with("??") {
            flush(&mut same, &mut out);
            let n = rest.len() - rest.trim_start_matches('?').len();
            out.push(Piece::Masked(rest[..n].to_string()));
            rest = &rest[n..];
            continue;
        }
        same.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut same, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_difference_matches_and_the_hexdiff_marks_the_rest() {
        let row = |resp: &[u8], mask: &str| Exchange {
            command: vec![0x80, 0x88, 0, 0],
            response: resp.to_vec(),
            sw: 0x9000,
            mask: mask.parse().unwrap(),
            ..Exchange::default()
        };
        let c = compare(&row(&[1, 2, 3], "2"), &row(&[1, 2, 9], ""));
        assert!(c.matched && c.detail.is_empty());
        let c = compare(&row(&[1, 2, 3], "2"), &row(&[7, 2, 9], ""));
        assert!(!c.matched);
        assert_eq!(c.detail, "response bytes 0 differ");
        let first = c.hexdiff.lines().next().unwrap();
        assert!(pieces(first).contains(&Piece::Differ("01".into())), "{first}");
        assert!(pieces(first).contains(&Piece::Masked("??".into())), "{first}");
    }

    #[test]
    fn hexdiff_lines_are_cut_at_the_markers() {
        assert_eq!(
            pieces("expected 90 [00] ?? ?? 01"),
            vec![
                Piece::Same("expected 90 ".into()),
                Piece::Differ("00".into()),
                Piece::Same(" ".into()),
                Piece::Masked("??".into()),
                Piece::Same(" ".into()),
                Piece::Masked("??".into()),
                Piece::Same(" 01".into()),
            ]
        );
        assert_eq!(pieces("a [ b"), vec![Piece::Same("a [ b".into())]);
        assert_eq!(pieces(""), vec![]);
    }
}
