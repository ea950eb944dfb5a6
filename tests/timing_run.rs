//! `cardbench time` as a user sees it: the shipped hot-path spec on the virtual lab, the
//! interleaving of op and baseline on the wire and in samples.csv, a PURSE op stopping at its
//! counter limit, spec errors located, `cardbench check` on timing specs, and the run loop's
//! observer and stop hooks (the TUI's live view).

use cardbench::timing::sample::{read_csv, Sample};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Output};

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (Output, String) {
    let out = bin().args(args).output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn hot_path_spec_runs_on_the_virtual_lab_and_every_op_has_samples() {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path().to_str().unwrap();
    let (out, text) = run(&[
        "time",
        "test-plans/timing/hot-path.toml",
        "--profile",
        "profiles/virtual-lab.toml",
        "-n",
        "3",
        "--warmup",
        "1",
        "--run-id",
        "T1",
        "--logs",
        l,
    ]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let dir = logs.path().join("T1");
    let samples = read_csv(&dir.join("samples.csv")).unwrap();
    let spec = cardbench::timing::spec::load(&root().join("test-plans/timing/hot-path.toml")).unwrap();
    for op in &spec.ops {
        let measured: Vec<&Sample> = samples.iter().filter(|s| s.op == op.name && !s.baseline).collect();
        assert_eq!(measured.len(), 3, "op {} has 3 measured samples:\n{text}", op.name);
        assert!(measured.iter().all(|s| s.duration_ns > 0 && s.head == "B" && s.card_id == "CB00000000000B02"));
        let iterations: Vec<u32> = measured.iter().map(|s| s.iteration).collect();
        assert_eq!(iterations, vec![0, 1, 2], "op {}: warm-up not counted", op.name);
        let baselines = samples.iter().filter(|s| s.op == op.name && s.baseline).count();
        assert_eq!(baselines, if op.baseline.is_some() { 3 } else { 0 }, "op {}", op.name);
    }
    // The trace holds every wire exchange, labelled with op (test_step), phase (step) and
    // iteration (repeat).
    let trace = cardbench::trace::read(&dir.join("trace.csv")).unwrap();
    let phases: BTreeSet<&str> = trace.iter().map(|r| r.step.as_str()).collect();
    for p in ["prepare", "setup", "op", "baseline"] {
        assert!(phases.contains(p), "trace has {p} rows: {phases:?}");
    }
    // A sample of an apdu op is the trace's duration of that exchange.
    let sign: Vec<u64> = trace
        .iter()
        .filter(|r| r.test_step == "cpay.sign_payment" && r.step == "op" && r.repeat >= 1)
        .map(|r| r.duration_ns)
        .collect();
    let sampled: Vec<u64> =
        samples.iter().filter(|s| s.op == "cpay.sign_payment" && !s.baseline).map(|s| s.duration_ns).collect();
    assert_eq!(sign, sampled);
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    for k in ["tool", "git_describe", "host", "spec_sha256", "profile_sha256", "timer_jitter", "heads"] {
        assert!(header.get(k).is_some(), "run.json has {k}: {header}");
    }
    assert_eq!(header["heads"][0]["atr"], "3B89014341524442454E4348DE");
    assert_eq!(header["heads"][0]["protocol"], "T=1");
    assert!(text.contains("host timer before: resolution"), "{text}");
}

/// A spec of single-card ops, for two heads in parallel.
const TWO_OPS: &str = r#"
[timing]
id = "two-ops"
version = "1"
iterations = 4
warmup = 2

[[op]]
name = "sign"
prepare = [{ select = "cpay" }, { apdu = "00 2A 00 BE BA ${payment_cert}" }]
apdu = "80 88 00 00 10 ${rnd16} 00"
baseline = "80 B2 01 00 08"

[[op]]
name = "getkey"
prepare = [{ select = "xfer" }]
apdu = "80 22 01 00 10 ${rnd16} 00"
baseline = "80 10 00 00 00"
"#;

#[test]
fn op_and_baseline_alternate_per_head_on_the_wire_and_in_samples() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "two.toml", TWO_OPS);
    let l = dir.path().join("logs");
    let (out, text) = run(&[
        "time",
        spec.to_str().unwrap(),
        "--profile",
        "profiles/virtual-lab.toml",
        "--head",
        "B",
        "--head",
        "D",
        "--run-id",
        "T2",
        "--logs",
        l.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let samples = read_csv(&l.join("T2/samples.csv")).unwrap();
    for head in ["B", "D"] {
        let rows: Vec<&Sample> = samples.iter().filter(|s| s.head == head).collect();
        assert_eq!(rows.len(), 2 * 4 * 2, "head {head}: 2 ops × 4 iterations × (op, baseline)");
        // samples.csv keeps each head's order: op, baseline, op, baseline… of one iteration each.
        for pair in rows.chunks(2) {
            assert!(!pair[0].baseline && pair[1].baseline, "{pair:?}");
            assert_eq!((&pair[0].op, pair[0].iteration), (&pair[1].op, pair[1].iteration));
        }
    }
    // On the wire, per head in sequence order: every timed op exchange is followed by its
    // baseline before the next op exchange (warm-up included, repeat 0 and 1).
    let trace = cardbench::trace::read(&l.join("T2/trace.csv")).unwrap();
    let mut per_head: BTreeMap<&str, Vec<(&str, &str, u32)>> = BTreeMap::new();
    for r in &trace {
        if r.step == "op" || r.step == "baseline" {
            per_head.entry(r.head.as_str()).or_default().push((r.test_step.as_str(), r.step.as_str(), r.repeat));
        }
    }
    for (head, seq) in &per_head {
        assert_eq!(seq.len(), 2 * 6 * 2, "head {head}: (2 warm-up + 4) × 2 ops, op and baseline");
        for pair in seq.chunks(2) {
            assert_eq!((pair[0].1, pair[1].1), ("op", "baseline"), "head {head}: {pair:?}");
            assert_eq!((pair[0].0, pair[0].2), (pair[1].0, pair[1].2));
        }
    }
    assert_eq!(per_head.len(), 2);
}

#[test]
fn a_purse_op_stops_cleanly_at_the_counter_limit_with_the_samples_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let lab = std::fs::read_to_string(root().join("profiles/virtual-lab.toml")).unwrap();
    let small = lab.replacen("id = \"CB00000000000B02\"", "id = \"CB00000000000B02\"\npurse_counter = 4", 1);
    let profile = write(dir.path(), "lab.toml", &small);
    let spec = write(
        dir.path(),
        "purse.toml",
        r#"
[timing]
id = "purse-limit"
version = "1"

[heads]
dut = "signer"

[[op]]
name = "write_value"
prepare = [{ select = "purse" }]
apdu = "80 D0 00 00 08 ${i:u32} ${now:u32} 04"
baseline = "80 B2 02 00 04"
limit = { apdu = "80 B2 02 00 04", left = "u32@0", what = "PURSE backward counter" }

[[op]]
name = "after"
apdu = "80 B2 01 00 08"
"#,
    );
    let l = dir.path().join("logs");
    let (out, text) = run(&[
        "time",
        spec.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
        "-n",
        "10",
        "--warmup",
        "1",
        "--run-id",
        "T3",
        "--logs",
        l.to_str().unwrap(),
    ]);
    // A limit the spec foresaw is not a failure: exit 0, said up front and at the stop.
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("card CB00000000000B02 can give 4 more iterations (PURSE backward counter = 4), 11 asked"),
        "{text}"
    );
    assert!(
        text.contains("op write_value on head B: stopped after 3 of 10 measured iterations: the PURSE backward counter is at its limit (0)"),
        "{text}"
    );
    let samples = read_csv(&l.join("T3/samples.csv")).unwrap();
    let measured: Vec<u32> =
        samples.iter().filter(|s| s.op == "write_value" && !s.baseline).map(|s| s.iteration).collect();
    assert_eq!(measured, vec![0, 1, 2], "the warm-up took one count, 3 measured");
    // The next op still ran.
    assert_eq!(samples.iter().filter(|s| s.op == "after").count(), 10);
    // Nothing was sent after the card said 0: the last WRITE VALUE answered counter 0.
    let trace = cardbench::trace::read(&l.join("T3/trace.csv")).unwrap();
    let writes: Vec<&cardbench::event::Exchange> =
        trace.iter().filter(|r| r.test_step == "write_value" && r.step == "op").collect();
    assert_eq!(writes.len(), 4);
    assert!(writes.iter().all(|r| r.sw == 0x9000));
    assert_eq!(writes.last().unwrap().response, vec![0, 0, 0, 0]);
}

