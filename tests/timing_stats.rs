//! Timing statistics and `cardbench time compare` as a user sees them: figures against known
//! distributions, interval coverage on seeded samples, outliers kept, verdicts and exit codes,
//! located errors for bad input, and the files a run leaves.

use cardbench::timing::compare::{compare, MeasureChoice, Side, Unit, Verdict};
use cardbench::timing::report::{self, TimingJson};
use cardbench::timing::sample::{write_csv, Sample};
use cardbench::timing::stats::{summarize, summarize_with, CardTime, Options, Summary};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use statrs::distribution::{ContinuousCDF, Normal};
use std::path::Path;
use std::process::Command as Proc;

fn bin() -> Proc {
    Proc::new(env!("CARGO_BIN_EXE_cardbench"))
}

/// Seeded standard normal variates by inversion (statrs' quantile function).
struct Gauss {
    rng: ChaCha8Rng,
    n: Normal,
}

impl Gauss {
    fn new(seed: u64) -> Gauss {
        Gauss { rng: ChaCha8Rng::seed_from_u64(seed), n: Normal::new(0.0, 1.0).unwrap() }
    }
    fn next(&mut self) -> f64 {
        // (0, 1) open: 53 random bits, shifted off zero.
        let u = ((self.rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        self.n.inverse_cdf(u)
    }
}

/// An interleaved run on a modelled card: op = `op_ns` card time, baseline = `base_ns`, both
/// plus a transport delay that is lognormal (median 200 µs, σ = 0.5) and a slow host drift
/// common to both members of an iteration.
fn modelled_run(card: &str, op_ns: f64, base_ns: f64, n: u32, seed: u64) -> Vec<Sample> {
    let mut g = Gauss::new(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let drift = 50_000.0 * (f64::from(i) / 40.0).sin();
        let transport = |g: &mut Gauss| 200_000.0 * (0.5 * g.next()).exp();
        let card_noise = |g: &mut Gauss, ns: f64| ns * (1.0 + 0.005 * g.next());
        let op = card_noise(&mut g, op_ns) + transport(&mut g) + drift;
        let base = card_noise(&mut g, base_ns) + transport(&mut g) + drift;
        for (d, baseline) in [(op, false), (base, true)] {
            out.push(Sample {
                op: "sign_payment".into(),
                iteration: i,
                head: "dut".into(),
                card_id: card.into(),
                atr: "3B8F8001".into(),
                duration_ns: d.round() as u64,
                baseline,
            });
        }
    }
    out
}

fn write_run(dir: &Path, samples: &[Sample]) {
    std::fs::create_dir_all(dir).unwrap();
    write_csv(&dir.join("samples.csv"), samples).unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("timer_jitter".into(), serde_json::json!({ "max_gap_ns": 1234 }));
    let (out, stats, text) =
        report::finish_run(dir, &dir.file_name().unwrap().to_string_lossy(), samples, extra).unwrap();
    assert!(out.json.is_file() && out.csv.is_file() && out.svg.is_file());
    assert!(stats.iter().all(|o| text.contains(&o.op)));
}

#[test]
fn quantiles_of_a_known_sample() {
    // 0, 1, ..., 100: type-8 quantiles fall on whole values here (h = 101·τ + 1/3·(1 − τ)·...)
    // and the figures are checked against the definition written out by hand.
    let v: Vec<f64> = (0..=100).map(f64::from).collect();
    let s = Summary::of(&v, [0; 32], &Options::default()).unwrap();
    let type8 = |tau: f64| {
        let h = (101.0 + 1.0 / 3.0) * tau + 1.0 / 3.0;
        let k = h.floor();
        (k - 1.0) + (h - k) // the sorted values are 0-based ranks: x_(k) = k − 1
    };
    for (got, tau) in [(s.p5, 0.05), (s.q1, 0.25), (s.median, 0.5), (s.q3, 0.75), (s.p95, 0.95), (s.p99, 0.99)] {
        assert!((got - type8(tau)).abs() < 1e-9, "tau {tau}: {got} vs {}", type8(tau));
    }
    assert_eq!((s.n, s.min, s.max, s.median, s.mean), (101, 0.0, 100.0, 50.0, 50.0));
    assert_eq!(s.mad, 25.0);
    assert!((s.sd - (101.0 * 102.0 / 12.0_f64).sqrt()).abs() < 1e-9, "{}", s.sd);
}

#[test]
fn median_ci_covers_the_true_median_95_percent_of_the_time() {
    // 1000 seeded sample sets of 101 values each, normal and lognormal; a 95% interval must
    // hold the true median in 95% of them. With 1000 sets the binomial standard error is
    // 0.7 points: the accepted band 92.5%..97.5% is ±3.5 standard errors.
    let opts = Options { resamples: 1000, confidence: 0.95 };
    for (name, true_median, transform) in [
        ("normal", 10.0, (|z: f64| 10.0 + 2.0 * z) as fn(f64) -> f64),
        ("lognormal", 1.0, (|z: f64| (0.8 * z).exp()) as fn(f64) -> f64),
    ] {
        let mut g = Gauss::new(42);
        let mut covered = 0;
        for set in 0..1000u32 {
            let v: Vec<f64> = (0..101).map(|_| transform(g.next())).collect();
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&set.to_le_bytes());
            let s = Summary::of(&v, seed, &opts).unwrap();
            covered += usize::from(s.median_ci.contains(true_median));
        }
        let rate = covered as f64 / 1000.0;
        eprintln!("median CI coverage, {name}: {rate}");
        assert!((0.925..=0.975).contains(&rate), "{name}: coverage {rate}");
    }
}

#[test]
fn card_time_ci_covers_the_modelled_card_time() {
    // SIGN PAYMENT 40 ms, READ FIELD 1 ms: the card time is 39 ms whatever the transport and
    // the drift add. 300 seeded runs of 101 iterations; same band as above, ±4.5 standard
    // errors for 300 runs.
    let opts = Options { resamples: 1000, confidence: 0.95 };
    let mut covered = 0;
    let mut worst: f64 = 0.0;
    for run in 0..300u64 {
        let s = modelled_run("C1", 40e6, 1e6, 101, 1000 + run);
        let op: Vec<(u32, u64)> = s.iter().filter(|x| !x.baseline).map(|x| (x.iteration, x.duration_ns)).collect();
        let base: Vec<(u32, u64)> = s.iter().filter(|x| x.baseline).map(|x| (x.iteration, x.duration_ns)).collect();
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&run.to_le_bytes());
        let c = CardTime::of(&op, &base, seed, &opts).unwrap();
        assert_eq!((c.pairs, c.unpaired), (101, 0));
        covered += usize::from(c.ci.contains(39e6));
        worst = worst.max((c.median - 39e6).abs() / 39e6);
    }
    let rate = covered as f64 / 300.0;
    eprintln!("card-time CI coverage {rate}, worst relative error of the median {worst}");
    assert!((0.91..=0.99).contains(&rate), "coverage {rate}");
    assert!(worst < 0.01, "worst card-time error {worst}");
}

