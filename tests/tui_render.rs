//! The TUI drawn with ratatui's TestBackend from a known state: synthetic batch events fed
//! through `App::event_at`, keys pressed, and the buffer read back as text.

use cardbench::batch::BatchEvent;
use cardbench::event::{Event, Exchange};
use cardbench::report::{CardResult, CaseResult, CaseStatus, Failure, Verdict};
use cardbench::tui::app::{BatchEnd, HeadRow, Modal, Phase, Probe};
use cardbench::tui::theme::Theme;
use cardbench::tui::{ui, App, Config, Effect, Msg, Now, Panel};
use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PLAN: &str = "test-plans/mini.toml";
const PROFILE: &str = "profiles/lab.toml";

struct Bench {
    app: App,
    t0: Now,
    /// Seconds since t0 of the next event.
    at: f64,
    control: Arc<cardbench::batch::Control>,
}

impl Bench {
    fn now(&self) -> Now {
        self.t0.after(Duration::from_secs_f64(self.at))
    }

    fn send(&mut self, m: Msg) -> Vec<Effect> {
        let now = self.now();
        self.app.event_at(m, now)
    }

    fn batch(&mut self, e: BatchEvent) {
        self.send(Msg::Batch(e));
    }

    fn run(&mut self, head: &str, card: &str, event: Event) {
        self.batch(BatchEvent::Run { head: head.into(), card_id: card.into(), event });
    }

    fn key(&mut self, code: KeyCode) -> Vec<Effect> {
        self.send(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn ch(&mut self, c: char) -> Vec<Effect> {
        let m = if c.is_ascii_uppercase() { KeyModifiers::SHIFT } else { KeyModifiers::NONE };
        self.send(Msg::Key(KeyEvent::new(KeyCode::Char(c), m)))
    }

    fn ctrl(&mut self, c: char) -> Vec<Effect> {
        self.send(Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)))
    }

    fn typed(&mut self, s: &str) {
        for c in s.chars() {
            self.ch(c);
        }
    }
}

fn config(theme: Theme) -> Config {
    Config {
        plans: vec![PLAN.into(), "test-plans/other.toml".into()],
        profiles: vec![PROFILE.into()],
        plan: None,
        profile: None,
        theme,
        trace_window: 100,
    }
}

fn t0() -> Now {
    Now { mono: Instant::now(), wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() }
}

fn head(name: &str, role: &str, card: Option<&str>) -> HeadRow {
    HeadRow {
        name: name.into(),
        driver: "virtual".into(),
        reader: format!("virtual:{name}"),
        role: role.into(),
        present: Some(card.is_some()),
        atr: card.map(|_| vec![0x3B, 0x89, 0x00, 0x43, 0x41, 0x52, 0x44]),
        card_id: card.unwrap_or("").into(),
        ..HeadRow::default()
    }
}

fn card_id(index: u64) -> String {
    format!("CB00B000{index:08X}")
}

#[allow(clippy::too_many_arguments)]
fn exchange(
    head: &str,
    card: &str,
    case: &str,
    step: &str,
    command: &[u8],
    response: &[u8],
    sw: u16,
    us: u64,
) -> Event {
    Event::Exchange(Box::new(Exchange {
        seq: 7,
        wall: chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 5).unwrap(),
        mono_ns: 1_500_000,
        head: head.into(),
        card_id: card.into(),
        test_step: case.into(),
        protocol_step: step.into(),
        command: command.to_vec(),
        response: response.to_vec(),
        sw,
        duration_ns: us * 1000,
        note: String::new(),
        ..Exchange::default()
    }))
}

fn case(id: &str, status: CaseStatus, failure: Option<Failure>, message: &str) -> CaseResult {
    CaseResult {
        id: id.into(),
        title: format!("title of {id}"),
        reference: "000 S2".into(),
        status,
        message: message.into(),
        failure,
        duration_ms: 12.5,
    }
}

fn card(index: u64, head: &str, verdict: Verdict, cases: Vec<CaseResult>) -> CardResult {
    let id = card_id(index);
    CardResult {
        index,
        card_id: id.clone(),
        head: head.into(),
        verdict,
        cases,
        trace: format!("cards/{index:05}-{id}/trace.csv"),
        started: "2026-06-01T12:00:01.000Z".into(),
        duration_ms: 420.0,
    }
}

