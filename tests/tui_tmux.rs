//! End to end: the real binary's TUI in a detached tmux session (100×30) on the virtual lab
//! (three DUT heads, seeded defects), a batch of 20 cards started by keystrokes, the verdicts
//! on screen compared with the batch's summary.csv, then `q`: exit code 0 and the terminal
//! restored. Skipped, with a notice, where tmux is not installed (CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.sock).args(args);
        if std::env::var_os("TERM").is_none() {
            c.env("TERM", "xterm-256color");
        }
        c.output().expect("run tmux")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "cb"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.cmd(&["send-keys", "-t", "cb", k]);
            assert!(out.status.success(), "send-keys {k}: {}", String::from_utf8_lossy(&out.stderr));
            // One key at a time: a terminal reads ESC-prefixed bursts as one key.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Poll the screen until `pred` holds; panics with the last screen after `limit`.
    fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.capture();
            if pred(&s) {
                return s;
            }
            assert!(t0.elapsed() < limit, "waited {limit:?} for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_installed() -> bool {
    Command::new("tmux").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// A Results row: `│12     CB00B0000000000C E        fail    308 ms   PURSE-CTR-SET-01 …│`.
struct Shown {
    index: u64,
    card_id: String,
    head: String,
    verdict: String,
    detail: String,
}

fn results_rows(screen: &str) -> Vec<Shown> {
    screen
        .lines()
        .filter_map(|l| {
            let inner = l.trim().trim_start_matches('│').trim_end_matches('│');
            let t: Vec<&str> = inner.split_whitespace().collect();
            let index = t.first()?.parse().ok()?;
            let card_id = t.get(1)?;
            if card_id.len() != 16 || !card_id.chars().all(|c| c.is_ascii_hexdigit()) || t.get(5) != Some(&"ms") {
                return None;
            }
            Some(Shown {
                index,
                card_id: card_id.to_string(),
                head: t[2].to_string(),
                verdict: t[3].to_string(),
                detail: t[6..].join(" "),
            })
        })
        .collect()
}

/// Cards done, from the status line ` ● running  <id>  <done>/<total>  pass …`, only while
/// the batch is running.
fn running_done(screen: &str, total: u64) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains("● running"))?;
    let (before, _) = line.split_once(&format!("/{total} "))?;
    let digits: String = before.chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn tui_batch_of_20_in_tmux_shows_the_summary_verdicts_and_quits_cleanly() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} tui --profile {profile} --plan {plan}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&repo.join("profiles/virtual-lab.toml")),
        plan = sh_quote(&repo.join("test-plans/certification.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "100", "-y", "30", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    let s = tmux.wait("the TUI", Duration::from_secs(30), |s| s.contains("● idle") && !s.contains("(profile default)"));
    assert!(s.contains("2 Batch"), "{s}");
    let alt = tmux.cmd(&["display-message", "-p", "-t", "cb", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "1", "the TUI is on the alternate screen");

    // Batch panel: third field down is the card count; type 20, start.
    tmux.keys(&["2", "j", "j", "j", "Enter", "C-u", "2", "0", "Enter"]);
    tmux.wait("the count", Duration::from_secs(10), |s| s.contains("Card count 20 "));
    tmux.keys(&["s"]);
    let s = tmux.wait("the batch to finish", Duration::from_secs(300), |s| {
        s.contains("● finished") || s.contains("● failed") || s.contains("● stopped")
    });
    assert!(s.contains("● finished"), "batch did not finish cleanly:\n{s}");
    assert!(s.contains("20/20"), "{s}");

    tmux.keys(&["4"]);
    let s = tmux.wait("the Results panel", Duration::from_secs(10), |s| s.contains("4 Results · 20 cards"));
    let shown = results_rows(&s);
    assert_eq!(shown.len(), 20, "20 result rows on screen:\n{s}");

    let logs = work.join("logs");
    // Folders only: the results store (cardbench.sqlite) sits beside them.
    let dirs: Vec<PathBuf> =
        std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    assert_eq!(dirs.len(), 1, "one batch folder in {}", logs.display());
    let mut csv = csv::Reader::from_path(dirs[0].join("summary.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 20);
    let mut kinds = std::collections::BTreeSet::new();
    for r in &rows {
        let index: u64 = r[1].parse().unwrap();
        let row = shown.iter().find(|x| x.index == index).unwrap_or_else(|| panic!("card #{index} not shown:\n{s}"));
        assert_eq!(row.card_id, &r[2], "card #{index}");
        assert_eq!(row.head, &r[3], "card #{index}");
        assert_eq!(row.verdict, &r[4], "card #{index}");
        let expected = match &r[4] {
            "fail" => words(&r[5].replace(';', " ")),
            "aborted" => words(&r[6]),
            _ => String::new(),
        };
        assert!(expected.starts_with(&row.detail), "card #{index}: shown {:?}, summary {expected:?}", row.detail);
        kinds.insert(r[4].to_string());
    }
    assert!(kinds.contains("pass") && kinds.contains("fail"), "seeded defects make some cards fail: {kinds:?}");

    // q: no batch running, so no question; the process exits 0 and the shell is back.
    tmux.keys(&["q"]);
    let s = tmux.wait("the shell", Duration::from_secs(30), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert!(!s.contains("1 Heads"), "the TUI's screen is gone:\n{s}");
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=0");
    let alt = tmux.cmd(&["display-message", "-p", "-t", "cb", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0", "the alternate screen was left");
}

#[test]
fn quitting_while_a_batch_runs_asks_then_stops_cleanly() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} tui --profile {profile} --plan {plan}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&repo.join("profiles/virtual-lab.toml")),
        plan = sh_quote(&repo.join("test-plans/certification.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "80", "-y", "24", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    tmux.wait("the TUI", Duration::from_secs(30), |s| s.contains("● idle") && !s.contains("(profile default)"));
    // 150 cards: long enough to quit in the middle. Not the profile's default count (200), so
    // the form shows it only once the keys are in.
    tmux.keys(&["j", "j", "j", "Enter", "C-u", "1", "5", "0", "Enter"]);
    tmux.wait("the count", Duration::from_secs(10), |s| s.contains("Card count 150 "));
    tmux.keys(&["s"]);
    // A state only a running batch shows: the status line says running and counts a
    // certified card. A starting batch shows `0/0` and `pass 0` too, so neither is enough.
    tmux.wait("a card certified", Duration::from_secs(120), |s| {
        running_done(s, 150).is_some_and(|n| (1..150).contains(&n))
    });
    tmux.keys(&["q"]);
    let s = tmux.wait("the question", Duration::from_secs(10), |s| s.contains("Quit?"));
    assert!(s.contains("is running"), "{s}");
    tmux.keys(&["y"]);
    tmux.wait("the shell", Duration::from_secs(120), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=0");
    // The stop left a consistent, resumable batch: journal lines are whole cards, and the
    // reports cover exactly the journaled cards.
    let dir = std::fs::read_dir(work.join("logs")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let n = journal.lines().count();
    assert!(n > 0 && n < 150, "stopped in the middle: {n} cards");
    for l in journal.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("whole journal line");
    }
    let summary = csv::Reader::from_path(dir.join("summary.csv")).unwrap().records().count();
    assert_eq!(summary, n);
}

#[test]
fn a_panic_in_the_ui_still_restores_the_terminal() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && RUST_BACKTRACE=0 CARDBENCH_TUI_TEST_PANIC=1 {bin} tui --profile {profile}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&repo.join("profiles/virtual-lab.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "80", "-y", "24", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    let s = tmux.wait("the shell", Duration::from_secs(30), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert!(s.contains("panicking after the first frame"), "the panic message is readable:\n{s}");
    assert!(!s.contains("1 Heads"), "{s}");
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=101");
    let alt = tmux.cmd(&["display-message", "-p", "-t", "cb", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0", "the alternate screen was left");
    // Raw mode is off: the shell echoes what is typed, with its newline.
    tmux.keys(&["echo typed-after-panic", "Enter"]);
    let _ = tmux.wait("cooked mode", Duration::from_secs(5), |s| s.contains("typed-after-panic"));
}

#[test]
fn replay_panel_opens_two_real_traces_side_by_side_and_replays_one() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_cardbench"));
    // Two runs of the smoke plan on the virtual lab: the same rows apart from times.
    for run_id in ["S1", "S2"] {
        let out = Command::new(bin)
            .current_dir(&work)
            .args(["run", "-q", "--run-id", run_id, "-p"])
            .arg(repo.join("profiles/virtual-lab.toml"))
            .arg(repo.join("test-plans/smoke.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "cardbench run: {}", String::from_utf8_lossy(&out.stderr));
    }
    let rows = cardbench::trace::read(&work.join("logs/S1/trace.csv")).unwrap().len();
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} tui --profile {profile}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(bin),
        profile = sh_quote(&repo.join("profiles/virtual-lab.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "100", "-y", "30", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    tmux.wait("the TUI", Duration::from_secs(30), |s| s.contains("● idle"));
    // 7, o: the picker lists both traces found under logs/.
    tmux.keys(&["7", "o"]);
    tmux.wait("the trace picker", Duration::from_secs(10), |s| {
        s.contains("Open trace") && s.contains("logs/S1/trace.csv") && s.contains("logs/S2/trace.csv")
    });
    // Typed path: S1.
    tmux.keys(&["/", "C-u"]);
    tmux.cmd(&["send-keys", "-t", "cb", "-l", "logs/S1/trace.csv"]);
    tmux.wait("the typed path", Duration::from_secs(10), |s| s.contains("logs/S1/trace.csv▏"));
    tmux.keys(&["Enter"]);
    let s = tmux.wait("the trace's rows", Duration::from_secs(30), |s| s.contains(&format!("{rows} rows")));
    assert!(s.contains("7 Replay · logs/S1/trace.csv"), "{s}");
    assert!(s.lines().any(|l| l.contains("cmd") && l.contains("SELECT") && l.contains("9000")), "{s}");
    // d: S2 beside it (the picker's entry that is not S1), aligned row for row, none differs.
    tmux.keys(&["d"]);
    tmux.wait("the second picker", Duration::from_secs(10), |s| s.contains("Compare with trace"));
    let s = tmux.capture();
    let s2_first = s.find("logs/S2/trace.csv") < s.find("logs/S1/trace.csv");
    tmux.keys(if s2_first { &["g", "Enter"][..] } else { &["g", "j", "Enter"][..] });
    let s = tmux.wait("the side-by-side view", Duration::from_secs(30), |s| s.contains("rows aligned"));
    assert!(s.contains(&format!("{rows} rows aligned, 0 differ")), "{s}");
    assert!(s.contains("only in A 0, only in B 0"), "{s}");
    // v: S1 alone; r on its first row (head A, no card yet) replays the whole trace on the
    // virtual lab's heads of the same names: every judged row matches.
    tmux.keys(&["v", "g", "r"]);
    tmux.wait("the head picker", Duration::from_secs(10), |s| s.contains("Replay trace head A on"));
    tmux.keys(&["Enter"]);
    let s = tmux.wait("the replay's end", Duration::from_secs(120), |s| {
        s.contains("● replay finished") || s.contains("● replay failed")
    });
    assert!(s.contains("● replay finished") && s.contains(" 0 diverged"), "{s}");
    assert!(s.contains('✓'), "{s}");
    tmux.keys(&["q"]);
    tmux.wait("the shell", Duration::from_secs(30), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=0");
}

#[test]
fn timing_panel_runs_a_small_spec_on_the_virtual_lab_and_shows_its_table() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    // One op with its baseline, 20 iterations, on the signer card (head B).
    std::fs::write(
        work.join("small.toml"),
        r#"[timing]
id = "tui-small"
version = "1"
iterations = 20
warmup = 2

[[op]]
name = "cpay.sign_payment"
prepare = [{ select = "cpay" }, { apdu = "00 2A 00 BE BA ${payment_cert}" }]
apdu = "80 88 00 00 10 ${rnd16} 00"
baseline = "80 B2 01 00 08"
"#,
    )
    .unwrap();
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} tui --profile {profile}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&repo.join("profiles/virtual-lab.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "100", "-y", "30", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    // The profile's heads looked at: the head picker needs them.
    tmux.wait("the heads", Duration::from_secs(30), |s| s.contains("● idle") && !s.contains("(profile default)"));
    tmux.keys(&["5", "r"]);
    tmux.wait("the spec picker", Duration::from_secs(10), |s| s.contains("Timing spec"));
    tmux.keys(&["/", "C-u"]);
    tmux.cmd(&["send-keys", "-t", "cb", "-l", "small.toml"]);
    tmux.wait("the typed path", Duration::from_secs(10), |s| s.contains("small.toml▏"));
    tmux.keys(&["Enter"]);
    tmux.wait("the head picker", Duration::from_secs(10), |s| s.contains("Time small.toml on") && s.contains("[ ] B "));
    // The picker starts on the first head with a card (A); B is the next one. Space marks it.
    tmux.keys(&["g", "j", "Space", "Enter"]);
    let s = tmux.wait("the run's end", Duration::from_secs(120), |s| {
        s.contains("● timing finished") || s.contains("● timing failed")
    });
    assert!(s.contains("● timing finished"), "{s}");
    assert!(s.contains("20 op samples") && s.contains("on B"), "{s}");
    let row = s
        .lines()
        .find(|l| l.contains("cpay.sign_payment") && l.contains(" B "))
        .unwrap_or_else(|| panic!("no row for the op:\n{s}"));
    let t: Vec<&str> = row.trim_matches('│').split_whitespace().collect();
    assert_eq!(&t[..3], ["cpay.sign_payment", "B", "20"], "{row}");
    // What the panel shows is what the run wrote: timing.json's median for the op.
    let logs = work.join("logs");
    let dir = std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    for f in ["samples.csv", "timing.json", "timing.csv", "timing.svg", "trace.csv", "run.json"] {
        assert!(dir.join(f).is_file(), "{f} in {}", dir.display());
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("timing.json")).unwrap()).unwrap();
    let op = &doc["ops"][0];
    assert_eq!(op["op"], "cpay.sign_payment");
    let median = op["op_time"]["median"].as_f64().unwrap();
    let shown = cardbench::timing::report::fmt_ns(median);
    assert!(row.contains(&shown), "timing.json median {shown} on the row {row}");
    assert!(s.contains(&dir.file_name().unwrap().to_string_lossy().to_string()), "the run folder is named:\n{s}");
    tmux.keys(&["q"]);
    tmux.wait("the shell", Duration::from_secs(30), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=0");
}
