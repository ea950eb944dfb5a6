//! The Trace panel as a packet analyser, drawn with ratatui's TestBackend: columns sized by
//! content at 80×24 and 200×60, the peer rows' own card, filters and the `/` search over a
//! whole 200-card batch (its card traces written as real CSV files and read back by the scan
//! the UI runs), the failing exchange marked, and the detail pane in hex with fields.

#[path = "common/batch_lab.rs"]
mod batch_lab;

use cardbench::batch::BatchEvent;
use cardbench::event::{Event, Exchange, RowKind};
use cardbench::report::{CardResult, CaseResult, CaseStatus, Verdict};
use cardbench::tui::app::{HeadRow, Probe};
use cardbench::tui::theme::Theme;
use cardbench::tui::{scan, ui, App, Config, Effect, Msg, Now};
use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROFILE: &str = "profiles/lab.toml";

struct Bench {
    app: App,
    t0: Now,
    at: f64,
}

impl Bench {
    fn new(window: usize) -> Bench {
        let t0 = Now { mono: Instant::now(), wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() };
        let cfg = Config {
            plans: vec!["test-plans/mini.toml".into()],
            profiles: vec![PROFILE.into()],
            plan: None,
            profile: None,
            theme: Theme::colored(),
            trace_window: window,
            traces: vec![],
            specs: vec![],
        };
        let mut b = Bench { app: App::new(cfg, t0), t0, at: 0.0 };
        let heads = ["D", "D.peer"]
            .iter()
            .map(|n| HeadRow {
                name: n.to_string(),
                driver: "virtual".into(),
                role: if n.contains("peer") { "peer" } else { "dut" }.into(),
                ..HeadRow::default()
            })
            .collect();
        b.send(Msg::Probed { profile: PROFILE.into(), result: Ok(Probe { heads, count: Some(200), not_batch: None }) });
        b
    }

    fn send(&mut self, m: Msg) -> Vec<Effect> {
        self.at += 0.01;
        let now = self.t0.after(Duration::from_secs_f64(self.at));
        self.app.event_at(m, now)
    }

    fn key(&mut self, code: KeyCode) -> Vec<Effect> {
        self.send(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn ch(&mut self, c: char) -> Vec<Effect> {
        let m = if c.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE };
        self.send(Msg::Key(KeyEvent::new(KeyCode::Char(c), m)))
    }

    /// Do what the event loop does with a scan: run it (on this thread) and hand its result
    /// back; other effects are not this file's business.
    fn perform(&mut self, fx: Vec<Effect>) -> usize {
        let mut scans = 0;
        for e in fx {
            if let Effect::Scan(job) = e {
                scans += 1;
                let r = scan::run(job);
                self.send(Msg::Scanned(r));
            }
        }
        scans
    }

    fn batch(&mut self, e: BatchEvent) -> Vec<Effect> {
        self.send(Msg::Batch(e))
    }

    fn run(&mut self, head: &str, card: &str, event: Event) -> Vec<Effect> {
        self.batch(BatchEvent::Run { head: head.into(), card_id: card.into(), event })
    }
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut s = String::new();
    for y in 0..h {
        for x in 0..w {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

#[track_caller]
fn has(s: &str, what: &str) {
    assert!(s.contains(what), "{what:?} not on screen:\n{s}");
}

#[track_caller]
fn lacks(s: &str, what: &str) {
    assert!(!s.contains(what), "{what:?} should not be on screen:\n{s}");
}

#[track_caller]
fn line_with<'a>(s: &'a str, what: &str) -> &'a str {
    s.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line with {what:?}:\n{s}"))
}

fn card_id(i: u64) -> String {
    format!("CB000000000{i:05X}")
}

const PEER: &str = "CB00000000030016";
const SELECT_XFER: [u8; 12] = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x03];
/// KEY UPDATE PERMISSION, mode 02, with an 8-byte certificate stand-in and Le 0x16.
const KUP: [u8; 14] = [0x80, 0x20, 0x02, 0x00, 0x08, b'C', b'E', b'R', b'T', 0x00, 0x01, 0x7F, 0x20, 0x16];
const WRITE_VALUE: [u8; 14] = [0x80, 0xD0, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x64, 0x6A, 0x1D, 0x74, 0x40, 0x04];
const GET_RESPONSE: [u8; 5] = [0x00, 0xC0, 0x00, 0x00, 0x16];

#[allow(clippy::too_many_arguments)]
fn x(
    seq: u64,
    head: &str,
    card: &str,
    case: &str,
    step: &str,
    cmd: &[u8],
    resp: &[u8],
    sw: u16,
    kind: RowKind,
) -> Exchange {
    Exchange {
        seq,
        wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 5).unwrap(),
        mono_ns: seq * 1000,
        head: head.into(),
        card_id: card.into(),
        test_step: case.into(),
        protocol_step: step.into(),
        command: cmd.to_vec(),
        response: resp.to_vec(),
        sw,
        duration_ns: 1_250_000,
        kind,
        ..Exchange::default()
    }
}