const SELECT: [u8; 12] = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x01];
const WRITE_VALUE: [u8; 14] = [0x80, 0xD0, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x64, 0x6A, 0x1D, 0x74, 0x40, 0x04];

/// A batch of 20 on three DUT heads, three cards done (fail, pass, aborted) 36 s in, the
/// fourth in progress on D1.
fn known(theme: Theme) -> Bench {
    let t0 = t0();
    let app = App::new(config(theme), t0);
    let mut b = Bench { app, t0, at: 0.0, control: Arc::new(Default::default()) };
    assert_eq!(b.app.initial_effects(), vec![Effect::Probe(PROFILE.into())]);
    b.send(Msg::Probed {
        profile: PROFILE.into(),
        result: Ok(Probe {
            heads: vec![
                head("D1", "dut", None),
                head("D2", "dut", None),
                head("D3", "dut", None),
                head("REF", "peer", Some("CB00000000000E01")),
            ],
            count: Some(100),
            not_batch: None,
        }),
    });
    assert_eq!(b.app.form.count, "100", "the profile's default count");
    // Batch panel: batch ID and count typed in.
    assert_eq!(b.app.panel, Panel::Batch);
    b.ch('j');
    b.ch('j');
    b.key(KeyCode::Enter);
    b.ctrl('u');
    b.typed("B1");
    b.key(KeyCode::Enter);
    b.ch('j');
    b.key(KeyCode::Enter);
    b.ctrl('u');
    b.typed("2x0");
    b.key(KeyCode::Enter);
    let fx = b.ch('s');
    assert_eq!(
        fx,
        vec![Effect::Start(cardbench::tui::app::BatchRequest {
            plan: PLAN.into(),
            profile: PROFILE.into(),
            batch_id: "B1".into(),
            count: Some(20),
        })]
    );
    assert_eq!(b.app.batch.phase, Phase::Starting);
    let control = b.control.clone();
    b.send(Msg::Launched { dir: PathBuf::from("logs/B1"), control });
    b.batch(BatchEvent::Started {
        total: 20,
        done: 0,
        heads: vec!["D1".into(), "D2".into(), "D3".into()],
        earlier: vec![],
    });
    // Card 1 on D1: PURSE-CTR-01 fails.
    let c1 = card_id(1);
    b.at = 1.0;
    b.batch(BatchEvent::CardInserted { head: "D1".into(), index: 1, card_id: c1.clone(), atr: vec![0x3B, 0x89, 0x00] });
    b.run(
        "D1",
        &c1,
        Event::StepStarted { head: "dut".into(), test_step: "PURSE-CTR-01".into(), engine: "case".into() },
    );
    b.run("D1", &c1, exchange("D1", &c1, "PURSE-CTR-01", "select", &SELECT, &[], 0x9000, 3));
    b.run("D1", &c1, exchange("D1", &c1, "PURSE-CTR-01", "000 S2", &WRITE_VALUE, &[0, 0, 3, 0xE8], 0x9000, 850));
    b.run(
        "D1",
        &c1,
        Event::StepEnded {
            head: "dut".into(),
            test_step: "PURSE-CTR-01".into(),
            engine: "case".into(),
            verdict: "failed".into(),
            passed: false,
            detail: "counter".into(),
        },
    );
    // Card 2 on D2: passes, with a checking error the plan expected, and a peer exchange.
    let c2 = card_id(2);
    b.batch(BatchEvent::CardInserted { head: "D2".into(), index: 2, card_id: c2.clone(), atr: vec![] });
    b.run(
        "D2",
        &c2,
        Event::StepStarted { head: "dut".into(), test_step: "PURSE-LEN-01".into(), engine: "case".into() },
    );
    b.run("D2", &c2, exchange("D2", &c2, "PURSE-LEN-01", "S1", &[0x80, 0xD0, 0x00, 0x00, 0x01, 0x00], &[], 0x6A80, 5));
    b.run("D2", &c2, exchange("D2.peer", "CB00000000000E01", "XFER-UPD-01", "S1001", &SELECT, &[], 0x9000, 4));
    // Card 3 on D3: the card goes away.
    let c3 = card_id(3);
    b.batch(BatchEvent::CardInserted { head: "D3".into(), index: 3, card_id: c3.clone(), atr: vec![] });
    b.run("D3", &c3, Event::HeadError { head: "D3".into(), error: "card removed".into() });
    b.at = 12.0;
    let failure = Failure {
        step: "PURSE-CTR-01 #3 assert".into(),
        expected: "after.counter == before.counter - 1".into(),
        actual: "after.counter=1000, before.counter=1000".into(),
    };
    b.batch(BatchEvent::CardDone(Box::new(card(
        1,
        "D1",
        Verdict::Fail { failing: vec!["PURSE-CTR-01".into()] },
        vec![
            case("PURSE-CTR-01", CaseStatus::Failed, Some(failure), ""),
            case("XFER-UPD-01", CaseStatus::Passed, None, ""),
        ],
    ))));
    b.at = 24.0;
    b.batch(BatchEvent::CardDone(Box::new(card(
        2,
        "D2",
        Verdict::Pass,
        vec![case("PURSE-CTR-01", CaseStatus::Passed, None, ""), case("XFER-UPD-01", CaseStatus::Passed, None, "")],
    ))));
    b.at = 36.0;
    b.batch(BatchEvent::CardDone(Box::new(card(
        3,
        "D3",
        Verdict::Aborted { reason: "PURSE-CTR-01: head D3: card removed".into() },
        vec![case("PURSE-CTR-01", CaseStatus::Error, None, "head D3: card removed")],
    ))));
    // Card 4 in progress on D1.
    let c4 = card_id(4);
    b.batch(BatchEvent::CardInserted { head: "D1".into(), index: 4, card_id: c4.clone(), atr: vec![] });
    b.run(
        "D1",
        &c4,
        Event::StepStarted { head: "dut+peer".into(), test_step: "XFER-UPD-01".into(), engine: "case".into() },
    );
    b.run("D1", &c4, exchange("D1", &c4, "XFER-UPD-01", "S1001", &SELECT, &[], 0x9000, 6));
    b
}

