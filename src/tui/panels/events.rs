//! Events: card inserted / removed, batch started / paused / stopped / finished, head errors.

use super::{block, offset};
use crate::tui::app::{App, LogKind, Panel};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let errors = app.events.iter().filter(|e| e.kind == LogKind::Error).count();
    let follow = if app.events_sel.is_none() { " · follow" } else { "" };
    let b = block(app, Panel::Events, format!("{} events, {errors} errors{follow}", app.events.len()), focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let t = &app.theme;
    let len = app.events.len();
    let sel = app.events_sel.unwrap_or(len.saturating_sub(1));
    let visible = inner.height as usize;
    let first = offset(len, sel, visible);
    let time_fmt = if inner.width >= 100 { "%H:%M:%S%.3f " } else { "%H:%M:%S " };
    let lines: Vec<Line> = app
        .events
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, e)| {
            let style = match e.kind {
                LogKind::Error => t.fail(),
                LogKind::Batch => t.accent(),
                _ => t.text(),
            };
            let line = Line::from(vec![
                Span::styled(e.wall.format(time_fmt).to_string(), t.dim()),
                Span::styled(format!("{:<7}", e.kind.word()), style),
                Span::styled(e.text.clone(), if e.kind == LogKind::Error { t.fail() } else { t.text() }),
            ]);
            if focused && app.events_sel == Some(i) {
                line.patch_style(t.selected())
            } else {
                line
            }
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}
