//! The Timing panel's spec run: per op × head, n, median and its 95% CI, the card's own time
//! (op − baseline) and its CI, outliers and a compact histogram, as the samples arrive; the
//! selected row's figures and a larger histogram below. Figures come from `timing::stats`
//! (computed in `tui::timing`), histograms from `timing::report`.

use super::{block, clip, offset};
use crate::timing::report::{fmt_ns, histogram_range, text_histogram, text_histogram_in};
use crate::timing::stats::Interval;
use crate::tui::app::{App, Panel};
use crate::tui::stats::fmt_hms;
use crate::tui::timing::{LiveRow, LiveTiming, TimingPhase};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// An interval in one unit: `41.101–41.305 ms`.
pub fn interval(i: &Interval) -> String {
    let a = i.lo.abs().max(i.hi.abs());
    if !(i.lo.is_finite() && i.hi.is_finite()) {
        return "-".into();
    }
    let (div, unit, p) = if a >= 1e9 {
        (1e9, "s", 4)
    } else if a >= 1e6 {
        (1e6, "ms", 3)
    } else if a >= 1e3 {
        (1e3, "µs", 3)
    } else {
        (1.0, "ns", 0)
    };
    format!("{:.p$}–{:.p$} {unit}", i.lo / div, i.hi / div)
}

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let t = &app.theme;
    let v = &app.timing_view;
    let Some(l) = &v.live else {
        let b = block(app, Panel::Timing, "timing spec run".into(), focused);
        let inner = b.inner(area);
        f.render_widget(b, area);
        let lines = vec![
            Line::styled(" No timing spec run yet.", t.dim()),
            Line::styled(" r picks a spec (test-plans/timing/, / types a path) and the heads to time it on.", t.dim()),
        ];
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        return;
    };
    let title = format!("timing {}", l.req.spec.display());
    let b = block(app, Panel::Timing, title, focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let [top, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    f.render_widget(Paragraph::new(status(app, l)), top);
    let rows = l.rows();
    if rows.is_empty() {
        let what = match &l.phase {
            TimingPhase::Failed(e) => Line::styled(format!(" {e}"), t.fail()),
            p if p.active() => Line::styled(" No sample yet: prepare and warm-up run first.", t.dim()),
            _ => Line::styled(" No sample was measured.", t.dim()),
        };
        let mut lines = vec![what];
        lines.extend(l.failures.iter().map(|e| Line::styled(format!(" {e}"), t.fail())));
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
        return;
    }
    let sel = v.sel.min(rows.len() - 1);
    let (table_area, detail_area) = if body.height >= 15 {
        let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Length(9)]).areas(body);
        (a, Some(b))
    } else {
        (body, None)
    };
    table(app, f, table_area, &rows, sel, focused);
    if let Some(area) = detail_area {
        detail(app, f, area, &rows[sel]);
    }
}

fn status<'a>(app: &App, l: &LiveTiming) -> Line<'a> {
    let t = &app.theme;
    let style = match &l.phase {
        TimingPhase::Failed(_) => t.fail(),
        TimingPhase::Finished if l.failures.is_empty() => t.pass(),
        TimingPhase::Finished => t.fail(),
        _ => t.accent(),
    };
    let end = l.ended.unwrap_or(app.now.mono);
    let mut spans = vec![
        Span::styled(format!(" ● timing {} ", l.phase.word()), style),
        Span::raw(format!(
            " {} op samples  {}  on {}",
            l.measured,
            fmt_hms(end.saturating_duration_since(l.started)),
            l.req.heads.join(", ")
        )),
    ];
    if !l.failures.is_empty() {
        spans.push(Span::styled(format!("  {} failed", l.failures.len()), t.fail()));
    }
    if let Some(d) = &l.dir {
        spans.push(Span::styled(format!("  {}", d.display()), t.dim()));
    }
    Line::from(spans)
}

