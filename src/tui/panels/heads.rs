//! Heads: per head its driver, reader (full name), role, card present and ATR (live for real
//! readers), card ID, its state in the batch (waiting for a card, the case under test, remove
//! the card, done) and the operator's prompt, seed step, pass / fail / aborted counts, fault.
//! Two lines per head so it reads in 80 columns, a third for the prompt when there is room.

use super::{block, clip, fit, offset};
use crate::tui::app::{App, HeadRow, Panel};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn render(app: &App, f: &mut Frame, area: Rect, focused: bool) {
    let title = format!("{} heads", app.heads.len());
    let b = block(app, Panel::Heads, title, focused);
    let inner = b.inner(area);
    f.render_widget(b, area);
    let t = &app.theme;
    let mut lines = vec![Line::styled(
        format!(
            " {} {} {} {} {:<16}  {:<16}",
            fit("Head", 7),
            fit("Driver", 8),
            fit("Role", 6),
            "Card",
            "Card ID",
            "Pass Fail Abort State"
        ),
        t.header(),
    )];
    if app.heads.is_empty() {
        lines.push(Line::styled(" (no profile read yet: choose one in the Batch panel)", t.dim()));
    }
    // Two lines per head (reader, ATR, step and fault on the second) when there is room,
    // else one line each with the step and fault at its end.
    let rows = (inner.height as usize).saturating_sub(1);
    let prompts = app.heads.iter().any(|h| h.prompt().is_some());
    let per_head = if prompts && rows >= app.heads.len() * 3 {
        3
    } else if rows >= app.heads.len() * 2 {
        2
    } else {
        1
    };
    let visible = rows / per_head;
    let first = offset(app.heads.len(), app.heads_sel, visible);
    for (i, h) in app.heads.iter().enumerate().skip(first).take(visible.max(1)) {
        let sel = focused && i == app.heads_sel;
        let [a, b] = head_lines(app, h, inner.width as usize);
        let style = if sel { t.selected() } else { t.text() };
        let prompt = h.prompt().map(|p| Span::styled(format!("   ▶ {p}"), t.header()));
        match (per_head, prompt) {
            (3, p) => {
                lines.push(a.patch_style(style));
                lines.push(b.patch_style(style));
                lines.push(Line::from(p.into_iter().collect::<Vec<_>>()).patch_style(style));
            }
            // No room for a third line: the prompt (which names the reader) takes the second.
            (2, Some(p)) => {
                lines.push(a.patch_style(style));
                lines.push(Line::from(p).patch_style(style));
            }
            (2, None) => {
                lines.push(a.patch_style(style));
                lines.push(b.patch_style(style));
            }
            (_, p) => {
                let mut a = a;
                if !h.step.is_empty() {
                    a.spans.push(Span::raw(format!("  step {}", h.step)));
                }
                if !h.fault.is_empty() {
                    a.spans.push(Span::styled(format!("  fault: {}", h.fault), t.fail()));
                }
                a.spans.extend(p);
                lines.push(a.patch_style(style));
            }
        }
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn head_lines<'a>(app: &App, h: &HeadRow, width: usize) -> [Line<'a>; 2] {
    let t = &app.theme;
    let card = match h.present {
        Some(true) => "yes ",
        Some(false) => "no  ",
        None => "?   ",
    };
    let counts = format!("{:>4} {:>4} {:>5}", h.pass, h.fail, h.aborted);
    let counts_style = if h.fail + h.aborted > 0 { t.fail() } else { t.text() };
    let a = Line::from(vec![
        Span::raw(format!(
            " {} {} {} {} {:<16}  ",
            fit(&h.name, 7),
            fit(&h.driver, 8),
            fit(&h.role, 6),
            card,
            clip(&h.card_id, 16)
        )),
        Span::styled(fit(&counts, 16), counts_style),
        Span::raw(format!(" {}", state(h))),
    ]);
    let atr = match &h.atr {
        Some(a) => clip(&hex::encode_upper(a), 28),
        None => "—".into(),
    };
    // The reader's full name: two readers of one model differ only at the end of it, so a
    // name too long for the line with the ATR loses its beginning, never its end.
    let room = width.saturating_sub(3 + 1 + 4 + atr.chars().count()).max(16);
    let reader = clip_head(&h.reader, room);
    let mut spans = vec![Span::styled(format!("   {reader:<16} ATR {atr}"), t.dim())];
    if !h.step.is_empty() {
        spans.push(Span::raw(format!("  step {}", h.step)));
    }
    if !h.fault.is_empty() {
        let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
        spans.push(Span::styled(
            format!("  fault: {}", clip(&h.fault, width.saturating_sub(used + 9).max(8))),
            t.fail(),
        ));
    }
    [a, Line::from(spans)]
}

/// The head's state column: the case under test, or what the head waits for.
fn state(h: &HeadRow) -> String {
    use crate::batch::operator::HeadState as S;
    match &h.state {
        Some(S::Waiting { .. }) => "waiting for card".into(),
        Some(S::Remove { .. }) => "remove card".into(),
        Some(S::Done) => "done".into(),
        Some(S::Fault(_)) => "fault".into(),
        Some(S::Testing { .. }) if h.case.is_empty() => "testing".into(),
        _ => h.case.clone(),
    }
}

/// Cut `s` to its last `n` characters, with an ellipsis first when cut.
fn clip_head(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n || n < 2 {
        return s.to_string();
    }
    let mut out = String::from("…");
    out.extend(&c[c.len() - (n - 1)..]);
    out
}