fn spec_error(text: &str) -> String {
    cardbench::timing::spec::parse_str(Path::new("t.toml"), text).unwrap_err().to_string()
}

#[test]
fn spec_errors_are_located_at_file_line_col() {
    let head = "[timing]\nid = \"x\"\nversion = \"1\"\n\n[[op]]\nname = \"a\"\n";
    let cases: &[(&str, &str)] = &[
        ("apdu = \"80 G8\"\n", "t.toml:7:8: 'G' is not a hex digit"),
        ("apdu = \"80 88 00 00 10 ${rnd17} 00\"\n", "t.toml:7:8: '${rnd17}' is not defined"),
        ("apdu = \"80B2010008\"\nbogus = 1\n", "t.toml:8:1: unknown field `bogus`"),
        (
            "engine = \"charge\"\namount = 1\ntime = \"SIGN PAYMNT\"\n",
            "t.toml:9:8: 'SIGN PAYMNT' is not a command name",
        ),
        ("apdu = \"80B2010008\"\nbaseline_sw = \"6A86\"\n", "t.toml:8:15: `baseline_sw` without `baseline`"),
        ("apdu = \"80B2010008\"\nhead = \"reader2\"\n", "t.toml:8:8: head 'reader2' is not one of dut, peer"),
        (
            "engine = \"value_transfer\"\nfrom = \"dut\"\nto = \"dut\"\namount = 1\n",
            "t.toml:9:6: engine value_transfer needs two different heads",
        ),
        (
            "apdu = \"80B2010008\"\nlimit = { apdu = \"80B2020004\", left = \"u64@0\", what = \"c\" }\n",
            "t.toml:8:39: limit left 'u64@0'",
        ),
        ("setup = [{ select = \"wallet\" }]\napdu = \"80B2010008\"\n", "t.toml:7:21: unknown applet 'wallet'"),
        (
            "setup = [{ apdu = \"80B2010008\", engine = \"pay\" }]\napdu = \"80B2010008\"\n",
            "t.toml:7:42: a step takes one of",
        ),
    ];
    for (body, want) in cases {
        let e = spec_error(&format!("{head}{body}"));
        assert!(e.starts_with(want), "for\n{body}\ngot: {e}\nwant: {want}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    assert!(spec_error(&format!("{head}apdu = \"80B2010008\"\n[[op]]\nname = \"a\"\napdu = \"80B2010008\"\n"))
        .starts_with("t.toml:9:8: op name 'a' is used twice"));
}

