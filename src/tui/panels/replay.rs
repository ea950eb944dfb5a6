//! Replay: a trace file's rows (kind, head, card, case, step, command, SW, duration), the
//! live replay's check of each row with the first divergence marked and its hex diff, and
//! two traces side by side with the differing rows marked.

use super::exchange;
use super::{block, clip, offset};
use crate::event::{Exchange, RowKind};
use crate::sw::{self, SwClass};
use crate::tui::align::{Pair, Side};
use crate::tui::app::{App, Panel};
use crate::tui::check::{pieces, Piece};
use crate::tui::replay::{event_text, step_text, LiveReplay, Mark, ReplayPhase, ReplayView};
use crate::tui::stats::fmt_ns;
use crate::tui::theme::Theme;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let r = &app.replay;
    let title = match (&r.file, r.side_by_side) {
        (Some(a), true) => {
            let diff = r.pairs.iter().filter(|p| p.differs()).count();
            format!("side by side · {} rows aligned, {diff} differ · {}", r.pairs.len(), name(&a.path))
        }
        (Some(a), false) => format!("{} · {} rows", name(&a.path), a.rows.len()),
        (None, _) => String::new(),
    };
    let b = block(app, Panel::Replay, title, focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let t = &app.theme;
    let Some(file) = &r.file else {
        let mut lines =
            vec![Line::styled(" No trace open: o opens a trace file (/ in the picker types a path).", t.dim())];
        if let Some(p) = &r.loading {
            lines.insert(0, Line::raw(format!(" reading {} …", p.display())));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        return;
    };
    if r.side_by_side {
        side_by_side(app, f, inner);
        return;
    }
    if r.detail {
        if let Some(x) = file.rows.get(r.sel) {
            row_detail(app, f, inner, x, r.sel);
            return;
        }
    }
    let [top, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    f.render_widget(Paragraph::new(status(t, r, file.rows.len())), top);
    // The divergence of the selected row (else the first one) under the rows.
    let live = r.live.as_ref();
    let shown = live.and_then(|l| {
        l.diverging
            .get(&r.sel)
            .map(|c| (r.sel, c))
            .or_else(|| l.first_divergence.and_then(|i| l.diverging.get(&i).map(|c| (i, c))))
    });
    let (table_area, pane) = match shown {
        Some(s) if body.height >= 12 => {
            let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Length(7)]).areas(body);
            (a, Some((b, s)))
        }
        _ => (body, None),
    };
    rows_table(t, f, table_area, &file.rows, live, r.sel, focused);
    if let Some((area, (i, c))) = pane {
        let first = live.and_then(|l| l.first_divergence) == Some(i);
        let head = format!(
            "{} row {} (line {}) {}: {}",
            if first { "first divergence:" } else { "divergence:" },
            i + 1,
            app.replay.file.as_ref().map_or(0, |f| f.line_of(i)),
            file.rows.get(i).map(event_text).unwrap_or_default(),
            c.detail
        );
        let mut lines = vec![Line::styled(head, t.fail())];
        lines.extend(hexdiff_lines(t, &c.diff));
        let blk = Block::default().borders(Borders::TOP).border_style(t.dim());
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(blk), area);
    }
}

fn name(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn status<'a>(t: &Theme, r: &ReplayView, rows: usize) -> Line<'a> {
    let Some(l) = &r.live else {
        let cut = r
            .file
            .as_ref()
            .and_then(|f| f.cut_last_row)
            .map_or(String::new(), |n| format!(" (cut row at line {n} left out)"));
        return Line::styled(
            format!(" {rows} rows{cut} · r replays on a head · d opens a trace to compare · Enter opens a row"),
            t.dim(),
        );
    };
    let style = match l.phase {
        ReplayPhase::Failed(_) => t.fail(),
        ReplayPhase::Finished if l.diverged == 0 => t.pass(),
        _ if l.diverged > 0 => t.fail(),
        _ => t.accent(),
    };
    let card = l.req.card.as_ref().map_or(String::new(), |c| format!(" card {c}"));
    // What the operator watches first; where it runs last (it is cut on a narrow screen).
    let mut spans = vec![
        Span::styled(format!(" ● replay {} ", l.phase.word()), style),
        Span::raw(format!(" {}/{rows} rows checked  ", l.checked)),
        Span::styled(format!("{} diverged", l.diverged), if l.diverged > 0 { t.fail() } else { t.pass() }),
    ];
    if let Some(i) = l.first_divergence {
        spans.push(Span::styled(format!("  first at row {}", i + 1), t.fail()));
    }
    spans.push(Span::raw(format!("  on {} (trace {}{card})", l.req.head, l.req.trace_head)));
    if let ReplayPhase::Failed(e) = &l.phase {
        spans.push(Span::styled(format!("  {e}"), t.fail()));
    }
    Line::from(spans)
}

fn kind_word(k: RowKind) -> &'static str {
    match k {
        RowKind::Command => "cmd",
        other => other.as_str(),
    }
}

