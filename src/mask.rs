//! Which response bytes are dynamic by nature (randoms, signatures, MACs, ciphertexts): a
//! replay or a diff compares every other byte exactly and these only by length. The trace
//! stores the mask of every row (column `mask`, docs/trace-format.md), so a trace read
//! years later is compared with the rules of the tool that wrote it.

use crate::card::ins::*;
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

/// The dynamic bytes of the response to `command` (docs/replay.md, "Dynamic response
/// bytes"), limited to the response's length. Status words are never masked.
pub fn dynamic(command: &[u8], response: &[u8]) -> Mask {
    let len = response.len();
    let (cla, ins) = match command {
        [cla, ins, ..] => (*cla, *ins),
        _ => return Mask::none(),
    };
    let m = match (cla, ins) {
        // Card nonce (16) and the card's ECDSA signature (64) over the payment message.
        (CLA_PROP, CPAY_SIGN) => Mask::ranges(&[(16, 95)]),
        // Update random; AE blob or ECIES ciphertext + signature; transmission random;
        // transmission challenge (MAC over rnd_send) + rnd_recv; reception challenge
        // (MAC); cancel proof (MAC): all made of fresh randoms or MACs over them.
        (CLA_PROP, XFER_UPDATE_PERMISSION)
        | (CLA_PROP, XFER_GET_TRANSFER_KEY)
        | (CLA_PROP, XFER_SEND_PERMISSION)
        | (CLA_PROP, XFER_RECEIVE_PERMISSION)
        | (CLA_PROP, XFER_SEND)
        | (CLA_PROP, XFER_CANCEL_PROOF) => Mask::all(),
        _ => Mask::none(),
    };
    m.clip(len)
}

#[cfg(test)]
mod tests {
    use super::*;

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
