//! PN532 host-link framing (UM0701-02 §6.2): normal and extended information frames, ACK,
//! NACK and the syntax-error frame, with an incremental decoder that resynchronises on the
//! start code after garbage or a broken frame.
//!
//! ```text
//! normal:   00 00 FF LEN LCS TFI PD0..PDn DCS 00            LEN = 1 + n + 1 ≤ 255
//! extended: 00 00 FF FF FF LENm LENl LCS TFI PD0..PDn DCS 00   LEN ≤ 265 (PN532 firmware)
//! ACK:      00 00 FF 00 FF 00
//! NACK:     00 00 FF FF 00 00
//! error:    00 00 FF 01 FF 7F 81 00
//! ```
//! LEN + LCS ≡ 0 (extended: LENm + LENl + LCS ≡ 0), TFI + PD0 + … + PDn + DCS ≡ 0 (mod 256).

use thiserror::Error;

/// Frame identifier of host → PN532 information frames.
pub const TFI_HOST: u8 = 0xD4;
/// Frame identifier of PN532 → host information frames.
pub const TFI_PN532: u8 = 0xD5;
pub const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];
pub const NACK: [u8; 6] = [0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00];
pub const ERROR_FRAME: [u8; 8] = [0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00];
/// The one data byte of the syntax-error frame (it sits where the TFI would be).
pub const ERROR_CODE: u8 = 0x7F;
/// Largest LEN (TFI included) of a normal information frame.
pub const NORMAL_MAX: usize = 255;
/// Largest LEN (TFI included) the PN532 firmware accepts: 264 bytes of packet data + TFI.
pub const EXTENDED_MAX: usize = 265;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Ack,
    Nack,
    /// Syntax-error frame: the PN532 refused a command at the application level.
    Error,
    /// Information frame: TFI and packet data (PD0 = command or response code).
    Info {
        tfi: u8,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("length checksum mismatch (LEN {len:#06x}, LCS {lcs:#04x})")]
    LengthChecksum { len: usize, lcs: u8 },
    #[error("data checksum mismatch (DCS {got:#04x}, expected {expected:#04x})")]
    DataChecksum { expected: u8, got: u8 },
    #[error("information frame of {0} bytes exceeds the PN532 limit of {EXTENDED_MAX}")]
    TooLong(usize),
    #[error("information frame with LEN 0")]
    Empty,
}

impl Frame {
    pub fn info(tfi: u8, data: impl Into<Vec<u8>>) -> Frame {
        Frame::Info { tfi, data: data.into() }
    }

    /// Wire bytes. Information frames use the normal form when LEN ≤ 255, the extended form
    /// otherwise (as the PN532 does, §6.2.1.2).
    pub fn to_bytes(&self) -> Result<Vec<u8>, FrameError> {
        match self {
            Frame::Ack => Ok(ACK.to_vec()),
            Frame::Nack => Ok(NACK.to_vec()),
            Frame::Error => Ok(ERROR_FRAME.to_vec()),
            Frame::Info { tfi, data } => encode(*tfi, data),
        }
    }
}

/// Encode an information frame, normal or extended by length.
pub fn encode(tfi: u8, data: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = data.len() + 1;
    if len > EXTENDED_MAX {
        return Err(FrameError::TooLong(len));
    }
    if len > NORMAL_MAX {
        return encode_extended(tfi, data);
    }
    let mut f = Vec::with_capacity(len + 6);
    f.extend_from_slice(&[0x00, 0x00, 0xFF, len as u8, (len as u8).wrapping_neg(), tfi]);
    f.extend_from_slice(data);
    f.push(dcs(tfi, data));
    f.push(0x00);
    Ok(f)
}

/// Encode an information frame in the extended form whatever its length (hosts may use it
/// for short frames too).
pub fn encode_extended(tfi: u8, data: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = data.len() + 1;
    if len > EXTENDED_MAX {
        return Err(FrameError::TooLong(len));
    }
    let (m, l) = ((len >> 8) as u8, len as u8);
    let mut f = Vec::with_capacity(len + 9);
    f.extend_from_slice(&[0x00, 0x00, 0xFF, 0xFF, 0xFF, m, l, m.wrapping_add(l).wrapping_neg(), tfi]);
    f.extend_from_slice(data);
    f.push(dcs(tfi, data));
    f.push(0x00);
    Ok(f)
}

