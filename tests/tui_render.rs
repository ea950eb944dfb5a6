//! The TUI drawn with ratatui's TestBackend from a known state: synthetic batch events fed
//! through `App::event_at`, keys pressed, and the buffer read back as text.

use cardbench::batch::BatchEvent;
use cardbench::event::{Event, Exchange};
use cardbench::report::{CardResult, CaseResult, CaseStatus, Failure, Verdict};
use cardbench::timing::sample::Sample;
use cardbench::tui::app::{BatchEnd, HeadRow, Modal, Phase, Probe};
use cardbench::tui::theme::Theme;
use cardbench::tui::timing::TimingEnd;
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
const SPEC: &str = "test-plans/timing/hot-path.toml";

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
        traces: vec![],
        specs: vec![SPEC.into()],
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
        verifies: vec![],
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
    has(&s, &format!("Plan       {PLAN}"));
    has(&s, &format!("Profile    {PROFILE}"));
    has(&s, "Batch ID   B1");
    has(&s, "Card count 20");
    has(&s, "State      running  batch B1");
    has(&s, "Folder     logs/B1");
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
    has(&s, "Summary    logs/B1/summary.csv");
    lacks(&s, "Batch ID   B1 ");
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
    has(&s, "sw=checking-error · 1 match ·");
    has(&s, "6A80");
    lacks(&s, "SELECT");
    b.ch('F');
    b.ch('e');
    let s = screen(&b.app, 80, 24);
    has(&s, "failures · 1 match ·");
    b.ch('F');
    b.ch('H');
    b.ch('H');
    let s = screen(&b.app, 80, 24);
    has(&s, "head=D2 · 1 match ·");
    b.ch('H');
    let s = screen(&b.app, 80, 24);
    has(&s, "head=D2.peer · 1 match ·");
    b.ch('H');
    lacks(&screen(&b.app, 80, 24), "head=");
    b.ch('F');
    // The card filter takes the selected row's card; moving up leaves follow mode.
    b.ch('k');
    let s = screen(&b.app, 80, 24);
    has(&s, "view frozen ·");
    b.ch('k');
    b.ch('C');
    let s = screen(&b.app, 80, 24);
    // The card's own rows and its peer's rows.
    has(&s, &format!("card={} · 2 matches", card_id(2)));
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
    has(&s, "Case      PURSE-CTR-01  (case failed on this exchange)");
    has(&s, "Seed step 000 S2");
    has(&s, "Command   WRITE VALUE");
    has(&s, "CLA 80  INS D0  P1 00  P2 00  Lc 08  Le 04");
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
    // First every DUT head pooled per command (the peer card's `D2.peer` left out).
    let s = screen(&b.app, 80, 24);
    has(&s, "5 Timing · 2 commands over every DUT head");
    let sel = line_with(&s, "SELECT");
    assert!(sel.contains(" 2 ") && sel.contains("3.0µs") && sel.contains("6.0µs"), "{sel:?}");
    lacks(&s, "D2.peer");
    // a: per head and command.
    b.ch('a');
    let s = screen(&b.app, 120, 24);
    has(&s, "5 Timing · 4 head/command pairs");
    for h in ["min", "p50", "p95", "p99", "max", "mean", "recent", "histogram"] {
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
    let s = screen(&b.app, 100, 80);
    for bind in cardbench::tui::keymap::BINDINGS {
        has(&s, bind.help);
        has(&s, &cardbench::tui::keymap::keys_label(bind));
    }
    // Scrolling at 80×24 reaches the end.
    for _ in 0..60 {
        b.ch('j');
    }
    has(&screen(&b.app, 80, 24), "keep it going");
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
    for k in ['1', '2', '3', '4', '5', '6', '7'] {
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

// ---- Replay panel: trace files, a live replay, two traces side by side ----

use cardbench::event::RowKind;
use cardbench::tui::replay::{ReplayEnd, ReplayRequest, Slot};
use ratatui::style::Modifier;

const GET_RESPONSE: [u8; 5] = [0x00, 0xC0, 0x00, 0x00, 0x08];
const CARD: &str = "CB00B00000000001";

/// A row of a trace file.
#[allow(clippy::too_many_arguments)]
fn row(
    kind: RowKind,
    case: &str,
    step: &str,
    command: &[u8],
    response: &[u8],
    sw: u16,
    us: u64,
    note: &str,
) -> Exchange {
    let Event::Exchange(mut x) = exchange("D1", CARD, case, step, command, response, sw, us) else { unreachable!() };
    x.kind = kind;
    x.note = note.into();
    if !case.is_empty() {
        x.step = "#1 apdu".into();
        x.repeat = 1;
    }
    if kind == RowKind::PowerOn {
        x.atr = vec![0x3B, 0x89, 0x00, 0x43];
    }
    if kind == RowKind::Step {
        x.step = "#1 apdu".into();
        x.repeat = 1;
    }
    if kind == RowKind::InDoubt {
        x.error = "card is mute (no answer)".into();
    }
    *x
}

/// The captured session: power, a plan step, a SELECT, a WRITE VALUE answered through GET
/// RESPONSE, a command left in doubt, power off.
fn captured() -> Vec<Exchange> {
    vec![
        row(RowKind::PowerOn, "", "", &[], &[], 0, 0, ""),
        row(RowKind::Step, "PURSE-CTR-01", "", &[], &[], 0, 0, "apdu=00A4040007A0000007770001 head=D1"),
        row(RowKind::Command, "PURSE-CTR-01", "select", &SELECT, &[], 0x9000, 3, ""),
        row(RowKind::Command, "PURSE-CTR-01", "000 S2", &WRITE_VALUE, &[], 0x6108, 850, ""),
        row(
            RowKind::GetResponse,
            "PURSE-CTR-01",
            "000 S2",
            &GET_RESPONSE,
            &[0, 0, 3, 0xE8, 0x11, 0x22, 0x33, 0x44],
            0x9000,
            40,
            "",
        ),
        row(RowKind::InDoubt, "PURSE-CHG-01", "S2", &WRITE_VALUE, &[], 0, 21, ""),
        row(RowKind::PowerOff, "", "", &[], &[], 0, 0, ""),
    ]
}

fn write_trace(path: &std::path::Path, rows: &[Exchange]) {
    let mut t = cardbench::trace::TraceCsv::create(path, "R1", "mini").unwrap();
    for r in rows {
        t.write(r).unwrap();
    }
    t.flush().unwrap();
}

impl Bench {
    /// Carry out what the loop would for the Replay panel's effects (reading files).
    fn perform(&mut self, fx: Vec<Effect>) {
        for e in fx {
            if let Effect::OpenTrace { slot, path } = e {
                let result = cardbench::tui::replay::load(&path);
                self.send(Msg::TraceFile { slot, path, result });
            }
        }
    }

    fn open_trace(&mut self, key: char, list: Vec<PathBuf>, down: usize) -> Vec<Effect> {
        assert_eq!(self.ch(key), vec![Effect::ListTraces]);
        self.send(Msg::TraceList(list));
        for _ in 0..down {
            self.ch('j');
        }
        let fx = self.key(KeyCode::Enter);
        self.perform(fx.clone());
        fx
    }

    /// What the replayer sends for the rows at `lines` of the trace (`expected`) replayed
    /// as `actual`: the exchange, then the check (`replay::compare`, as the replayer runs it).
    fn replayed(&mut self, lines: &[u64], expected: &Exchange, actual: Exchange) {
        let c = cardbench::replay::compare::compare(expected, &actual);
        let diff = if c.is_match() {
            String::new()
        } else {
            let with_sw = |x: &Exchange| [&x.response[..], &x.sw.to_be_bytes()].concat();
            cardbench::replay::compare::hexdiff(&with_sw(expected), &with_sw(&actual), &expected.mask)
        };
        let (matched, detail) = (c.is_match(), if c.is_match() { String::new() } else { c.describe() });
        self.send(Msg::Replay(Event::Exchange(Box::new(actual))));
        self.send(Msg::Replay(Event::ReplayChecked { lines: lines.to_vec(), matched, detail, diff }));
    }
}

/// The UI with the profile's heads looked at and no batch: what a replay needs.
fn idle_lab(theme: Theme) -> Bench {
    let mut b = Bench { app: App::new(config(theme), t0()), t0: t0(), at: 0.0, control: Default::default() };
    b.send(Msg::Probed {
        profile: PROFILE.into(),
        result: Ok(Probe {
            heads: vec![head("D1", "dut", Some(CARD)), head("REF", "peer", Some("CB00000000000E01"))],
            count: Some(100),
            not_batch: None,
        }),
    });
    b
}

/// A replay of `captured()` from `a` on D1 whose fourth row diverged in one byte.
fn replay_with_divergence(theme: Theme, a: &std::path::Path) -> (Bench, Arc<std::sync::atomic::AtomicBool>) {
    let rows = captured();
    write_trace(a, &rows);
    let mut b = idle_lab(theme);
    b.ch('7');
    b.open_trace('o', vec![a.to_path_buf()], 0);
    // The SELECT row chosen: its head and card are the stream replayed.
    b.ch('g');
    b.ch('j');
    b.ch('r');
    let s = screen(&b.app, 100, 30);
    has(&s, "Replay trace head D1 card CB00B00000000001 on");
    has(&s, "REF");
    let fx = b.key(KeyCode::Enter);
    let req = ReplayRequest {
        trace: a.to_path_buf(),
        profile: PROFILE.into(),
        trace_head: "D1".into(),
        head: "D1".into(),
        card: Some(CARD.into()),
        keep_going: false,
    };
    assert_eq!(fx, vec![Effect::Replay(req)]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    b.send(Msg::ReplayLaunched { stop: stop.clone() });
    // Rows 1-3 replay the same (row 1 on file line 2); the WRITE VALUE with its GET RESPONSE
    // (rows 4-5, one unit) gets an answer whose fourth byte differs.
    for (i, x) in rows.iter().take(3).enumerate() {
        b.replayed(&[i as u64 + 2], x, x.clone());
    }
    let s = screen(&b.app, 120, 30);
    has(&s, "● replay running");
    has(&s, "3/7 rows checked");
    assert!(line_with(&s, "SELECT").contains('✓'), "{s}");
    let mut folded = rows[3].clone();
    folded.response = rows[4].response.clone();
    folded.sw = rows[4].sw;
    let mut actual = folded.clone();
    actual.response[3] = 0xE9;
    b.replayed(&[5, 6], &folded, actual);
    (b, stop)
}

/// Text of the cells of line `y` that carry `m`.
fn with_modifier(buf: &Buffer, y: u16, m: Modifier) -> String {
    (0..buf.area.width).map(|x| &buf[(x, y)]).filter(|c| c.modifier.contains(m)).map(|c| c.symbol()).collect()
}

fn line_index(screen: &str, what: &str) -> u16 {
    screen.lines().position(|l| l.contains(what)).unwrap_or_else(|| panic!("no line with {what:?}:\n{screen}")) as u16
}

#[test]
fn replay_panel_opens_a_trace_file_and_shows_every_kind_of_row() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.csv");
    write_trace(&a, &captured());
    let mut b = known(Theme::colored());
    b.ch('7');
    assert_eq!(b.app.panel, Panel::Replay);
    has(&screen(&b.app, 80, 24), "No trace open: o opens a trace file");
    // The picker lists what the loop found; Enter opens the file.
    assert_eq!(b.ch('o'), vec![Effect::ListTraces]);
    b.send(Msg::TraceList(vec![a.clone()]));
    let s = screen(&b.app, 80, 24);
    has(&s, "Open trace");
    has(&s, "a.csv");
    let fx = b.key(KeyCode::Enter);
    assert_eq!(fx, vec![Effect::OpenTrace { slot: Slot::Main, path: a.clone() }]);
    b.perform(fx);
    let s = screen(&b.app, 120, 30);
    let wide_screen = screen(&b.app, 160, 30);
    has(&s, "7 Replay · ");
    has(&s, "7 rows");
    assert!(line_with(&s, "power-on").contains(" D1 ") && line_with(&s, "power-on").contains("ATR 3B890043"), "{s}");
    let step = line_with(&wide_screen, "│  2      step");
    assert!(step.contains("#1 apdu") && step.contains("apdu=00A4040007A0000007770001 head=D1"), "{step}");
    let sel = line_with(&s, "SELECT");
    assert!(sel.contains("PURSE-CTR-01") && sel.contains("select") && sel.contains("9000"), "{sel}");
    let gr = line_with(&s, "get-response");
    assert!(gr.contains("GET RESPONSE") && gr.contains("9000") && gr.contains("40 µs") || gr.contains("40"), "{gr}");
    let wide = screen(&b.app, 170, 30);
    let doubt = line_with(&wide, "in-doubt");
    assert!(doubt.contains("----") && doubt.contains("in doubt: card is mute (no answer)"), "{doubt}");
    has(&s, "power-off");
    // Rows 1-6 numbered, the card's ID shown at this width.
    has(&s, CARD);
    // 80×24 still shows the rows (the card column goes).
    let s = screen(&b.app, 80, 24);
    has(&s, "WRITE VALUE");
    has(&s, "in-doubt");
    // Enter opens a row whole.
    b.ch('g');
    b.ch('j');
    b.ch('j');
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 100, 40);
    has(&s, "00 A4 04 00 07 A0");
    has(&s, "Step      #1 apdu  repeat 1");
    has(&s, "Kind      command");
    b.key(KeyCode::Esc);
    assert!(!b.app.replay.detail);
}

#[test]
fn a_typed_path_opens_and_a_bad_file_says_which_line() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.csv");
    let mut text = String::new();
    write_trace(&bad, &captured());
    text.push_str(&std::fs::read_to_string(&bad).unwrap());
    std::fs::write(&bad, text.replacen(",9000,", ",90ZZ,", 1)).unwrap();
    let mut b = known(Theme::colored());
    b.ch('7');
    b.ch('o');
    b.send(Msg::TraceList(vec![]));
    has(&screen(&b.app, 80, 24), "no trace CSV under logs/ or traces/");
    b.ch('/');
    b.ctrl('u');
    b.typed(&bad.display().to_string());
    has(&screen(&b.app, 80, 24), "bad.csv▏");
    let fx = b.key(KeyCode::Enter);
    assert_eq!(fx, vec![Effect::OpenTrace { slot: Slot::Main, path: bad.clone() }]);
    b.perform(fx);
    assert!(b.app.replay.file.is_none());
    b.ch('6');
    let s = screen(&b.app, 120, 30);
    let l = line_with(&s, "cannot open the trace");
    assert!(l.contains("bad.csv:4:"), "file and line named: {l}");
}