fn draw(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(app, f)).unwrap();
    t.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut s = String::new();
    for y in 0..a.height {
        for x in 0..a.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

fn screen(app: &App, w: u16, h: u16) -> String {
    text(&draw(app, w, h))
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

#[test]
fn status_line_and_tabs_at_80x24() {
    let b = known(Theme::colored());
    let s = screen(&b.app, 80, 24);
    has(&s, "1 Heads");
    has(&s, "6 Events");
    let status = s.lines().nth(1).unwrap();
    for w in ["● running", "B1", "3/20", "pass 1", "fail 1", "aborted 1", "300 cards/h", "ETA 3:24"] {
        assert!(status.contains(w), "{w} in {status:?}");
    }
}

#[test]
fn heads_panel() {
    let mut b = known(Theme::colored());
    b.ch('1');
    for (w, h) in [(80, 24), (120, 40)] {
        let s = screen(&b.app, w, h);
        has(&s, "1 Heads · 4 heads");
        let d1 = line_with(&s, " D1 ");
        for x in ["virtual", "dut", "yes", &card_id(4), "XFER-UPD-01"] {
            assert!(d1.contains(x), "{x} in {d1:?}");
        }
        // Counts: D1 failed card 1, D2 passed card 2, D3 aborted card 3.
        assert!(d1.contains("   0    1     0"), "{d1:?}");
        assert!(line_with(&s, " D2 ").contains("   1    0     0"));
        has(&s, "step S1001");
        has(&s, "fault: PURSE-CTR-01: head D3: card removed");
        has(&s, "virtual:REF");
        has(&s, "ATR 3B89004341524");
        has(&s, "CB00000000000E01");
    }
}

#[test]
fn batch_panel() {
    let mut b = known(Theme::colored());
    b.ch('2');
    let s = screen(&b.app, 80, 24);
    has(&s, "2 Batch");
    has(&s, &format!("Plan     {PLAN}"));
    has(&s, &format!("Profile  {PROFILE}"));
    has(&s, "Batch ID B1");
    has(&s, "Cards    20");
    has(&s, "State    running  batch B1");
    has(&s, "Folder   logs/B1");
    has(&s, "3/20  15%");
    has(&s, "done 3  pass 1  fail 1  aborted 1");
    has(&s, "300 cards/h   ETA 3:24   elapsed 0:36");
    has(&s, "s start");
    // A finished batch: summary path, new batch ID for the next one.
    b.send(Msg::Ended(Ok(BatchEnd {
        dir: "logs/B1".into(),
        cards: 20,
        certified_now: 20,
        pass: 18,
        fail: 1,
        aborted: 1,
        stopped: false,
    })));
    let s = screen(&b.app, 80, 24);
    has(&s, "● finished");
    has(&s, "Summary  logs/B1/summary.csv");
    lacks(&s, "Batch ID B1 ");
}

#[test]
fn trace_panel_rows_filters_and_follow() {
    let mut b = known(Theme::colored());
    b.ch('3');
    let s = screen(&b.app, 80, 24);
    has(&s, "3 Trace · follow · 5 exchanges, 100 kept");
    let wv = line_with(&s, "WRITE VALUE");
    assert!(wv.contains("✗"), "failed case marked: {wv:?}");
    assert!(wv.contains("D1") && wv.contains("000 S2") && wv.contains("9000") && wv.contains("850.0µs"), "{wv:?}");
    let err = line_with(&s, "6A80");
    assert!(err.contains("incorrect"), "SW meaning: {err:?}");
    assert!(!err.contains("✗"), "an expected error SW is not a failure: {err:?}");
    has(&s, "D2.peer");
    // Filters: SW class, failures, head, card; F clears.
    for _ in 0..4 {
        b.ch('W');
    }
    let s = screen(&b.app, 80, 24);
    has(&s, "sw=checking-error (1 shown)");
    has(&s, "6A80");
    lacks(&s, "SELECT");
    b.ch('F');
    b.ch('e');
    let s = screen(&b.app, 80, 24);
    has(&s, "failures (2 shown)");
    b.ch('F');
    b.ch('H');
    b.ch('H');
    let s = screen(&b.app, 80, 24);
    has(&s, "head=D2 (1 shown)");
    b.ch('H');
    let s = screen(&b.app, 80, 24);
    has(&s, "head=D2.peer (1 shown)");
    b.ch('H');
    lacks(&screen(&b.app, 80, 24), "head=");
    b.ch('F');
    // The card filter takes the selected row's card; moving up leaves follow mode.
    b.ch('k');
    let s = screen(&b.app, 80, 24);
    has(&s, "paused ·");
    b.ch('C');
    let s = screen(&b.app, 80, 24);
    has(&s, &format!("card={} (2 shown)", card_id(2)));
    b.ch('F');
    b.ch('G');
    has(&screen(&b.app, 80, 24), "· follow ·");
    // Wide: times and full card IDs.
    let s = screen(&b.app, 152, 30);
    has(&s, "12:00:05.000");
    has(&s, &card_id(4));
    let s = screen(&b.app, 100, 30);
    assert!(line_with(&s, "WRITE VALUE").contains("00000001"), "last 8 digits of the card at 100 columns");
}

#[test]
fn trace_detail_shows_full_hex_and_decoded_fields() {
    let mut b = known(Theme::colored());
    b.ch('3');
    b.ch('g');
    b.ch('j');
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 24);
    has(&s, "Exchange  #7  head D1  card CB00B00000000001");
    has(&s, "Case      PURSE-CTR-01  (case failed)");
    has(&s, "Seed step 000 S2");
    has(&s, "Command   WRITE VALUE");
    has(&s, "CLA 80  INS D0  P1 00  P2 00  Lc 8  Le 4");
    has(&s, "0000  80 D0 00 00 08 00 00 00 64 6A 1D 74 40 04");
    has(&s, "Resp hex  4 bytes + SW");
    has(&s, "0000  00 00 03 E8");
    has(&s, "SW        9000  normal processing (normal)");
    has(&s, "Duration  850.0µs");
    // j moves to the next exchange in the detail view; Esc goes back to the list.
    b.ch('j');
    has(&screen(&b.app, 80, 24), "0000  80 D0 00 00 01 00");
    b.key(KeyCode::Esc);
    has(&screen(&b.app, 80, 24), "Meaning");
}

#[test]
fn results_panel_and_card_detail() {
    let mut b = known(Theme::colored());
    b.ch('4');
    let s = screen(&b.app, 80, 24);
    has(&s, "4 Results · 3 cards · pass 1 fail 1 aborted 1");
    let r1 = line_with(&s, &card_id(1));
    assert!(r1.contains("D1") && r1.contains("fail") && r1.contains("PURSE-CTR-01"), "{r1:?}");
    assert!(line_with(&s, &card_id(2)).contains("pass"));
    assert!(line_with(&s, &card_id(3)).contains("aborted"));
    // Enter opens the first card: cases with expected vs actual, and the trace's path.
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 24);
    has(&s, "CB00B00000000001 (#1) on D1  fail");
    has(&s, "Trace    logs/B1/cards/00001-CB00B00000000001/trace.csv");
    has(&s, "Failing  PURSE-CTR-01");
    has(&s, "✗ PURSE-CTR-01 failed");
    has(&s, "expected after.counter == before.counter - 1");
    has(&s, "actual   after.counter=1000, before.counter=1000");
    has(&s, "✓ XFER-UPD-01 passed");
    // t asks for the card's trace CSV.
    let fx = b.ch('t');
    assert_eq!(fx, vec![Effect::LoadTrace { index: 1, path: "logs/B1/cards/00001-CB00B00000000001/trace.csv".into() }]);
    let rows = match exchange("D1", &card_id(1), "PURSE-CTR-01", "000 S2", &WRITE_VALUE, &[1, 2], 0x9000, 9) {
        Event::Exchange(x) => vec![*x],
        _ => unreachable!(),
    };
    b.send(Msg::CardTrace { index: 1, result: Ok(rows) });
    let s = screen(&b.app, 80, 24);
    has(&s, "card CB00B00000000001 · 1 exchanges");
    assert!(line_with(&s, "WRITE VALUE").contains("✗"));
    b.key(KeyCode::Enter);
    has(&screen(&b.app, 80, 24), "0000  80 D0 00 00 08");
    b.key(KeyCode::Esc);
    b.key(KeyCode::Esc);
    b.key(KeyCode::Esc);
    has(&screen(&b.app, 80, 24), "Failing tests / reason");
    // The aborted card shows its reason.
    b.ch('G');
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 24);
    has(&s, "Aborted  PURSE-CTR-01: head D3: card removed");
    has(&s, "message  head D3: card removed");
}

