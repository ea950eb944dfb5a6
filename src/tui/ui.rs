//! The screen: tab bar, batch status line, the panels (one at a time, or all of them on a
//! large terminal), key hints, and the windows over them. Reads the app, changes nothing.

use super::app::{App, Field, Modal, Panel, Phase};
use super::panels::{self, help, modal};
use super::stats::fmt_hms;
use super::timing::TimingMode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Smallest screen drawn in full.
pub const MIN: (u16, u16) = (40, 10);

/// Every panel at once from this size on; one panel at a time (Tab) below it.
pub fn is_wide(area: Rect) -> bool {
    area.width >= 150 && area.height >= 40
}

pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < MIN.0 || area.height < MIN.1 {
        let msg = format!("terminal too small: {}×{} (need {}×{})", area.width, area.height, MIN.0, MIN.1);
        f.render_widget(Paragraph::new(msg), area);
        return;
    }
    let [tabs, status, body, hints] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)])
            .areas(area);
    tab_bar(app, f, tabs);
    status_line(app, f, status);
    // The Replay panel's rows are wide: it takes the whole body on any screen.
    if is_wide(area) && app.panel != Panel::Replay {
        dashboard(app, f, body);
    } else {
        panels::render(app, app.panel, f, body, true);
    }
    hint_line(app, f, hints);
    match &app.modal {
        Modal::Help { scroll } => help::render(app, f, area, *scroll),
        Modal::ConfirmQuit => modal::confirm_quit(app, f, area),
        Modal::Picker { field, sel } => modal::picker(app, f, area, *field, *sel),
        Modal::Edit {
            field:
                field @ (Field::Trace
                | Field::OtherTrace
                | Field::TimingSpec
                | Field::CompareA
                | Field::CompareB
                | Field::Threshold
                | Field::Plan
                | Field::Profile),
            buf,
        } => modal::path_input(app, f, area, *field, buf),
        Modal::Edit { .. } | Modal::None => {}
    }
}

fn dashboard(app: &App, f: &mut Frame, body: Rect) {
    // Two lines per head when they fit in a third of the screen, else one.
    let n = app.heads.len() as u16;
    let heads_h = if n * 2 + 3 <= body.height / 3 { n * 2 + 3 } else { (n + 3).clamp(4, body.height / 3) };
    let [top, mid, bottom] =
        Layout::vertical([Constraint::Length(heads_h), Constraint::Fill(1), Constraint::Percentage(42)]).areas(body);
    let [batch, trace] = Layout::horizontal([Constraint::Length(60), Constraint::Fill(1)]).areas(mid);
    let [results, timing, events] =
        Layout::horizontal([Constraint::Percentage(34), Constraint::Percentage(36), Constraint::Fill(1)]).areas(bottom);
    for (p, r) in [
        (Panel::Heads, top),
        (Panel::Batch, batch),
        (Panel::Trace, trace),
        (Panel::Results, results),
        (Panel::Timing, timing),
        (Panel::Events, events),
    ] {
        panels::render(app, p, f, r, app.panel == p);
    }
}

