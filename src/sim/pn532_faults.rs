//! Link faults the PN532 simulator can inject into InDataExchange frames, so tests and labs
//! can provoke over a real pty what a noisy serial line or a slow adapter does to a driver:
//! late ACKs, noise, broken or cut answers, lost ACKs, answers later than any timeout.
//!
//! Written `KIND[=MS][@N]` (`cardbench sim pn532 --fault …`): without `@N` the fault hits
//! every InDataExchange frame, with `@N` only the Nth one the simulator receives (1-based).
//! Other commands (initialisation, activation) are never faulted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Line garbage sent before an ACK: a false start code with a broken length checksum and a
/// start code that runs into the ACK. A driver must skip it and still see the ACK.
pub const NOISE: [u8; 9] = [0x13, 0x00, 0xFF, 0x07, 0x07, 0x55, 0xAA, 0x00, 0xFF];

/// Line garbage that looks like a whole answer frame with a broken data checksum (D5 41,
/// DCS AA instead of EA): a driver that sees it after the ACK NACKs it, and the PN532 then
/// sends its real answer a second time.
pub const GHOST_FRAME: [u8; 9] = [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD5, 0x41, 0xAA, 0x00];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The ACK (and the answer behind it) leave this long after the frame came in; the
    /// command runs at once.
    AckDelay(Duration),
    /// The ACK at once, the answer this long after; the command runs at once. A host ACK
    /// does not stop an answer already on its way.
    AnswerDelay(Duration),
    /// `NOISE` on the line before the ACK.
    Noise,
    /// `GHOST_FRAME` on the line between the ACK and the answer.
    GhostAfterAck,
    /// The ACK is lost; the command runs and its answer comes.
    NoAck,
    /// The answer's length checksum is broken (a NACK gets the good answer).
    BadLcs,
    /// The answer's data checksum is broken (a NACK gets the good answer).
    BadDcs,
    /// Only the first half of the answer is sent (a NACK gets the whole answer).
    Truncate,
    /// The frame is lost on its way to the PN532: no ACK, the command does not run.
    DropCommand,
}

/// A fault and the InDataExchange frames it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRule {
    pub fault: Fault,
    /// Only the Nth InDataExchange frame (1-based); `None`: every one.
    pub only: Option<u64>,
}

impl FaultRule {
    pub fn every(fault: Fault) -> Self {
        FaultRule { fault, only: None }
    }

    pub fn at(fault: Fault, n: u64) -> Self {
        FaultRule { fault, only: Some(n) }
    }

    pub fn hits(&self, exchange: u64) -> bool {
        self.only.is_none_or(|n| n == exchange)
    }
}

pub const KINDS: &str =
    "ack-delay=MS, answer-delay=MS, noise, ghost-after-ack, no-ack, bad-lcs, bad-dcs, truncate, drop-command (each optionally @N)";

impl FromStr for FaultRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("fault '{s}': {why} (faults: {KINDS})");
        let (spec, only) = match s.split_once('@') {
            Some((spec, n)) => match n.parse::<u64>() {
                Ok(n) if n >= 1 => (spec, Some(n)),
                _ => return Err(bad("@N needs an exchange number from 1 on")),
            },
            None => (s, None),
        };
        let (kind, value) = match spec.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (spec, None),
        };
        let ms = |v: Option<&str>| -> Result<Duration, String> {
            let v = v.ok_or_else(|| bad("needs =MS, a delay in milliseconds"))?;
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad("the delay is not a whole number of milliseconds"))
        };
        let plain = |f: Fault| if value.is_some() { Err(bad("takes no value")) } else { Ok(f) };
        let fault = match kind {
            "ack-delay" => Fault::AckDelay(ms(value)?),
            "answer-delay" => Fault::AnswerDelay(ms(value)?),
            "noise" => plain(Fault::Noise)?,
            "ghost-after-ack" => plain(Fault::GhostAfterAck)?,
            "no-ack" => plain(Fault::NoAck)?,
            "bad-lcs" => plain(Fault::BadLcs)?,
            "bad-dcs" => plain(Fault::BadDcs)?,
            "truncate" => plain(Fault::Truncate)?,
            "drop-command" => plain(Fault::DropCommand)?,
            _ => return Err(bad("unknown kind")),
        };
        Ok(FaultRule { fault, only })
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            Fault::AckDelay(d) => write!(f, "ack-delay={}", d.as_millis())?,
            Fault::AnswerDelay(d) => write!(f, "answer-delay={}", d.as_millis())?,
            Fault::Noise => f.write_str("noise")?,
            Fault::GhostAfterAck => f.write_str("ghost-after-ack")?,
            Fault::NoAck => f.write_str("no-ack")?,
            Fault::BadLcs => f.write_str("bad-lcs")?,
            Fault::BadDcs => f.write_str("bad-dcs")?,
            Fault::Truncate => f.write_str("truncate")?,
            Fault::DropCommand => f.write_str("drop-command")?,
        }
        match self.only {
            Some(n) => write!(f, "@{n}"),
            None => Ok(()),
        }
    }
}