const CASE_LONG: &str = "XFER-KEYS-PUBLIC-ROLLOVER-07";
const STEP_LONG: &str = "S2003/S2103A-S2105A";

/// One card's rows: a SELECT, a KEY UPDATE PERMISSION answered 61xx and fetched by GET
/// RESPONSE, the peer card's SELECT (its own card ID), and a WRITE VALUE; on a bad card the
/// WRITE VALUE is refused 6A84 and the case fails on it.
fn card_rows(i: u64, bad: bool) -> Vec<Exchange> {
    let c = card_id(i);
    let k = RowKind::Command;
    vec![
        x(1, "D", &c, CASE_LONG, "select", &SELECT_XFER, &[], 0x9000, k),
        x(2, "D", &c, CASE_LONG, STEP_LONG, &KUP, &[], 0x6116, k),
        x(3, "D", &c, CASE_LONG, STEP_LONG, &GET_RESPONSE, &[0x41; 0x16], 0x9000, RowKind::GetResponse),
        x(4, "D.peer", PEER, CASE_LONG, "select", &SELECT_XFER, &[], 0x9000, k),
        x(
            5,
            "D",
            &c,
            "PURSE-CTR-01",
            "000 S1-S4",
            &WRITE_VALUE,
            &[0, 0, 3, 0xE7],
            if bad { 0x6A84 } else { 0x9000 },
            k,
        ),
    ]
}

fn result(i: u64, bad: bool) -> CardResult {
    let c = card_id(i);
    let case = |id: &str, ok: bool| CaseResult {
        id: id.into(),
        title: id.into(),
        reference: "000 S1-S4".into(),
        status: if ok { CaseStatus::Passed } else { CaseStatus::Failed },
        message: String::new(),
        failure: None,
        duration_ms: 1.0,
        verifies: vec![],
    };
    CardResult {
        index: i,
        card_id: c.clone(),
        head: "D".into(),
        verdict: if bad { Verdict::Fail { failing: vec!["PURSE-CTR-01".into()] } } else { Verdict::Pass },
        cases: vec![case(CASE_LONG, true), case("PURSE-CTR-01", !bad)],
        trace: format!("cards/{i:05}-{c}/trace.csv"),
        started: "2026-06-01T12:00:01.000Z".into(),
        duration_ms: 10.0,
    }
}

/// Play card `i` through the UI as a batch reports it, writing its trace CSV under `dir`
/// as the batch does; returns the effects of its CardDone (the scan of its trace, if any).
fn play_card(b: &mut Bench, dir: &Path, i: u64, bad: bool) -> Vec<Effect> {
    let c = card_id(i);
    let rows = card_rows(i, bad);
    let r = result(i, bad);
    let path = dir.join(&r.trace);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut t = cardbench::trace::TraceCsv::create(&path, "R1", "mini").unwrap();
    for row in &rows {
        t.write(row).unwrap();
    }
    t.flush().unwrap();
    b.batch(BatchEvent::CardInserted { head: "D".into(), index: i, card_id: c.clone(), atr: vec![] });
    for row in rows {
        b.run("D", &c, Event::Exchange(Box::new(row)));
    }
    if bad {
        b.run(
            "D",
            &c,
            Event::StepEnded {
                head: "D".into(),
                test_step: "PURSE-CTR-01".into(),
                engine: "case".into(),
                verdict: "failed".into(),
                passed: false,
                detail: String::new(),
            },
        );
    }
    b.batch(BatchEvent::CardDone(Box::new(r)))
}

