//! Small windows over the panels: the quit confirmation, the pickers (plan, profile, trace
//! file, replay head) and the typed trace path.

use super::{centered, clip, offset};
use crate::tui::app::{App, Field, Phase};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

pub fn confirm_quit(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let (first, why1, why2) = if app.batch.phase.active() {
        let what = match app.batch.phase {
            Phase::Starting => "starting",
            Phase::Paused => "paused (its cards wait between two cards)",
            Phase::Stopping => "stopping",
            _ => "running",
        };
        (
            format!("Batch {} is {what}.", app.batch.id),
            "Quit stops it cleanly first: the cards in the heads finish and are",
            "journaled, reports are written, and the batch can be resumed later.",
        )
    } else if app.timing_view.running() {
        (
            "A timing run is running.".to_string(),
            "Quit stops it after the iterations in progress, writes its samples",
            "and results (timing.json), then quits.",
        )
    } else {
        (
            "A replay is running.".to_string(),
            "Quit stops it after the row in progress; its trace and replay.json",
            "hold the rows checked so far.",
        )
    };
    let text = vec![
        Line::raw(first),
        Line::raw(""),
        Line::raw(why1),
        Line::raw(why2),
        Line::raw(""),
        Line::styled("y  stop and quit        n / Esc  keep it going", t.key()),
    ];
    let r = centered(area, 74, 8);
    f.render_widget(Clear, r);
    let b = Block::bordered().title(" Quit? ").border_style(t.border(true));
    f.render_widget(Paragraph::new(text).block(b).wrap(Wrap { trim: false }), r);
}

pub fn picker(app: &App, f: &mut Frame, area: Rect, field: Field, sel: usize) {
    let paths = |list: &[std::path::PathBuf]| list.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
    let (list, title, empty) = match field {
        Field::Plan => (paths(&app.form.plans), " Plan ".to_string(), "nothing in test-plans/: / types a path"),
        Field::Trace | Field::OtherTrace => (
            paths(&app.replay.traces),
            format!(" {} ", if field == Field::Trace { "Open trace" } else { "Compare with trace" }),
            "no trace CSV under logs/ or traces/: / types a path",
        ),
        Field::TimingSpec => (
            paths(&app.timing_view.specs),
            " Timing spec ".to_string(),
            "nothing in test-plans/timing/: / types a path",
        ),
        Field::CompareA | Field::CompareB => {
            let title = match (&app.timing_view.compare_a, field) {
                (Some(a), Field::CompareB) => {
                    format!(" Compare {} (A) with B ", clip_start(&a.display().to_string(), 40))
                }
                _ => " Compare timing result A ".to_string(),
            };
            (paths(&app.timing_view.results), title, "no timing result (samples.csv) under logs/: / types a path")
        }
        Field::ReplayHead | Field::TimingHeads => {
            let timing = field == Field::TimingHeads;
            let heads = app
                .heads
                .iter()
                .map(|h| {
                    let mark = match (timing, app.timing_view.marked.contains(&h.name)) {
                        (false, _) => "",
                        (true, true) => "[x] ",
                        (true, false) => "[ ] ",
                    };
                    let card = match h.present {
                        Some(true) if h.card_id.is_empty() => "card present".to_string(),
                        Some(true) => format!("card {}", h.card_id),
                        Some(false) => "no card".to_string(),
                        None => "card unknown".to_string(),
                    };
                    format!("{mark}{:<10} {:<8} {:<6} {card}", h.name, h.driver, h.role)
                })
                .collect();
            if timing {
                let spec = app.timing_view.spec.as_ref().map_or(String::new(), |p| p.display().to_string());
                return picker_list(
                    app,
                    f,
                    area,
                    heads,
                    format!(" Time {} on ", clip_start(&spec, 40)),
                    "the profile has no heads",
                    sel,
                    " Space mark · Enter run (marked heads, else this one) · Esc cancel ",
                );
            }
            let (th, card) = app.replay.stream_of_selection().unwrap_or_default();
            let card = card.map_or(String::new(), |c| format!(" card {c}"));
            let how = if app.replay.keep_going { " (keep going)" } else { "" };
            (heads, format!(" Replay{how} trace head {th}{card} on "), "the profile has no heads")
        }
        _ => (paths(&app.form.profiles), " Profile ".to_string(), "nothing in profiles/: / types a path"),
    };
    let bottom =
        if matches!(field, Field::Trace | Field::OtherTrace | Field::TimingSpec | Field::CompareA | Field::CompareB) {
            " Enter open · / type a path · Esc cancel "
        } else {
            " Enter choose · Esc cancel "
        };
    picker_list(app, f, area, list, title, empty, sel, bottom);
}

#[allow(clippy::too_many_arguments)]
fn picker_list(
    app: &App,
    f: &mut Frame,
    area: Rect,
    list: Vec<String>,
    title: String,
    empty: &str,
    sel: usize,
    bottom: &str,
) {
    let t = &app.theme;
    let h = (list.len() as u16 + 3).clamp(5, area.height.saturating_sub(2).max(5));
    let r = centered(area, 76, h);
    f.render_widget(Clear, r);
    let b = Block::bordered().title(title).title_bottom(bottom).border_style(t.border(true));
    let inner_h = r.height.saturating_sub(2) as usize;
    let w = r.width.saturating_sub(4) as usize;
    let lines: Vec<Line> = if list.is_empty() {
        vec![Line::styled(empty, t.dim())]
    } else {
        let first = offset(list.len(), sel, inner_h);
        list.iter()
            .enumerate()
            .skip(first)
            .take(inner_h)
            .map(|(i, p)| {
                // Long paths keep their end: the file name is what tells traces apart.
                let s = format!(" {}", clip_start(p, w));
                if i == sel {
                    Line::styled(s, t.selected())
                } else {
                    Line::raw(s)
                }
            })
            .collect()
    };
    f.render_widget(Paragraph::new(lines).block(b), r);
}

/// Typing the path of a trace file.
pub fn path_input(app: &App, f: &mut Frame, area: Rect, field: Field, buf: &str) {
    let t = &app.theme;
    let r = centered(area, 76, 4);
    f.render_widget(Clear, r);
    let title = match field {
        Field::Trace => " Open trace: path ",
        Field::TimingSpec => " Timing spec: path ",
        Field::CompareA => " Timing result A: path ",
        Field::CompareB => " Timing result B: path ",
        Field::Threshold => " Comparison threshold (e.g. 2%) ",
        Field::Plan => " Plan: path ",
        Field::Profile => " Profile: path ",
        _ => " Compare with trace: path ",
    };
    let b = Block::bordered()
        .title(title)
        .title_bottom(" Enter open · Esc cancel · C-u clear ")
        .border_style(t.border(true));
    let w = r.width.saturating_sub(4) as usize;
    let text = Line::styled(format!(" {}▏", clip_start(buf, w.saturating_sub(1))), t.accent());
    f.render_widget(Paragraph::new(text).block(b), r);
}

/// Cut `s` to its last `n` characters, with an ellipsis when cut.
fn clip_start(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n || n == 0 {
        return clip(s, n);
    }
    let mut out = String::from("…");
    out.extend(&c[c.len() - (n - 1)..]);
    out
}
