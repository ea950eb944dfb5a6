//! The Heads panel for the operator at real readers, drawn with ratatui's TestBackend: the
//! state of each head and its prompt (with the reader's full name), the bell, the counts per
//! head, live presence and ATR from pcscd's watch and from a PN532 poll, pcscd lost.

use cardbench::batch::operator::HeadState;
use cardbench::batch::BatchEvent;
use cardbench::event::Event;
use cardbench::report::{CardResult, Verdict};
use cardbench::tui::app::{HeadRow, Probe};
use cardbench::tui::theme::Theme;
use cardbench::tui::{ui, App, Config, Msg, Now};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Instant;

const PROFILE: &str = "profiles/real.toml";
const ATR: [u8; 12] = [0x3B, 0x89, 0x00, 0x43, 0x41, 0x52, 0x44, 0x42, 0x45, 0x4E, 0x43, 0x48];

fn app() -> App {
    let cfg = Config {
        plans: vec!["test-plans/certification.toml".into()],
        profiles: vec![PROFILE.into()],
        plan: None,
        profile: None,
        theme: Theme::plain(),
        trace_window: 100,
        traces: vec![],
        specs: vec![],
    };
    let mut app = App::new(cfg, Now::current());
    let head = |name: &str, driver: &str, reader: &str| HeadRow {
        name: name.into(),
        driver: driver.into(),
        reader: reader.into(),
        role: "dut".into(),
        ..HeadRow::default()
    };
    app.event(Msg::Probed {
        profile: PROFILE.into(),
        result: Ok(Probe {
            // The profile names E's reader by a pattern; pcscd's full name comes with the watch.
            heads: vec![head("E", "pcsc", "vpcd 4"), head("N", "pn532", "/tmp/cardbench-pn532-a")],
            count: Some(2),
            not_batch: None,
        }),
    });
    app.event(Msg::Key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::NONE)));
    app
}

fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| ui::draw(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

fn line_with<'a>(s: &'a str, what: &str) -> &'a str {
    s.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no line with {what:?}:\n{s}"))
}

fn head_event(app: &mut App, state: HeadState) {
    app.event(Msg::Batch(BatchEvent::Head {
        head: "E".into(),
        reader: "cardbench vpcd 4 00 00".into(),
        real: true,
        state,
    }));
}

#[test]
fn live_presence_and_atr_from_the_pcsc_watch_and_the_pn532_poll() {
    let mut app = app();
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains(" ?   "), "unknown before the watch says:\n{s}");
    app.event(Msg::Presence { reader: "cardbench vpcd 4 00 00".into(), present: true, atr: ATR.to_vec() });
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains(" yes "), "{s}");
    assert!(s.contains("cardbench vpcd 4 00 00 ATR 3B8900434152444245"), "full reader name and ATR:\n{s}");
    // The card goes: no stale ATR.
    app.event(Msg::Presence { reader: "cardbench vpcd 4 00 00".into(), present: false, atr: vec![] });
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains(" no "), "{s}");
    assert!(s.contains("cardbench vpcd 4 00 00 ATR —"), "{s}");
    // Another reader's events leave E alone.
    app.event(Msg::Presence { reader: "cardbench vpcd 5 00 00".into(), present: true, atr: ATR.to_vec() });
    assert!(line_with(&screen(&app), " E ").contains(" no "));

    // pcscd lost: unknown, with the hint; back: the fault goes.
    app.event(Msg::PresenceLost("PC/SC: reader service stopped; is pcscd running?".into()));
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains(" ?   "), "{s}");
    assert!(s.contains("fault: PC/SC: reader service stopped; is pcscd running?"), "{s}");
    app.event(Msg::Presence { reader: "cardbench vpcd 4 00 00".into(), present: true, atr: ATR.to_vec() });
    let s = screen(&app);
    assert!(!s.contains("fault:") && line_with(&s, " E ").contains(" yes "), "{s}");

    // PN532: polled on the ticker while nothing holds the heads.
    let later = Now { mono: Instant::now() + std::time::Duration::from_secs(2), wall: chrono::Utc::now() };
    let fx = app.event_at(Msg::Tick, later);
    assert_eq!(fx, vec![cardbench::tui::Effect::PollPn532(PROFILE.into())]);
    // One poll at a time.
    assert!(app.event_at(Msg::Tick, later).is_empty());
    app.event(Msg::Polled { profile: PROFILE.into(), result: Ok(vec![("N".into(), Ok((true, Some(ATR.to_vec()))))]) });
    let s = screen(&app);
    assert!(line_with(&s, " N ").contains(" yes "), "{s}");
    assert!(s.contains("/tmp/cardbench-pn532-a ATR 3B89"), "{s}");
}

