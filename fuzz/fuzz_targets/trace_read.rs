//! The trace CSV reader (`trace::read_bytes`, what `trace::read` runs on a file's bytes) on
//! arbitrary bytes. Errors are fine, panics are not; and a trace that reads whole still reads
//! with the same rows when a row cut short (a kill mid-write) follows it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("logs/fuzz/trace.csv");
    let Ok(t) = cardbench::trace::read_bytes(path, data) else { return };
    if t.cut_last_row.is_none() && data.ends_with(b"\n") && !data.contains(&b'"') {
        let mut cut = data.to_vec();
        cut.extend_from_slice(b"smoke,1");
        let c = cardbench::trace::read_bytes(path, &cut).expect("a cut last row is not an error");
        assert_eq!(c.rows.len(), t.rows.len());
        assert!(c.cut_last_row.is_some());
    }
});
