//! Results: per-card verdicts with failing test IDs; a card opens into its cases (expected vs
//! actual), the path of its trace, and the trace itself read back from the CSV.

use super::exchange::{self, RowView};
use super::{block, clip, offset};
use crate::report::{CardResult, CaseStatus, Verdict};
use crate::tui::app::{App, CardDetail, Panel};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let b = &app.batch;
    let title = format!("{} cards · pass {} fail {} aborted {}", app.results.len(), b.pass, b.fail, b.aborted);
    let blk = block(app, Panel::Results, title, focused);
    let inner = blk.inner(area);
    f.render_widget(blk, area);
    if let Some(d) = &app.card_detail {
        if let Some(c) = app.card(d.index) {
            card(app, f, inner, c, d);
            return;
        }
    }
    if app.results.is_empty() {
        let msg = if b.done_before > 0 {
            format!(" {} cards were certified before this run: see the batch's summary.csv.", b.done_before)
        } else {
            " No card certified yet.".to_string()
        };
        f.render_widget(Paragraph::new(Line::styled(msg, app.theme.dim())), inner);
        return;
    }
    let t = &app.theme;
    let visible = inner.height.saturating_sub(1) as usize;
    let first = offset(app.results.len(), app.results_sel, visible);
    let rows: Vec<Row> = app
        .results
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, c)| {
            let (detail, style) = match &c.verdict {
                Verdict::Pass => (String::new(), t.pass()),
                Verdict::Fail { failing } => (failing.join(" "), t.fail()),
                Verdict::Aborted { reason } => (reason.clone(), t.fail()),
            };
            let mut row_style = if matches!(c.verdict, Verdict::Pass) { t.text() } else { t.fail() };
            if focused && i == app.results_sel {
                row_style = row_style.patch(t.selected());
            }
            Row::new(vec![
                Cell::from(c.index.to_string()),
                Cell::from(c.card_id.clone()),
                Cell::from(c.head.clone()),
                Cell::from(Span::styled(c.verdict.word(), style)),
                Cell::from(format!("{:.0} ms", c.duration_ms)),
                Cell::from(detail),
            ])
            .style(row_style)
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let header = Row::new(["#", "Card ID", "Head", "Verdict", "Time", "Failing tests / reason"]).style(t.header());
    f.render_widget(Table::new(rows, widths).header(header).column_spacing(1), inner);
}

fn card(app: &App, f: &mut Frame, area: Rect, c: &CardResult, d: &CardDetail) {
    let t = &app.theme;
    if d.show_trace {
        if let Some(x) = &d.exchange {
            exchange::detail(t, f, area, x, &c.card_id, false, app.detail_scroll);
            return;
        }
        let msg = match &d.trace {
            None => Some(format!(" reading {} …", app.trace_path(c).display())),
            Some(Err(e)) => Some(format!(" cannot read the trace: {e}")),
            Some(Ok(rows)) if rows.is_empty() => Some(" the trace has no exchange".to_string()),
            Some(Ok(_)) => None,
        };
        if let Some(m) = msg {
            f.render_widget(Paragraph::new(Line::styled(m, t.dim())), area);
            return;
        }
        let rows = d.trace.as_ref().and_then(|r| r.as_ref().ok()).map(Vec::as_slice).unwrap_or(&[]);
        // Only the exchange each failed case failed on is marked (as in the live trace).
        let failed_cases: Vec<String> = c
            .cases
            .iter()
            .filter(|k| matches!(k.status, CaseStatus::Failed | CaseStatus::Error))
            .map(|k| k.id.clone())
            .collect();
        let xs: Vec<&crate::event::Exchange> = rows.iter().collect();
        let failing = crate::tui::trace::failing_rows(&xs, &crate::tui::trace::finals(&xs), &failed_cases);
        let views: Vec<RowView> = rows
            .iter()
            .enumerate()
            .map(|(i, x)| RowView { x, card: &c.card_id, failed: failing.contains(&i) })
            .collect();
        let [head, body] = ratatui::layout::Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
        let title = format!(" card {} · {} exchanges · t cases · Enter exchange · Esc back", c.card_id, rows.len());
        f.render_widget(Paragraph::new(Line::styled(title, t.header())), head);
        exchange::table(t, f, body, &views, Some(d.trace_sel));
        return;
    }
    let w = area.width as usize;
    let label = |s: &str| Span::styled(format!("{s:<9}"), t.header());
    let vstyle = if matches!(c.verdict, Verdict::Pass) { t.pass() } else { t.fail() };
    let mut lines = vec![
        Line::from(vec![
            label("Card"),
            Span::raw(format!("{} (#{}) on {}  ", c.card_id, c.index, c.head)),
            Span::styled(c.verdict.word(), vstyle),
            Span::raw(format!("  {:.0} ms  started {}", c.duration_ms, c.started)),
        ]),
        Line::from(vec![
            label("Trace"),
            Span::raw(clip(&app.trace_path(c).display().to_string(), w.saturating_sub(9))),
        ]),
    ];
    match &c.verdict {
        Verdict::Fail { failing } => {
            lines.push(Line::from(vec![label("Failing"), Span::styled(failing.join(" "), t.fail())]))
        }
        Verdict::Aborted { reason } => {
            lines.push(Line::from(vec![label("Aborted"), Span::styled(reason.clone(), t.fail())]))
        }
        Verdict::Pass => {}
    }
    lines.push(Line::styled(" t the card's trace · Esc back", t.dim()));
    for k in &c.cases {
        let (mark, style) = match k.status {
            CaseStatus::Passed => ("✓", t.pass()),
            CaseStatus::Skipped | CaseStatus::NotRun => ("-", t.dim()),
            CaseStatus::Blocked => ("↳", t.dim()),
            CaseStatus::Failed | CaseStatus::Error => ("✗", t.fail()),
        };
        let status = crate::runner::status_word(&k.status);
        lines.push(Line::from(vec![
            Span::styled(format!("{mark} {} {status}", k.id), style),
            Span::raw(format!("  {}  [{}]  {:.1} ms", k.title, k.reference, k.duration_ms)),
        ]));
        if let Some(fl) = &k.failure {
            lines.push(Line::from(vec![Span::raw("    "), label("step"), Span::raw(fl.step.clone())]));
            lines.push(Line::from(vec![Span::raw("    "), label("expected"), Span::raw(fl.expected.clone())]));
            lines.push(Line::from(vec![Span::raw("    "), label("actual"), Span::styled(fl.actual.clone(), t.fail())]));
        } else if !k.message.is_empty() {
            lines.push(Line::from(vec![Span::raw("    "), label("message"), Span::raw(k.message.clone())]));
        }
    }
    let scroll = d.scroll.min(lines.len().saturating_sub(1)) as u16;
    f.render_widget(Paragraph::new(lines).scroll((scroll, 0)), area);
}
