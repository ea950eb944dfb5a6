//! One APDU exchange through the in-process head, with tracing off and on (events to the
//! CSV sink thread writing a real file).

use cardbench::card::ins::FIELD_COUNTER;
use cardbench::card::Protocol;
use cardbench::cmds;
use cardbench::event::Recorder;
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use cardbench::sinks::{self, Sink};
use cardbench::trace::TraceCsv;
use criterion::{criterion_group, criterion_main, Criterion};

fn head(protocol: Protocol) -> VirtualHead {
    let keys = Keyset::from_seed("bench", vec![]);
    let mut h = VirtualHead::new("A");
    h.insert(personalize_virtual(&CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0, 1]), protocol, &keys).unwrap());
    h.power_on().unwrap();
    h
}

fn exchange(c: &mut Criterion) {
    let mut g = c.benchmark_group("exchange");
    let read = cmds::read_field(FIELD_COUNTER, 4);
    let mut h = head(Protocol::T1);
    {
        let rec = Recorder::disabled();
        let mut l = Link::new(&mut h, &rec);
        l.exec("select", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
        g.bench_function("read_field/trace_off", |b| b.iter(|| l.exec("bench", &read).unwrap()));
    }
    {
        let dir = tempfile::tempdir().unwrap();
        let (rec, rx) = Recorder::new("bench");
        let sink: Box<dyn Sink> = Box::new(TraceCsv::create(&dir.path().join("trace.csv"), "bench", "bench").unwrap());
        let thread = sinks::spawn(rx, vec![sink]);
        {
            let mut l = Link::new(&mut h, &rec);
            l.card_id = "CB00000000000001".into();
            g.bench_function("read_field/trace_on", |b| b.iter(|| l.exec("bench", &read).unwrap()));
        }
        drop(rec);
        thread.join().unwrap();
    }
    // T=0 with Le=00: the card answers 6C04 and the link re-sends, two wire exchanges.
    let mut h0 = head(Protocol::T0);
    let rec = Recorder::disabled();
    let mut l = Link::new(&mut h0, &rec);
    l.exec("select", &cmds::select(&cardbench::card::ins::AID_PURSE)).unwrap();
    let loose = cmds::read_field(FIELD_COUNTER, 256);
    g.bench_function("read_field_t0_6Cxx/trace_off", |b| b.iter(|| l.exec("bench", &loose).unwrap()));
    g.finish();
}

criterion_group!(benches, exchange);
criterion_main!(benches);
