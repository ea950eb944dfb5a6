//! Exchanges as rows (live trace, a card's trace) and as a detail view with full hex.

use super::{clip, offset};
use crate::event::Exchange;
use crate::event::RowKind;
use crate::sw::{self, SwClass};
use crate::tui::decode;
use crate::tui::stats::fmt_ns;
use crate::tui::theme::Theme;
use crate::tui::trace::command_name;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

/// One exchange as a table row would show it.
pub struct RowView<'a> {
    pub x: &'a Exchange,
    /// Card under test (shown when the exchange names no card: rows before identification).
    pub card: &'a str,
    /// The exchange its failed case failed on: marked ✗.
    pub failed: bool,
}

/// The card a row's head talked to: the exchange's own card ID (a peer head's rows name the
/// peer card), else the card under test.
fn card_of<'a>(r: &'a RowView<'_>) -> &'a str {
    if r.x.card_id.is_empty() {
        r.card
    } else {
        &r.x.card_id
    }
}

/// A column of the table: its header, the narrowest it may get, what it holds when space is
/// short and when there is room, and how a value is cut.
struct Col {
    header: &'static str,
    short_header: &'static str,
    min: u16,
    short: u16,
    full: u16,
    /// Cut from the left (card IDs: their last digits tell cards apart).
    keep_tail: bool,
}

/// Widths for `cols` in `avail` columns: every column gets its minimum, then, in priority
/// order (the order of `cols`), what it needs shortened, then what it needs in full; the
/// last column (the SW meaning) takes what is left.
fn widths(cols: &[Col], avail: u16) -> Vec<u16> {
    let mut w: Vec<u16> = cols.iter().map(|c| c.min).collect();
    let mut left = avail.saturating_sub(w.iter().sum());
    for want in [|c: &Col| c.short, |c: &Col| c.full] {
        for (i, c) in cols.iter().enumerate() {
            let add = want(c).max(w[i]) - w[i];
            let add = add.min(left);
            w[i] += add;
            left -= add;
        }
    }
    if let Some(last) = w.last_mut() {
        *last += left;
    }
    w
}

fn cut(s: &str, n: u16, keep_tail: bool) -> String {
    let n = n as usize;
    let len = s.chars().count();
    if len <= n {
        return s.to_string();
    }
    if n == 0 {
        return String::new();
    }
    if keep_tail {
        let tail: String = s.chars().skip(len - (n - 1)).collect();
        format!("…{tail}")
    } else {
        clip(s, n)
    }
}

