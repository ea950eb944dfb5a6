//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found to break an invariant, kept as
//! regression tests: each one failed before its fix.

use cardbench::head::pn532::frame::{Decoder, Frame, FrameError};

fn hex(s: &str) -> Vec<u8> {
    cardbench::apdu::parse_hex(s).unwrap()
}

fn frames<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Result<Frame, FrameError>> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(f) = d.next_frame() {
            out.push(f);
        }
    }
    out
}

/// fuzz target pn532_frame: an ACK directly followed by a NACK without preamble. When a read
/// ended right after the ACK's postamble 00, the decoder took that 00 as postamble although
/// it began the NACK's start code, and the NACK was lost.
#[test]
fn a_frame_right_after_a_postamble_does_not_depend_on_where_a_read_ends() {
    let line = hex("0000FF00FF00FFFF00");
    assert_eq!(frames([line.as_slice()]), vec![Ok(Frame::Ack), Ok(Frame::Nack)]);
    assert_eq!(frames(line.chunks(3)), vec![Ok(Frame::Ack), Ok(Frame::Nack)]);
    // Nor does the count of skipped bytes: a postamble is not line garbage.
    let line = hex("0000FF00FF00 00 0000FF00FF00");
    let skipped = |chunk: usize| {
        let mut d = Decoder::new();
        for c in line.chunks(chunk) {
            d.push(c);
            while d.next_frame().is_some() {}
        }
        d.skipped()
    };
    assert_eq!(skipped(6), skipped(line.len()));
}