#[test]
fn a_live_replay_marks_each_row_and_highlights_the_first_divergence() {
    let d = tempfile::tempdir().unwrap();
    let (mut b, stop) = replay_with_divergence(Theme::colored(), &d.path().join("a.csv"));
    // The view jumps to the first divergence: the row marked, the hex diff under the rows.
    assert_eq!(b.app.replay.sel, 3);
    let buf = draw(&b.app, 120, 30);
    let s = text(&buf);
    has(&s, "1 diverged");
    has(&s, "first at row 4");
    // The command and its GET RESPONSE were one unit: both rows are marked.
    assert!(line_with(&s, "│✗ 4").contains("WRITE VALUE"), "{s}");
    assert!(line_with(&s, "│✗ 5").contains("GET RESPONSE"), "{s}");
    assert!(line_with(&s, "│✓ 3").contains("SELECT"), "{s}");
    has(&s, "first divergence: row 4 (line 5) WRITE VALUE: response bytes 3 differ");
    let y = line_index(&s, "0000 expected");
    assert_eq!(with_modifier(&buf, y, Modifier::REVERSED), "E8", "only the differing byte stands out");
    let y = line_index(&s, "0000 actual");
    assert_eq!(with_modifier(&buf, y, Modifier::REVERSED), "E9");
    // Expected and actual stay in columns: the differing byte at the same place on both.
    let (e, a) = (line_with(&s, "0000 expected"), line_with(&s, "0000 actual"));
    assert_eq!(e.find("E8"), a.find("E9"), "{e}\n{a}");
    assert_eq!(e.find("90"), a.find("90"), "{e}\n{a}");
    // The first divergence is bold and underlined, not only coloured.
    let y = line_index(&s, "│✗ 4");
    assert!(buf[(10, y)].modifier.contains(Modifier::BOLD | Modifier::UNDERLINED), "{s}");
    // Enter: the row in full, expected against actual.
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 100, 30);
    has(&s, "row 4 diverged (trace line 5, 6): response bytes 3 differ");
    has(&s, "Cmd hex");
    b.key(KeyCode::Esc);
    // x stops the replay (not the batch), the end is reported.
    b.ch('x');
    assert!(stop.load(Ordering::Relaxed));
    b.send(Msg::ReplayEnded(Ok(ReplayEnd { checked: 4, diverged: 1, stopped: true })));
    let s = screen(&b.app, 120, 30);
    has(&s, "● replay stopped");
    // n / N move between divergences.
    b.ch('g');
    b.ch('n');
    assert_eq!(b.app.replay.sel, 3);
    b.ch('6');
    has(&screen(&b.app, 120, 30), "first divergence at row 4 (line 5)");
}