/// Draw rows `rows` (all of them; only a window is built) with `sel` highlighted. Columns are
/// sized by what the rows shown hold, in priority order: head, card, case, seed step,
/// command, SW, meaning, duration (and the time when everything else fits); a value that
/// does not fit is abbreviated (`…`), never dropped (the detail view has it whole).
pub fn table(theme: &Theme, f: &mut Frame, area: Rect, rows: &[RowView<'_>], sel: Option<usize>) {
    let visible = area.height.saturating_sub(1) as usize;
    let first = offset(rows.len(), sel.unwrap_or(0), visible);
    let shown: Vec<(usize, &RowView)> = rows.iter().enumerate().skip(first).take(visible).collect();
    let cells: Vec<[String; 8]> = shown.iter().map(|(_, r)| texts(r)).collect();
    let most = |k: usize, floor: usize| cells.iter().map(|c| c[k].chars().count()).max().unwrap_or(0).max(floor) as u16;
    // Column order is priority order; the meaning, last in priority, is drawn after the SW.
    let cols = [
        Col {
            header: "Head",
            short_header: "Head",
            min: 4,
            short: most(0, 4).min(8),
            full: most(0, 4),
            keep_tail: false,
        },
        Col {
            header: "Card",
            short_header: "Card",
            min: 6,
            short: most(1, 4).min(8),
            full: most(1, 4),
            keep_tail: true,
        },
        Col {
            header: "Case",
            short_header: "Case",
            min: 6,
            short: most(2, 4).min(12),
            full: most(2, 4),
            keep_tail: false,
        },
        Col {
            header: "Seed step",
            short_header: "Step",
            min: 5,
            short: most(3, 4).min(9),
            full: most(3, 9),
            keep_tail: false,
        },
        Col {
            header: "Command",
            short_header: "Cmd",
            min: 8,
            short: most(4, 7).min(13),
            full: most(4, 7),
            keep_tail: false,
        },
        Col { header: "SW", short_header: "SW", min: 4, short: 4, full: 4, keep_tail: false },
        Col { header: "Duration", short_header: "Dur", min: 7, short: most(6, 3), full: most(6, 8), keep_tail: false },
        Col { header: "Meaning", short_header: "Meaning", min: 6, short: 10, full: most(7, 7), keep_tail: false },
    ];
    // Mark column and the spaces between the 9 columns.
    let avail = area.width.saturating_sub(1 + 8);
    let mut w = widths(&cols, avail);
    // The time goes in front when everything else is whole and 13 columns are left over.
    let spare = w[7].saturating_sub(cols[7].full);
    let with_time = spare >= 13;
    if with_time {
        w[7] -= 13;
    }
    let order = [0usize, 1, 2, 3, 4, 5, 7, 6];
    let mut header: Vec<String> = vec![String::new()];
    let mut constraints = vec![Constraint::Length(1)];
    if with_time {
        header.push("Time".into());
        constraints.push(Constraint::Length(12));
    }
    for &k in &order {
        let c = &cols[k];
        let h = if (c.header.len() as u16) <= w[k] { c.header } else { c.short_header };
        header.push(h.into());
        constraints.push(Constraint::Length(w[k]));
    }
    let built: Vec<Row> = shown
        .iter()
        .zip(&cells)
        .map(|((i, r), text)| {
            let x = r.x;
            let class = sw::class(x.sw);
            let doubt = x.kind == RowKind::InDoubt;
            // Power, card and step rows: their kind where the command goes, no status word.
            let event = !x.kind.is_wire();
            let sw_style = if event || (class == SwClass::Normal && !doubt) { theme.text() } else { theme.warn() };
            let mut out = vec![Cell::from(if r.failed { "✗" } else { " " })];
            if with_time {
                out.push(Cell::from(x.wall.format("%H:%M:%S%.3f").to_string()));
            }
            for &k in &order {
                let v = cut(&text[k], w[k], cols[k].keep_tail);
                out.push(if k == 5 || k == 7 { Cell::from(Span::styled(v, sw_style)) } else { Cell::from(v) });
            }
            let mut style = if r.failed { theme.fail() } else { theme.text() };
            if sel == Some(*i) {
                style = style.patch(theme.selected());
            }
            Row::new(out).style(style)
        })
        .collect();
    let t = Table::new(built, constraints).header(Row::new(header).style(theme.header())).column_spacing(1);
    f.render_widget(t, area);
}

/// A row's texts, in priority order: head, card, case, seed step, command, SW, duration,
/// meaning.
fn texts(r: &RowView<'_>) -> [String; 8] {
    let x = r.x;
    let doubt = x.kind == RowKind::InDoubt;
    let event = !x.kind.is_wire();
    [
        x.head.clone(),
        card_of(r).to_string(),
        x.test_step.clone(),
        x.protocol_step.clone(),
        if event { x.kind.as_str().to_string() } else { command_name(&x.command).to_string() },
        if doubt || event { "----".into() } else { format!("{:04X}", x.sw) },
        fmt_ns(x.duration_ns),
        if doubt {
            format!("in doubt: {}", x.error)
        } else if event {
            event_meaning(x)
        } else {
            sw::describe(x.sw)
        },
    ]
}

/// Everything about one exchange: where it ran, the decoded header, full command and
/// response hex, the status word's meaning, the time it took.
pub fn detail(theme: &Theme, f: &mut Frame, area: Rect, x: &Exchange, card: &str, failed: bool, scroll: u16) {
    let w = area.width as usize;
    let per_line = decode::per_line(w.saturating_sub(2));
    let label = |s: &str| Span::styled(format!("{s:<10}"), theme.header());
    let mut lines = vec![
        Line::from(vec![
            label("Exchange"),
            Span::raw(match (x.card_id.as_str(), card) {
                ("", c) => format!("#{}  head {}  card {c}", x.seq, x.head),
                (own, c) if c.is_empty() || own == c => format!("#{}  head {}  card {own}", x.seq, x.head),
                // A peer head's row: its own card, and the card under test it served.
                (own, c) => format!("#{}  head {}  card {own}  (for card under test {c})", x.seq, x.head),
            }),
        ]),
        Line::from(vec![
            label("Time"),
            Span::raw(format!("{}  (+{})", x.wall.format("%Y-%m-%d %H:%M:%S%.6f UTC"), fmt_ns(x.mono_ns))),
        ]),
        Line::from(vec![
            label("Case"),
            Span::styled(x.test_step.clone(), if failed { theme.fail() } else { theme.text() }),
            Span::raw(if failed { "  (case failed on this exchange)" } else { "" }),
        ]),
        Line::from(vec![label("Seed step"), Span::raw(x.protocol_step.clone())]),
        Line::from(vec![label("Command"), Span::styled(command_name(&x.command), theme.accent())]),
    ];
    if !x.step.is_empty() {
        let repeat = if x.repeat > 0 { format!("  repeat {}", x.repeat) } else { String::new() };
        lines.insert(3, Line::from(vec![label("Step"), Span::raw(format!("{}{repeat}", x.step))]));
    }
    lines.push(Line::from(vec![label("Kind"), Span::raw(x.kind.as_str())]));
    if !x.atr.is_empty() {
        lines.push(Line::from(vec![label("ATR"), Span::raw(hex::encode_upper(&x.atr))]));
    }
    if x.kind.is_wire() {
        let header: Vec<String> =
            decode::header_fields(&x.command).into_iter().map(|(k, v)| format!("{k} {v}")).collect();
        lines.push(Line::from(vec![label("Header"), Span::raw(clip(&header.join("  "), w.saturating_sub(10)))]));
        // Fields of the data and the answer, as the card spec lays them out.
        for fd in decode::fields(&x.command, &x.response) {
            lines.push(Line::from(vec![
                label(""),
                Span::styled(format!("{}: ", fd.name), theme.dim()),
                Span::raw(fd.value),
            ]));
        }
    }
    lines.push(Line::from(vec![label("Cmd hex"), Span::styled(format!("{} bytes", x.command.len()), theme.dim())]));
    for l in decode::dump(&x.command, per_line) {
        lines.push(Line::raw(format!("  {l}")));
    }
    lines.push(Line::from(vec![
        label("Resp hex"),
        Span::styled(format!("{} bytes + SW", x.response.len()), theme.dim()),
    ]));
    for l in decode::dump(&x.response, per_line) {
        lines.push(Line::raw(format!("  {l}")));
    }
    let mask = x.mask.to_string();
    if !mask.is_empty() {
        lines.push(Line::from(vec![
            label("Mask"),
            Span::raw(mask),
            Span::styled("  (dynamic bytes: a replay does not compare them)", theme.dim()),
        ]));
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