#[test]
fn check_accepts_the_shipped_timing_specs_and_locates_bad_ones() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("test-plans/timing")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (out, text) = run(&["check", p.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml"]);
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(text.contains("is valid"), "{text}");
            n += 1;
        }
    }
    assert!(n >= 1);
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", "[timing]\nid = \"x\"\nversion = \"1\"\n[heads]\ndut = \"nobody\"\n[[op]]\nname = \"a\"\napdu = \"80B2010008\"\n");
    let (out, text) = run(&["check", bad.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml"]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("bad.toml:5:7: dut 'nobody' is not a head name or role in the profile"), "{text}");
}

#[test]
fn a_modelled_card_takes_at_least_its_service_time_and_bad_models_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let lab = std::fs::read_to_string(root().join("profiles/virtual-lab.toml")).unwrap();
    let model = lab.replacen(
        "role = \"signer\"\ncard = \"card-b\"\n",
        "role = \"signer\"\ncard = \"card-b\"\nservice_seed = 3\n[[head.service]]\nins = \"88\"\nus = 5000\n\
         [[head.service]]\nins = \"default\"\nmin_us = 100\nmax_us = 200\n",
        1,
    );
    let profile = write(dir.path(), "lab.toml", &model);
    let spec = write(dir.path(), "two.toml", TWO_OPS);
    let l = dir.path().join("logs");
    let (out, text) = run(&[
        "time",
        spec.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
        "--head",
        "signer",
        "-n",
        "3",
        "--run-id",
        "T4",
        "--logs",
        l.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let samples = read_csv(&l.join("T4/samples.csv")).unwrap();
    // The model is a floor the head never undercuts (how far above it lands is the host's).
    for s in &samples {
        let floor = if s.op == "sign" && !s.baseline { 5_000_000 } else { 100_000 };
        assert!(s.duration_ns >= floor, "{s:?}");
    }
    let bad = model.replacen("ins = \"88\"\nus = 5000", "ins = \"88\"\nmean_us = 5000", 1);
    let p = write(dir.path(), "bad.toml", &bad);
    let line = bad.lines().position(|x| x == "[[head.service]]").unwrap() + 1;
    let (out, text) = run(&["check", spec.to_str().unwrap(), "--profile", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("bad.toml:{line}:1: service time needs `us` (fixed)")), "{text}");
}

#[test]
fn restore_puts_the_virtual_card_back_and_t0_samples_sum_their_get_response_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "restore.toml",
        r#"
[timing]
id = "restore"
version = "1"
iterations = 4
warmup = 1

[heads]
dut = "purse"

[[op]]
name = "write_value"
prepare = [{ select = "purse" }]
apdu = "80 D0 00 00 08 ${i:u32} ${now:u32} 04"
restore = true

[[op]]
name = "read_all"
apdu = "80 B0 00 00 00"
"#,
    );
    let l = dir.path().join("logs");
    let (out, text) = run(&[
        "time",
        spec.to_str().unwrap(),
        "--profile",
        "profiles/virtual-lab.toml",
        "--run-id",
        "T5",
        "--logs",
        l.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let trace = cardbench::trace::read(&l.join("T5/trace.csv")).unwrap();
    // Card A starts at counter 1000: every WRITE VALUE, warm-up included, finds it there again
    // (T=0: the counter comes back in the GET RESPONSE round).
    let answers: Vec<(u16, Vec<u8>)> = trace
        .iter()
        .filter(|r| r.test_step == "write_value" && r.step == "op" && r.sw == 0x9000)
        .map(|r| (r.sw, r.response.clone()))
        .collect();
    assert_eq!(answers, vec![(0x9000, vec![0u8, 0, 0x03, 0xE7]); 5]);
    // Card A is T=0: READ ALL comes back through GET RESPONSE; a sample is the sum of the
    // command's wire rows of that iteration.
    let samples = read_csv(&l.join("T5/samples.csv")).unwrap();
    let rounds = trace.iter().filter(|r| r.test_step == "read_all" && r.step == "op" && r.repeat == 1).count();
    assert!(rounds >= 2, "READ ALL on T=0 takes a GET RESPONSE round: {rounds}");
    for s in samples.iter().filter(|s| s.op == "read_all") {
        let sum: u64 = trace
            .iter()
            .filter(|r| r.test_step == "read_all" && r.step == "op" && r.repeat == s.iteration + 1)
            .map(|r| r.duration_ns)
            .sum();
        assert_eq!(s.duration_ns, sum, "{s:?}");
    }
}

/// The run loop's hooks for a live view (the TUI's Timing panel): the observer gets every
/// measured sample, in the order samples.csv has them, and the stop flag ends the run after
/// the iteration in progress, with the samples so far written and a note saying why.
#[test]
fn observer_gets_every_sample_and_the_stop_flag_ends_the_run_between_iterations() {
    use cardbench::timing::run::{bind, execute, Options};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let spec = write(
        d.path(),
        "small.toml",
        r#"[timing]
id = "hooks"
version = "1"
iterations = 50
warmup = 2

[heads]
dut = "signer"

[[op]]
name = "cpay.sign_payment"
prepare = [{ select = "cpay" }, { apdu = "00 2A 00 BE BA ${payment_cert}" }]
apdu = "80 88 00 00 10 ${rnd16} 00"
baseline = "80 B2 01 00 08"

[[op]]
name = "cpay.read"
prepare = [{ select = "cpay" }]
apdu = "80 B2 01 00 08"
"#,
    );
    let profile = root().join("profiles/virtual-lab.toml");
    let loaded = cardbench::profile::load(&profile).unwrap();
    let spec = cardbench::timing::spec::load(&spec).unwrap();
    let run_all = |opts: &Options, dir: &Path| {
        let mut lab = cardbench::lab::Lab::from_profile(&loaded).unwrap();
        let groups = bind(&spec, &lab.heads, &[], &[]).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        execute(&spec, &mut lab, &groups, opts, dir, "hooks", &profile).unwrap()
    };

    // Every sample, in order.
    let (tx, rx) = crossbeam_channel::unbounded();
    let r = run_all(&Options { observer: Some(tx), ..Options::default() }, &d.path().join("all"));
    let seen: Vec<Sample> = rx.try_iter().collect();
    assert_eq!(r.samples.len(), 50 * 2 + 50);
    assert_eq!(seen, r.samples);
    assert_eq!(read_csv(&d.path().join("all/samples.csv")).unwrap(), seen);

    // A rendezvous channel: the run waits for each sample to be taken. The stop flag is set
    // once the 9th sample (iteration 4's op) is taken, before the 10th (its baseline) is: the
    // iteration in progress finishes, iteration 5 never starts, nor the second op.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded::<Sample>(0);
    let flag = stop.clone();
    let taker = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Ok(s) = rx.recv() {
            got.push(s);
            if got.len() == 9 {
                flag.store(true, Ordering::Relaxed);
            }
        }
        got
    });
    let r = run_all(&Options { observer: Some(tx), stop: Some(stop), ..Options::default() }, &d.path().join("stopped"));
    let got = taker.join().unwrap();
    assert_eq!(got.len(), 10, "{got:?}");
    assert_eq!(got, r.samples);
    assert_eq!(got.last().map(|s| (s.iteration, s.baseline)), Some((4, true)));
    let notes = &r.groups[0].notes;
    assert!(
        notes.iter().any(|n| n == "op cpay.sign_payment on head B: stopped by the operator after 5 of 50"),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("stopped by the operator before op cpay.read")), "{notes:?}");
    assert!(r.groups[0].failures.is_empty(), "{:?}", r.groups[0].failures);
    assert_eq!(read_csv(&d.path().join("stopped/samples.csv")).unwrap().len(), 10);
}