fn dcs(tfi: u8, data: &[u8]) -> u8 {
    data.iter().fold(tfi, |a, b| a.wrapping_add(*b)).wrapping_neg()
}

/// Incremental decoder: push received bytes, pull frames. Bytes before a start code
/// (preamble, the 0x55 wake-up pattern, line garbage, postambles) are skipped and counted.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    skipped: u64,
    /// The last byte received was a 00 taken as a postamble: if FF comes next, that 00 was
    /// the first half of a start code after all (a sender may omit the preamble).
    postamble: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() && std::mem::take(&mut self.postamble) && bytes[0] == 0xFF {
            self.buf.push(0x00);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Drop everything buffered (a half-received frame after a line timeout).
    pub fn clear(&mut self) {
        self.postamble = false;
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Bytes buffered and not yet part of a decoded frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// True when the buffer holds the beginning of a frame (a start code at least).
    pub fn in_frame(&self) -> bool {
        self.buf.windows(2).any(|w| w == [0x00, 0xFF])
    }

    /// Bytes skipped outside frames so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next complete frame or framing error; `None` when more bytes are needed. After
    /// a bad header (length checksum, LEN 0, too long) the decoder resumes the search one byte
    /// after the false start code; after a data-checksum error it drops the whole
    /// (well-delimited) frame.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        let Some(start) = self.buf.windows(2).position(|w| w == [0x00, 0xFF]) else {
            // Keep a trailing 00: it may be the first half of a start code.
            let keep = usize::from(self.buf.last() == Some(&0x00));
            self.discard(self.buf.len() - keep);
            return None;
        };
        self.discard(start);
        // buf now starts with 00 FF.
        let b = &self.buf;
        if b.len() < 4 {
            return None;
        }
        let (len, lcs) = (b[2], b[3]);
        match (len, lcs) {
            (0x00, 0xFF) => {
                self.consume_with_postamble(4);
                Some(Ok(Frame::Ack))
            }
            (0xFF, 0x00) => {
                self.consume_with_postamble(4);
                Some(Ok(Frame::Nack))
            }
            (0xFF, 0xFF) => {
                if b.len() < 7 {
                    return None;
                }
                let (m, l, lcs) = (b[4], b[5], b[6]);
                let n = usize::from(m) << 8 | usize::from(l);
                if m.wrapping_add(l).wrapping_add(lcs) != 0 {
                    self.discard(1);
                    return Some(Err(FrameError::LengthChecksum { len: n, lcs }));
                }
                if n > EXTENDED_MAX {
                    self.discard(1);
                    return Some(Err(FrameError::TooLong(n)));
                }
                if n == 0 {
                    self.discard(1);
                    return Some(Err(FrameError::Empty));
                }
                self.body(7, n)
            }
            _ => {
                if len.wrapping_add(lcs) != 0 {
                    self.discard(1);
                    return Some(Err(FrameError::LengthChecksum { len: usize::from(len), lcs }));
                }
                if len == 0 {
                    self.discard(1);
                    return Some(Err(FrameError::Empty));
                }
                self.body(4, usize::from(len))
            }
        }
    }

    /// Frame body (`n` bytes from TFI on, then DCS) starting at `at`.
    fn body(&mut self, at: usize, n: usize) -> Option<Result<Frame, FrameError>> {
        if self.buf.len() < at + n + 1 {
            return None;
        }
        let body = &self.buf[at..at + n];
        let got = self.buf[at + n];
        let expected = dcs(body[0], &body[1..]);
        let frame = if got != expected {
            Err(FrameError::DataChecksum { expected, got })
        } else if n == 1 && body[0] == ERROR_CODE {
            Ok(Frame::Error)
        } else {
            Ok(Frame::Info { tfi: body[0], data: body[1..].to_vec() })
        };
        self.consume_with_postamble(at + n + 1);
        Some(frame)
    }

    /// Drop a frame of `n` bytes and its postamble. A 00 that ends the bytes received so far
    /// is remembered: where a read ends must not change the frames decoded.
    fn consume_with_postamble(&mut self, n: usize) {
        let post = self.buf.get(n) == Some(&0x00) && self.buf.get(n + 1) != Some(&0xFF);
        self.postamble = post && self.buf.len() == n + 1;
        let n = if post { n + 1 } else { n };
        self.buf.drain(..n.min(self.buf.len()));
    }

    fn discard(&mut self, n: usize) {
        self.skipped += n as u64;
        self.buf.drain(..n);
    }
}
