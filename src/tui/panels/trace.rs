//! The trace like a packet list: the live window, or with a filter the matches over the whole
//! batch (finished cards read from their trace CSVs), the `/` search line, Enter opens one.

use super::block;
use super::exchange::{self, RowView};
use crate::tui::app::{App, Field, Modal, Panel};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let vis = app.trace_view();
    let mut title = String::new();
    if !app.filter.is_empty() {
        let s = &app.scan;
        let reading = if s.pending > 0 { ", reading traces…" } else { "" };
        let kept =
            if s.matched as usize > s.rows.len() { format!(", first {} kept", s.rows.len()) } else { String::new() };
        let n = app.trace_matches(&vis);
        title.push_str(&format!(
            "{} · {n} match{} · {}/{} finished cards read{kept}{reading} · ",
            app.filter.describe(),
            if n == 1 { "" } else { "es" },
            s.cards.len(),
            app.results.len(),
        ));
    }
    // "frozen": the view stays on the selected row; the batch goes on.
    title.push_str(if app.trace_sel.is_none() { "follow · " } else { "view frozen · " });
    title.push_str(&format!("{} exchanges, {} kept", app.trace.total, app.trace.window()));
    let b = block(app, Panel::Trace, title, focused);
    let mut inner = b.inner(area);
    f.render_widget(b, area);
    let searching = matches!(&app.modal, Modal::Edit { field: Field::Search, .. });
    if searching || !app.filter.text.is_empty() || !app.scan.errors.is_empty() {
        let [top, rest] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
        let mut spans = vec![Span::styled("/", app.theme.key()), Span::raw(app.filter.text.clone())];
        if searching {
            spans.push(Span::styled("▏", app.theme.accent()));
            spans.push(Span::styled("  Enter keep · Esc drop", app.theme.dim()));
        }
        if let Some(e) = app.scan.errors.first() {
            spans.push(Span::styled(format!("  {e}"), app.theme.fail()));
        }
        f.render_widget(Paragraph::new(Line::from(spans)), top);
        inner = rest;
    }
    if let Some(r) = &app.trace_detail {
        exchange::detail(&app.theme, f, inner, &r.x, &r.card, r.failing, app.detail_scroll);
        return;
    }
    if vis.is_empty() {
        let msg = if !app.filter.is_empty() && app.scan.pending > 0 {
            " Reading the finished cards' traces…"
        } else if app.trace.is_empty() && app.filter.is_empty() {
            " No exchanges yet: start a batch (s). The full trace of every card is in its CSV."
        } else {
            " No exchange matches the filters (F clears them)."
        };
        f.render_widget(Paragraph::new(Line::styled(msg, app.theme.dim())), inner);
        return;
    }
    // Only the page on screen is handed over (the window holds up to 10,000 rows).
    let sel = app.trace_pos(&vis);
    let page = inner.height.saturating_sub(1) as usize;
    let first = super::offset(vis.len(), sel, page);
    let views: Vec<RowView> =
        vis[first..].iter().take(page).map(|r| RowView { x: &r.x, card: &r.card, failed: r.failing }).collect();
    exchange::table(&app.theme, f, inner, &views, Some(sel - first));
}