/// The SW cell and the row's style: in-doubt rows have no SW, events none either.
fn sw_cell<'a>(t: &Theme, x: &Exchange) -> Span<'a> {
    match x.kind {
        RowKind::InDoubt => Span::styled("----", t.warn()),
        k if !k.is_wire() => Span::styled("", t.dim()),
        _ => {
            let style = if sw::class(x.sw) == SwClass::Normal { t.text() } else { t.warn() };
            Span::styled(format!("{:04X}", x.sw), style)
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    c[c.len().saturating_sub(n)..].iter().collect()
}

fn rows_table(
    t: &Theme,
    f: &mut Frame,
    area: Rect,
    rows: &[Exchange],
    live: Option<&LiveReplay>,
    sel: usize,
    focused: bool,
) {
    let wide = area.width >= 110;
    let with_card = area.width >= 90;
    let visible = area.height.saturating_sub(1) as usize;
    let first = offset(rows.len(), sel, visible);
    // Below 90 columns the card and the step go (they are in the row's detail).
    let mut header = vec!["", "Row", "Kind", "Head"];
    let mut w: Vec<u16> = vec![1, 6, 12, 7];
    if with_card {
        header.extend(["Card", "Case", "Step"]);
        w.extend(if wide { [16, 14, 16] } else { [8, 12, 12] });
    } else {
        header.push("Case");
        w.push(12);
    }
    if wide {
        header.push("Seed");
        w.push(8);
    }
    header.extend(["Command", "SW", "Dur"]);
    w.extend([0, 4, if wide { 9 } else { 8 }]);
    let widths: Vec<Constraint> =
        w.iter().map(|&w| if w == 0 { Constraint::Fill(1) } else { Constraint::Length(w) }).collect();
    let first_div = live.and_then(|l| l.first_divergence);
    let built: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, x)| {
            let mark = live.map_or(Mark::Unchecked, |l| l.mark(i));
            let (m, mut style) = match mark {
                Mark::Diverged => ("✗", t.fail()),
                Mark::Matched => ("✓", t.text()),
                Mark::Unchecked if x.kind == RowKind::InDoubt => ("?", t.warn()),
                Mark::Unchecked => (" ", if x.kind.is_wire() { t.text() } else { t.dim() }),
            };
            let mut cells = vec![
                Cell::from(m),
                Cell::from((i + 1).to_string()),
                Cell::from(kind_word(x.kind)),
                Cell::from(x.head.clone()),
            ];
            if with_card {
                cells.push(Cell::from(if wide { x.card_id.clone() } else { tail(&x.card_id, 8) }));
            }
            cells.push(Cell::from(x.test_step.clone()));
            if with_card {
                cells.push(Cell::from(step_text(x)));
            }
            if wide {
                cells.push(Cell::from(x.protocol_step.clone()));
            }
            let what = if x.kind == RowKind::InDoubt {
                format!("{} in doubt: {}", event_text(x), x.error)
            } else {
                event_text(x)
            };
            cells.extend([
                Cell::from(what),
                Cell::from(sw_cell(t, x)),
                Cell::from(if x.kind.is_wire() { fmt_ns(x.duration_ns) } else { String::new() }),
            ]);
            if first_div == Some(i) {
                style = t.fail().patch(t.underline());
            }
            if focused && i == sel {
                style = style.patch(t.selected());
            }
            Row::new(cells).style(style)
        })
        .collect();
    let table = Table::new(built, widths).header(Row::new(header).style(t.header())).column_spacing(1);
    f.render_widget(table, area);
}

