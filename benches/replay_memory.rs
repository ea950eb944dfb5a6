//! Memory of `cardbench replay --mode bytes` on a long trace: a trace of N exchanges (default
//! 1,000,000) is written through the link and the CSV writer on an in-process card, then a
//! fresh process replays it on a fresh virtual card (the same code as the CLI:
//! `replay::run_bytes`, which also writes the replay's own trace) and prints its peak RSS,
//! the rows replayed, the time and the load average.
//!
//! `cargo bench --bench replay_memory [-- ROWS]` (scripts/replay-bench.sh runs it).

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
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

const CARD: [u8; 8] = [0xCB, 0, 0, 0, 0, 0, 0xBE, 1];

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn write_trace(path: &Path, rows: u64) {
    let keys = Keyset::from_seed("bench", vec![]);
    let mut h = VirtualHead::new("A");
    h.insert(personalize_virtual(&CardPlan::new(CARD), Protocol::T1, &keys).unwrap());
    h.power_on().unwrap();
    let (rec, rx) = Recorder::new("bench");
    let thread = sinks::spawn(rx, vec![Box::new(TraceCsv::create(path, "bench", "bench").unwrap())]);
    {
        let mut l = Link::new(&mut h, &rec);
        l.card_id = hex::encode_upper(CARD);
        l.test_step = "memory".into();
        l.exec("select", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
        let read = cmds::read_field(cardbench::card::ins::FIELD_ID, 8);
        for _ in 1..rows {
            l.exec("read", &read).unwrap();
        }
    }
    drop(rec);
    let errors = thread.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
}

/// The replay, in a process of its own so its peak RSS is the replay's alone.
fn replay_child(trace: &Path, dir: &Path) {
    let profile = dir.join("bench.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"replay-bench\"\n[keyset]\nseed = \"bench\"\n[[head]]\nname = \"A\"\ndriver = \"virtual\"\ncard = \"c\"\n\
             [[card]]\nname = \"c\"\nid = \"{}\"\nprotocol = \"T=1\"\n",
            hex::encode_upper(CARD)
        ),
    )
    .unwrap();
    let rss_start = status_kb("VmRSS:");
    let t0 = Instant::now();
    let args = cardbench::replay::ReplayArgs {
        source: trace.into(),
        profile,
        map: vec![],
        card: None,
        keep_going: false,
        timing_threshold: 20.0,
        run_id: "replay".into(),
        logs: Some(dir.into()),
        quiet: true,
        observer: None,
        stop: None,
    };
    let w = cardbench::replay::run_bytes(&args).unwrap();
    let took = t0.elapsed();
    // Read before anything else runs in this process: the replay's own peak.
    let peak_kb = status_kb("VmHWM:");
    let o = &w.outcome;
    assert_eq!(o.divergences, 0, "a deterministic card replays its own trace without divergence");
    let replayed = BufReader::new(std::fs::File::open(w.dir.join("trace.csv")).unwrap()).lines().count() as u64 - 1;
    println!("source rows              {}", o.source_rows);
    println!("commands replayed        {} ({} matched, {} diverged)", o.commands, o.matched, o.divergences);
    println!("replay trace rows        {replayed}");
    println!("replay peak RSS          {:.1} MB (at start {:.1} MB)", peak_kb as f64 / 1e3, rss_start as f64 / 1e3);
    println!(
        "replay time              {:.2} s ({:.2} us/row)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / o.source_rows as f64
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average             {}", l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--replay-child") {
        replay_child(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = args.iter().any(|a| a == "--bench");
    let rows: u64 = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(if full { 1_000_000 } else { 10_000 });
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("source.csv");
    let t0 = Instant::now();
    write_trace(&trace, rows);
    println!(
        "source trace             {rows} rows, {:.1} MB, written in {:.2} s",
        std::fs::metadata(&trace).unwrap().len() as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--replay-child")
        .arg(&trace)
        .arg(dir.path())
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "replay child failed: {}", out.status);
}
