//! Live trace: the window of recent exchanges, decoded, filtered, followed; Enter opens one.

use super::block;
use super::exchange::{self, RowView};
use crate::tui::app::{App, Panel};
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let vis = app.trace.visible(&app.filter);
    let mut title = String::new();
    if !app.filter.is_empty() {
        title.push_str(&format!("{} ({} shown) · ", app.filter.describe(), vis.len()));
    }
    title.push_str(if app.trace_sel.is_none() { "follow · " } else { "paused · " });
    title.push_str(&format!("{} exchanges, {} kept", app.trace.total, app.trace.window()));
    let b = block(app, Panel::Trace, title, focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    if let Some(r) = &app.trace_detail {
        exchange::detail(&app.theme, f, inner, &r.x, &r.card, r.failed, app.detail_scroll);
        return;
    }
    if vis.is_empty() {
        let msg = if app.trace.is_empty() {
            " No exchanges yet: start a batch (s). The full trace of every card is in its CSV."
        } else {
            " No exchange matches the filters (F clears them)."
        };
        f.render_widget(Paragraph::new(Line::styled(msg, app.theme.dim())), inner);
        return;
    }
    let rows = app.trace.rows();
    let views: Vec<RowView> =
        vis.iter().map(|&i| &rows[i]).map(|r| RowView { x: &r.x, card: &r.card, failed: r.failed }).collect();
    let sel = app.trace_pos(&vis);
    exchange::table(&app.theme, f, inner, &views, Some(sel));
}