#[test]
fn shift_ci_covers_the_true_shift_and_the_test_keeps_its_level() {
    // 400 seeded pairs of samples, 60 a side, B = A's distribution moved by a known amount:
    // the 95% Hodges-Lehmann interval must hold it ~95% of the time. And with no shift the
    // Mann-Whitney test must call a difference (p < 0.05) ~5% of the time, not more.
    // Bands: ±3.5 binomial standard errors (1.1 points for 400 runs at 95%).
    let mut g = Gauss::new(99);
    for (name, draw) in [
        ("normal", (|z: f64| 1e6 + 2e4 * z) as fn(f64) -> f64),
        ("lognormal", (|z: f64| 1e6 * (0.3 * z).exp()) as fn(f64) -> f64),
    ] {
        let (mut covered, mut false_alarms) = (0, 0);
        for _ in 0..400 {
            let a: Vec<i64> = (0..60).map(|_| draw(g.next()).round() as i64).collect();
            let b: Vec<i64> = (0..60).map(|_| draw(g.next()).round() as i64 + 15_000).collect();
            let same: Vec<i64> = (0..60).map(|_| draw(g.next()).round() as i64).collect();
            let t = cardbench::timing::compare::shift_test(&a, &b, 0.95).unwrap();
            covered += usize::from(t.ci.contains(15_000.0));
            let t0 = cardbench::timing::compare::shift_test(&a, &same, 0.95).unwrap();
            false_alarms += usize::from(t0.p_value < 0.05);
        }
        let (cov, alarms) = (covered as f64 / 400.0, false_alarms as f64 / 400.0);
        eprintln!("{name}: shift CI coverage {cov}, false alarm rate {alarms}");
        assert!((0.91..=0.99).contains(&cov), "{name}: coverage {cov}");
        assert!(alarms <= 0.09, "{name}: false alarms {alarms}");
    }
}

