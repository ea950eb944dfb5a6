//! Per-APDU round trip through pcscd + the vpcd bridge: cardbench's PC/SC head and link
//! beside a bare pcsc-crate transmit loop, against the same card. Run by
//! scripts/pcsc-bench.sh, which starts pcscd and the bridge; prints median and p99.

use cardbench::card::ins::{AID_PURSE, FIELD_COUNTER};
use cardbench::cmds;
use cardbench::event::Recorder;
use cardbench::head::pcsc_head::{PcscHead, Share};
use cardbench::head::Head;
use cardbench::link::Link;
use std::time::{Duration, Instant};

fn stats(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let p = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    println!(
        "{name:<34} n={}  median {:>7.1} µs  p99 {:>7.1} µs",
        d.len(),
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
}

fn main() {
    // `cargo test --all-targets` runs bench targets without --bench: nothing to measure there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("pcsc_roundtrip: run scripts/pcsc-bench.sh to measure");
        return;
    }
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let reader = std::env::var("READER").unwrap_or_else(|_| "cardbench vpcd 0 00 00".into());
    let select = cmds::select(&AID_PURSE).to_bytes().unwrap();
    let read = cmds::read_field(FIELD_COUNTER, 4);
    let read_bytes = read.to_bytes().unwrap();

    // Bare pcsc crate: connect, select, then time each transmit.
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd running (scripts/pcscd-lab.sh start)");
    let name = ctx
        .list_readers_owned()
        .unwrap()
        .into_iter()
        .find(|r| r.to_string_lossy().contains(&reader))
        .expect("reader present");
    let card = ctx.connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY).expect("card in reader");
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    card.transmit(&select, &mut buf).unwrap();
    let mut bare = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = card.transmit(&read_bytes, &mut buf).unwrap();
        bare.push(t.elapsed());
        assert_eq!(r.len(), 6);
    }
    drop(card);
    drop(ctx);

    // cardbench: PcscHead behind the link (procedure-byte handling, tracing off).
    let mut head = PcscHead::new("bench", &reader, Share::Shared, pcsc::Protocols::ANY);
    head.power_on().unwrap();
    let rec = Recorder::disabled();
    let mut link = Link::new(&mut head, &rec);
    link.exec("bench", &cmds::select(&AID_PURSE)).unwrap();
    let mut ours = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = link.exec("bench", &read).unwrap();
        ours.push(t.elapsed());
        assert!(r.is_ok());
    }
    stats("bare pcsc-crate transmit", bare);
    stats("cardbench PcscHead + Link::exec", ours);
}
