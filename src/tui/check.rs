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
    /// `replay::hexdiff` lines: differing bytes in `[..]`, masked expected bytes as `??`.
    pub hexdiff: String,
}

pub fn compare(expected: &Exchange, actual: &Exchange) -> Compared {
    // TEMPORARY until main has `crate::replay::compare` (the lead's, ~13:00): same kind,
    // command, SW and response, no masks.
    let mut what = Vec::new();
    if expected.kind != actual.kind {
        what.push(format!("kind {} vs {}", expected.kind.as_str(), actual.kind.as_str()));
    }
    if expected.command != actual.command {
        what.push("command differs".to_string());
    }
    if expected.sw != actual.sw {
        what.push(format!("SW {:04X} vs {:04X}", expected.sw, actual.sw));
    }
    if expected.response != actual.response {
        what.push("response differs".to_string());
    }
    let line = |a: &[u8], b: &[u8]| {
        a.iter()
            .enumerate()
            .map(|(i, x)| if b.get(i) == Some(x) { format!("{x:02X}") } else { format!("[{x:02X}]") })
            .collect::<Vec<_>>()
            .join(" ")
    };
    Compared {
        matched: what.is_empty(),
        detail: what.join(", "),
        hexdiff: format!(
            "expected {}\nactual   {}",
            line(&expected.response, &actual.response),
            line(&actual.response, &expected.response)
        ),
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
