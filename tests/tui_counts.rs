//! The TUI's counts, labels, Timing table and start-up, drawn with ratatui's TestBackend from
//! synthetic batch events (issue 13, points 2, 3, 5 and 6): counts after a resume (status line
//! and per head), labels per state, events in the order they happened, the Timing panel's
//! all-DUT view (sorted, histogram, CSV export), the profile opened with no arguments, paths
//! typed in the plan / profile pickers, keys that do nothing saying why, and `q` asking before
//! it stops a replay or a timing run.

use cardbench::batch::BatchEvent;
use cardbench::event::{Event, Exchange};
use cardbench::report::{CardResult, Verdict};
use cardbench::tui::app::{BatchEnd, HeadRow, Modal, Phase, Probe};
use cardbench::tui::replay::{LiveReplay, ReplayPhase, ReplayRequest};
use cardbench::tui::theme::Theme;
use cardbench::tui::{ui, App, Config, Effect, Msg, Now, Panel};
use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PLAN: &str = "test-plans/certification.toml";
const PROFILE: &str = "profiles/virtual-lab.toml";

struct Bench {
    app: App,
    t0: Now,
    at: f64,
}

impl Bench {
    fn send(&mut self, m: Msg) -> Vec<Effect> {
        let now = self.t0.after(Duration::from_secs_f64(self.at));
        self.app.event_at(m, now)
    }

    fn batch(&mut self, e: BatchEvent) {
        self.send(Msg::Batch(e));
    }

    fn key(&mut self, code: KeyCode) -> Vec<Effect> {
        self.send(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn ch(&mut self, c: char) -> Vec<Effect> {
        let m = if c.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE };
        self.send(Msg::Key(KeyEvent::new(KeyCode::Char(c), m)))
    }

    fn typed(&mut self, s: &str) {
        for c in s.chars() {
            self.ch(c);
        }
    }

    fn screen(&self, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| ui::draw(&self.app, f)).unwrap();
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                out.push_str(buf[(x, y)].symbol());
            }
            out.push('\n');
        }
        out
    }
}

fn config() -> Config {
    Config {
        plans: vec![PLAN.into()],
        profiles: vec![PROFILE.into()],
        plan: None,
        profile: None,
        theme: Theme::plain(),
        trace_window: 1000,
        traces: vec![],
        specs: vec![],
    }
}

fn t0() -> Now {
    Now { mono: Instant::now(), wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() }
}

fn head(name: &str, role: &str) -> HeadRow {
    HeadRow {
        name: name.into(),
        driver: "virtual".into(),
        reader: format!("virtual:{name}"),
        role: role.into(),
        present: Some(false),
        ..HeadRow::default()
    }
}

#[track_caller]
fn has(screen: &str, what: &str) {
    assert!(screen.contains(what), "{what:?} not on screen:\n{screen}");
}

#[track_caller]
fn lacks(screen: &str, what: &str) {
    assert!(!screen.contains(what), "{what:?} should not be on screen:\n{screen}");
}

fn line_with<'a>(screen: &'a str, what: &str) -> &'a str {
    screen.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line with {what:?}:\n{screen}"))
}

fn card_id(index: u64) -> String {
    format!("CB00B000{index:08X}")
}

fn result(index: u64, head: &str, verdict: Verdict) -> CardResult {
    CardResult {
        index,
        card_id: card_id(index),
        head: head.into(),
        verdict,
        started: "2026-06-01T12:00:00Z".into(),
        duration_ms: 100.0,
        trace: format!("cards/{index:05}.csv"),
        cases: vec![],
    }
}

fn fail() -> Verdict {
    Verdict::Fail { failing: vec!["PURSE-CTR-01".into()] }
}

/// An idle app on the virtual lab's profile (three DUT heads and a peer), plan chosen.
fn idle() -> Bench {
    let t0 = t0();
    let mut b = Bench { app: App::new(config(), t0), t0, at: 0.0 };
    b.send(Msg::Probed {
        profile: PROFILE.into(),
        result: Ok(Probe {
            heads: vec![head("D1", "dut"), head("D2", "dut"), head("D3", "dut"), head("REF", "peer")],
            count: Some(200),
            not_batch: None,
        }),
    });
    b
}

