//! ISO/IEC 7816-4 command and response APDUs (cases 1-4, short and extended lengths).
//!
//! `Command::to_bytes` picks the short form whenever both Nc ≤ 255 and Ne ≤ 256, and the
//! extended form otherwise, because mixing forms inside one APDU is not allowed by 7816-4 §5.1.

use thiserror::Error;

/// Malformed APDU bytes. Every variant is a reason a card or a trace line can be rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApduError {
    #[error("command APDU shorter than its 4-byte header ({0} bytes)")]
    TooShort(usize),
    #[error("response APDU shorter than its 2-byte status word ({0} bytes)")]
    NoStatusWord(usize),
    #[error("Lc={lc} but {available} data bytes follow")]
    LcMismatch { lc: usize, available: usize },
    #[error("extended length field is truncated")]
    TruncatedExtendedLength,
    #[error("extended Lc of 0 is not allowed")]
    ZeroExtendedLc,
    #[error("{0} trailing bytes after Le")]
    TrailingBytes(usize),
    #[error("command data of {0} bytes exceeds 65535")]
    DataTooLong(usize),
    #[error("Le of {0} exceeds 65536")]
    LeTooLarge(usize),
    #[error("Le of 0 has no encoding (omit Le when no response data is expected)")]
    ZeroLe,
    #[error("invalid hex: {0}")]
    Hex(String),
}

/// The four cases of ISO/IEC 7816-3 §12.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// No data, no response data expected.
    One,
    /// No data, response data expected (Le present).
    Two,
    /// Data, no response data expected.
    Three,
    /// Data and response data expected.
    Four,
}

/// A command APDU. `le` is Ne, the maximum number of response bytes expected
/// (`Some(256)` encodes as a short `00`, `Some(65536)` as an extended `0000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    pub le: Option<usize>,
}

impl Command {
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command { cla, ins, p1, p2, data: Vec::new(), le: None }
    }

    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    pub fn le(mut self, le: usize) -> Self {
        self.le = Some(le);
        self
    }

    pub fn case(&self) -> Case {
        match (self.data.is_empty(), self.le.is_some()) {
            (true, false) => Case::One,
            (true, true) => Case::Two,
            (false, false) => Case::Three,
            (false, true) => Case::Four,
        }
    }

    /// True when this command needs the extended length form.
    pub fn is_extended(&self) -> bool {
        self.data.len() > 255 || self.le.is_some_and(|le| le > 256)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > 65535 {
            return Err(ApduError::DataTooLong(self.data.len()));
        }
        if let Some(le) = self.le {
            if le > 65536 {
                return Err(ApduError::LeTooLarge(le));
            }
            if le == 0 {
                return Err(ApduError::ZeroLe);
            }
        }
        let mut out = Vec::with_capacity(4 + 3 + self.data.len() + 3);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let ext = self.is_extended();
        if !self.data.is_empty() {
            if ext {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
            } else {
                out.push(self.data.len() as u8);
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            if ext {
                if self.data.is_empty() {
                    out.push(0);
                }
                out.extend_from_slice(&((le % 65536) as u16).to_be_bytes());
            } else {
                out.push((le % 256) as u8);
            }
        }
        Ok(out)
    }

    /// Parse a command APDU, enforcing the length rules of ISO/IEC 7816-4 §5.1.
    ///
    /// ```
    /// use cardbench::apdu::{Case, Command, ApduError};
    /// let c = Command::parse(&[0x80, 0xB2, 0x02, 0x00, 0x04]).unwrap();
    /// assert_eq!((c.case(), c.le), (Case::Two, Some(4)));
    /// assert_eq!(Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0]),
    ///            Err(ApduError::LcMismatch { lc: 5, available: 1 }));
    /// ```
    pub fn parse(b: &[u8]) -> Result<Command, ApduError> {
        if b.len() < 4 {
            return Err(ApduError::TooShort(b.len()));
        }
        let mut cmd = Command::new(b[0], b[1], b[2], b[3]);
        let body = &b[4..];
        match body.len() {
            0 => {}
            1 => cmd.le = Some(if body[0] == 0 { 256 } else { body[0] as usize }),
            _ if body[0] != 0 => {
                // short Lc
                let lc = body[0] as usize;
                let rest = &body[1..];
                if rest.len() < lc {
                    return Err(ApduError::LcMismatch { lc, available: rest.len() });
                }
                cmd.data = rest[..lc].to_vec();
                match rest.len() - lc {
                    0 => {}
                    1 => {
                        let le = rest[lc];
                        cmd.le = Some(if le == 0 { 256 } else { le as usize });
                    }
                    n => return Err(ApduError::TrailingBytes(n - 1)),
                }
            }
            2 => return Err(ApduError::TruncatedExtendedLength),
            3 => {
                // extended case 2: 00 Le1 Le2
                let le = u16::from_be_bytes([body[1], body[2]]) as usize;
                cmd.le = Some(if le == 0 { 65536 } else { le });
            }
            _ => {
                let lc = u16::from_be_bytes([body[1], body[2]]) as usize;
                if lc == 0 {
                    return Err(ApduError::ZeroExtendedLc);
                }
                let rest = &body[3..];
                if rest.len() < lc {
                    return Err(ApduError::LcMismatch { lc, available: rest.len() });
                }
                cmd.data = rest[..lc].to_vec();
                match rest.len() - lc {
                    0 => {}
                    2 => {
                        let le = u16::from_be_bytes([rest[lc], rest[lc + 1]]) as usize;
                        cmd.le = Some(if le == 0 { 65536 } else { le });
                    }
                    1 => return Err(ApduError::TruncatedExtendedLength),
                    n => return Err(ApduError::TrailingBytes(n - 2)),
                }
            }
        }
        Ok(cmd)
    }

    /// Maximum response data the terminal accepts: 0 when Le is absent.
    pub fn ne(&self) -> usize {
        self.le.unwrap_or(0)
    }
}