#[test]
fn a_replay_that_cannot_start_says_why() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.csv");
    write_trace(&a, &captured());
    // Not while a batch runs on the profile's heads.
    let mut b = known(Theme::colored());
    b.ch('7');
    b.open_trace('o', vec![a.clone()], 0);
    b.ch('r');
    assert_eq!(b.app.modal, Modal::None);
    assert!(b.app.replay.live.is_none());
    b.ch('6');
    has(&screen(&b.app, 120, 30), "a batch is running on the profile's heads");
    let mut b = idle_lab(Theme::colored());
    b.ch('7');
    b.open_trace('o', vec![a], 0);
    // R: the same, going on after divergences.
    b.ch('R');
    has(&screen(&b.app, 100, 30), "Replay (keep going) trace head D1 card CB00B00000000001 on");
    let fx = b.key(KeyCode::Enter);
    assert!(matches!(&fx[..], [Effect::Replay(r)] if r.keep_going), "{fx:?}");
    b.send(Msg::ReplayEnded(Err("profile: head REF: no card".into())));
    let s = screen(&b.app, 120, 30);
    has(&s, "● replay failed");
    has(&s, "head REF: no card");
}

#[test]
fn two_traces_side_by_side_mark_the_rows_that_differ() {
    let d = tempfile::tempdir().unwrap();
    let (a, c) = (d.path().join("a.csv"), d.path().join("b.csv"));
    let rows = captured();
    write_trace(&a, &rows);
    // B: the SELECT answered 6A82, the GET RESPONSE missing, one more row at the end.
    let mut other = rows.clone();
    other[2].sw = 0x6A82;
    other.remove(4);
    other.push(row(RowKind::Command, "PURSE-END", "S9", &SELECT, &[], 0x9000, 3, ""));
    write_trace(&c, &other);
    let mut b = known(Theme::colored());
    b.ch('7');
    b.open_trace('o', vec![a.clone(), c.clone()], 0);
    let fx = b.open_trace('d', vec![a.clone(), c.clone()], 1);
    assert_eq!(fx, vec![Effect::OpenTrace { slot: Slot::Other, path: c.clone() }]);
    let buf = draw(&b.app, 120, 30);
    let s = text(&buf);
    has(&s, "side by side · 8 rows aligned, 3 differ");
    has(&s, "only in A 1, only in B 1");
    // Aligned: the SELECT rows face each other, marked, with both SWs.
    let sel = line_with(&s, "SELECT");
    assert!(sel.starts_with("│≠") && sel.contains("9000") && sel.contains("6A82"), "{sel}");
    assert!(line_with(&s, "get-response").starts_with("│<"), "{s}");
    assert!(line_with(&s, "PURSE-END").starts_with("│>"), "{s}");
    // Rows that agree are not marked.
    assert!(line_with(&s, "power-on").starts_with("│ "), "{s}");
    // Down to the SELECT pair: what differs is said under the rows.
    b.ch('g');
    b.ch('n');
    assert_eq!(b.app.replay.pair_sel, 2);
    let buf = draw(&b.app, 120, 30);
    let s = text(&buf);
    has(&s, "≠ SW 9000 expected, 6A82 received");
    assert_eq!(with_modifier(&buf, line_index(&s, "0000 expected"), Modifier::REVERSED), "9000");
    assert_eq!(with_modifier(&buf, line_index(&s, "0000 actual"), Modifier::REVERSED), "6A82");
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 120, 30);
    has(&s, "A  cmd SELECT");
    has(&s, "B  cmd SELECT");
    b.key(KeyCode::Esc);
    // v: back to the first trace alone.
    b.ch('v');
    assert!(!b.app.replay.side_by_side);
    has(&screen(&b.app, 120, 30), "7 rows");
}