/// A batch started in `dir` (as the loop does once the batch thread is up).
fn start(b: &mut Bench, dir: &Path, total: u64) {
    let fx = b.ch('s');
    assert!(matches!(fx.as_slice(), [Effect::Start(_)]), "{fx:?}");
    b.send(Msg::Launched { dir: dir.to_path_buf(), control: Arc::new(Default::default()) });
    b.batch(BatchEvent::Started { total, done: 0, heads: vec!["D".into()], earlier: vec![] });
}

#[test]
fn columns_keep_everything_essential_at_80x24_and_all_of_it_at_200x60() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(1000);
    start(&mut b, d.path(), 3);
    play_card(&mut b, d.path(), 1, true);
    b.ch('3');
    let s = screen(&b.app, 80, 24);
    // Every column has its header, and each row its head, card, case, seed step, command,
    // SW, meaning and duration, abbreviated where they do not fit.
    let header = line_with(&s, "Meaning");
    for h in [&["Card"][..], &["Case"], &["Seed step", "Step"], &["Command", "Cmd"], &["SW"], &["Meaning"], &["Dur"]] {
        assert!(h.iter().any(|h| header.contains(h)), "{h:?} in {header:?}");
    }
    let wv = line_with(&s, "6A84");
    for want in ["✗", "D ", "…", "PURSE-CTR-01", "000 S1-S4", "WRITE VALUE", "1.25ms", "not enoug"] {
        assert!(wv.contains(want), "{want:?} in {wv:?}");
    }
    assert!(wv.contains(&card_id(1)[9..]), "the card's last digits: {wv:?}");
    let kup = line_with(&s, "6116");
    assert!(kup.contains("KEY UPDATE") && kup.contains("XFER-KEYS") && kup.contains("S2003"), "{kup:?}");
    // The peer's row names the peer card, not the card under test.
    let peer = line_with(&s, "D.peer");
    assert!(peer.contains("…0030016"), "{peer:?}");
    assert!(!peer.contains(&card_id(1)[9..]), "{peer:?}");
    // 200×60: the dashboard; the Trace panel shows every value whole.
    let s = screen(&b.app, 200, 60);
    let kup = line_with(&s, "6116");
    for want in [&card_id(1), CASE_LONG, STEP_LONG, "KEY UPDATE PERMISSION"] {
        assert!(kup.contains(want), "{want:?} in {kup:?}");
    }
    let peer = s.lines().find(|l| l.contains("D.peer") && l.contains("SELECT")).unwrap();
    assert!(peer.contains(PEER), "{peer:?}");
}

/// Rows too fast to follow reach the UI as a summary (`batch::forward`): the window says
/// where and how many, the counts and the Timing panel take every one of them.
#[test]
fn exchanges_not_shown_live_are_counted_timed_and_marked_in_the_window() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(1000);
    start(&mut b, d.path(), 3);
    let card = card_id(1);
    b.run(
        "D",
        &card,
        Event::Exchange(Box::new(x(1, "D", &card, "GEN-AID-01", "", &SELECT_XFER, &[], 0x9000, RowKind::Command))),
    );
    let name = cardbench::cmds::name(0x80, 0xD0);
    let skipped = cardbench::batch::forward::Skipped {
        exchanges: 4321,
        times: vec![("D".into(), name, vec![1_000_000; 4000])],
        protocol_step: Some("000 S7".into()),
    };
    b.batch(BatchEvent::Skipped { head: "D".into(), card_id: card.clone(), skipped });
    assert_eq!(b.app.heads.iter().find(|h| h.name == "D").unwrap().step, "000 S7");
    b.run(
        "D",
        &card,
        Event::Exchange(Box::new(x(4323, "D", &card, "GEN-AID-02", "", &SELECT_XFER, &[], 0x9000, RowKind::Command))),
    );
    assert_eq!(b.app.trace.total, 4323);
    let series = &b.app.timing.by_head["D"][name];
    assert_eq!((series.count, series.min_ns, series.max_ns), (4000, 1_000_000, 1_000_000));
    b.ch('3');
    let s = screen(&b.app, 200, 60);
    has(&s, "4323 exchanges");
    let gap = line_with(&s, "4321 exchanges of passed cases not shown live");
    assert!(!gap.contains("GEN-AID"), "{gap:?}");
    // The marker is between the two rows, and a filter never matches it.
    let (a, g, z) =
        (s.find("GEN-AID-01").unwrap(), s.find("4321 exchanges of").unwrap(), s.find("GEN-AID-02").unwrap());
    assert!(a < g && g < z, "{s}");
    let fx = b.ch('H');
    b.perform(fx);
    let s = screen(&b.app, 200, 60);
    has(&s, "GEN-AID-02");
    lacks(&s, "not shown live");
}