/// `s` with batch ID `id`, then the engine's `Started` with the journal's earlier cards.
fn start(b: &mut Bench, id: &str, done: u64, earlier: Vec<CardResult>) {
    b.ch('2');
    b.app.form.batch_id = id.into();
    let fx = b.ch('s');
    assert!(matches!(&fx[..], [Effect::Start(r)] if r.batch_id == id), "{fx:?}");
    b.batch(BatchEvent::Started { total: 200, done, heads: vec!["D1".into(), "D2".into(), "D3".into()], earlier });
}

fn wire(head: &str, card: &str, command: &[u8], us: u64) -> Event {
    Event::Exchange(Box::new(Exchange {
        seq: 1,
        wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 5).unwrap(),
        head: head.into(),
        card_id: card.into(),
        test_step: "PURSE-CTR-01".into(),
        protocol_step: "S1".into(),
        command: command.to_vec(),
        response: vec![],
        sw: 0x9000,
        duration_ns: us * 1000,
        note: String::new(),
        kind: cardbench::event::RowKind::Command,
        ..Default::default()
    }))
}

const SELECT: [u8; 5] = [0x00, 0xA4, 0x04, 0x00, 0x00];
const WRITE_VALUE: [u8; 6] = [0x80, 0xD0, 0x00, 0x00, 0x01, 0x00];

#[test]
fn counts_after_a_resume_include_the_earlier_run_once_on_the_status_line_and_per_head() {
    let mut b = idle();
    // The earlier run certified 3 cards: 2 on D1 (pass, fail), 1 on D2 (pass).
    let earlier = vec![result(1, "D1", Verdict::Pass), result(2, "D2", Verdict::Pass), result(3, "D1", fail())];
    start(&mut b, "B7", 3, earlier);
    // This run: one card on D2 (fail), one on D3 (aborted).
    b.batch(BatchEvent::CardInserted { head: "D2".into(), index: 4, card_id: card_id(4), atr: vec![] });
    b.batch(BatchEvent::CardDone(Box::new(result(4, "D2", fail()))));
    b.batch(BatchEvent::CardInserted { head: "D3".into(), index: 5, card_id: card_id(5), atr: vec![] });
    b.batch(BatchEvent::CardDone(Box::new(result(
        5,
        "D3",
        Verdict::Aborted { reason: "PURSE-CTR-01: head D3: card removed".into() },
    ))));
    let s = b.screen(100, 30);
    // 5 cards, of which 3 from the earlier run: said once, not added again.
    has(&s, "B7  5/200  pass 2 fail 2 aborted 1 (incl. 3 from earlier runs)");
    lacks(&s, "(+3");
    b.ch('1');
    let s = b.screen(100, 30);
    let d1 = line_with(&s, " D1 ");
    assert!(d1.contains("   1    1     0"), "D1: 1 pass, 1 fail from the earlier run: {d1:?}");
    let d2 = line_with(&s, " D2 ");
    assert!(d2.contains("   1    1     0"), "D2: a pass earlier, a fail now: {d2:?}");
    let d3 = line_with(&s, " D3 ");
    assert!(d3.contains("   0    0     1"), "{d3:?}");
    // The sums per head are the status line's.
    let heads = &b.app.heads;
    assert_eq!(heads.iter().map(|h| h.pass).sum::<u64>(), b.app.batch.pass);
    assert_eq!(heads.iter().map(|h| h.fail).sum::<u64>(), b.app.batch.fail);
    b.ch('2');
    has(&b.screen(100, 30), "incl. 3 certified before this run (resumed)");
}

