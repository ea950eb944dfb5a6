//! The Timing panel, in three views (`v`): the batch's timing per command over every DUT head
//! (`a`: per head and command): n, min, p50, p95, p99, max, mean, sortable (`o`, `O`),
//! exported as CSV (`E`), the selected row's histogram below; a timing spec's run (`timing_spec`) and two timing results
//! compared (`timing_compare`).

use super::{block, clip, fit, offset};
use crate::tui::app::{App, Panel};
use crate::tui::stats::{fmt_ns, histogram, spark_text, SortBy, Summary, WINDOW};
use crate::tui::timing::TimingMode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    match app.timing_view.mode {
        TimingMode::Batch => batch(app, f, area, focused),
        TimingMode::Spec => super::timing_spec::render(app, f, area, focused),
        TimingMode::Compare => super::timing_compare::render(app, f, area, focused),
    }
}

fn batch(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let rows = app.timing_rows();
    let order = if app.timing_desc { "▼" } else { "▲" };
    let what = if app.timing_pooled {
        format!("{} commands over every DUT head", rows.len())
    } else {
        format!("{} head/command pairs", rows.len())
    };
    let title = format!("{what} · sorted by {} {order} · percentiles over the last {WINDOW}", app.timing_sort.label());
    let b = block(app, Panel::Timing, title, focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let t = &app.theme;
    if rows.is_empty() {
        let lines = vec![
            Line::styled(" No exchange of a batch timed yet.", t.dim()),
            Line::styled(" r runs a timing spec on heads of the profile, c compares two timing results,", t.dim()),
            Line::styled(" v shows the last spec run and comparison.", t.dim()),
        ];
        f.render_widget(Paragraph::new(lines), inner);
        return;
    }
    let sel = app.timing_sel.min(rows.len() - 1);
    let (table_area, detail_area) = if inner.height >= 14 {
        let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Length(9)]).areas(inner);
        (a, Some(b))
    } else {
        (inner, None)
    };
    let visible = table_area.height.saturating_sub(1) as usize;
    let first = offset(rows.len(), sel, visible);
    // The recent durations in time order exist per head only (a pooled window has none).
    let recent_w = if app.timing_pooled { 0 } else { (table_area.width as usize).saturating_sub(88).min(48) };
    let built: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, r)| {
            let mut cells = Vec::new();
            if !app.timing_pooled {
                cells.push(Cell::from(r.head.clone()));
            }
            cells.push(Cell::from(r.command));
            cells.push(Cell::from(r.n.to_string()));
            for v in [r.min, r.p50, r.p95, r.p99, r.max, r.mean] {
                cells.push(Cell::from(fmt_ns(v)));
            }
            if recent_w >= 4 {
                let s = app.timing.by_head.get(&r.head).and_then(|m| m.get(r.command));
                let recent = s.map_or(String::new(), |s| {
                    spark_text(s.recent.iter().skip(s.recent.len().saturating_sub(recent_w)).copied())
                });
                cells.push(Cell::from(Span::styled(recent, t.accent())));
            }
            let row = Row::new(cells);
            if focused && i == sel {
                row.style(t.selected())
            } else {
                row
            }
        })
        .collect();
    let mut widths = Vec::new();
    let mut header: Vec<String> = Vec::new();
    if !app.timing_pooled {
        widths.push(Constraint::Length(7));
        header.push("Head".into());
    }
    widths.push(Constraint::Min(12));
    header.push("Command".into());
    widths.push(Constraint::Length(6));
    header.push("n".into());
    for _ in 0..6 {
        widths.push(Constraint::Length(7));
    }
    header.extend(["min", "p50", "p95", "p99", "max", "mean"].map(String::from));
    if recent_w >= 4 {
        widths.push(Constraint::Length(recent_w as u16));
        header.push("recent".into());
    }
    // The sorted column's header carries the order.
    let sorted = match app.timing_sort {
        SortBy::Name => "Command",
        other => other.label(),
    };
    for h in header.iter_mut().filter(|h| h.as_str() == sorted) {
        h.push_str(order);
    }
    let header = Row::new(header).style(t.header());
    f.render_widget(Table::new(built, widths).header(header).column_spacing(1), table_area);
    if let Some(area) = detail_area {
        detail(app, f, area, &rows[sel]);
    }
}

/// The selected row's figures and the histogram of its window, percentiles marked.
fn detail(app: &App, f: &mut Frame, area: Rect, r: &Summary) {
    let t = &app.theme;
    let title = format!(" {} {} · histogram of the last {} ", r.head, clip(r.command, 24), r.window.len());
    let mut lines = vec![Line::from(vec![
        Span::styled(" n ", t.header()),
        Span::raw(r.n.to_string()),
        Span::styled("  min ", t.header()),
        Span::raw(fmt_ns(r.min)),
        Span::styled("  p50 ", t.header()),
        Span::raw(fmt_ns(r.p50)),
        Span::styled("  p95 ", t.header()),
        Span::raw(fmt_ns(r.p95)),
        Span::styled("  p99 ", t.header()),
        Span::raw(fmt_ns(r.p99)),
        Span::styled("  max ", t.header()),
        Span::raw(fmt_ns(r.max)),
        Span::styled("  mean ", t.header()),
        Span::raw(fmt_ns(r.mean)),
    ])];
    let buckets = area.height.saturating_sub(2).max(1) as usize;
    let hist = histogram(r.window.iter().copied(), buckets);
    let most = hist.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let bar_w = (area.width as usize).saturating_sub(30).max(4);
    let at = |p: u64| hist.iter().rposition(|b| b.0 <= p);
    let marks_of: Vec<Option<usize>> = [r.p50, r.p95, r.p99].into_iter().map(at).collect();
    for (i, (lo, _, c)) in hist.iter().enumerate() {
        let len = (c * bar_w).div_ceil(most);
        let marks: Vec<&str> =
            ["p50", "p95", "p99"].into_iter().zip(&marks_of).filter(|(_, m)| **m == Some(i)).map(|(l, _)| l).collect();
        lines.push(Line::from(vec![
            Span::raw(format!(" ≥{} ", fit(&fmt_ns(*lo), 8))),
            Span::styled("▇".repeat(len), t.accent()),
            Span::raw(format!(" {c} {}", marks.join(","))),
        ]));
    }
    let b = Block::default().borders(Borders::TOP).title(title).border_style(t.dim());
    f.render_widget(Paragraph::new(lines).block(b), area);
}
