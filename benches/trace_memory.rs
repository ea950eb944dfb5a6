//! Memory and lag of the trace path on a fast head: N exchanges (default 1,000,000) through
//! the link, the event queue and the CSV writer, on an in-process virtual card (the fastest
//! head there is, so the writer is the bottleneck). Prints peak RSS, the rows already on disk
//! when the last command returned, and the time until the file was complete.
//!
//! `cargo bench --bench trace_memory [-- ROWS]` (scripts/trace-bench.sh runs it).

use cardbench::card::Protocol;
use cardbench::cmds;
use cardbench::event::Recorder;
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use cardbench::sinks;
use cardbench::trace::TraceCsv;
use std::io::BufRead;
use std::time::Instant;

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn lines(path: &std::path::Path) -> u64 {
    std::io::BufReader::new(std::fs::File::open(path).unwrap()).lines().count() as u64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let rows: u64 =
        std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(if full { 1_000_000 } else { 10_000 });
    let keys = Keyset::from_seed("bench", vec![]);
    let mut h = VirtualHead::new("A");
    h.insert(personalize_virtual(&CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0xBE, 1]), Protocol::T1, &keys).unwrap());
    h.power_on().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    let rss_start = status_kb("VmRSS:");
    let (rec, rx) = Recorder::new("bench");
    let thread = sinks::spawn(rx, vec![Box::new(TraceCsv::create(&path, "bench", "bench").unwrap())]);
    let t0 = Instant::now();
    {
        let mut l = Link::new(&mut h, &rec);
        l.card_id = "CB0000000000BE01".into();
        l.test_step = "memory".into();
        l.exec("select", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
        let read = cmds::read_field(cardbench::card::ins::FIELD_ID, 8);
        for _ in 1..rows {
            l.exec("read", &read).unwrap();
        }
    }
    let engine_done = t0.elapsed();
    let queued_at_return = rec.backlog();
    rec.sync();
    let complete = t0.elapsed();
    drop(rec);
    let errors = thread.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let written = lines(&path) - 1;
    assert_eq!(written, rows, "every exchange has its row");
    let size = std::fs::metadata(&path).unwrap().len();
    println!("rows                     {rows}");
    println!("trace size               {:.1} MB", size as f64 / 1e6);
    println!(
        "peak RSS                 {:.1} MB (at start {:.1} MB)",
        status_kb("VmHWM:") as f64 / 1e3,
        rss_start as f64 / 1e3
    );
    println!(
        "engine time              {:.3} s ({:.2} us/exchange)",
        engine_done.as_secs_f64(),
        engine_done.as_secs_f64() * 1e6 / rows as f64
    );
    println!(
        "not yet on disk when the last command returned: {queued_at_return} rows ({:.3}%; bound {}: a batch being written and a full queue)",
        queued_at_return as f64 * 100.0 / rows as f64,
        2 * cardbench::queue::CAPACITY
    );
    println!("file complete after      +{:.1} ms", (complete - engine_done).as_secs_f64() * 1e3);
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average             {}", l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }
}
