//! Exchanges as rows (live trace, a card's trace) and as a detail view with full hex.

use super::{clip, offset};
use crate::event::Exchange;
use crate::event::RowKind;
use crate::sw::{self, SwClass};
use crate::tui::stats::fmt_ns;
use crate::tui::theme::Theme;
use crate::tui::trace::{command_name, header_fields, hex_lines};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// One exchange as a table row would show it.
pub struct RowView<'a> {
    pub x: &'a Exchange,
    /// Card under test.
    pub card: &'a str,
    pub failed: bool,
}

/// Draw rows `rows` (all of them; only a window is built) with `sel` highlighted.
pub fn table(theme: &Theme, f: &mut Frame, area: Rect, rows: &[RowView<'_>], sel: Option<usize>) {
    let wide = area.width >= 150;
    let visible = area.height.saturating_sub(1) as usize;
    let first = offset(rows.len(), sel.unwrap_or(0), visible);
    // Below 90 columns the card goes (it is in the detail view and the filter).
    let with_card = area.width >= 90;
    let header: Vec<&str> = if wide {
        vec!["", "Time", "Head", "Card", "Case", "Seed step", "Command", "SW", "Meaning", "Duration"]
    } else if with_card {
        vec!["", "Head", "Card", "Case", "Step", "Command", "SW", "Meaning", "Dur"]
    } else {
        vec!["", "Head", "Case", "Step", "Command", "SW", "Meaning", "Dur"]
    };
    // Column widths; 0 takes what is left (the SW meaning).
    let w: &[u16] = if wide {
        &[1, 12, 8, 16, 18, 16, 24, 4, 0, 9]
    } else if with_card {
        &[1, 7, 8, 14, 12, 18, 4, 0, 8]
    } else {
        &[1, 7, 12, 8, 14, 4, 0, 8]
    };
    let widths: Vec<Constraint> =
        w.iter().map(|&w| if w == 0 { Constraint::Fill(1) } else { Constraint::Length(w) }).collect();
    let built: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, r)| {
            let x = r.x;
            let class = sw::class(x.sw);
            let doubt = x.kind == RowKind::InDoubt;
            // Power, card and step rows: their kind where the command goes, no status word.
            let event = !x.kind.is_wire();
            let sw_style = match class {
                SwClass::Normal if !doubt => theme.text(),
                _ => theme.warn(),
            };
            let mark = if r.failed { "✗" } else { " " };
            let card = if wide { r.card.to_string() } else { tail(r.card, 8) };
            let mut cells = vec![Cell::from(mark)];
            if wide {
                cells.push(Cell::from(x.wall.format("%H:%M:%S%.3f").to_string()));
            }
            cells.push(Cell::from(x.head.clone()));
            if with_card {
                cells.push(Cell::from(card));
            }
            cells.extend([
                Cell::from(x.test_step.clone()),
                Cell::from(x.protocol_step.clone()),
                Cell::from(if event { x.kind.as_str() } else { command_name(&x.command) }),
                Cell::from(Span::styled(
                    if doubt || event { "----".into() } else { format!("{:04X}", x.sw) },
                    if event { theme.text() } else { sw_style },
                )),
                Cell::from(Span::styled(
                    if doubt {
                        format!("in doubt: {}", x.error)
                    } else if event {
                        event_meaning(x)
                    } else {
                        sw::describe(x.sw).to_string()
                    },
                    if event { theme.text() } else { sw_style },
                )),
                Cell::from(fmt_ns(x.duration_ns)),
            ]);
            let mut style = if r.failed { theme.fail() } else { theme.text() };
            if sel == Some(i) {
                style = style.patch(theme.selected());
            }
            Row::new(cells).style(style)
        })
        .collect();
    let t = Table::new(built, widths).header(Row::new(header).style(theme.header())).column_spacing(1);
    f.render_widget(t, area);
}

fn tail(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    c[c.len().saturating_sub(n)..].iter().collect()
}

/// Everything about one exchange: where it ran, the decoded header, full command and
/// response hex, the status word's meaning, the time it took.
pub fn detail(theme: &Theme, f: &mut Frame, area: Rect, x: &Exchange, card: &str, failed: bool, scroll: u16) {
    let w = area.width as usize;
    let per_line = (w.saturating_sub(8) / 3 / 4 * 4).clamp(4, 32);
    let label = |s: &str| Span::styled(format!("{s:<10}"), theme.header());
    let mut lines = vec![
        Line::from(vec![
            label("Exchange"),
            Span::raw(format!("#{}  head {}  card {}", x.seq, x.head, if card.is_empty() { &x.card_id } else { card })),
        ]),
        Line::from(vec![
            label("Time"),
            Span::raw(format!("{}  (+{})", x.wall.format("%Y-%m-%d %H:%M:%S%.6f UTC"), fmt_ns(x.mono_ns))),
        ]),
        Line::from(vec![
            label("Case"),
            Span::styled(x.test_step.clone(), if failed { theme.fail() } else { theme.text() }),
            Span::raw(if failed { "  (case failed)" } else { "" }),
        ]),
        Line::from(vec![label("Seed step"), Span::raw(x.protocol_step.clone())]),
        Line::from(vec![label("Command"), Span::styled(command_name(&x.command), theme.accent())]),
    ];
    let fields: Vec<String> = header_fields(&x.command).into_iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.push(Line::from(vec![label(""), Span::raw(clip(&fields.join("  "), w.saturating_sub(10)))]));
    lines.push(Line::from(vec![label("Cmd hex"), Span::styled(format!("{} bytes", x.command.len()), theme.dim())]));
    for l in hex_lines(&x.command, per_line) {
        lines.push(Line::raw(format!("  {l}")));
    }
    lines.push(Line::from(vec![
        label("Resp hex"),
        Span::styled(format!("{} bytes + SW", x.response.len()), theme.dim()),
    ]));
    for l in hex_lines(&x.response, per_line) {
        lines.push(Line::raw(format!("  {l}")));
    }
    if x.kind == RowKind::InDoubt {
        // No answer came back: what the card did is unknown until its state is read.
        lines.push(Line::from(vec![
            label("SW"),
            Span::styled("none", theme.warn()),
            Span::raw(format!("  in doubt: {}", x.error)),
        ]));
    } else {
        let class = sw::class(x.sw);
        let sw_style = if class == SwClass::Normal { theme.pass() } else { theme.warn() };
        lines.push(Line::from(vec![
            label("SW"),
            Span::styled(format!("{:04X}", x.sw), sw_style),
            Span::raw(format!("  {} ({})", sw::describe(x.sw), class.name())),
        ]));
    }
    lines.push(Line::from(vec![label("Duration"), Span::raw(fmt_ns(x.duration_ns))]));
    if !x.note.is_empty() {
        lines.push(Line::from(vec![label("Note"), Span::raw(x.note.clone())]));
    }
    lines.push(Line::styled("Esc back   j/k previous / next   PgUp/PgDn scroll", theme.dim()));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).scroll((scroll, 0)), area);
}

/// What a power, card or step row says, for the Meaning column.
fn event_meaning(x: &crate::event::Exchange) -> String {
    match x.kind {
        _ if !x.error.is_empty() => x.error.clone(),
        RowKind::PowerOn | RowKind::WarmReset => format!("ATR {}", hex::encode_upper(&x.atr)),
        RowKind::Step => x.note.clone(),
        RowKind::Insert if !x.note.is_empty() => "card made by the bench (personalized)".into(),
        _ => String::new(),
    }
}