#[test]
fn a_divergence_stands_out_without_colours() {
    let d = tempfile::tempdir().unwrap();
    let (mut b, _) = replay_with_divergence(Theme::plain(), &d.path().join("a.csv"));
    let buf = draw(&b.app, 120, 30);
    assert_eq!(colored_cells(&buf), 0, "{}", text(&buf));
    let s = text(&buf);
    assert_eq!(with_modifier(&buf, line_index(&s, "0000 expected"), Modifier::REVERSED), "E8");
    assert!(line_with(&s, "get-response").contains('✗'));
    // A batch cannot start on the heads a replay uses.
    b.ch('s');
    assert_eq!(b.app.batch.phase, Phase::Idle);
    b.ch('6');
    has(&screen(&b.app, 120, 30), "a replay is running on the profile's heads");
    for k in ['7', 'd'] {
        b.ch(k);
    }
    b.send(Msg::TraceList(vec![d.path().join("a.csv")]));
    b.key(KeyCode::Enter);
    let fx = vec![Effect::OpenTrace { slot: Slot::Other, path: d.path().join("a.csv") }];
    b.perform(fx);
    for (w, h) in [(80, 24), (120, 30)] {
        assert_eq!(colored_cells(&draw(&b.app, w, h)), 0);
    }
}

// ---- Timing panel: a spec run live, and two timing results compared ----------------------

