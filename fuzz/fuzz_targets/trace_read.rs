//! The trace CSV reader (`trace::read`) on arbitrary file contents, through a real file
//! (it takes a path). Errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let dir = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let mut f = tempfile::Builder::new().prefix("cardbench-fuzz-trace").tempfile_in(dir).expect("temp file");
    f.write_all(data).expect("write");
    f.flush().expect("flush");
    let _ = cardbench::trace::read(f.path());
});

use std::path::Path;