#[test]
fn a_long_reader_name_keeps_its_end_at_80_columns() {
    let mut b = idle();
    let reader = "Identiv uTrust 3700 F CL Reader [uTrust 3700 F CL Reader] (53691324212792) 01 00";
    b.app.heads[0].driver = "pcsc".into();
    b.app.heads[0].reader = reader.into();
    b.app.heads[0].atr = Some(vec![0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06]);
    b.ch('1');
    let s = b.screen(80, 24);
    // What tells two such readers apart is the end of the name: it stays, with the ATR.
    let line = line_with(&s, "(53691324212792) 01 00");
    assert!(line.contains("ATR 3B8F8001804F0CA000000306"), "{line:?}");
    let s = b.screen(200, 60);
    has(&s, reader);
}

#[test]
fn labels_follow_the_state() {
    let mut b = idle();
    b.ch('2');
    let s = b.screen(80, 24);
    // One row called "Cards" no more: the count to certify, and the verdicts so far.
    has(&s, "Card count 200");
    lacks(&s, "│ Cards ");
    has(&s, " s start ");
    start(&mut b, "B8", 0, vec![]);
    has(&b.screen(80, 24), "Verdicts   done 0");
    // Paused: p resumes; the quit dialog says paused, not running.
    b.ch('p');
    let s = b.screen(80, 24);
    has(&s, "● paused");
    has(&s, " p resume ");
    b.ch('s');
    has(&b.screen(80, 24), "s: the batch is paused, not stopped (p resumes it)");
    b.ch('q');
    assert_eq!(b.app.modal, Modal::ConfirmQuit);
    let s = b.screen(80, 24);
    has(&s, "Batch B8 is paused");
    lacks(&s, "is running");
    b.ch('n');
    b.ch('p');
    // Stopped: s resumes the same batch ID, and says so.
    b.ch('x');
    b.send(Msg::Ended(Ok(BatchEnd {
        dir: "logs/B8".into(),
        cards: 0,
        certified_now: 0,
        pass: 0,
        fail: 0,
        aborted: 0,
        stopped: true,
    })));
    let s = b.screen(80, 24);
    has(&s, "● stopped");
    has(&s, " s resume ");
    lacks(&s, " s start ");
    // Another batch ID: s starts.
    b.app.form.batch_id = "B9".into();
    has(&b.screen(80, 24), " s start ");
    // (The trace's `view frozen`, not `paused`, is the Trace panel's: tests/tui_trace.rs.)
}

#[test]
fn events_list_a_heads_cards_in_the_order_they_went_in_and_out() {
    let mut b = idle();
    start(&mut b, "B10", 0, vec![]);
    // The engine reports card 1's verdict after its worker has put card 4 in the same head.
    b.batch(BatchEvent::CardInserted { head: "D1".into(), index: 1, card_id: card_id(1), atr: vec![] });
    b.batch(BatchEvent::CardInserted { head: "D1".into(), index: 4, card_id: card_id(4), atr: vec![0x3B] });
    b.batch(BatchEvent::CardDone(Box::new(result(1, "D1", Verdict::Pass))));
    let texts: Vec<&str> = b.app.events.iter().map(|e| e.text.as_str()).collect();
    let pos = |what: &str| texts.iter().position(|t| t.contains(what)).unwrap_or_else(|| panic!("{what}: {texts:?}"));
    assert!(pos("#1 in D1") < pos("#1 out of D1"));
    assert!(pos("#1 out of D1") < pos("#4 in D1"), "{texts:?}");
    // And the head still shows card 4 in it.
    let d1 = b.app.heads.iter().find(|h| h.name == "D1").unwrap();
    assert_eq!((d1.present, d1.card_id.as_str()), (Some(true), card_id(4).as_str()));
    b.ch('6');
    let s = b.screen(100, 30);
    let a = s.find("#1 out of D1").unwrap();
    let c = s.find(&format!("{} #4 in D1", card_id(4))).unwrap();
    assert!(a < c, "{s}");
}