fn sample(op: &str, iteration: u32, ns: u64, baseline: bool) -> Sample {
    Sample {
        op: op.into(),
        iteration,
        head: "D1".into(),
        card_id: CARD.into(),
        atr: "3B8900434152440000".into(),
        duration_ns: ns,
        baseline,
    }
}

#[test]
fn timing_spec_run_shows_live_figures_per_op_as_samples_arrive() {
    let mut b = idle_lab(Theme::colored());
    b.ch('5');
    // Today's per-command batch timing is the panel's first view.
    has(&screen(&b.app, 80, 24), "No exchange of a batch timed yet");
    // r: the spec picker, then the head picker (Space marks), Enter runs.
    b.ch('r');
    let s = screen(&b.app, 100, 30);
    has(&s, "Timing spec");
    has(&s, SPEC);
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 100, 30);
    has(&s, &format!("Time {SPEC} on"));
    has(&s, "[ ] D1");
    b.ch(' ');
    has(&screen(&b.app, 100, 30), "[x] D1");
    let fx = b.key(KeyCode::Enter);
    let req = match &fx[..] {
        [Effect::Time(r)] => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (req.spec.as_path(), req.profile.as_path()),
        (std::path::Path::new(SPEC), std::path::Path::new(PROFILE))
    );
    assert_eq!(req.heads, ["D1"]);
    assert!(req.run_id.starts_with("tui-time-hot-path-20260601T120000"), "{}", req.run_id);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    b.send(Msg::TimingLaunched { dir: "logs/run1".into(), stop: stop.clone() });
    let s = screen(&b.app, 80, 24);
    has(&s, "● timing running");
    has(&s, "No sample yet");
    // 20 iterations of SIGN PAYMENT at 40.00-40.04 ms, each with a READ RECORD baseline 1 ms
    // shorter... and one 60 ms op (an outlier), all within one recompute period.
    for i in 0..21u32 {
        let jitter = u64::from(i % 5) * 10_000;
        let op = if i == 20 { 60_000_000 } else { 40_000_000 + jitter };
        b.send(Msg::TimingSample(sample("cpay.sign_payment", i, op, false)));
        b.send(Msg::TimingSample(sample("cpay.sign_payment", i, 1_000_000 + jitter, true)));
    }
    // A second op without a baseline.
    for i in 0..5u32 {
        b.send(Msg::TimingSample(sample("purse.read", i, 500_000 + u64::from(i) * 1000, false)));
    }
    // The figures are recomputed at most every 250 ms: still those of the first sample.
    let s = screen(&b.app, 80, 24);
    let row = line_with(&s, "cpay.sign_payment");
    assert!(row.contains(" 1 ") && row.contains("40.000 ms"), "{row:?}");
    lacks(&s, "purse.read");
    // The ticker brings them up to date (a second later: well past the 250 ms, and past five
    // times what a recompute takes on a busy machine).
    b.at = 1.0;
    b.send(Msg::Tick);
    let s = screen(&b.app, 80, 24);
    let row = line_with(&s, "cpay.sign_payment");
    // n 21, median 40.020 ms (11th of 21), card time 39.000 ms, one outlier.
    for want in ["D1", " 21 ", "40.020 ms", "39.000 ms", "–", " 1"] {
        assert!(row.contains(want), "{want:?} in {row:?}");
    }
    let row = line_with(&s, "purse.read");
    assert!(row.contains(" 5 ") && row.contains("502.000 µs") && row.contains(" - "), "{row:?}");
    // The selected op's detail: CI, card time over its pairs, outliers, histogram with marks.
    has(&s, "cpay.sign_payment on D1");
    has(&s, "card median 39.000 ms  95% CI 39.000–39.000 ms  (op − baseline)");
    has(&s, "baseline median 1.020 ms · 21 pairs");
    has(&s, "0 low, 1 high");
    assert!(s.contains('┃') && s.contains('[') && s.contains("›1"), "{s}");
    // Wide: the card time's CI and a histogram per row.
    let s = screen(&b.app, 200, 30);
    has(&s, "card 95% CI");
    let row = line_with(&s, "cpay.sign_payment D1");
    assert!(row.contains("39.000–39.000 ms") && row.contains('█'), "{row:?}");
    // x stops the run (the flag the run loop looks at between iterations).
    b.ch('x');
    assert!(stop.load(Ordering::Relaxed));
    has(&screen(&b.app, 80, 24), "● timing stopping");
    b.send(Msg::TimingEnded(Ok(TimingEnd {
        dir: "logs/run1".into(),
        samples: 47,
        notes: vec!["op cpay.sign_payment on head D1: stopped by the operator after 21 of 100".into()],
        failures: vec![],
        stopped: true,
    })));
    let s = screen(&b.app, 80, 24);
    has(&s, "● timing stopped");
    has(&s, "26 op samples");
    // v: the next views (comparison, then the batch's timing again).
    b.ch('v');
    has(&screen(&b.app, 80, 24), "No comparison yet");
    b.ch('v');
    has(&screen(&b.app, 80, 24), "No exchange of a batch timed yet");
    b.ch('6');
    has(&screen(&b.app, 120, 30), "stopped by the operator after 21 of 100");
}