#[test]
fn timing_panel() {
    let mut b = known(Theme::colored());
    b.ch('5');
    let s = screen(&b.app, 80, 24);
    has(&s, "5 Timing · 4 head/command pairs");
    for h in ["p50", "p95", "p99", "recent", "histogram"] {
        has(&s, h);
    }
    let d1 = line_with(&s, "WRITE VALUE");
    assert!(d1.contains("D1") && d1.contains("850.0µs"), "{d1:?}");
    let sel = line_with(&s, "SELECT");
    assert!(sel.contains(" 2 "), "two SELECTs on D1: {sel:?}");
    has(&s, "p50 3.0µs  p95 6.0µs  p99 6.0µs");
}

#[test]
fn events_panel() {
    let mut b = known(Theme::colored());
    b.ch('6');
    let s = screen(&b.app, 80, 24);
    has(&s, "6 Events");
    has(&s, "1 errors · follow");
    has(&s, "batch B1 started: 20 cards on D1, D2, D3");
    has(&s, "card CB00B00000000001 #1 in D1");
    has(&s, "card CB00B00000000001 #1 out of D1: fail (PURSE-CTR-01)");
    has(&s, "error  head D3 (card CB00B00000000003): card removed");
    has(&s, "12:00:12 remove");
    lacks(&s, "card removed)");
    // A selected event is shown whole under the list.
    b.ch('k');
    let s = screen(&b.app, 80, 24);
    has(&s, "card removed)");
    has(&s, "2026-06-01 12:00:36.000 remove");
    lacks(&s, "· follow");
    b.ch('G');
    has(&screen(&b.app, 80, 24), "· follow");
}