#[test]
fn only_the_exchange_a_failed_case_failed_on_is_marked() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(1000);
    start(&mut b, d.path(), 3);
    let c = card_id(7);
    // Two rows in the failing case: a normal READ, then the refused WRITE VALUE.
    let read =
        x(1, "D", &c, "PURSE-CTR-01", "000 S1-S4", &[0x80, 0xB0, 0, 0, 0x50], &[0; 0x50], 0x9000, RowKind::Command);
    let mut write = card_rows(7, true).pop().unwrap();
    write.seq = 2;
    b.batch(BatchEvent::CardInserted { head: "D".into(), index: 7, card_id: c.clone(), atr: vec![] });
    b.run("D", &c, Event::Exchange(Box::new(read)));
    b.run("D", &c, Event::Exchange(Box::new(write)));
    b.run(
        "D",
        &c,
        Event::StepEnded {
            head: "D".into(),
            test_step: "PURSE-CTR-01".into(),
            engine: "case".into(),
            verdict: "failed".into(),
            passed: false,
            detail: String::new(),
        },
    );
    b.ch('3');
    let s = screen(&b.app, 80, 24);
    assert!(line_with(&s, "6A84").contains('✗'));
    assert!(!line_with(&s, "READ ALL").contains('✗'), "{s}");
    assert_eq!(s.matches('✗').count(), 1, "{s}");
}

#[test]
fn a_filter_finds_the_failure_of_the_first_card_of_a_200_card_batch_on_disk() {
    let d = tempfile::tempdir().unwrap();
    // A window of 100 rows holds the last 20 cards only.
    let mut b = Bench::new(100);
    start(&mut b, d.path(), 200);
    for i in 1..=200 {
        let fx = play_card(&mut b, d.path(), i, i == 1);
        assert!(fx.is_empty(), "no scan without a filter: {fx:?}");
    }
    assert!(b.app.trace.rows().iter().all(|r| *r.card != card_id(1)), "card 1 left the window");
    b.ch('3');
    // w: final SW ≠ 9000. The 6116 answers are not final (GET RESPONSE follows): only card
    // 1's 6A84 is, and it comes from its trace on disk.
    let fx = b.ch('w');
    assert_eq!(b.perform(fx), 1);
    let s = screen(&b.app, 80, 24);
    has(&s, "sw≠9000 · 1 match · 200/200 finished cards read");
    let l = line_with(&s, "6A84");
    assert!(l.contains('✗') && l.contains(&card_id(1)[9..]) && l.contains("WRITE VALUE"), "{l:?}");
    lacks(&s, "6116");
    // The failing exchanges (e) instead: the same one.
    b.ch('F');
    let fx = b.ch('e');
    b.perform(fx);
    let s = screen(&b.app, 80, 24);
    has(&s, "failures · 1 match ·");
    assert!(line_with(&s, "6A84").contains(&card_id(1)[9..]));
    // Enter opens it, read from disk like the rest: the full card ID and the hex.
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 24);
    has(&s, &format!("card {}", card_id(1)));
    has(&s, "SW        6A84");
    b.key(KeyCode::Esc);
    // Filters on command and case of the selected row, SW value, all over the batch.
    b.ch('F');
    b.perform(vec![]);
    let s = screen(&b.app, 80, 24);
    lacks(&s, "match");
    // A card finishing while a filter is on: its trace is read too.
    let fx = b.ch('w');
    b.perform(fx);
    let fx = play_card(&mut b, d.path(), 201, true);
    assert_eq!(b.perform(fx), 1, "the finished card's trace is scanned");
    let s = screen(&b.app, 80, 24);
    has(&s, "sw≠9000 · 2 matches · 201/201 finished cards read");
}

