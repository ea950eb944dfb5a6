//! Per-APDU cost through pcscd + the vpcd bridge, against the same card, in rounds that
//! interleave three clients:
//!
//! - `c-loop`: benches/c/pcsc_bare_loop.c, libpcsclite and nothing else (path in `C_LOOP`);
//! - `bare`: a bare pcsc-crate `transmit` loop;
//! - `cardbench`: what `cardbench run` does per APDU: `PcscHead` behind `Link::exec`, the
//!   recorder, and the sink thread writing a real trace CSV;
//! - `head+link`: the same without tracing, to tell the head's cost from the trace's.
//!
//! Wall time is measured around each exchange; client CPU is getrusage(RUSAGE_SELF) user +
//! system of the whole process (every thread, the sink thread included, which is joined
//! before the second reading) divided by the APDU count. Run by scripts/pcsc-bench.sh, which
//! starts pcscd and the bridge and builds the C loop.

use cardbench::card::ins::{AID_PURSE, FIELD_COUNTER};
use cardbench::cmds;
use cardbench::event::Recorder;
use cardbench::head::pcsc_head::{PcscHead, Share};
use cardbench::head::Head;
use cardbench::link::Link;
use cardbench::sinks::{self, Sink};
use cardbench::trace::TraceCsv;
use nix::sys::resource::{getrusage, UsageWho};
use std::time::{Duration, Instant};

/// One client's figures over one round.
#[derive(Clone, Copy)]
struct Figures {
    median: Duration,
    mean: Duration,
    cpu: Duration,
}

fn cpu_now() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

/// Wall figures of `n` calls of `one` (each on its own and all together) and the process
/// CPU reading taken before them; `Figures::finish` takes the second reading.
struct Timed {
    median: Duration,
    mean: Duration,
    cpu0: Duration,
    n: usize,
}

fn measure(n: usize, mut one: impl FnMut()) -> Timed {
    let mut d = Vec::with_capacity(n);
    let (cpu0, t0) = (cpu_now(), Instant::now());
    for _ in 0..n {
        let t = Instant::now();
        one();
        d.push(t.elapsed());
    }
    let mean = t0.elapsed() / n as u32;
    d.sort();
    Timed { median: d[n / 2], mean, cpu0, n }
}

impl Timed {
    /// Call when everything the calls caused is done (e.g. the sink thread joined).
    fn finish(self) -> Figures {
        Figures { median: self.median, mean: self.mean, cpu: (cpu_now() - self.cpu0) / self.n as u32 }
    }
}

fn c_loop(path: &str, reader: &str, select: &[u8], read: &[u8], n: usize) -> Figures {
    let out = std::process::Command::new(path)
        .args([reader, &hex::encode(select), &hex::encode(read), &n.to_string()])
        .output()
        .expect("running the C loop");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "C loop: {s}{}", String::from_utf8_lossy(&out.stderr));
    let field = |k: &str| -> Duration {
        let v = s.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or_else(|| panic!("{k} in {s}"));
        Duration::from_nanos(v.parse().unwrap())
    };
    Figures { median: field("wall_median_ns="), mean: field("wall_mean_ns="), cpu: field("cpu_ns_per_apdu=") }
}

fn bare(reader: &str, select: &[u8], read: &[u8], n: usize) -> Figures {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd running (scripts/pcscd-lab.sh start)");
    let name = ctx
        .list_readers_owned()
        .unwrap()
        .into_iter()
        .find(|r| r.to_string_lossy().contains(reader))
        .expect("reader present");
    let card = ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).expect("card in reader");
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    card.transmit(select, &mut buf).unwrap();
    measure(n, || {
        let r = card.transmit(read, &mut buf).unwrap();
        assert_eq!(r.len(), 6);
    })
    .finish()
}

fn cardbench_path(reader: &str, n: usize, trace_dir: &std::path::Path, round: usize) -> Figures {
    let read = cmds::read_field(FIELD_COUNTER, 4);
    let mut head = PcscHead::new("bench", reader, Share::Shared, pcsc::Protocols::ANY);
    head.power_on().unwrap();
    let path = trace_dir.join(format!("trace-{round}.csv"));
    let trace: Box<dyn Sink> = Box::new(TraceCsv::create(&path, "bench", "bench").unwrap());
    let (rec, rx) = Recorder::new("bench");
    let sink_thread = sinks::spawn(rx, vec![trace]);
    let mut link = Link::new(&mut head, &rec);
    link.card_id = "CB00000000000A01".into();
    link.test_step = "bench".into();
    link.exec("select", &cmds::select(&AID_PURSE)).unwrap();
    let t = measure(n, || {
        let r = link.exec("read", &read).unwrap();
        assert!(r.is_ok());
    });
    drop(link);
    drop(rec);
    let errors = sink_thread.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let f = t.finish();
    let rows = std::fs::read_to_string(&path).unwrap().lines().count();
    assert!(rows > n, "the trace holds every exchange ({rows} lines for {n})");
    f
}