#[test]
fn help_lists_every_key() {
    let mut b = known(Theme::colored());
    b.ch('?');
    assert_eq!(b.app.modal, Modal::Help { scroll: 0 });
    let s = screen(&b.app, 80, 24);
    has(&s, "Keys · j/k scroll");
    has(&s, "show / hide this help");
    // Tall enough for all of it: every binding's text is there.
    let s = screen(&b.app, 100, 70);
    for bind in cardbench::tui::keymap::BINDINGS {
        has(&s, bind.help);
        has(&s, &cardbench::tui::keymap::keys_label(bind));
    }
    // Scrolling at 80×24 reaches the end.
    for _ in 0..60 {
        b.ch('j');
    }
    has(&screen(&b.app, 80, 24), "keep running");
    b.key(KeyCode::Esc);
    assert_eq!(b.app.modal, Modal::None);
}

#[test]
fn dashboard_on_a_large_terminal_shows_every_panel() {
    let b = known(Theme::colored());
    let s = screen(&b.app, 160, 48);
    // Four heads, two lines each.
    has(&s, "virtual:REF");
    for t in ["1 Heads", "2 Batch", "3 Trace", "4 Results", "5 Timing", "6 Events"] {
        has(&s, &format!("┌ {t}"));
    }
    has(&s, "WRITE VALUE");
    has(&s, "300 cards/h");
    // More heads than fit two lines each: one line per head, step and fault at its end.
    let mut b = b;
    for i in 0..8 {
        b.app.heads.push(head(&format!("X{i}"), "spare", None));
    }
    let s = screen(&b.app, 160, 48);
    lacks(&s, "virtual:REF");
    assert!(line_with(&s, " D3 ").contains("fault: PURSE-CTR-01: head D3: card removed"), "{s}");
    assert!(line_with(&s, " D1 ").contains("step S1001"), "{s}");
}