fn tab_bar(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut spans = vec![Span::styled(" cardbench ", t.header())];
    for p in Panel::ALL {
        spans.push(Span::styled(format!(" {} {} ", p.index() + 1, p.title()), t.tab(p == app.panel)));
    }
    spans.push(Span::styled("  ? help  q quit", t.dim()));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status_line(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let b = &app.batch;
    let now = app.now.mono;
    let style = match b.phase {
        Phase::Failed(_) => t.fail(),
        Phase::Finished => t.pass(),
        Phase::Idle => t.dim(),
        _ => t.accent(),
    };
    let mut spans = vec![Span::styled(format!(" ● {} ", b.phase.word()), style)];
    // Why the last key did nothing: the line is the operator's answer until the next key.
    if let Some(note) = &app.note {
        spans.push(Span::styled(format!(" {note}"), t.header()));
    } else if b.phase == Phase::Idle {
        spans.push(Span::raw(" no batch yet: set it up in 2 Batch, s starts it"));
    } else {
        spans.push(Span::raw(format!(" {}  {}/{}  ", b.id, b.done(), b.total)));
        spans.push(Span::styled(format!("pass {}", b.pass), t.pass()));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("fail {}", b.fail), if b.fail > 0 { t.fail() } else { t.text() }));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("aborted {}", b.aborted), if b.aborted > 0 { t.fail() } else { t.text() }));
        // The counts are the whole batch's; say how many of them an earlier run certified.
        if b.done_before > 0 {
            spans.push(Span::raw(format!(" (incl. {} from earlier runs)", b.done_before)));
        }
        if let Some(r) = b.per_hour(now) {
            spans.push(Span::raw(format!("  {r:.0} cards/h")));
        }
        if let Some(e) = b.eta(now) {
            spans.push(Span::raw(format!("  ETA {}", fmt_hms(e))));
        }
        if let Phase::Failed(e) = &b.phase {
            spans.push(Span::styled(format!("  {e}"), t.fail()));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint_line(app: &App, f: &mut Frame, area: Rect) {
    let hints: &[(&str, &str)] = match (&app.modal, app.panel) {
        (Modal::Edit { .. }, _) => &[("Enter", "accept"), ("Esc", "cancel"), ("Bksp", "delete"), ("C-u", "clear")],
        (
            Modal::Picker {
                field:
                    Field::Trace
                    | Field::OtherTrace
                    | Field::TimingSpec
                    | Field::CompareA
                    | Field::CompareB
                    | Field::Plan
                    | Field::Profile,
                ..
            },
            _,
        ) => &[("j/k", "move"), ("Enter", "open"), ("/", "type a path"), ("Esc", "cancel")],
        (Modal::Picker { field: Field::TimingHeads, .. }, _) => {
            &[("j/k", "move"), ("Space", "mark"), ("Enter", "run"), ("Esc", "cancel")]
        }
        (Modal::Picker { .. }, _) => &[("j/k", "move"), ("Enter", "choose"), ("Esc", "cancel")],
        (Modal::ConfirmQuit, _) => &[("y", "stop and quit"), ("n", "keep it going")],
        (Modal::Help { .. }, _) => &[("j/k", "scroll"), ("Esc", "close")],
        (_, Panel::Batch) => &[
            ("j/k", "field"),
            ("Enter", "pick/edit"),
            ("s", if app.start_resumes() { "resume" } else { "start" }),
            ("p", if app.batch.phase == Phase::Paused { "resume" } else { "pause" }),
            ("x", "stop"),
        ],
        (_, Panel::Trace) if app.trace_detail.is_some() => {
            &[("Esc", "back"), ("j/k", "prev/next"), ("PgUp/PgDn", "scroll")]
        }
        (_, Panel::Trace) => &[
            ("Enter", "open"),
            ("/", "search"),
            ("w", "SW≠9000"),
            ("e", "failed"),
            ("H/C/c/m/v/W", "filter"),
            ("F", "clear"),
        ],
        (_, Panel::Results) if app.card_detail.is_some() => {
            &[("t", "cases/trace"), ("Enter", "exchange"), ("Esc", "back")]
        }
        (_, Panel::Results) => &[("j/k", "move"), ("Enter", "open card")],
        (_, Panel::Heads) => &[("j/k", "move"), ("Enter", "trace of the head")],
        (_, Panel::Timing) => match app.timing_view.mode {
            TimingMode::Batch => {
                &[("v", "view"), ("a", "DUTs/heads"), ("o/O", "sort"), ("E", "export"), ("r", "run"), ("c", "compare")]
            }
            TimingMode::Spec => {
                &[("v", "view"), ("r", "run spec"), ("x", "stop"), ("c", "compare"), ("j/k", "select op")]
            }
            TimingMode::Compare => {
                &[("v", "view"), ("c", "compare"), ("+/-", "threshold"), ("T", "type it"), ("j/k", "select op")]
            }
        },
        (_, Panel::Events) => &[("j/k", "scroll"), ("G", "follow")],
        (_, Panel::Replay) if app.replay.detail => &[("Esc", "back"), ("j/k", "prev/next"), ("n/N", "next/prev diff")],
        (_, Panel::Replay) => &[
            ("o", "open"),
            ("d", "compare"),
            ("v", "side by side"),
            ("r", "replay"),
            ("x", "stop"),
            ("n/N", "next/prev diff"),
            ("Enter", "row"),
        ],
    };
    let t = &app.theme;
    let mut spans = Vec::new();
    let global: &[(&str, &str)] =
        if app.modal == Modal::None { &[("Tab", "panel"), ("?", "help"), ("q", "quit")] } else { &[] };
    for (k, what) in hints.iter().chain(global) {
        spans.push(Span::styled(format!(" {k}"), t.key()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
