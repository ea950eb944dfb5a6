//! One file per panel; each draws from `&App` into the area it is given.

pub mod batch;
pub mod events;
pub mod exchange;
pub mod heads;
pub mod help;
pub mod modal;
pub mod replay;
pub mod results;
pub mod timing;
pub mod timing_compare;
pub mod timing_spec;
pub mod trace;

use super::app::{App, Panel};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Block;
use ratatui::Frame;

pub fn render(app: &App, panel: Panel, f: &mut Frame, area: Rect, focused: bool) {
    match panel {
        Panel::Heads => heads::render(app, f, area, focused),
        Panel::Batch => batch::render(app, f, area, focused),
        Panel::Trace => trace::render(app, f, area, focused),
        Panel::Results => results::render(app, f, area, focused),
        Panel::Timing => timing::render(app, f, area, focused),
        Panel::Events => events::render(app, f, area, focused),
        Panel::Replay => replay::render(app, f, area, focused),
    }
}

/// A panel's frame: its number and title, bold (and coloured) when it has the focus.
pub fn block<'a>(app: &App, panel: Panel, extra: String, focused: bool) -> Block<'a> {
    let title = if extra.is_empty() {
        format!(" {} {} ", panel.index() + 1, panel.title())
    } else {
        format!(" {} {} · {} ", panel.index() + 1, panel.title(), extra)
    };
    Block::bordered().title(Line::styled(title, app.theme.border(focused))).border_style(app.theme.border(focused))
}

/// First row to show so that `sel` is visible: the view scrolls keeping the selection in
/// the middle (and the last page full at the end).
pub fn offset(len: usize, sel: usize, visible: usize) -> usize {
    if visible == 0 || len <= visible {
        return 0;
    }
    sel.saturating_sub(visible / 2).min(len - visible)
}

/// A rectangle of at most `w`×`h` in the middle of `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let [r] = Layout::vertical([Constraint::Length(h)]).flex(ratatui::layout::Flex::Center).areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w)]).flex(ratatui::layout::Flex::Center).areas(r);
    r
}

/// Cut `s` to `n` characters, with an ellipsis when cut.
pub fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    if n == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// Pad or cut to exactly `n` characters.
pub fn fit(s: &str, n: usize) -> String {
    let c = clip(s, n);
    let len = c.chars().count();
    format!("{c}{}", " ".repeat(n - len))
}