#[test]
fn no_timing_run_while_a_batch_runs_and_a_run_that_cannot_start_says_why() {
    let mut b = known(Theme::colored());
    b.ch('5');
    b.ch('r');
    assert_eq!(b.app.modal, Modal::None);
    b.ch('6');
    has(&screen(&b.app, 120, 30), "a batch is running on the profile's heads: time once it has ended");
    let mut b = idle_lab(Theme::colored());
    b.ch('5');
    b.ch('r');
    // A typed path.
    b.ch('/');
    b.ctrl('u');
    b.typed("my/spec.toml");
    has(&screen(&b.app, 100, 30), "my/spec.toml▏");
    b.key(KeyCode::Enter);
    // Nothing marked: the highlighted head.
    let fx = b.key(KeyCode::Enter);
    assert!(
        matches!(&fx[..], [Effect::Time(r)] if r.heads == ["D1"] && r.spec == std::path::Path::new("my/spec.toml")),
        "{fx:?}"
    );
    // And no batch while it runs.
    b.ch('s');
    assert!(!b.app.batch.phase.active());
    // q while it runs asks; y stops it and quits once it has written its files.
    b.ch('q');
    assert_eq!(b.app.modal, Modal::ConfirmQuit);
    has(&screen(&b.app, 80, 24), "A timing run is running.");
    b.ch('y');
    assert!(!b.app.quit);
    has(&screen(&b.app, 80, 24), "● timing stopping");
    b.send(Msg::TimingEnded(Err("my/spec.toml: cannot read: No such file or directory".into())));
    assert!(b.app.quit);
    let s = screen(&b.app, 100, 30);
    has(&s, "● timing failed");
    has(&s, "my/spec.toml: cannot read");
}

