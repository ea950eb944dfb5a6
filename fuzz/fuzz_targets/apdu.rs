//! Command and response APDU parsing: never panics, and whatever parses re-encodes to bytes
//! that parse to the same APDU (the encoding of a parsed command is canonical: a second
//! round trip gives the same bytes).
#![no_main]

use cardbench::apdu::{parse_hex, Command, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        assert!(c.data.len() <= 65535 && c.le.map_or(true, |le| (1..=65536).contains(&le)), "{c:?}");
        let bytes = c.to_bytes().expect("a parsed command encodes");
        let again = Command::parse(&bytes).expect("an encoded command parses");
        assert_eq!(again, c);
        assert_eq!(again.to_bytes().unwrap(), bytes);
        // The short form is the canonical one: a short-form input comes back byte for byte.
        if !c.is_extended() && bytes.len() == data.len() {
            assert_eq!(bytes, data);
        }
    }
    match Response::parse(data) {
        Ok(r) => {
            assert_eq!(r.to_bytes(), data);
            assert_eq!(Response::parse(&r.to_bytes()), Ok(r));
        }
        Err(_) => assert!(data.len() < 2),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(b) = parse_hex(s) {
            let _ = Command::parse(&b);
        }
    }
});