#[test]
fn resize_and_tiny_terminal() {
    let b = known(Theme::colored());
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| ui::draw(&b.app, f)).unwrap();
    t.backend_mut().resize(160, 48);
    t.draw(|f| ui::draw(&b.app, f)).unwrap();
    has(&text(t.backend().buffer()), "┌ 6 Events");
    t.backend_mut().resize(30, 8);
    t.draw(|f| ui::draw(&b.app, f)).unwrap();
    has(&text(t.backend().buffer()), "terminal too small");
}

fn colored_cells(buf: &Buffer) -> usize {
    buf.content()
        .iter()
        .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset || c.underline_color != Color::Reset)
        .count()
}

#[test]
fn no_color_means_no_colour_in_any_cell() {
    let mut b = known(Theme::plain());
    let mut seen = 0;
    let mut check = |b: &Bench, what: &str| {
        for (w, h) in [(80, 24), (160, 48)] {
            let buf = draw(&b.app, w, h);
            assert_eq!(colored_cells(&buf), 0, "{what} at {w}×{h} has coloured cells:\n{}", text(&buf));
            seen += 1;
        }
    };
    for k in ['1', '2', '3', '4', '5', '6'] {
        b.ch(k);
        check(&b, &format!("panel {k}"));
    }
    b.ch('3');
    b.key(KeyCode::Enter);
    check(&b, "trace detail");
    b.ch('4');
    b.key(KeyCode::Enter);
    check(&b, "card detail");
    b.ch('?');
    check(&b, "help");
    b.key(KeyCode::Esc);
    b.ch('q');
    check(&b, "quit confirmation");
    assert!(seen >= 20);
    // The same screens in colour do use colours, and NO_COLOR in the environment turns
    // them off.
    let c = known(Theme::colored());
    assert!(colored_cells(&draw(&c.app, 80, 24)) > 0);
    std::env::set_var("NO_COLOR", "1");
    assert_eq!(Theme::from_env(), Theme::plain());
    std::env::set_var("NO_COLOR", "");
    assert_eq!(Theme::from_env(), Theme::colored());
    std::env::remove_var("NO_COLOR");
}

