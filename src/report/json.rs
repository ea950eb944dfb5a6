//! JSON report: the whole `BatchResult`, pretty-printed. Fields are described in docs/reports.md.

use std::io;
use std::path::Path;

use super::atomic::write_atomically;
use super::BatchResult;

/// The JSON report of `b` as a pretty-printed string (no trailing newline).
pub fn to_json_string(b: &BatchResult) -> String {
    // The model has string map keys only and no fallible `Serialize` impls, so this cannot fail.
    serde_json::to_string_pretty(b).expect("BatchResult serializes to JSON")
}

/// Write the JSON report of `b` to `path` atomically (via `path.tmp`, fsync, rename), ending
/// with a newline.
pub fn write_json(path: &Path, b: &BatchResult) -> io::Result<()> {
    write_atomically(path, |out| {
        serde_json::to_writer_pretty(&mut *out, b)?;
        out.write_all(b"\n")
    })
}