#[test]
fn tukey_outliers_are_flagged_counted_and_kept() {
    let mut s = modelled_run("C1", 40e6, 1e6, 200, 7);
    // Three iterations where the host stalled (a page fault, another process): 5 ms more.
    for x in s.iter_mut().filter(|x| !x.baseline && [17, 80, 151].contains(&x.iteration)) {
        x.duration_ns += 5_000_000;
    }
    let stats = summarize(&s);
    assert_eq!(stats.len(), 1);
    let o = &stats[0];
    assert_eq!(o.op_time.n, 200, "outliers stay in the figures");
    assert!(o.op_time.outliers_high >= 3, "{:?}", o.op_time);
    for i in [17, 80, 151] {
        assert!(o.outlier_iterations.contains(&i), "{:?}", o.outlier_iterations);
    }
    assert_eq!(o.op_time.outliers(), o.outlier_iterations.len());
    assert!(o.op_time.max > 45e6);
}

#[test]
fn summaries_are_per_op_head_and_card_in_first_seen_order() {
    let mut s = modelled_run("C2", 40e6, 1e6, 20, 1);
    s.extend(modelled_run("C1", 40e6, 1e6, 20, 2));
    for x in s.iter_mut().skip(40) {
        x.head = "dut2".into();
    }
    let stats = summarize_with(&s, &Options { resamples: 200, confidence: 0.95 });
    let keys: Vec<(&str, &str)> = stats.iter().map(|o| (o.head.as_str(), o.card_id.as_str())).collect();
    assert_eq!(keys, [("dut", "C2"), ("dut2", "C1")]);
    assert!(stats.iter().all(|o| o.baseline.is_some() && o.card_time.as_ref().unwrap().pairs == 20));
    // Same samples, same figures: the bootstrap is seeded by what it summarizes.
    assert_eq!(stats, summarize_with(&s, &Options { resamples: 200, confidence: 0.95 }));
}

#[test]
fn a_2_percent_slower_card_is_detected_with_200_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("A"), dir.path().join("B"));
    write_run(&a, &modelled_run("C1", 40e6, 1e6, 200, 11));
    write_run(&b, &modelled_run("C2", 40.8e6, 1e6, 200, 12));
    let out = bin().arg("time").arg("compare").arg(&a).arg(&b).args(["--threshold", "1%"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("sign_payment")).unwrap();
    assert!(line.contains(" card ") && line.ends_with("slower"), "{line}");
    assert!(stdout.contains("significant regression beyond 1%: sign_payment"), "{stdout}");
    // Both sides' histograms on one scale, each with its median marked.
    let hist: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("sign_payment (card time, ")).collect();
    assert!(hist.len() >= 5 && hist[1].starts_with("  A") && hist[3].starts_with("  B"), "{stdout}");
    assert!(hist[2].contains('┃') && hist[4].contains('┃'), "{stdout}");
    let col = |l: &str| l.chars().position(|c| c == '┃').unwrap();
    assert!(col(hist[4]) > col(hist[2]), "B's median right of A's: {stdout}");

    // The same through the library, for the figures: 0.8 ms of 39 ms of card time = 2.05%.
    let c = compare(
        &Side::load(std::slice::from_ref(&a)).unwrap(),
        &Side::load(std::slice::from_ref(&b)).unwrap(),
        0.01,
        MeasureChoice::Auto,
        Unit::Sample,
    );
    let o = &c.ops[0];
    assert_eq!((o.n_a, o.n_b, o.verdict), (200, 200, Verdict::Slower));
    assert!(o.test.ci.contains(0.8e6), "{:?}", o.test);
    assert!((o.relative - 0.8 / 39.0).abs() < 0.003, "{}", o.relative);

    // Swapped, B is the faster one: not a regression, exit 0.
    let out = bin().arg("time").arg("compare").arg(&b).arg(&a).args(["--threshold", "1%"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("sign_payment") && l.ends_with("faster")), "{stdout}");
}

