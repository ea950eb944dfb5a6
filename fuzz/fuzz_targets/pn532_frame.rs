//! The PN532 frame decoder: bytes pushed in arbitrary chunks give the same frames as the
//! same bytes pushed at once (a serial read may end anywhere); an encoded frame decodes to
//! itself; answer parsers on decoded data never panic.
//!
//! Input: first byte = chunk length (1..=256) for the chunked decode; the rest = line bytes.
#![no_main]

use cardbench::head::pn532::commands::{Firmware, TargetA};
use cardbench::head::pn532::frame::{encode, encode_extended, Decoder, Frame};
use libfuzzer_sys::fuzz_target;

fn frames(chunks: &mut dyn Iterator<Item = &[u8]>) -> Vec<Result<Frame, String>> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(f) = d.next_frame() {
            out.push(f.map_err(|e| e.to_string()));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, line)) = data.split_first() else { return };
    let chunk = usize::from(chunk) + 1;
    let whole = frames(&mut std::iter::once(line));
    let chunked = frames(&mut line.chunks(chunk));
    assert_eq!(chunked, whole, "chunks of {chunk}");
    for f in whole.iter().flatten() {
        if let Frame::Info { tfi, data } = f {
            if let Ok(Some(t)) = TargetA::parse_list(data.get(1..).unwrap_or(&[])) {
                let _ = t.historical_bytes();
            }
            let _ = Firmware::parse(data.get(1..).unwrap_or(&[]));
            for bytes in [encode(*tfi, data), encode_extended(*tfi, data)] {
                let bytes = bytes.expect("a decoded frame encodes");
                let again = frames(&mut std::iter::once(bytes.as_slice()));
                assert_eq!(again, vec![Ok(f.clone())]);
            }
        }
    }
});