/// Everything that hits one frame, merged from the rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hit {
    pub ack_delay: Duration,
    pub answer_delay: Duration,
    pub noise: bool,
    pub ghost: bool,
    pub no_ack: bool,
    pub bad_lcs: bool,
    pub bad_dcs: bool,
    pub truncate: bool,
    pub drop_command: bool,
}

impl Hit {
    pub fn of(rules: &[FaultRule], exchange: u64) -> Hit {
        let mut h = Hit::default();
        for r in rules.iter().filter(|r| r.hits(exchange)) {
            match r.fault {
                Fault::AckDelay(d) => h.ack_delay = h.ack_delay.max(d),
                Fault::AnswerDelay(d) => h.answer_delay = h.answer_delay.max(d),
                Fault::Noise => h.noise = true,
                Fault::GhostAfterAck => h.ghost = true,
                Fault::NoAck => h.no_ack = true,
                Fault::BadLcs => h.bad_lcs = true,
                Fault::BadDcs => h.bad_dcs = true,
                Fault::Truncate => h.truncate = true,
                Fault::DropCommand => h.drop_command = true,
            }
        }
        h
    }

    pub fn any(&self) -> bool {
        *self != Hit::default()
    }

    /// The answer frame as this hit sends it the first time (a NACK gets `frame` as is).
    pub fn damage(&self, frame: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        // Only information frames (start code, LEN, LCS, TFI, code, DCS, postamble).
        if f.len() < 9 {
            return f;
        }
        if self.bad_lcs {
            let extended = f[3] == 0xFF && f[4] == 0xFF;
            f[if extended { 7 } else { 4 }] ^= 0x5A;
        }
        if self.bad_dcs {
            let dcs = f.len() - 2;
            f[dcs] ^= 0x5A;
        }
        if self.truncate {
            f.truncate(f.len() / 2);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        for s in [
            "ack-delay=150",
            "answer-delay=1000@3",
            "noise",
            "ghost-after-ack@4",
            "no-ack@1",
            "bad-lcs",
            "bad-dcs@2",
            "truncate",
            "drop-command@7",
        ] {
            assert_eq!(s.parse::<FaultRule>().unwrap().to_string(), s);
        }
        for bad in ["ack-delay", "ack-delay=x", "noise=3", "bad-lcs@0", "bad-lcs@x", "sparks"] {
            let e = bad.parse::<FaultRule>().unwrap_err();
            assert!(e.contains(bad) && e.contains("ack-delay=MS"), "{e}");
        }
    }

    #[test]
    fn damage_breaks_what_it_says() {
        let good = crate::head::pn532::frame::encode(0xD5, &[0x41, 0x00, 0x90, 0x00]).unwrap();
        let lcs = Hit { bad_lcs: true, ..Hit::default() }.damage(&good);
        assert_ne!(lcs[3].wrapping_add(lcs[4]), 0);
        let dcs = Hit { bad_dcs: true, ..Hit::default() }.damage(&good);
        assert_eq!(dcs[..dcs.len() - 2], good[..good.len() - 2]);
        assert_ne!(dcs, good);
        assert_eq!(Hit { truncate: true, ..Hit::default() }.damage(&good), good[..good.len() / 2]);
        assert_eq!(Hit::default().damage(&good), good);
    }
}
