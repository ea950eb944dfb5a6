//! The PC/SC path through the real stack: a private pcscd with vsmartcard vpcd readers, the
//! reference card served by `cardbench sim vpcd`, and cardbench (and pcsc-tools' scriptor)
//! as PC/SC clients. pcscd is one per machine, so everything runs in one test, in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(ROOT);
    c
}

/// pcscd for the duration of the test, stopped even when an assertion fails.
struct Pcscd {
    dir: PathBuf,
}

impl Pcscd {
    fn start(readers: u32, dir: &Path) -> Pcscd {
        let out = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/pcscd-lab.sh"))
            .args(["start", &readers.to_string()])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pcscd: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Pcscd { dir: dir.to_path_buf() }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let _ =
            Command::new("bash").arg(Path::new(ROOT).join("scripts/pcscd-lab.sh")).arg("stop").arg(&self.dir).status();
    }
}

struct Bridge(Child);

impl Bridge {
    fn start(card: &str, reader: u32, delay_us: u32) -> Bridge {
        let port = 35963 + 2 * reader;
        let child = bin()
            .args(["sim", "vpcd", "--profile", "profiles/vpcd-lab.toml", "--card", card])
            .args(["--port", &port.to_string(), "--delay-us", &delay_us.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Bridge(child)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn available() -> bool {
    let root = unsafe_free_uid() == 0;
    let have =
        Path::new("/usr/sbin/pcscd").exists() && Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists();
    if !(root && have) {
        // CI installs pcscd and vpcd and runs as root (.ci/run); anywhere else, say why we skip.
        assert!(std::env::var_os("CI").is_none(), "CI must run the PC/SC test: pcscd/vpcd missing or not root");
        eprintln!("NOTICE: PC/SC test skipped (needs root, pcscd and vsmartcard-vpcd)");
    }
    root && have
}

fn unsafe_free_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(1)
}

/// Wait until exactly `n` vpcd readers hold a card.
fn wait_readers_with_cards(n: usize) -> String {
    let t0 = Instant::now();
    loop {
        let out = bin().arg("heads").output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        if s.lines().filter(|l| l.contains(" card ")).count() == n {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "cards did not appear in pcscd:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn trace_rows(p: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    // Everything but run id, wall time, monotonic offset and duration.
    r.records()
        .map(|x| x.unwrap())
        .map(|x| [4, 5, 6, 7, 8, 9, 10, 11, 13, 14].iter().map(|i| x[*i].to_string()).collect())
        .collect()
}

#[test]
fn pcsc_through_pcscd_and_vpcd() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let _pcscd = Pcscd::start(6, &tmp.path().join("pcscd"));

    // 0. Presence events: readers at start, then a card inserted and removed (a bridge started
    //    and stopped), as `cardbench heads --watch` reports them.
    {
        let watch = bin().args(["heads", "--watch", "--seconds", "5"]).stdout(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(800));
        let b = Bridge::start("card-a", 3, 0);
        wait_readers_with_cards(1);
        drop(b);
        wait_readers_with_cards(0);
        let out = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
        let pos = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("'{needle}' not in:\n{out}"));
        let added = pos("reader added    cardbench vpcd 3 00 00");
        let inserted = pos("card inserted   cardbench vpcd 3 00 00  3B89004341524442454E4348");
        let removed = pos("card removed    cardbench vpcd 3 00 00");
        assert!(added < inserted && inserted < removed, "events in order:\n{out}");
    }

    // 1. The smoke plan through PC/SC gives the same rows as in process, apart from timing.
    let bridges: Vec<Bridge> = ["card-a", "card-b", "card-c", "card-d"]
        .iter()
        .enumerate()
        .map(|(i, c)| Bridge::start(c, i as u32, 0))
        .collect();
    let listing = wait_readers_with_cards(4);
    assert!(listing.contains("cardbench vpcd 0 00 00"), "{listing}");
    assert!(listing.contains("3B89004341524442454E4348"), "heads lists the vpcd readers with ATRs:\n{listing}");
    let logs = tmp.path().join("logs");
    for (profile, id) in [("profiles/vpcd-lab.toml", "pcsc"), ("profiles/virtual-lab.toml", "inproc")] {
        let out = bin()
            .args(["run", "test-plans/smoke.toml", "-q", "--profile", profile, "--run-id", id, "--logs"])
            .arg(&logs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{profile}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a, b) = (trace_rows(&logs.join("pcsc/trace.csv")), trace_rows(&logs.join("inproc/trace.csv")));
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "row {} differs between PC/SC and in-process", i + 1);
    }

    // 2. pcsc-tools' scriptor talks to the vpcd-bridged reference card.
    if Path::new("/usr/bin/scriptor").exists() {
        let mut child = Command::new("scriptor")
            .args(["-r", "cardbench vpcd 0 00 00"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"00A4040007A0000007770001\n80B2010008\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_uppercase();
        assert!(s.contains("< CB 00 00 00 00 00 0A 01 90 00 : NORMAL PROCESSING"), "scriptor:\n{s}");
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI installs pcsc-tools for the interop test");
    }
    drop(bridges);
    wait_readers_with_cards(0);

    // 3. The standard suite through PC/SC on two vpcd slots at once (batch heads E and F).
    let plan_arg = "test-plans/certification.toml";
    {
        let _e = Bridge::start("dut-e", 4, 0);
        let _f = Bridge::start("dut-f", 5, 0);
        wait_readers_with_cards(2);
        let out = bin()
            .args([
                "batch",
                "--profile",
                "profiles/vpcd-lab.toml",
                "--plan",
                plan_arg,
                "--batch-id",
                "P1",
                "--count",
                "2",
                "-q",
                "--logs",
            ])
            .arg(&logs)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut r = csv::Reader::from_path(logs.join("P1/summary.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let heads: std::collections::BTreeSet<&str> = rows.iter().map(|x| &x[3]).collect();
        assert_eq!(heads, ["E", "F"].into_iter().collect(), "both PC/SC heads certified a card");
        assert!(rows.iter().all(|x| &x[4] == "pass"), "{rows:?}");
    }
    wait_readers_with_cards(0);

    // 4. A bridge stopped mid-plan: that card is 'card removed', the other card finishes.
    {
        let _e = Bridge::start("dut-e", 4, 1000);
        let mut f = Bridge::start("dut-f", 5, 1000);
        wait_readers_with_cards(2);
        let mut child = bin()
            .args([
                "batch",
                "--profile",
                "profiles/vpcd-lab.toml",
                "--plan",
                plan_arg,
                "--batch-id",
                "P2",
                "--count",
                "2",
                "-q",
                "--logs",
            ])
            .arg(&logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Let both cards get well into the plan, then pull F's card.
        let f_trace = |logs: &Path| -> usize {
            std::fs::read_dir(logs.join("P2/cards"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| {
                            std::fs::read_to_string(e.path().join("trace.csv")).map(|s| s.lines().count()).unwrap_or(0)
                        })
                        .min()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let t0 = Instant::now();
        while f_trace(&logs) < 30 {
            assert!(t0.elapsed() < Duration::from_secs(30), "batch did not start");
            assert!(child.try_wait().unwrap().is_none(), "batch ended before a card could be pulled");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = f.0.kill();
        let _ = f.0.wait();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "a card was aborted: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let mut r = csv::Reader::from_path(logs.join("P2/summary.csv")).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        let by_head = |h: &str| {
            rows.iter().find(|x| &x[3] == h).unwrap_or_else(|| panic!("no card on head {h}: {rows:?}")).clone()
        };
        let (e, f) = (by_head("E"), by_head("F"));
        assert_eq!(&e[4], "pass", "the other head's card finished: {e:?}");
        assert_eq!(&f[4], "aborted", "{f:?}");
        assert!(f[6].contains("card removed") || f[6].contains("no card"), "reason names the removal: {:?}", &f[6]);
        // Its trace stays parseable.
        let t = logs.join("P2").join(&f[13]);
        let mut tr = csv::Reader::from_path(&t).unwrap();
        assert!(tr.records().all(|x| x.is_ok()), "{} parses", t.display());
    }
}