#[test]
fn timing_shows_every_dut_per_command_sorted_with_a_histogram_and_exports_csv() {
    let mut b = idle();
    start(&mut b, "B11", 0, vec![]);
    let c = card_id(1);
    for (h, us) in [("D1", 100), ("D1", 300), ("D2", 200), ("D3", 900)] {
        b.batch(BatchEvent::Run { head: h.into(), card_id: c.clone(), event: wire(h, &c, &SELECT, us) });
    }
    for us in [40, 50] {
        b.batch(BatchEvent::Run { head: "D2".into(), card_id: c.clone(), event: wire("D2", &c, &WRITE_VALUE, us) });
    }
    // The peer card's exchanges are not a DUT's.
    b.batch(BatchEvent::Run {
        head: "D1".into(),
        card_id: c.clone(),
        event: wire("D1.peer", "CB00000000030016", &SELECT, 5000),
    });
    b.ch('5');
    for (w, h) in [(80, 24), (200, 60)] {
        let s = b.screen(w, h);
        has(&s, "2 commands over every DUT head");
        for col in ["Command", "n", "min", "p50", "p95", "p99", "max", "mean"] {
            has(&s, col);
        }
        // (At 200×60 every panel is shown: the Timing row is the one with the mean.)
        let sel = s.lines().find(|l| l.contains("SELECT ") && l.contains("375.0µs")).expect("the SELECT row");
        for v in [" 4 ", "100.0µs", "200.0µs", "900.0µs", "375.0µs"] {
            assert!(sel.contains(v), "{v} at {w}×{h}: {sel:?}");
        }
        if w == 80 {
            lacks(&s, "5.00ms");
        }
        has(&s, "histogram of the last 4");
    }
    // Sorted by name first (SELECT, WRITE VALUE); o: by n, largest first.
    let s = b.screen(100, 30);
    assert!(s.find("SELECT ").unwrap() < s.find("WRITE VALUE").unwrap());
    b.ch('o');
    let s = b.screen(100, 30);
    has(&s, "sorted by n ▼");
    has(&s, "n▼");
    assert!(s.find("SELECT ").unwrap() < s.find("WRITE VALUE").unwrap(), "{s}");
    // O: ascending.
    b.ch('O');
    let s = b.screen(100, 30);
    has(&s, "n▲");
    assert!(s.find("WRITE VALUE").unwrap() < s.find("SELECT ").unwrap(), "{s}");
    // The histogram is the selected row's.
    has(&s, "all DUTs WRITE VALUE · histogram of the last 2");
    b.ch('j');
    has(&b.screen(100, 30), "all DUTs SELECT · histogram of the last 4");
    // E: the table as CSV, in the batch's folder.
    b.send(Msg::Launched { dir: PathBuf::from("logs/B11"), control: Default::default() });
    let fx = b.ch('E');
    let [Effect::Export { path, text }] = &fx[..] else { panic!("{fx:?}") };
    assert!(path.starts_with("logs/B11") && path.to_string_lossy().ends_with(".csv"), "{path:?}");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "head,command,n,min_ns,p50_ns,p95_ns,p99_ns,max_ns,mean_ns,window");
    assert!(rows.contains(&"all DUTs,SELECT,4,100000,200000,900000,900000,900000,375000,4"), "{rows:?}");
    assert!(rows.contains(&"all DUTs,WRITE VALUE,2,40000,40000,50000,50000,50000,45000,2"), "{rows:?}");
    b.send(Msg::Exported(Ok(path.clone())));
    has(&b.screen(100, 30), "timing table written to logs/B11/");
    // a: per head and command, the peer card's head among them.
    b.ch('a');
    let s = b.screen(120, 30);
    has(&s, "5 head/command pairs");
    has(&s, "D1.peer");
}