/// A timing result folder: `samples.csv` for op `sign` (200 iterations around `median`,
/// with baselines 1 ms shorter) and op `read` (the same in every result).
fn write_result(dir: &std::path::Path, median: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut v = Vec::new();
    for i in 0..200u32 {
        let jitter = u64::from(i * 7919 % 200) * 1000;
        v.push(sample("sign", i, median - 100_000 + jitter, false));
        v.push(sample("sign", i, 1_000_000 + jitter / 10, true));
        v.push(sample("read", i, 1_000_000 + u64::from(i * 31 % 100) * 100, false));
    }
    cardbench::timing::sample::write_csv(&dir.join("samples.csv"), &v).unwrap();
}

#[test]
fn timing_comparison_of_two_result_folders_with_a_threshold_the_user_sets() {
    let d = tempfile::tempdir().unwrap();
    let (a, bb) = (d.path().join("lot6"), d.path().join("lot7"));
    write_result(&a, 40_000_000);
    // Lot 7 signs 3% slower.
    write_result(&bb, 41_200_000);
    let mut b = idle_lab(Theme::colored());
    b.ch('5');
    let fx = b.ch('c');
    assert_eq!(fx, vec![Effect::ListTimingResults]);
    b.send(Msg::TimingResults(vec![a.clone(), bb.clone()]));
    let s = screen(&b.app, 100, 30);
    has(&s, "Compare timing result A");
    has(&s, "lot6");
    b.key(KeyCode::Enter);
    // B's picker starts on the other result.
    has(&screen(&b.app, 100, 30), "(A) with B");
    let fx = b.key(KeyCode::Enter);
    assert_eq!(fx, vec![Effect::LoadCompare { a: a.clone(), b: bb.clone() }]);
    b.send(Msg::CompareLoaded(cardbench::tui::timing::load_sides(&a, &bb)));
    let s = screen(&b.app, 100, 30);
    has(&s, "comparison · threshold ±2%");
    has(&s, "● B regressed");
    let sign = line_with(&s, "sign  ");
    // The card time (op − baseline) is compared: shift +1.200 ms, +3.x%, p < 0.001.
    for want in ["+1.200 ms", "+3.", "<0.001", "slower"] {
        assert!(sign.contains(want), "{want:?} in {sign:?}");
    }
    let read = line_with(&s, "read  ");
    assert!(read.contains("+0 ns") && read.contains("no sig. diff"), "{read:?}");
    // The selected op's two histograms on one scale.
    has(&s, "sign · card time (op − baseline) · slower");
    assert!(s.lines().filter(|l| l.contains('┃')).count() >= 2, "{s}");
    // + three times: 3.5%, the shift is real but within the threshold.
    for _ in 0..3 {
        b.ch('+');
    }
    let s = screen(&b.app, 100, 30);
    has(&s, "threshold ±3.5%");
    has(&s, "● no regression");
    assert!(line_with(&s, "sign  ").contains("within thr."), "{s}");
    has(&s, "no significant difference (shift real, but within ±3.5%)");
    // T types it: 1% makes it slower again; a bad one is refused with why.
    b.ch('T');
    b.ctrl('u');
    b.typed("1%");
    b.key(KeyCode::Enter);
    let s = screen(&b.app, 100, 30);
    has(&s, "threshold ±1%");
    assert!(line_with(&s, "sign  ").contains("slower"), "{s}");
    b.ch('T');
    b.ctrl('u');
    b.typed("..%");
    b.key(KeyCode::Enter);
    b.ch('6');
    has(&screen(&b.app, 120, 30), "--threshold '..%': a percentage such as 2%");
    // A wide screen adds the medians and the sample counts.
    b.ch('5');
    let s = screen(&b.app, 200, 30);
    let sign = line_with(&s, "sign  ");
    assert!(sign.contains("card") && sign.contains(" 200 ") && sign.contains("40.190 ms"), "{sign:?}");
}
