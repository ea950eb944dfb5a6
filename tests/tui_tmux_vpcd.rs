//! End to end: the real binary's TUI in a detached tmux session (100×30) running a batch on a
//! PC/SC head through real pcscd and vpcd (tests/common/operator_lab.rs: head E, two cards the
//! test inserts and takes out by starting and stopping `cardbench sim vpcd`). The Heads panel
//! prompts the operator per head ("insert the next card in E (reader …)", "remove card …"),
//! shows the card present and its ATR live, with the full reader name and the counts per
//! head, also once the batch is over. Each wait is for a screen no earlier state shows.
//! Skipped, with a notice, where tmux or pcscd/vpcd cannot run (CI has both).

#[path = "common/operator_lab.rs"]
mod operator_lab;
#[path = "common/pcscd.rs"]
mod pcscd;

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

/// Head E's first line in the Heads panel (`│ E       pcsc     dut    yes  …`).
fn e_row(screen: &str) -> Option<&str> {
    screen.lines().find(|l| l.trim_start_matches('│').starts_with(" E ") && l.contains(" pcsc "))
}

/// Head E's row holds all of `words`.
fn e_has(screen: &str, words: &[&str]) -> bool {
    e_row(screen).is_some_and(|l| words.iter().all(|w| l.contains(w)))
}

const INSERT: &str = "▶ insert the next card in E (reader cardbench vpcd 4 00 00)";
const LONG: Duration = Duration::from_secs(180);

#[test]
fn a_batch_on_vpcd_heads_prompts_per_head_and_shows_live_presence() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the TUI end-to-end test (CI installs it)");
        return;
    }
    if !pcscd::available() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let _pcscd = pcscd::Pcscd::start(6, &work.join("pcscd"));
    let lab = operator_lab::one_head_lab(&work);
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} tui --profile {profile} --plan {plan}; echo EXIT=$? > {exit}; echo TUI-TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&lab),
        plan = sh_quote(&repo.join("test-plans/certification.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "100", "-y", "30", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    tmux.wait("the TUI", Duration::from_secs(30), |s| s.contains("● idle") && s.contains("Card count 2 "));

    // Heads: E on its reader, named in full by pcscd, no card yet.
    tmux.keys(&["1"]);
    tmux.wait("head E, empty", Duration::from_secs(30), |s| {
        e_has(s, &[" no "]) && s.contains("cardbench vpcd 4 00 00 ATR —")
    });

    tmux.keys(&["s"]);
    tmux.wait("the insert prompt", LONG, |s| s.contains(INSERT) && e_has(s, &["waiting for card", " no "]));

    let card1 = operator_lab::insert(&lab, "card-1");
    // The prompt comes from the head's worker, the count once the card is journaled: both.
    let s = tmux.wait("card 1 judged and counted, the remove prompt", LONG, |s| {
        s.contains("▶ remove card CB00C00000000011 (pass) from E (reader cardbench vpcd 4 00 00)")
            && e_has(s, &["   1    0     0"])
    });
    // The card is still in the reader: present, with its ATR.
    assert!(e_has(&s, &[" yes ", "CB00C00000000011", "remove card"]), "{s}");
    assert!(s.contains("cardbench vpcd 4 00 00 ATR 3B89004341524442454E4348"), "{s}");
    // The mute card the plan provokes (and expects) is no fault of the head.
    assert!(!s.contains("fault:"), "{s}");

    drop(card1);
    tmux.wait("the next insert prompt, the card gone", LONG, |s| {
        s.contains(INSERT) && e_has(s, &[" no ", "   1    0     0"]) && s.contains("cardbench vpcd 4 00 00 ATR —")
    });

    let card2 = operator_lab::insert(&lab, "card-2");
    let s = tmux.wait("the batch finished", LONG, |s| s.contains("● finished") || s.contains("● failed"));
    assert!(s.contains("● finished") && s.contains("2/2"), "{s}");
    assert!(e_has(&s, &["CB00C00000000012", "   2    0     0", "done"]), "{s}");
    assert!(!s.contains("▶"), "no prompt once done:\n{s}");

    // With no batch running, presence still follows the reader: the card comes out.
    tmux.wait("card 2 present after the batch", LONG, |s| e_has(s, &[" yes ", "done"]));
    drop(card2);
    tmux.wait("card 2 gone after the batch", LONG, |s| e_has(s, &[" no ", "done"]));

    tmux.keys(&["q"]);
    tmux.wait("the shell", Duration::from_secs(30), |s| s.contains("TUI-TEST-SHELL-BACK"));
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=0");
    // The batch folder (the results store, cardbench.sqlite, sits beside it).
    let batch_dir =
        std::fs::read_dir(work.join("logs")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    let summary = csv::Reader::from_path(batch_dir.join("summary.csv")).unwrap().records().count();
    assert_eq!(summary, 2);
}

#[test]
fn a_headless_batch_on_a_terminal_shows_each_head_at_its_case() {
    if !tmux_installed() {
        eprintln!("NOTICE: tmux is not installed; skipping the headless terminal test (CI installs it)");
        return;
    }
    if !pcscd::available() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let work = d.path().canonicalize().unwrap();
    let _pcscd = pcscd::Pcscd::start(6, &work.join("pcscd"));
    let lab = operator_lab::one_head_lab(&work);
    let exit_file = work.join("exit");
    let tmux = Tmux { sock: work.join("tmux.sock") };
    let script = format!(
        "cd {work} && {bin} batch --profile {profile} --plan {plan} --batch-id H --count 1; echo EXIT=$? > {exit}; echo TEST-SHELL-BACK; sleep 600",
        work = sh_quote(&work),
        bin = sh_quote(Path::new(env!("CARGO_BIN_EXE_cardbench"))),
        profile = sh_quote(&lab),
        plan = sh_quote(&repo.join("test-plans/certification.toml")),
        exit = sh_quote(&exit_file),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "cb", "-x", "120", "-y", "30", &script]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    // The prompt above the bar, the head's state under it.
    tmux.wait("the prompt and the board", LONG, |s| {
        s.contains("[E] insert the next card in E (reader cardbench vpcd 4 00 00)")
            && s.contains("E: waiting for card #1")
    });
    // A card that stops answering after 40 commands: its case stays on the board meanwhile.
    let port = pcscd::vpcd_port(4).to_string();
    let lab_arg = lab.to_str().unwrap();
    let card = pcscd::Bridge::spawn(&[
        "sim",
        "vpcd",
        "--profile",
        lab_arg,
        "--card",
        "card-1",
        "--port",
        &port,
        "--stall-after",
        "40",
    ]);
    let s = tmux.wait("the case under test", LONG, |s| s.contains("E: testing card CB00C00000000011 at "));
    assert!(s.contains("[E] card CB00C00000000011 detected: testing (#1)"), "{s}");
    drop(card);
    tmux.wait("the shell", LONG, |s| s.contains("TEST-SHELL-BACK"));
    // The card was pulled mid-plan: aborted, exit 1.
    assert_eq!(std::fs::read_to_string(&exit_file).unwrap().trim(), "EXIT=1");
}