#[test]
fn filters_on_command_case_sw_value_and_head_cover_the_batch() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(20);
    start(&mut b, d.path(), 30);
    for i in 1..=30 {
        play_card(&mut b, d.path(), i, i % 10 == 3);
    }
    b.ch('3');
    // Select a WRITE VALUE row (the newest) and filter on its command: 30 cards' worth.
    let fx = b.ch('m');
    b.perform(fx);
    has(&screen(&b.app, 100, 30), "cmd=WRITE VALUE · 30 matches");
    // Its case too (c), then its SW value (v) on a row refused 6A84.
    b.ch('F');
    let fx = b.send(Msg::Key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE)));
    assert!(fx.is_empty());
    for c in "sw:6a84".chars() {
        let fx = b.ch(c);
        b.perform(fx);
    }
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 100, 30);
    has(&s, "/sw:6a84 · 3 matches");
    b.ch('k');
    let fx = b.ch('v');
    b.perform(fx);
    has(&screen(&b.app, 100, 30), "sw=6A84 /sw:6a84 · 3 matches");
    let fx = b.ch('c');
    b.perform(fx);
    has(&screen(&b.app, 100, 30), "case=PURSE-CTR-01 sw=6A84 /sw:6a84 · 3 matches");
    // Head: the peer head's rows, each naming the peer card.
    b.ch('F');
    b.ch('H');
    let fx = b.ch('H');
    b.perform(fx);
    let s = screen(&b.app, 100, 30);
    has(&s, "head=D.peer · 30 matches");
    let peers: Vec<&str> = s.lines().filter(|l| l.contains("D.peer") && l.contains("SELECT")).collect();
    assert!(!peers.is_empty() && peers.iter().all(|l| l.contains(PEER)), "{s}");
}

#[test]
fn slash_search_narrows_as_it_is_typed_and_esc_drops_it() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(1000);
    start(&mut b, d.path(), 5);
    for i in 1..=5 {
        play_card(&mut b, d.path(), i, i == 2);
    }
    b.ch('3');
    b.send(Msg::Key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE)));
    let mut counts = Vec::new();
    for c in "key up".chars() {
        let fx = b.ch(c);
        b.perform(fx);
        counts.push(cardbench::tui::app::App::trace_view(&b.app).len());
    }
    // "k" is in every KEY UPDATE row and in nothing else's columns but… the view narrows.
    assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
    let s = screen(&b.app, 80, 24);
    has(&s, "/key up▏");
    has(&s, "/key up · 5 matches");
    assert!(s.lines().filter(|l| l.contains("6116")).count() == 5, "{s}");
    // Words are ANDed; a word may name its column.
    for _ in 0.."key up".len() {
        let fx = b.key(KeyCode::Backspace);
        b.perform(fx);
    }
    for c in "cmd:write sw:!9000".chars() {
        let fx = b.ch(c);
        b.perform(fx);
    }
    let s = screen(&b.app, 80, 24);
    has(&s, "· 1 match ·");
    assert!(line_with(&s, "6A84").contains(&card_id(2)[9..]));
    // Esc drops the search.
    let fx = b.key(KeyCode::Esc);
    b.perform(fx);
    let s = screen(&b.app, 80, 24);
    lacks(&s, "/cmd");
    lacks(&s, "match");
}

#[test]
fn detail_pane_is_hex_throughout_with_applet_names_fields_and_ascii() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(1000);
    start(&mut b, d.path(), 1);
    play_card(&mut b, d.path(), 1, true);
    b.ch('3');
    // The KEY UPDATE PERMISSION (Le 0x16).
    b.ch('g');
    b.ch('j');
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 30);
    has(&s, "Header    CLA 80  INS 20  P1 02  P2 00  Lc 08  Le 16  case 4 (data and Le)");
    has(&s, "P1 mode: 02 (card key pairs (public))");
    has(&s, "0000  80 20 02 00 08 43 45 52 54 00 01 7F 20 16        |. ...CERT... .|");
    has(&s, "SW        6116");
    // Its GET RESPONSE: 22 bytes of 'A' with their ASCII.
    b.ch('j');
    let s = screen(&b.app, 80, 30);
    has(&s, "Le 16  case 2 (Le only)");
    has(&s, "0000  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|");
    has(&s, "0010  41 41 41 41 41 41");
    has(&s, "|AAAAAA|");
    // The peer's SELECT: its own card, the card under test beside it, the applet named.
    b.ch('j');
    let s = screen(&b.app, 100, 30);
    has(&s, &format!("head D.peer  card {PEER}  (for card under test {})", card_id(1)));
    has(&s, "AID: A0000007770003 (applet XFER)");
    // The failing WRITE VALUE: decoded amount and date, marked as where the case failed.
    b.ch('j');
    let s = screen(&b.app, 100, 30);
    has(&s, "(case failed on this exchange)");
    has(&s, "amount: 00000064 (100)");
    has(&s, "date: 6A1D7440 (2026-06-01T12:00:00Z)");
    has(&s, "SW        6A84  not enough memory space in the file (checking-error)");
}