/// The head and the link alone (recorder disabled): what the PC/SC head itself adds.
fn head_only(reader: &str, n: usize) -> Figures {
    let read = cmds::read_field(FIELD_COUNTER, 4);
    let mut head = PcscHead::new("bench", reader, Share::Shared, pcsc::Protocols::ANY);
    head.power_on().unwrap();
    let rec = Recorder::disabled();
    let mut link = Link::new(&mut head, &rec);
    link.exec("select", &cmds::select(&AID_PURSE)).unwrap();
    measure(n, || {
        let r = link.exec("read", &read).unwrap();
        assert!(r.is_ok());
    })
    .finish()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo test --all-targets` runs bench targets without --bench: nothing to measure there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pcsc_roundtrip: run scripts/pcsc-bench.sh to measure");
        return;
    }
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, rounds) = (env("N", 20_000), env("ROUNDS", 3));
    let reader = std::env::var("READER").unwrap_or_else(|_| "cardbench vpcd 0 00 00".into());
    let c_path = std::env::var("C_LOOP").ok();
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    let read = cmds::read_field(FIELD_COUNTER, 4).to_bytes().unwrap();
    let dir = tempfile::tempdir().unwrap();

    println!("{n} READ FIELD exchanges per client per round, {rounds} rounds");
    println!("{:<10} {:>5} {:>13} {:>11} {:>14}", "client", "round", "wall median", "wall mean", "CPU per APDU");
    let mut all: Vec<(&str, Vec<Figures>)> =
        vec![("c-loop", vec![]), ("bare", vec![]), ("cardbench", vec![]), ("head+link", vec![])];
    for r in 1..=rounds {
        if let Some(p) = &c_path {
            all[0].1.push(c_loop(p, &reader, &select, &read, n));
        }
        all[1].1.push(bare(&reader, &select, &read, n));
        all[2].1.push(cardbench_path(&reader, n, dir.path(), r));
        all[3].1.push(head_only(&reader, n));
        for (name, v) in &all {
            if let Some(f) = v.last().filter(|_| v.len() == r) {
                println!("{name:<10} {r:>5} {:>10.1} µs {:>8.1} µs {:>11.2} µs", us(f.median), us(f.mean), us(f.cpu));
            }
        }
    }
    // Ratios per round, then their median over the rounds.
    let ratio = |a: usize, b: usize, pick: fn(&Figures) -> Duration| -> Option<f64> {
        if all[a].1.is_empty() || all[b].1.is_empty() {
            return None;
        }
        Some(median(all[a].1.iter().zip(&all[b].1).map(|(x, y)| us(pick(x)) / us(pick(y))).collect()))
    };
    println!();
    if let Some(x) = ratio(2, 1, |f| f.median) {
        println!("wall per APDU, cardbench / bare pcsc crate (median):  {x:.3}  (target <= 1.05)");
    }
    if let Some(x) = ratio(2, 1, |f| f.mean) {
        println!("wall per APDU, cardbench / bare pcsc crate (mean):    {x:.3}");
    }
    match ratio(2, 0, |f| f.cpu) {
        Some(x) => println!("client CPU per APDU, cardbench / bare C loop:         {x:.3}  (target <= 1.3)"),
        None => println!("client CPU per APDU: no C loop (set C_LOOP; scripts/pcsc-bench.sh builds it)"),
    }
    if let Some(x) = ratio(3, 1, |f| f.median) {
        println!("wall per APDU, head+link (no trace) / bare pcsc crate (median): {x:.3}");
    }
    if let Some(x) = ratio(3, 0, |f| f.cpu) {
        println!("client CPU per APDU, head+link (no trace) / bare C loop: {x:.3}");
    }
    if let Some(x) = ratio(1, 0, |f| f.cpu) {
        println!("client CPU per APDU, bare pcsc crate / bare C loop:   {x:.3}");
    }
}