/// A hex diff, its differing bytes highlighted (their brackets become spaces, so the
/// expected and actual lines stay in columns) and its masked ones dimmed.
fn hexdiff_lines<'a>(t: &Theme, diff: &str) -> Vec<Line<'a>> {
    diff.lines()
        .map(|l| {
            let mut spans = Vec::new();
            for p in pieces(l) {
                match p {
                    Piece::Same(s) => spans.push(Span::raw(s)),
                    Piece::Differ(s) => {
                        spans.push(Span::raw(" "));
                        spans.push(Span::styled(s, t.differ()));
                        spans.push(Span::raw(" "));
                    }
                    Piece::Masked(s) => spans.push(Span::styled(s, t.dim())),
                }
            }
            Line::from(spans)
        })
        .collect()
}

/// One row opened: the exchange in full, under its divergence when the replay diverged on it.
fn row_detail(app: &App, f: &mut Frame, area: Rect, x: &Exchange, i: usize) {
    let t = &app.theme;
    let Some(c) = app.replay.live.as_ref().and_then(|l| l.diverging.get(&i)) else {
        exchange::detail(t, f, area, x, &x.card_id, false, app.detail_scroll);
        return;
    };
    let lines_of = c.lines.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let mut lines = vec![
        Line::styled(format!("row {} diverged (trace line {lines_of}): {}", i + 1, c.detail), t.fail()),
        Line::styled("expected (the trace) against actual (the card now):", t.dim()),
    ];
    lines.extend(hexdiff_lines(t, &c.diff));
    lines.push(Line::styled("n/N next / previous divergence", t.dim()));
    let h = (lines.len() as u16 + 1).min(area.height / 2);
    let [top, rest] = Layout::vertical([Constraint::Length(h), Constraint::Fill(1)]).areas(area);
    let blk = Block::default().borders(Borders::BOTTOM).border_style(t.dim());
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(blk), top);
    exchange::detail(t, f, rest, x, &x.card_id, false, app.detail_scroll);
}

fn sw_text(x: &Exchange) -> String {
    match x.kind {
        RowKind::InDoubt => format!("none (in doubt: {})", x.error),
        k if !k.is_wire() => "-".into(),
        _ => format!("{:04X}", x.sw),
    }
}