#[test]
fn a_stale_scan_is_ignored_and_unreadable_traces_are_named() {
    let d = tempfile::tempdir().unwrap();
    let mut b = Bench::new(10);
    start(&mut b, d.path(), 3);
    for i in 1..=3 {
        play_card(&mut b, d.path(), i, i == 1);
    }
    std::fs::write(d.path().join(&result(3, false).trace), "not,a,trace\n").unwrap();
    b.ch('3');
    let stale = b.ch('w');
    let fresh = b.ch('e');
    // The first filter's scan comes back after the second was set: dropped.
    let Effect::Scan(job) = &stale[0] else { panic!("{stale:?}") };
    let r = scan::run(job.clone());
    b.send(Msg::Scanned(r));
    assert!(b.app.scan.cards.is_empty());
    b.perform(fresh);
    let s = screen(&b.app, 100, 24);
    has(&s, "2/3 finished cards read");
    has(&s, "trace.csv");
}

/// Two virtual DUT heads; only card 1 of 200 carries a defect.
fn mini_profile(logs: &Path) -> String {
    let head = format!(
        "\nname = \"tui-trace-test\"\n[keyset]\nseed = \"tui trace test\"\n[defaults]\nclock = \"2026-06-01T12:00:00Z\"\nlogs = \"{}\"\n",
        logs.display()
    );
    format!("{head}{}{}", batch_lab::dut_heads(&["D1", "D2"], None), batch_lab::cards_and_batch(Some(200), 200, 1))
}

/// A UI on two virtual heads of a lab in `d`, running `plan` with a `window`-row trace.
fn real_bench(d: &Path, plan: &str, window: usize, count: u64) -> Bench {
    let (profile, plan_path) = (d.join("lab.toml"), d.join("plan.toml"));
    std::fs::write(&profile, mini_profile(&d.join("logs"))).unwrap();
    std::fs::write(&plan_path, plan).unwrap();
    let t0 = Now::current();
    let cfg = Config {
        plans: vec![plan_path],
        profiles: vec![profile],
        plan: None,
        profile: None,
        theme: Theme::colored(),
        trace_window: window,
        traces: vec![],
        specs: vec![],
    };
    let mut b = Bench { app: App::new(cfg, t0), t0, at: 0.0 };
    b.app.form.count = count.to_string();
    b
}

/// Rows, and rows that time a command, of every card trace of the batch in `dir`.
fn disk_counts(dir: &Path) -> (u64, u64) {
    let (mut rows, mut timed) = (0u64, 0u64);
    for card in std::fs::read_dir(dir.join("cards")).unwrap() {
        let mut csv = csv::Reader::from_path(card.unwrap().path().join("trace.csv")).unwrap();
        let kind = csv.headers().unwrap().iter().position(|h| h == "kind").unwrap();
        for rec in csv.records() {
            rows += 1;
            timed += ["command", "get-response", "resend-6c"].contains(&&rec.unwrap()[kind]) as u64;
        }
    }
    (rows, timed)
}

/// Run the batch of `b`'s form to its end through the real engine, as the run loop does.
fn run_real_batch(b: &mut Bench) -> std::path::PathBuf {
    let fx = b.ch('s');
    let [Effect::Start(req)] = fx.as_slice() else { panic!("{fx:?}") };
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let r = cardbench::tui::launch::start(req, done_tx).unwrap();
    b.send(Msg::Launched { dir: r.dir.clone(), control: r.control.clone() });
    let end = loop {
        crossbeam_channel::select! {
            recv(r.events) -> e => match e {
                Ok(e) => { b.batch(e); }
                Err(_) => break done_rx.recv().unwrap(),
            },
            recv(done_rx) -> m => break m.unwrap(),
        }
    };
    for e in r.events.try_iter() {
        b.batch(e);
    }
    b.send(end);
    r.thread.join().unwrap();
    r.dir
}