#[test]
fn quit_asks_while_a_batch_runs_and_stop_is_clean() {
    let mut b = known(Theme::colored());
    b.ch('q');
    assert_eq!(b.app.modal, Modal::ConfirmQuit);
    let s = screen(&b.app, 80, 24);
    has(&s, "Quit?");
    has(&s, "Batch B1 is running.");
    b.ch('n');
    assert_eq!(b.app.modal, Modal::None);
    assert!(!b.app.quit);
    // Pause and resume set the engine's flags.
    b.ch('p');
    assert_eq!(b.app.batch.phase, Phase::Paused);
    assert!(b.control.paused.load(Ordering::Relaxed));
    has(&screen(&b.app, 80, 24), "● paused");
    b.ch('p');
    assert!(!b.control.paused.load(Ordering::Relaxed));
    // q, y: stop flag set, the UI waits for the batch to finish its in-flight cards.
    b.ch('q');
    b.ch('y');
    assert!(b.control.stop.load(Ordering::Relaxed));
    assert_eq!(b.app.batch.phase, Phase::Stopping);
    assert!(!b.app.quit, "waits for the batch");
    has(&screen(&b.app, 80, 24), "● stopping");
    b.batch(BatchEvent::Finished { stopped: true });
    assert!(!b.app.quit, "waits for the reports");
    b.send(Msg::Ended(Ok(BatchEnd {
        dir: "logs/B1".into(),
        cards: 4,
        certified_now: 4,
        pass: 1,
        fail: 1,
        aborted: 1,
        stopped: true,
    })));
    assert_eq!(b.app.batch.phase, Phase::Stopped);
    assert!(b.app.quit);
}

#[test]
fn quit_without_a_batch_is_immediate_and_pickers_choose() {
    let mut b = Bench { app: App::new(config(Theme::colored()), t0()), t0: t0(), at: 0.0, control: Default::default() };
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 80, 24);
    has(&s, "┌ Plan");
    has(&s, "test-plans/other.toml");
    b.ch('j');
    b.key(KeyCode::Enter);
    assert_eq!(b.app.form.plan_path(), Some(std::path::Path::new("test-plans/other.toml")));
    b.ch('q');
    assert!(b.app.quit);
}

#[test]
fn trace_window_is_bounded() {
    let mut b = known(Theme::colored());
    let c = card_id(9);
    for i in 0..300u64 {
        b.run("D2", &c, exchange("D2", &c, "LOOP", "S1", &SELECT, &[], 0x9000, i));
    }
    assert_eq!(b.app.trace.len(), 100);
    b.ch('3');
    has(&screen(&b.app, 80, 24), "305 exchanges, 100 kept");
    // Timing keeps its own bounded window and counts everything.
    let (_, _, s) = b.app.timing.rows().into_iter().find(|(h, c, _)| *h == "D2" && *c == "SELECT").unwrap();
    assert_eq!(s.count, 300);
}

#[test]
fn a_batch_that_cannot_start_says_why() {
    let mut b = Bench { app: App::new(config(Theme::colored()), t0()), t0: t0(), at: 0.0, control: Default::default() };
    b.ch('s');
    b.send(Msg::Ended(Err("profiles/lab.toml:1:1: profile has no [batch] section".into())));
    let s = screen(&b.app, 80, 24);
    has(&s, "● failed");
    has(&s, "profile has no [batch] section");
    b.ch('6');
    has(&screen(&b.app, 80, 24), "error");
}

#[test]
fn an_in_doubt_exchange_shows_no_status_word_and_its_error() {
    let mut b = known(Theme::colored());
    let c = card_id(9);
    let mut e = exchange("D1", &c, "PURSE-CHG-01", "S2", &WRITE_VALUE, &[], 0, 21);
    if let Event::Exchange(x) = &mut e {
        x.kind = cardbench::event::RowKind::InDoubt;
        x.error = "card is mute (no answer)".into();
    }
    b.run("D1", &c, e);
    b.ch('3');
    let s = screen(&b.app, 120, 30);
    let row = line_with(&s, "in doubt");
    assert!(row.contains("WRITE VALUE") && row.contains("----") && row.contains("card is mute"), "{row:?}");
    lacks(&s, "0000  unknown");
    b.ch('G');
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 120, 30);
    has(&s, "SW        none  in doubt: card is mute (no answer)");
}