fn side_by_side(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let r = &app.replay;
    let (Some(a), Some(b)) = (&r.file, &r.other) else { return };
    let [top, body] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let half = (top.width.saturating_sub(3) / 2) as usize;
    let only = |f: fn(&Side) -> bool| r.pairs.iter().filter(|p| f(&p.side)).count();
    let (only_a, only_b) = (only(|s| matches!(s, Side::OnlyA(_))), only(|s| matches!(s, Side::OnlyB(_))));
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!(" A {}", clip(&name(&a.path), half.saturating_sub(3))), t.header()),
            Span::raw(format!("  only in A {only_a}, only in B {only_b}  ")),
            Span::styled(format!("B {}", clip(&name(&b.path), half.saturating_sub(3))), t.header()),
        ])),
        top,
    );
    let sel = r.pair_sel;
    let pair = r.pairs.get(sel);
    if r.detail {
        if let Some(p) = pair {
            pair_detail(app, f, body, p);
            return;
        }
    }
    let (table_area, pane) = match pair.and_then(|p| p.check.as_ref().filter(|c| !c.matched)) {
        Some(c) if body.height >= 12 => {
            let [x, y] = Layout::vertical([Constraint::Fill(1), Constraint::Length(6)]).areas(body);
            (x, Some((y, c)))
        }
        _ => (body, None),
    };
    let visible = table_area.height.saturating_sub(1) as usize;
    let first = offset(r.pairs.len(), sel, visible);
    let side_cells = |x: Option<&Exchange>, row: Option<usize>| -> Vec<Cell> {
        match x {
            Some(x) => vec![
                Cell::from(row.map_or(String::new(), |i| (i + 1).to_string())),
                Cell::from(kind_word(x.kind)),
                Cell::from(if x.kind == RowKind::InDoubt {
                    format!("{} in doubt", event_text(x))
                } else {
                    event_text(x)
                }),
                Cell::from(sw_cell(t, x)),
                Cell::from(if x.kind.is_wire() { fmt_ns(x.duration_ns) } else { String::new() }),
            ],
            None => vec![
                Cell::from(""),
                Cell::from(""),
                Cell::from(Span::styled("(none)", t.dim())),
                Cell::from(""),
                Cell::from(""),
            ],
        }
    };
    let built: Vec<Row> = r
        .pairs
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, p)| {
            let (xa, xb) = r.pair_rows(p);
            let (ia, ib) = match p.side {
                Side::Both(i, j) => (Some(i), Some(j)),
                Side::OnlyA(i) => (Some(i), None),
                Side::OnlyB(j) => (None, Some(j)),
            };
            let (mark, mut style) = match (&p.side, p.differs()) {
                (Side::OnlyA(_), _) => ("<", t.fail()),
                (Side::OnlyB(_), _) => (">", t.fail()),
                (_, true) => ("≠", t.fail()),
                (_, false) => (" ", t.text()),
            };
            let case = xa.or(xb).map_or(String::new(), |x| x.test_step.clone());
            let mut cells = vec![Cell::from(mark), Cell::from(case)];
            cells.extend(side_cells(xa, ia));
            cells.push(Cell::from(Span::styled("│", t.dim())));
            cells.extend(side_cells(xb, ib));
            if i == sel {
                style = style.patch(t.selected());
            }
            Row::new(cells).style(style)
        })
        .collect();
    let side_w = [
        Constraint::Length(6),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Length(8),
    ];
    let mut widths = vec![Constraint::Length(1), Constraint::Length(if table_area.width >= 120 { 16 } else { 10 })];
    widths.extend(side_w);
    widths.push(Constraint::Length(1));
    widths.extend(side_w);
    let header = ["", "Case", "A row", "Kind", "Command", "SW", "Dur", "│", "B row", "Kind", "Command", "SW", "Dur"];
    let table = Table::new(built, widths).header(Row::new(header).style(t.header())).column_spacing(1);
    f.render_widget(table, table_area);
    if let Some((area, c)) = pane {
        let mut lines = vec![Line::styled(format!("≠ {}", c.detail), t.fail())];
        lines.extend(hexdiff_lines(t, &c.hexdiff));
        let blk = Block::default().borders(Borders::TOP).border_style(t.dim());
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(blk), area);
    }
}

/// A pair opened: both rows' fields and, when they differ, what differs.
fn pair_detail(app: &App, f: &mut Frame, area: Rect, p: &Pair) {
    let t = &app.theme;
    let (xa, xb) = app.replay.pair_rows(p);
    let mut lines = Vec::new();
    for (label, x) in [("A", xa), ("B", xb)] {
        match x {
            Some(x) => {
                lines.push(Line::styled(
                    format!(
                        "{label}  {} {}  head {}  card {}  case {}  step {}  seed {}",
                        kind_word(x.kind),
                        event_text(x),
                        x.head,
                        x.card_id,
                        x.test_step,
                        step_text(x),
                        x.protocol_step
                    ),
                    t.header(),
                ));
                lines.push(Line::raw(format!("   command  {}", hex::encode_upper(&x.command))));
                lines.push(Line::raw(format!("   response {}", hex::encode_upper(&x.response))));
                lines.push(Line::raw(format!("   SW {}  duration {}", sw_text(x), fmt_ns(x.duration_ns))));
            }
            None => lines.push(Line::styled(format!("{label}  (no such row)"), t.dim())),
        }
    }
    match &p.check {
        Some(c) if c.matched => lines.push(Line::styled("the rows match", t.pass())),
        Some(c) => {
            lines.push(Line::styled(format!("≠ {}", c.detail), t.fail()));
            lines.extend(hexdiff_lines(t, &c.hexdiff));
        }
        None => lines.push(Line::styled("only one trace has this row", t.fail())),
    }
    lines.push(Line::styled("Esc back   j/k previous / next pair   n/N next / previous difference", t.dim()));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).scroll((app.detail_scroll, 0)), area);
}
