//! The Timing panel, in three views (`v`): the batch's timing per head and command (counts,
//! last, p50 / p95 / p99 and a sparkline of recent durations per row; the selected row's
//! sparkline and histogram below), a timing spec's run (`timing_spec`) and two timing results
//! compared (`timing_compare`).

use super::{block, clip, fit, offset};
use crate::tui::app::{App, Panel};
use crate::tui::stats::{fmt_ns, spark_text, Series, WINDOW};
use crate::tui::timing::TimingMode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    match app.timing_view.mode {
        TimingMode::Batch => batch(app, f, area, focused),
        TimingMode::Spec => super::timing_spec::render(app, f, area, focused),
        TimingMode::Compare => super::timing_compare::render(app, f, area, focused),
    }
}

fn batch(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let rows = app.timing.rows();
    let title = format!("{} head/command pairs, percentiles over the last {WINDOW}", rows.len());
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
    let spark_w = (table_area.width as usize).saturating_sub(8 + 22 + 6 + 4 * 8 + 8).clamp(4, 48);
    let built: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, (head, cmd, s))| {
            let [p50, p95, p99] = s.percentiles().unwrap_or([0; 3]);
            let n = s.recent.len();
            let recent = spark_text(s.recent.iter().skip(n.saturating_sub(spark_w)).copied());
            let row = Row::new(vec![
                Cell::from(head.to_string()),
                Cell::from(*cmd),
                Cell::from(s.count.to_string()),
                Cell::from(fmt_ns(s.last().unwrap_or(0))),
                Cell::from(fmt_ns(p50)),
                Cell::from(fmt_ns(p95)),
                Cell::from(fmt_ns(p99)),
                Cell::from(Span::styled(recent, t.accent())),
            ]);
            if focused && i == sel {
                row.style(t.selected())
            } else {
                row
            }
        })
        .collect();
    let cmd_w = if table_area.width >= 100 { 22 } else { 16 };
    let widths = [
        Constraint::Length(8),
        Constraint::Length(cmd_w),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let header = Row::new(["Head", "Command", "n", "last", "p50", "p95", "p99", "recent"]).style(t.header());
    f.render_widget(Table::new(built, widths).header(header).column_spacing(1), table_area);
    if let Some(area) = detail_area {
        let (head, cmd, s) = rows[sel];
        detail(app, f, area, head, cmd, s);
    }
}

fn detail(app: &App, f: &mut Frame, area: Rect, head: &str, cmd: &str, s: &Series) {
    let t = &app.theme;
    let [left, right] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let n = s.recent.len();
    let w = left.width.saturating_sub(2) as usize;
    let data: Vec<u64> = s.recent.iter().skip(n.saturating_sub(w)).copied().collect();
    let title = format!(" {head} {} · last {} ", clip(cmd, 20), data.len());
    let spark = Sparkline::default()
        .block(Block::default().borders(Borders::TOP).title(title).border_style(t.dim()))
        .data(&data)
        .style(t.accent());
    f.render_widget(spark, left);
    let [p50, p95, p99] = s.percentiles().unwrap_or([0; 3]);
    let mean = if s.count > 0 { (s.total_ns / s.count as u128) as u64 } else { 0 };
    let mut lines = vec![Line::from(vec![
        Span::styled(" p50 ", t.header()),
        Span::raw(fmt_ns(p50)),
        Span::styled("  p95 ", t.header()),
        Span::raw(fmt_ns(p95)),
        Span::styled("  p99 ", t.header()),
        Span::raw(fmt_ns(p99)),
        Span::styled("  mean ", t.header()),
        Span::raw(fmt_ns(mean)),
    ])];
    let buckets = right.height.saturating_sub(2).max(1) as usize;
    let hist = s.histogram(buckets);
    let most = hist.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let bar_w = (right.width as usize).saturating_sub(26).max(4);
    let at = |p: u64| hist.iter().rposition(|b| b.0 <= p);
    let marks_of: Vec<Option<usize>> = [p50, p95, p99].into_iter().map(at).collect();
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
    let hist_block = Block::default().borders(Borders::TOP | Borders::LEFT).title(" histogram ").border_style(t.dim());
    f.render_widget(Paragraph::new(lines).block(hist_block), right);
}