#[test]
fn with_no_arguments_the_first_profile_that_can_run_a_batch_opens() {
    // cert-lab has no [batch]; pn532-sim none either; virtual-lab can.
    let mut cfg = config();
    cfg.profiles = ["cert-lab", "pn532-sim", "virtual-lab"].map(|p| PathBuf::from(format!("profiles/{p}.toml"))).into();
    let app = cardbench::tui::startup(cfg, false, t0());
    assert_eq!(app.form.profile_path(), Some(std::path::Path::new(PROFILE)));
    assert!(app.unusable_profiles.is_empty());
    // A profile given is opened whatever it is.
    let mut cfg = config();
    cfg.profiles = vec!["profiles/cert-lab.toml".into()];
    cfg.profile = Some("profiles/cert-lab.toml".into());
    let app = cardbench::tui::startup(cfg, true, t0());
    assert_eq!(app.form.profile_path(), Some(std::path::Path::new("profiles/cert-lab.toml")));
    // None can: the Batch panel says which and why, and s says why it does nothing.
    let mut cfg = config();
    cfg.profiles = vec!["profiles/cert-lab.toml".into(), "profiles/missing.toml".into()];
    let t0 = t0();
    let mut b = Bench { app: cardbench::tui::startup(cfg, false, t0), t0, at: 0.0 };
    let s = b.screen(100, 30);
    has(&s, "No profile here can run a batch:");
    has(&s, "profiles/cert-lab.toml: this profile has no [batch] section");
    has(&s, "profiles/missing.toml: ");
    b.send(Msg::Probed {
        profile: "profiles/cert-lab.toml".into(),
        result: Ok(Probe {
            heads: vec![],
            count: None,
            not_batch: Some("this profile has no [batch] section: it cannot run a batch".into()),
        }),
    });
    let fx = b.ch('s');
    assert!(fx.is_empty());
    has(&b.screen(120, 30), "s: profiles/cert-lab.toml cannot run a batch: this profile has no [batch]");
}

#[test]
fn a_path_can_be_typed_in_the_plan_and_profile_pickers() {
    // Started outside the repository: nothing to pick.
    let mut cfg = config();
    cfg.plans.clear();
    cfg.profiles.clear();
    let t0 = t0();
    let mut b = Bench { app: App::new(cfg, t0), t0, at: 0.0 };
    let s = b.screen(80, 24);
    has(&s, "(none in test-plans/: Enter, then / types a path)");
    b.ch('s');
    has(&b.screen(80, 24), "s: no plan chosen: pick one in 2 Batch (Enter; / types a path)");
    // Plan: Enter opens the picker, / types a path.
    b.key(KeyCode::Enter);
    has(&b.screen(80, 24), "nothing in test-plans/: / types a path");
    b.ch('/');
    has(&b.screen(80, 24), "Plan: path");
    b.typed(PLAN);
    b.key(KeyCode::Enter);
    assert_eq!(b.app.form.plan_path(), Some(std::path::Path::new(PLAN)));
    // Profile: a missing file is refused with its path; an existing one is read.
    b.ch('j');
    b.key(KeyCode::Enter);
    b.ch('/');
    b.typed("profiles/nope.toml");
    let fx = b.key(KeyCode::Enter);
    assert!(fx.is_empty());
    has(&b.screen(80, 24), "profiles/nope.toml: no such file");
    b.key(KeyCode::Enter);
    b.ch('/');
    b.typed(PROFILE);
    let fx = b.key(KeyCode::Enter);
    assert_eq!(fx, vec![Effect::Probe(PROFILE.into())]);
    assert_eq!(b.app.form.profile_path(), Some(std::path::Path::new(PROFILE)));
    has(&b.screen(80, 24), &format!("Profile    {PROFILE}"));
}

