//! The `?` overlay: every key of the keymap, by where it applies.

use super::centered;
use crate::tui::app::App;
use crate::tui::keymap::{keys_label, BINDINGS, HELP_ORDER};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

/// The help text, one line per binding under a line per scope.
pub fn lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut out = Vec::new();
    for scope in HELP_ORDER {
        out.push(Line::styled(scope.title().to_string(), t.header()));
        for b in BINDINGS.iter().filter(|b| b.scope == scope) {
            out.push(Line::from(vec![
                Span::styled(format!("  {:<16}", keys_label(b)), t.key()),
                Span::raw(b.help.to_string()),
            ]));
        }
    }
    out.push(Line::styled("Editing: letters, digits, - _ . are typed into the field.", t.dim()));
    out.push(Line::styled("NO_COLOR=1 turns colours off. The full trace of each card is in its CSV.", t.dim()));
    out
}

pub fn render(app: &App, f: &mut Frame, area: Rect, scroll: u16) {
    let text = lines(app);
    let h = (text.len() as u16 + 2).min(area.height);
    let r = centered(area, 76, h);
    let max_scroll = (text.len() as u16 + 2).saturating_sub(r.height);
    let b = Block::bordered().title(" Keys · j/k scroll · Esc or ? closes ").border_style(app.theme.border(true));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(text).block(b).scroll((scroll.min(max_scroll), 0)), r);
}