#[test]
fn identical_cards_show_no_significant_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("A"), dir.path().join("B"));
    write_run(&a, &modelled_run("C1", 40e6, 1e6, 200, 21));
    write_run(&b, &modelled_run("C2", 40e6, 1e6, 200, 22));
    let out = bin().arg("time").arg("compare").arg(&a).arg(&b).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let op = &v["ops"][0];
    assert_eq!(op["verdict"], "no significant difference", "{op}");
    assert_eq!(op["measure"], "card");
    assert!(op["p_value"].as_f64().unwrap() > 0.05, "{op}");
    assert!(op["relative_ci"]["lo"].as_f64().unwrap() < 0.0 && op["relative_ci"]["hi"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_lot_folder_pools_its_cards() {
    let dir = tempfile::tempdir().unwrap();
    for (k, card) in ["C1", "C2", "C3"].iter().enumerate() {
        write_run(&dir.path().join("lot6").join(format!("run{k}")), &modelled_run(card, 40e6, 1e6, 100, 30 + k as u64));
        write_run(
            &dir.path().join("lot7").join(format!("run{k}")),
            &modelled_run(card, 41.2e6, 1e6, 100, 40 + k as u64),
        );
    }
    let a = Side::load(&[dir.path().join("lot6")]).unwrap();
    let b = Side::load(&[dir.path().join("lot7")]).unwrap();
    assert_eq!((a.runs.len(), a.cards()), (3, 3));
    let c = compare(&a, &b, 0.02, MeasureChoice::Auto, Unit::Sample);
    assert_eq!((c.ops[0].n_a, c.ops[0].n_b), (300, 300));
    assert_eq!(c.ops[0].verdict, Verdict::Slower);
    // A run of lot 7 without baselines: the card time no longer stands for the whole lot, so
    // `auto` compares the op durations of every run rather than drop that run.
    let mut no_base = modelled_run("C4", 41.2e6, 1e6, 100, 50);
    no_base.retain(|s| !s.baseline);
    write_run(&dir.path().join("lot7").join("run3"), &no_base);
    let b4 = Side::load(&[dir.path().join("lot7")]).unwrap();
    let mixed = compare(&a, &b4, 0.02, MeasureChoice::Auto, Unit::Sample);
    assert_eq!((mixed.ops[0].measure, mixed.ops[0].n_b), (cardbench::timing::compare::Measure::Op, 400));
    // The raw op durations can be asked for instead of the card time.
    let raw = compare(&a, &b, 0.02, MeasureChoice::Op, Unit::Sample);
    assert!(raw.ops[0].median_a > 40e6 && raw.ops[0].relative < c.ops[0].relative);
    // One median per card: three observations a side. A 3-against-3 rank test cannot reach
    // p < 0.05 whatever the shift (its smallest two-sided p is 0.1), so it says so honestly.
    let per_card = compare(&a, &b, 0.02, MeasureChoice::Auto, Unit::Card);
    let o = &per_card.ops[0];
    assert_eq!((o.n_a, o.n_b, o.verdict), (3, 3, Verdict::NoSignificantDifference));
    assert!(o.test.p_value > 0.05 && o.relative > 0.02, "{o:?}");
}

#[test]
fn bad_input_is_located_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    write_run(&good, &modelled_run("C1", 40e6, 1e6, 10, 1));
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("samples.csv"),
        "op,iteration,head,card_id,atr,duration_ns,baseline\nsign,0,dut,C1,3B,40000000,false\nsign,1,dut,C1,3B,forty,false\n",
    )
    .unwrap();
    let out = bin().arg("time").arg("compare").arg(&good).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("{}:3: `duration_ns` is not a whole number", bad.join("samples.csv").display())),
        "{stderr}"
    );

    let json = dir.path().join("broken.json");
    std::fs::write(&json, "{\n  \"schema\": \"cardbench-timing/1\",\n  \"ops\": [,]\n}\n").unwrap();
    let out = bin().arg("time").arg("compare").arg(&good).arg(&json).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains(&format!("{}:3:11: ", json.display())), "{stderr}");

    let out = bin().arg("time").arg("compare").arg(&good).arg(dir.path().join("nowhere")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere: no such file or folder"));

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("samples.csv"), "op,iteration,head,card_id,atr,duration_ns,baseline\n").unwrap();
    let out = bin().arg("time").arg("compare").arg(&good).arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no op measured on both sides"));

    let out = bin().arg("time").arg("compare").arg(&good).arg(&good).args(["--threshold", "lots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threshold 'lots'"));
}

