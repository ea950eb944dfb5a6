//! Which response bytes are dynamic by nature (randoms, signatures, MACs, ciphertexts): a
//! replay or a diff compares every other byte exactly and these only by length. The trace
//! stores the mask of every row (column `mask`, docs/trace-format.md), so a trace read
//! years later is compared with the rules of the tool that wrote it.

mod table;

use std::fmt;
use std::str::FromStr;

/// A set of byte positions of one response, as inclusive ranges in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Mask {
    ranges: Vec<(usize, usize)>,
}

impl Mask {
    pub fn none() -> Mask {
        Mask::default()
    }

    /// Every byte, whatever the length (column syntax `*`).
    pub fn all() -> Mask {
        Mask { ranges: vec![(0, usize::MAX)] }
    }

    /// Inclusive ranges; overlapping and unordered ones are merged.
    pub fn ranges(r: &[(usize, usize)]) -> Mask {
        let mut v: Vec<(usize, usize)> = r.iter().copied().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Mask { ranges: out }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn covers(&self, i: usize) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= i && i <= b)
    }

    /// The same mask limited to a response of `len` bytes (`all` becomes concrete).
    pub fn clip(&self, len: usize) -> Mask {
        if len == 0 {
            return Mask::none();
        }
        Mask { ranges: self.ranges.iter().filter(|(a, _)| *a < len).map(|&(a, b)| (a, b.min(len - 1))).collect() }
    }

    /// The part of a mask over a whole response that falls on bytes `offset..offset + len`,
    /// as offsets into that part: the mask of one GET RESPONSE chunk.
    pub fn window(&self, offset: usize, len: usize) -> Mask {
        if len == 0 {
            return Mask::none();
        }
        let end = offset + len - 1;
        Mask {
            ranges: self
                .ranges
                .iter()
                .filter(|&&(a, b)| b >= offset && a <= end)
                .map(|&(a, b)| (a.max(offset) - offset, b.min(end) - offset))
                .collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().copied()
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, &(a, b)) in self.ranges.iter().enumerate() {
            if n > 0 {
                f.write_str(" ")?;
            }
            match (a, b) {
                (0, usize::MAX) => f.write_str("*")?,
                (a, b) if a == b => write!(f, "{a}")?,
                (a, b) => write!(f, "{a}-{b}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mask `{0}` is not byte ranges like `0-15 32`")]
pub struct BadMask(pub String);

impl FromStr for Mask {
    type Err = BadMask;

    fn from_str(s: &str) -> Result<Mask, BadMask> {
        let bad = || BadMask(s.to_string());
        let mut r = Vec::new();
        for part in s.split_ascii_whitespace() {
            if part == "*" {
                r.push((0, usize::MAX));
                continue;
            }
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let a = part.parse().map_err(|_| bad())?;
                    (a, a)
                }
            };
            if a > b {
                return Err(bad());
            }
            r.push((a, b));
        }
        Ok(Mask::ranges(&r))
    }
}

/// The dynamic bytes of the response to `command` (docs/card-spec.md section 13, "Dynamic
/// bytes"), limited to the response's length. Status words are never masked. `command` is the
/// command the terminal asked for (not a GET RESPONSE); for one chunk of a response delivered
/// in several exchanges, see `dynamic_chunk`.
pub fn dynamic(command: &[u8], response: &[u8]) -> Mask {
    Mask::ranges(&table::response(command, response)).clip(response.len())
}

/// The dynamic bytes of one chunk of a response that came in several exchanges (`61xx` and
/// GET RESPONSE, or a short Le on T=1): `earlier` is the data of the chunks before it.
pub fn dynamic_chunk(command: &[u8], earlier: &[u8], chunk: &[u8]) -> Mask {
    dynamic(command, &[earlier, chunk].concat()).window(earlier.len(), chunk.len())
}

/// The command bytes (whole APDU: header, Lc, data, Le) that differ between two correct runs
/// of the same protocol step: the terminal's own randoms, and the challenges, signatures and
/// ciphertexts it forwards or computes from the card's randoms (docs/card-spec.md
/// section 13).
pub fn dynamic_command(command: &[u8]) -> Mask {
    Mask::ranges(&table::command(command))
}

/// The masks of consecutive wire rows of one head: a GET RESPONSE row carries a chunk of the
/// response to the command that started its group, so its dynamic bytes depend on that
/// command and on the chunks before it, which the row alone does not show. Used on traces
/// whose `mask` column is empty (imported, or older than the column).
#[derive(Debug, Clone, Default)]
pub struct RowMasks {
    /// The command that started the current group (as first sent) and its data so far.
    first: Vec<u8>,
    earlier: Vec<u8>,
}

impl RowMasks {
    /// Command and response masks of the next wire row of this head, in trace order.
    pub fn row(&mut self, kind: crate::event::RowKind, command: &[u8], response: &[u8]) -> (Mask, Mask) {
        use crate::event::RowKind;
        match kind {
            // A chunk of the group's response, or the group's last command again with another
            // Le (a 6Cxx answer carries no data, so the chunks so far stay what they were).
            RowKind::GetResponse | RowKind::Resend6C => {}
            _ => {
                self.first = command.to_vec();
                self.earlier.clear();
            }
        }
        let resp = dynamic_chunk(&self.first, &self.earlier, response);
        self.earlier.extend_from_slice(response);
        (dynamic_command(command), resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::codes::*;

    #[test]
    fn column_syntax_round_trips_and_merges() {
        let m: Mask = "16-95 0 1-3".parse().unwrap();
        assert_eq!(m.to_string(), "0-3 16-95");
        assert!(m.covers(2) && m.covers(95) && !m.covers(4) && !m.covers(96));
        assert_eq!("".parse::<Mask>().unwrap(), Mask::none());
        assert_eq!("*".parse::<Mask>().unwrap(), Mask::all());
        assert_eq!(Mask::all().clip(4).to_string(), "0-3");
        assert_eq!(m.window(2, 20).to_string(), "0-1 14-19");
        assert_eq!(m.window(4, 12), Mask::none());
        assert!("3-1".parse::<Mask>().is_err() && "a-b".parse::<Mask>().is_err() && "1,2".parse::<Mask>().is_err());
    }

    #[test]
    fn sign_payment_masks_nonce_and_signature_only() {
        let m = dynamic(&[0x80, CPAY_SIGN, 0, 0], &[0u8; 96]);
        assert_eq!(m.to_string(), "16-95");
        assert_eq!(dynamic(&[0x80, CPAY_SIGN, 0, 0], &[]), Mask::none());
        assert_eq!(dynamic(&[0x80, PURSE_READ_ALL, 0, 0], &[0u8; 22]), Mask::none());
    }
}