#[test]
fn each_head_says_what_the_operator_must_do() {
    let mut app = app();
    app.bell = true;
    app.event(Msg::Presence { reader: "cardbench vpcd 4 00 00".into(), present: false, atr: vec![] });
    head_event(&mut app, HeadState::Waiting { next: Some(1) });
    let s = screen(&app);
    assert!(s.contains("▶ insert the next card in E (reader cardbench vpcd 4 00 00)"), "{s}");
    assert!(line_with(&s, " E ").contains("waiting for card"), "{s}");
    assert!(std::mem::take(&mut app.ring), "a prompt rings the bell");
    assert!(
        app.events.iter().any(|e| e.text == "E: insert the next card in E (reader cardbench vpcd 4 00 00)"),
        "the prompt is in the event log"
    );

    let card = "CB00C00000000011";
    head_event(&mut app, HeadState::Testing { index: 1, card_id: card.into() });
    app.event(Msg::Batch(BatchEvent::Run {
        head: "E".into(),
        card_id: card.into(),
        event: Event::StepStarted { head: "dut".into(), test_step: "PURSE-CTR-01".into(), engine: "case".into() },
    }));
    let s = screen(&app);
    let e = line_with(&s, " E ");
    assert!(e.contains(card) && e.contains("PURSE-CTR-01") && e.contains(" yes "), "{s}");
    assert!(!s.contains("▶"), "no prompt while testing:\n{s}");
    assert!(!app.ring);

    app.event(Msg::Batch(BatchEvent::CardDone(Box::new(CardResult {
        index: 1,
        card_id: card.into(),
        head: "E".into(),
        verdict: Verdict::Pass,
        cases: vec![],
        trace: "cards/00001/trace.csv".into(),
        started: "2026-06-01T12:00:00.000Z".into(),
        duration_ms: 300.0,
    }))));
    head_event(&mut app, HeadState::Remove { index: 1, card_id: card.into(), verdict: "pass".into() });
    let s = screen(&app);
    assert!(s.contains(&format!("▶ remove card {card} (pass) from E (reader cardbench vpcd 4 00 00)")), "{s}");
    let e = line_with(&s, " E ");
    assert!(e.contains("   1    0     0") && e.contains("remove card"), "counts per head:\n{s}");
    // A real reader's card stays present until the operator takes it out.
    assert!(e.contains(" yes "), "{s}");
    assert!(std::mem::take(&mut app.ring));

    // The worker saw the card go and waits for the next: no card, no ATR (also for heads
    // without a presence watch).
    head_event(&mut app, HeadState::Waiting { next: Some(2) });
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains(" no ") && s.contains("cardbench vpcd 4 00 00 ATR —"), "{s}");
    head_event(&mut app, HeadState::Done);
    let s = screen(&app);
    assert!(line_with(&s, " E ").contains("done") && !s.contains("▶"), "{s}");
    head_event(&mut app, HeadState::Fault("reader service stopped".into()));
    assert!(screen(&app).contains("fault: reader service stopped"));
}

/// `cardbench sim pn532` on a pseudo-terminal with `--link`, killed when dropped.
struct Sim(std::process::Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pn532_sim(link: &std::path::Path) -> Sim {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["sim", "pn532", "--profile", "profiles/pn532-sim.toml", "--card", "card-a", "--link"])
        .arg(link)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Serving once it printed its device.
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("/dev/"), "{line:?}");
    Sim(child)
}

#[test]
fn pn532_heads_are_polled_through_the_simulator_unless_a_run_holds_them() {
    use cardbench::tui::presence::{poll_pn532, HEADS};
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("pn532-a");
    let missing = dir.path().join("no-such-port");
    let profile = dir.path().join("lab.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"pn\"\n[keyset]\nseed = \"cardbench virtual lab\"\n\n\
             [[head]]\nname = \"A\"\ndriver = \"pn532\"\nrole = \"dut\"\nport = \"{}\"\n\n\
             [[head]]\nname = \"M\"\ndriver = \"pn532\"\nrole = \"dut\"\nport = \"{}\"\n",
            link.display(),
            missing.display()
        ),
    )
    .unwrap();
    let _sim = pn532_sim(&link);
    let found = poll_pn532(&profile).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let (present, atr) = found[0].1.clone().unwrap();
    assert_eq!(found[0].0, "A");
    assert!(present, "{found:?}");
    assert!(atr.is_some_and(|a| a.first() == Some(&0x3B)), "an ATR built from the ATS: {found:?}");
    let m = found[1].1.clone().unwrap_err();
    assert!(m.starts_with(&format!("head M (pn532 reader '{}'): reader gone", missing.display())), "{m}");
    assert!(m.contains("is the PN532 connected"), "{m}");
    // The port is closed after a look: the next one opens it again.
    assert!(poll_pn532(&profile).unwrap()[0].1.as_ref().is_ok_and(|(p, _)| *p));
    // While a run holds the heads, a look does nothing.
    let held = HEADS.lock().unwrap();
    assert!(poll_pn532(&profile).unwrap().is_empty());
    drop(held);
}