#[test]
fn a_run_leaves_timing_json_csv_and_an_svg_with_one_group_per_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = modelled_run("C1", 40e6, 1e6, 50, 5);
    let mut other = modelled_run("C1", 12e6, 1e6, 50, 6);
    other.iter_mut().for_each(|x| x.op = "value_send <&>".into());
    s.extend(other);
    write_run(dir.path(), &s);

    let doc: TimingJson =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("timing.json")).unwrap()).unwrap();
    assert_eq!(doc.schema, "cardbench-timing/1");
    assert_eq!(doc.extra["timer_jitter"]["max_gap_ns"], 1234, "the run's own fields are kept");
    assert_eq!(doc.ops.len(), 2);
    assert!(doc.ops[0].card_time.as_ref().unwrap().ci.contains(doc.ops[0].card_time.as_ref().unwrap().median));

    let mut r = csv::Reader::from_path(dir.path().join("timing.csv")).unwrap();
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), report::CSV_COLUMNS.to_vec());
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let measures: Vec<(&str, &str)> = rows.iter().map(|r| (&r[0], &r[4])).collect();
    assert_eq!(
        measures,
        [
            ("sign_payment", "op"),
            ("sign_payment", "baseline"),
            ("sign_payment", "card"),
            ("value_send <&>", "op"),
            ("value_send <&>", "baseline"),
            ("value_send <&>", "card")
        ]
    );
    assert_eq!(&rows[0][5], "50");

    // Well-formed XML with one <g class="op"> per op, each naming its op.
    let svg = std::fs::read_to_string(dir.path().join("timing.svg")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut groups = Vec::new();
    let mut depth = 0i32;
    let mut roots = 0;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) => {
                if depth == 0 {
                    roots += 1;
                    assert_eq!(e.name().as_ref(), b"svg");
                }
                depth += 1;
                if e.name().as_ref() == b"g"
                    && e.try_get_attribute("class").unwrap().is_some_and(|a| &*a.value == b"op")
                {
                    let op = e.try_get_attribute("data-op").unwrap().unwrap().unescape_value().unwrap().into_owned();
                    groups.push(op);
                }
            }
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((roots, depth), (1, 0));
    assert_eq!(groups, ["sign_payment", "value_send <&>"]);
}

#[test]
fn console_table_has_every_op_with_median_ci_and_histogram() {
    let s = modelled_run("C1", 40e6, 1e6, 100, 9);
    let stats = summarize(&s);
    let text = report::console(&s, &stats);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("OP") && lines[0].contains("95% CI OF MEDIAN"), "{text}");
    for what in ["op", "baseline", "card"] {
        assert!(
            lines.iter().any(|l| l.starts_with("sign_payment") && l.split_whitespace().nth(2) == Some(what)),
            "{text}"
        );
    }
    assert!(text.contains('┃') && text.chars().any(|c| ('▁'..='█').contains(&c)), "{text}");
}
