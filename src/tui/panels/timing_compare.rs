//! The Timing panel's comparison of two timing results (`timing::compare`, as `cardbench time
//! compare A B`): per op the shift B − A, its 95% CI, the Mann-Whitney p-value and the verdict
//! against the threshold the operator sets; the selected op's two histograms below.

use super::timing_spec::interval;
use super::{block, clip, offset};
use crate::timing::compare::{Measure, Verdict};
use crate::timing::report::fmt_ns;
use crate::tui::app::{App, Panel};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", fmt_ns(x))
    } else {
        format!("-{}", fmt_ns(-x))
    }
}

/// A threshold as the operator typed it: `3.5`, not `3.5000000000000004`.
pub fn threshold_pct(t: f64) -> f64 {
    (t * 1e6).round() / 1e4
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.2}%", x * 100.0)
    } else {
        "-".into()
    }
}

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let t = &app.theme;
    let v = &app.timing_view;
    let threshold = format!("threshold ±{}%", threshold_pct(v.threshold));
    let Some(c) = &v.compare else {
        let b = block(app, Panel::Timing, format!("comparison · {threshold}"), focused);
        let inner = b.inner(area);
        f.render_widget(b, area);
        let first = if v.loading { " Reading the two results…" } else { " No comparison yet." };
        let lines = vec![
            Line::styled(first, t.dim()),
            Line::styled(" c picks two timing results under logs/ (A, then B; / types a path).", t.dim()),
        ];
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        return;
    };
    let r = &c.result;
    let b = block(app, Panel::Timing, format!("comparison · {threshold}"), focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let w = inner.width.saturating_sub(30) as usize;
    let regressed = r.regressed();
    let head = vec![
        Line::from(vec![
            Span::styled(" A ", t.header()),
            Span::raw(format!("{}  ({}, {})", clip(&r.a, w), count(r.runs_a, "run"), count(r.cards_a, "card"))),
        ]),
        Line::from(vec![
            Span::styled(" B ", t.header()),
            Span::raw(format!("{}  ({}, {})", clip(&r.b, w), count(r.runs_b, "run"), count(r.cards_b, "card"))),
        ]),
        Line::from(vec![
            Span::styled(
                if regressed { " ● B regressed " } else { " ● no regression " },
                if regressed { t.fail() } else { t.pass() },
            ),
            Span::raw(format!(
                " shift B − A: Hodges-Lehmann, {:.0}% CI; Mann-Whitney p; {threshold} (+/- T)",
                r.confidence * 100.0
            )),
        ]),
    ];
    let [top, body] = Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(inner);
    f.render_widget(Paragraph::new(head), top);
    if r.ops.is_empty() {
        let mut lines = vec![Line::styled(" No op measured on both sides.", t.fail())];
        for (side, ops) in [("A", &r.only_a), ("B", &r.only_b)] {
            if !ops.is_empty() {
                lines.push(Line::styled(format!(" only in {side}: {}", ops.join(", ")), t.dim()));
            }
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), body);
        return;
    }
    let sel = v.sel.min(r.ops.len() - 1);
    let (table_area, detail_area) = if body.height >= 12 {
        let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Length(8)]).areas(body);
        (a, Some(b))
    } else {
        (body, None)
    };
    let wide = table_area.width >= 120;
    let mut header = vec!["Op"];
    let mut widths = vec![Constraint::Fill(1)];
    if wide {
        header.extend(["of", "n A", "n B", "median A", "median B"]);
        widths.extend([4, 6, 6, 11, 11].map(Constraint::Length));
    }
    // Below 82 columns (the dashboard) the CI is in the detail below only.
    let with_ci = table_area.width >= 82;
    header.push("shift");
    widths.push(Constraint::Length(11));
    if with_ci {
        header.push("95% CI");
        // Room for two negative figures: `-136.865–-122.914 µs`.
        widths.push(Constraint::Length(21));
    }
    header.extend(["rel", "p", "verdict"]);
    widths.extend([8, 6, 12].map(Constraint::Length));
    let visible = table_area.height.saturating_sub(1) as usize;
    let first = offset(r.ops.len(), sel, visible);
    let built: Vec<Row> = r
        .ops
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, o)| {
            let mut cells = vec![Cell::from(o.op.clone())];
            if wide {
                cells.extend([
                    Cell::from(match o.measure {
                        Measure::Card => "card",
                        Measure::Op => "op",
                    }),
                    Cell::from(o.n_a.to_string()),
                    Cell::from(o.n_b.to_string()),
                    Cell::from(fmt_ns(o.median_a)),
                    Cell::from(fmt_ns(o.median_b)),
                ]);
            }
            let p = if o.test.p_value < 0.001 { "<0.001".to_string() } else { format!("{:.3}", o.test.p_value) };
            let (verdict, style) = match o.verdict {
                Verdict::Slower => ("slower", t.fail()),
                Verdict::Faster => ("faster", t.pass()),
                Verdict::NoSignificantDifference if o.significant => ("within thr.", t.text()),
                Verdict::NoSignificantDifference => ("no sig. diff", t.dim()),
            };
            cells.push(Cell::from(signed(o.test.shift)));
            if with_ci {
                cells.push(Cell::from(interval(&o.test.ci)));
            }
            cells.extend([Cell::from(pct(o.relative)), Cell::from(p), Cell::from(Span::styled(verdict, style))]);
            let row = Row::new(cells);
            if focused && i == sel {
                row.style(t.selected())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(built, widths).header(Row::new(header).style(t.header())).column_spacing(1);
    f.render_widget(table, table_area);
    if let Some(area) = detail_area {
        let o = &r.ops[sel];
        let what = match o.measure {
            Measure::Card => "card time (op − baseline)",
            Measure::Op => "op duration",
        };
        let verdict = if o.significant && o.verdict == Verdict::NoSignificantDifference {
            format!("{} (shift real, but within ±{}%)", o.verdict.word(), threshold_pct(r.threshold))
        } else {
            o.verdict.word().to_string()
        };
        let blk = Block::default()
            .borders(Borders::TOP)
            .title(format!(" {} · {what} · {verdict} ", o.op))
            .border_style(t.dim());
        let mut lines = vec![Line::raw(format!(
            " median A {}  B {}  shift {} ({}, CI {} … {})  p {:.4}",
            fmt_ns(o.median_a),
            fmt_ns(o.median_b),
            signed(o.test.shift),
            pct(o.relative),
            pct(o.relative_ci.lo),
            pct(o.relative_ci.hi),
            o.test.p_value
        ))];
        // A above B on one scale, each with its median ┃ and the median's CI [ ].
        if let Some(h) = c.histogram(&o.op) {
            lines.extend(h.lines().map(|l| Line::styled(l.to_string(), t.accent())));
        }
        f.render_widget(Paragraph::new(lines).block(blk), area);
    }
}