fn table(app: &App, f: &mut Frame, area: Rect, rows: &[LiveRow<'_>], sel: usize, focused: bool) {
    let t = &app.theme;
    let wide = area.width >= 120;
    let op_w = rows.iter().map(|r| r.stats.op.chars().count()).max().unwrap_or(2).clamp(2, 32) as u16;
    // Below 76 columns (the dashboard) the CI goes to the detail below, so the op keeps room.
    let with_ci = area.width >= 76;
    let mut header = vec!["Op", "Head", "n", "median"];
    let mut widths = vec![
        if wide { Constraint::Length(op_w) } else { Constraint::Fill(1) },
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(10),
    ];
    if with_ci {
        header.push("95% CI");
        widths.push(Constraint::Length(19));
    }
    header.extend(["card", "out"]);
    widths.extend([Constraint::Length(10), Constraint::Length(4)]);
    if wide {
        header.extend(["card 95% CI", "histogram"]);
        widths.extend([Constraint::Length(19), Constraint::Fill(1)]);
    }
    // The histogram column's width: what is left after the others and their spacing.
    let column = area.width.saturating_sub(op_w + 6 + 5 + 10 + 19 + 10 + 4 + 19 + 8) as usize;
    // Less the outlier counts at both ends (`text_histogram_in` pads the left one to 6).
    let hist_w = column.saturating_sub(6 + 4).max(8);
    let visible = area.height.saturating_sub(1) as usize;
    let first = offset(rows.len(), sel, visible);
    let built: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, r)| {
            let s = r.stats;
            let out = s.op_time.outliers();
            let mut cells = vec![
                Cell::from(clip(&s.op, if wide { op_w as usize } else { 40 })),
                Cell::from(s.head.clone()),
                Cell::from(s.op_time.n.to_string()),
                Cell::from(fmt_ns(s.op_time.median)),
            ];
            if with_ci {
                cells.push(Cell::from(interval(&s.op_time.median_ci)));
            }
            cells.extend([
                Cell::from(s.card_time.as_ref().map_or("-".into(), |c| fmt_ns(c.median))),
                Cell::from(Span::styled(out.to_string(), if out > 0 { t.warn() } else { t.text() })),
            ]);
            if wide {
                cells.push(Cell::from(s.card_time.as_ref().map_or("-".into(), |c| interval(&c.ci))));
                // The bars alone (the range is in the detail below), outliers counted at the ends.
                let range = histogram_range(r.values, &s.op_time);
                let [bars, _] = text_histogram_in(r.values, &s.op_time, hist_w, range);
                cells.push(Cell::from(Span::styled(bars, t.accent())));
            }
            let row = Row::new(cells);
            if focused && i == sel {
                row.style(t.selected())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(built, widths).header(Row::new(header).style(t.header())).column_spacing(1);
    f.render_widget(table, area);
}

fn detail(app: &App, f: &mut Frame, area: Rect, r: &LiveRow<'_>) {
    let t = &app.theme;
    let s = r.stats;
    let m = &s.op_time;
    let blk = Block::default()
        .borders(Borders::TOP)
        .title(format!(" {} on {} · card {} ", s.op, s.head, s.card_id))
        .border_style(t.dim());
    let mut lines = vec![Line::from(vec![
        Span::styled(" op   ", t.header()),
        Span::raw(format!(
            "median {}  95% CI {}  p5 {}  p95 {}  n {}",
            fmt_ns(m.median),
            interval(&m.median_ci),
            fmt_ns(m.p5),
            fmt_ns(m.p95),
            m.n
        )),
    ])];
    match (&s.card_time, &s.baseline) {
        (Some(c), Some(b)) => {
            lines.push(Line::from(vec![
                Span::styled(" card ", t.header()),
                Span::raw(format!("median {}  95% CI {}  (op − baseline)", fmt_ns(c.median), interval(&c.ci))),
            ]));
            lines.push(Line::from(vec![
                Span::styled(" baseline ", t.header()),
                Span::raw(format!("median {} · {} pairs", fmt_ns(b.median), c.pairs)),
            ]));
        }
        _ => lines.push(Line::styled(" card time: no baseline for this op", t.dim())),
    }
    lines.push(Line::from(vec![
        Span::styled(" outliers ", t.header()),
        Span::raw(format!(
            "{} low, {} high (Tukey fences {} … {}), kept",
            m.outliers_low,
            m.outliers_high,
            fmt_ns(m.fence_lo),
            fmt_ns(m.fence_hi)
        )),
    ]));
    // Room for the outlier counts and the range after the bars, the legend after the marks.
    let width = (area.width as usize).saturating_sub(36).max(8);
    let [bars, marks] = text_histogram(r.values, m, width);
    lines.push(Line::styled(bars, t.accent()));
    lines.push(Line::styled(format!("{}   ┃ median  [ ] 95% CI", marks.trim_end()), t.dim()));
    f.render_widget(Paragraph::new(lines).block(blk), area);
}