/// A response APDU: data followed by SW1 SW2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Response {
    pub fn new(data: impl Into<Vec<u8>>, sw: u16) -> Self {
        Response { data: data.into(), sw }
    }

    pub fn status(sw: u16) -> Self {
        Response { data: Vec::new(), sw }
    }

    pub fn ok(data: impl Into<Vec<u8>>) -> Self {
        Response::new(data, crate::sw::OK)
    }

    pub fn parse(b: &[u8]) -> Result<Response, ApduError> {
        if b.len() < 2 {
            return Err(ApduError::NoStatusWord(b.len()));
        }
        let (data, sw) = b.split_at(b.len() - 2);
        Ok(Response { data: data.to_vec(), sw: u16::from_be_bytes([sw[0], sw[1]]) })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 2);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&self.sw.to_be_bytes());
        v
    }

    pub fn sw1(&self) -> u8 {
        (self.sw >> 8) as u8
    }

    pub fn sw2(&self) -> u8 {
        self.sw as u8
    }

    pub fn is_ok(&self) -> bool {
        self.sw == crate::sw::OK
    }
}

/// Parse hex with optional spaces or colons, as users paste APDUs.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, ApduError> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    hex::decode(&clean).map_err(|e| ApduError::Hex(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(hex_in: &str, case: Case) {
        let b = parse_hex(hex_in).unwrap();
        let c = Command::parse(&b).unwrap();
        assert_eq!(c.case(), case, "{hex_in}");
        assert_eq!(c.to_bytes().unwrap(), b, "{hex_in}");
    }

    #[test]
    fn round_trips_every_case_short_and_extended() {
        rt("00A40400", Case::One);
        rt("00B0000000", Case::Two);
        rt("00B0000010", Case::Two);
        rt("00D6000003010203", Case::Three);
        rt("00A4040007A000000777010000", Case::Four);
        rt("00B0000000FFFF", Case::Two);
        rt("00B00000000000", Case::Two);
        let long = format!("80D40000000100{}", "AB".repeat(256));
        rt(&long, Case::Three);
        let long4 = format!("80D40000000100{}0000", "AB".repeat(256));
        rt(&long4, Case::Four);
    }

    #[test]
    fn le_256_and_65536_encode_as_zero() {
        let c = Command::new(0, 0xB0, 0, 0).le(256);
        assert_eq!(c.to_bytes().unwrap(), vec![0, 0xB0, 0, 0, 0]);
        let c = Command::new(0, 0xB0, 0, 0).le(65536);
        assert_eq!(c.to_bytes().unwrap(), vec![0, 0xB0, 0, 0, 0, 0, 0]);
        let c = Command::new(0, 0xB0, 0, 0).data(vec![1]).le(300);
        assert_eq!(c.to_bytes().unwrap(), vec![0, 0xB0, 0, 0, 0, 0, 1, 1, 0x01, 0x2C]);
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        assert_eq!(Command::parse(&[0, 1, 2]), Err(ApduError::TooShort(3)));
        assert_eq!(Command::parse(&[0, 1, 2, 3, 5, 1, 2]), Err(ApduError::LcMismatch { lc: 5, available: 2 }));
        assert_eq!(Command::parse(&[0, 1, 2, 3, 1, 9, 0, 0]), Err(ApduError::TrailingBytes(1)));
        assert_eq!(Command::parse(&[0, 1, 2, 3, 0, 1]), Err(ApduError::TruncatedExtendedLength));
        assert_eq!(Command::parse(&[0, 1, 2, 3, 0, 0, 0, 1]), Err(ApduError::ZeroExtendedLc));
        assert!(Command::new(0, 0, 0, 0).data(vec![0; 70000]).to_bytes().is_err());
    }

    #[test]
    fn response_split() {
        let r = Response::parse(&[1, 2, 0x90, 0]).unwrap();
        assert_eq!(r.data, vec![1, 2]);
        assert!(r.is_ok());
        assert_eq!(Response::parse(&[0x90]), Err(ApduError::NoStatusWord(1)));
        assert_eq!(Response::new(vec![7], 0x6A80).to_bytes(), vec![7, 0x6A, 0x80]);
    }
}
