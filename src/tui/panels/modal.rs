//! Small windows over the panels: the quit confirmation and the plan / profile pickers.

use super::{centered, clip, offset};
use crate::tui::app::{App, Field, Phase};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

pub fn confirm_quit(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let what = if app.batch.phase == Phase::Starting { "starting" } else { "running" };
    let text = vec![
        Line::raw(format!("Batch {} is {what}.", app.batch.id)),
        Line::raw(""),
        Line::raw("Quit stops it cleanly first: the cards in the heads finish and are"),
        Line::raw("journaled, reports are written, and the batch can be resumed later."),
        Line::raw(""),
        Line::styled("y  stop and quit        n / Esc  keep running", t.key()),
    ];
    let r = centered(area, 74, 8);
    f.render_widget(Clear, r);
    let b = Block::bordered().title(" Quit? ").border_style(t.border(true));
    f.render_widget(Paragraph::new(text).block(b).wrap(Wrap { trim: false }), r);
}

pub fn picker(app: &App, f: &mut Frame, area: Rect, field: Field, sel: usize) {
    let t = &app.theme;
    let (list, title, dir) = match field {
        Field::Plan => (&app.form.plans, " Plan ", "test-plans/"),
        _ => (&app.form.profiles, " Profile ", "profiles/"),
    };
    let h = (list.len() as u16 + 3).clamp(5, area.height.saturating_sub(2).max(5));
    let r = centered(area, 70, h);
    f.render_widget(Clear, r);
    let b = Block::bordered().title(title).title_bottom(" Enter choose · Esc cancel ").border_style(t.border(true));
    let inner_h = r.height.saturating_sub(2) as usize;
    let w = r.width.saturating_sub(4) as usize;
    let lines: Vec<Line> = if list.is_empty() {
        vec![Line::styled(format!("nothing in {dir}"), t.dim())]
    } else {
        let first = offset(list.len(), sel, inner_h);
        list.iter()
            .enumerate()
            .skip(first)
            .take(inner_h)
            .map(|(i, p)| {
                let s = format!(" {}", clip(&p.display().to_string(), w));
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
