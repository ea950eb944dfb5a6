//! Events: card inserted / removed, batch started / paused / stopped / finished, head errors.

use super::{block, offset};
use crate::tui::app::{App, LogKind, Panel};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
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
    // A selected event is also shown whole, wrapped, under the list.
    let (inner, footer) = match app.events_sel.and_then(|i| app.events.get(i)) {
        Some(e) if inner.height >= 8 => {
            let [list, foot] = Layout::vertical([Constraint::Fill(1), Constraint::Length(3)]).areas(inner);
            let text = format!("{} {} {}", e.wall.format("%Y-%m-%d %H:%M:%S%.3f"), e.kind.word(), e.text);
            (list, Some((foot, text)))
        }
        _ => (inner, None),
    };
    if let Some((area, text)) = footer {
        let b = Block::default().borders(Borders::TOP).border_style(t.dim());
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }).block(b), area);
    }
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
