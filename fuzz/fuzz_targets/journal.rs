//! The batch journal reader (`Journal::open`) on arbitrary file contents, through a real
//! file. Opening must never panic; whatever it accepted stays accepted when a card is
//! appended after it: reopening gives the same cards plus the new one (a resumed batch
//! must neither lose fsynced cards nor certify them again).
#![no_main]

use cardbench::batch::journal::Journal;
use cardbench::report::{CardResult, Verdict};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::Path;

/// Batch size the journal is opened for (card indexes beyond it are refused).
const COUNT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let dir = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let mut f = tempfile::Builder::new().prefix("cardbench-fuzz-journal").tempfile_in(dir).expect("temp file");
    f.write_all(data).expect("write");
    f.flush().expect("flush");
    let Ok((mut j, first)) = Journal::open(f.path(), COUNT) else { return };
    let first = first.done;
    let index = (1..).find(|i| first.iter().all(|c| c.index != *i)).unwrap();
    let new = CardResult {
        index,
        card_id: "CB00B00000000001".into(),
        head: "E".into(),
        verdict: Verdict::Pass,
        cases: vec![],
        trace: "cards/CB00B00000000001.csv".into(),
        started: "2026-06-01T12:00:00Z".into(),
        duration_ms: 1.5,
    };
    j.append(&new).expect("append");
    drop(j);
    let (_, second) = Journal::open(f.path(), COUNT).expect("reopen");
    let second = second.done;
    let mut expected = first.clone();
    expected.push(new);
    assert_eq!(second, expected);
});