/// A virtual card answers far faster than the live budget (`batch::forward`): a passing
/// case's rows past it are summed up, a failing case's rows all reach the window with the
/// failing exchange marked, and every row is counted and timed.
#[test]
fn a_real_fast_batch_sums_up_passing_rows_and_shows_the_failing_case_whole() {
    let d = tempfile::tempdir().unwrap();
    let select = "00 A4 04 00 07 A0 00 00 07 77 00 01";
    let fast = format!(
        "[plan]\nid = \"fast\"\nversion = \"1\"\nroles = [\"dut\"]\n\n\
         [[case]]\nid = \"MANY-OK\"\ntitle = \"many\"\nref = \"000 S1\"\n\
         [[case.step]]\ndo = \"apdu\"\nhead = \"dut\"\ncommand = \"{select}\"\nsw = [\"9000\"]\nrepeat = 1500\n\n\
         [[case]]\nid = \"MANY-BAD\"\ntitle = \"bad\"\nref = \"000 S1\"\n\
         [[case.step]]\ndo = \"apdu\"\nhead = \"dut\"\ncommand = \"{select}\"\nsw = [\"9000\"]\nrepeat = 400\n\
         [[case.step]]\ndo = \"apdu\"\nname = \"LAST\"\nhead = \"dut\"\ncommand = \"{select}\"\nsw = [\"6A82\"]\n"
    );
    let mut b = real_bench(d.path(), &fast, 10_000, 1);
    let dir = run_real_batch(&mut b);
    assert_eq!(b.app.results.len(), 1);
    let rows = b.app.trace.rows();
    let gaps: u64 = rows.iter().map(|r| r.gap).sum();
    assert!(gaps > 1000, "most of MANY-OK is summed up: {gaps}");
    let shown = rows.iter().filter(|r| r.gap == 0).count() as u64;
    assert_eq!(shown + gaps, b.app.trace.total);
    // The failing case's last rows are all there, ending with the exchange it failed on.
    let failing: Vec<_> = rows.iter().filter(|r| r.failing).collect();
    assert_eq!(failing.len(), 1);
    assert_eq!((failing[0].x.test_step.as_str(), failing[0].x.sw), ("MANY-BAD", 0x9000));
    assert!(failing[0].x.step.contains("LAST"), "{:?}", failing[0].x.step);
    let bad = rows.iter().filter(|r| r.x.test_step == "MANY-BAD").count();
    assert!(bad >= cardbench::batch::forward::CASE_KEEP, "{bad}");
    // Every row counted, every command timed, as on disk.
    let (rows, timed) = disk_counts(&dir);
    assert_eq!(b.app.trace.total, rows);
    assert_eq!(b.app.timing.rows().iter().map(|(_, _, s)| s.count).sum::<u64>(), timed);
}

#[test]
fn a_real_200_card_batch_the_failing_filter_finds_card_1_in_its_trace_on_disk() {
    let d = tempfile::tempdir().unwrap();
    // Ten cards' worth at most: card 1's rows leave the window long before the end.
    let mut b = real_bench(d.path(), batch_lab::MINI_PLAN, 300, 200);
    let dir = run_real_batch(&mut b);
    assert_eq!(b.app.results.len(), 200);
    assert!(b.app.trace.rows().iter().all(|r| !r.card.ends_with("00000001")), "card 1 left the window");
    // Rows too fast to follow were summed up, not lost: the exchange count and the Timing
    // panel's command count match the card traces on disk row for row.
    let (rows, timed) = disk_counts(&dir);
    assert_eq!(b.app.trace.total, rows);
    let counted: u64 = b.app.timing.rows().iter().map(|(_, _, s)| s.count).sum();
    assert_eq!(counted, timed);
    b.ch('3');
    let fx = b.ch('e');
    assert_eq!(b.perform(fx), 1);
    let s = screen(&b.app, 80, 24);
    has(&s, "failures · 1 match · 200/200 finished cards read");
    let row = s.lines().find(|l| l.contains('✗')).unwrap_or_else(|| panic!("{s}"));
    assert!(row.contains("00000001") && row.contains("PURSE-CTR"), "{row:?}");
    // Enter: the exchange read from card 1's trace CSV.
    b.key(KeyCode::Enter);
    has(&screen(&b.app, 80, 24), "card CB00B00000000001");
}