#[test]
fn a_key_that_does_nothing_says_why_on_the_status_line() {
    let mut b = idle();
    let said = |b: &mut Bench, keys: &[char], what: &str| {
        for &k in keys {
            b.ch(k);
        }
        let s = b.screen(100, 24);
        let status = s.lines().nth(1).unwrap().to_string();
        assert!(status.contains(what), "{keys:?}: {what:?} not on the status line {status:?}");
    };
    said(&mut b, &['1', 'z'], "z does nothing in Heads (? lists every key)");
    said(&mut b, &['3', 'j'], "nothing to move to: no exchange yet");
    said(&mut b, &['7', 'n'], "no divergence or differing row to go to");
    // A refusal logged in Events is on the status line too.
    said(&mut b, &['r'], "open a trace with rows first (o)");
    said(&mut b, &['p'], "p: no batch is running to pause (s starts one)");
    said(&mut b, &['x'], "x: no batch is running to stop");
    b.ch('4');
    b.key(KeyCode::Enter);
    has(&b.screen(100, 24), "Enter: no card has a verdict yet");
    b.key(KeyCode::Esc);
    has(&b.screen(100, 24), "Esc: nothing open to close");
    b.ch('5');
    b.key(KeyCode::Enter);
    has(&b.screen(100, 24), "Enter does nothing in Timing");
    said(&mut b, &['v', 'o'], "that key works in the batch timing view (v)");
    b.ch('v');
    b.ch('v');
    said(&mut b, &['E'], "E: no exchange timed yet: nothing to export");
    // The next key clears it.
    b.ch('j');
    lacks(&b.screen(100, 24), "nothing to export");
    start(&mut b, "B12", 0, vec![]);
    said(&mut b, &['s'], "s: a batch is already running (x stops it)");
    // While the batch runs, the counts come back on the ticker after a while.
    b.at += 6.0;
    b.send(Msg::Tick);
    let s = b.screen(100, 24);
    lacks(&s, "already running");
    has(&s, "B12  0/200  pass 0");
}

#[test]
fn q_asks_before_stopping_a_replay_or_a_timing_run() {
    // A timing run.
    let mut b = idle();
    b.ch('5');
    b.app.timing_view.specs = vec!["test-plans/timing/hot-path.toml".into()];
    b.send(Msg::Key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE)));
    let fx = b.key(KeyCode::Enter);
    let fx = if fx.is_empty() { b.key(KeyCode::Enter) } else { fx };
    assert!(matches!(&fx[..], [Effect::Time(_)]), "{fx:?}");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    b.send(Msg::TimingLaunched { dir: "logs/t".into(), stop: stop.clone() });
    b.ch('q');
    assert_eq!(b.app.modal, Modal::ConfirmQuit);
    has(&b.screen(80, 24), "A timing run is running.");
    // n keeps it going.
    b.ch('n');
    assert!(!stop.load(std::sync::atomic::Ordering::Relaxed) && !b.app.quit);
    b.ch('q');
    b.ch('y');
    assert!(stop.load(std::sync::atomic::Ordering::Relaxed));
    assert!(!b.app.quit, "quits once the run has written its files");
    // q again quits at once.
    b.ch('q');
    assert!(b.app.quit);
    // A replay.
    let mut b = idle();
    b.ch('7');
    b.app.replay.live = Some(LiveReplay {
        req: ReplayRequest {
            trace: "traces/a.csv".into(),
            profile: PROFILE.into(),
            trace_head: "D1".into(),
            head: "D1".into(),
            card: None,
            keep_going: false,
        },
        phase: ReplayPhase::Starting,
        marks: vec![],
        diverging: Default::default(),
        checked: 0,
        diverged: 0,
        first_divergence: None,
        last: None,
        stop: None,
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    b.send(Msg::ReplayLaunched { stop: stop.clone() });
    b.ch('q');
    assert_eq!(b.app.modal, Modal::ConfirmQuit);
    has(&b.screen(80, 24), "A replay is running.");
    b.key(KeyCode::Esc);
    assert!(!stop.load(std::sync::atomic::Ordering::Relaxed) && !b.app.quit);
    b.ch('q');
    b.ch('y');
    assert!(stop.load(std::sync::atomic::Ordering::Relaxed), "y stops the replay");
    assert!(!b.app.quit);
    b.send(Msg::ReplayEnded(Err("stopped".into())));
    assert!(b.app.quit, "and quits once it has ended");
    // Nothing running: q quits at once.
    let mut b = idle();
    b.ch('q');
    assert!(b.app.quit);
    assert_eq!(b.app.batch.phase, Phase::Idle);
    assert_eq!(b.app.panel, Panel::Batch);
}
