//! Every key of the UI in one table: key handling looks actions up here and the help overlay
//! lists it, so the help always shows every key.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies. Lookups try the most specific scope first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    List,
    Batch,
    Trace,
    Results,
    CardDetail,
    Replay,
    Timing,
    Picker,
    Edit,
    Confirm,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::List => "Lists (every panel)",
            Scope::Batch => "Batch panel",
            Scope::Trace => "Live trace",
            Scope::Results => "Results",
            Scope::CardDetail => "Card detail",
            Scope::Replay => "Replay panel (trace files)",
            Scope::Timing => "Timing panel (timing specs, comparisons)",
            Scope::Picker => "Pickers (plan, profile, trace, head, spec, result)",
            Scope::Edit => "Editing a field",
            Scope::Confirm => "Quit while a batch, replay or timing run runs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    NextPanel,
    PrevPanel,
    /// Focus the panel of the digit pressed (1-7).
    FocusDigit,
    Start,
    PauseResume,
    Stop,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Back,
    Follow,
    FilterHead,
    FilterCard,
    FilterSw,
    FailuresOnly,
    FilterNotOk,
    FilterSwValue,
    FilterCommand,
    FilterCase,
    Search,
    ClearFilters,
    CardTrace,
    OpenTrace,
    OpenOther,
    SideBySide,
    Replay,
    ReplayKeepGoing,
    StopReplay,
    NextDiff,
    PrevDiff,
    TimingView,
    RunSpec,
    StopTiming,
    CompareResults,
    PoolHeads,
    SortColumn,
    SortOrder,
    Export,
    ThresholdUp,
    ThresholdDown,
    TypeThreshold,
    Mark,
    TypePath,
    Yes,
    No,
    /// Listed in the help, handled elsewhere (free text).
    Doc,
}

/// A key: a code, with or without Ctrl. Shift is part of the character ('G' vs 'g').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn ch(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key { code: KeyCode::Char(c), ctrl: true }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    pub fn matches(&self, e: &KeyEvent) -> bool {
        let ctrl = e.modifiers.contains(KeyModifiers::CONTROL);
        let code = match e.code {
            // Some terminals send Shift+Tab as Tab with Shift.
            KeyCode::Tab if e.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        code == self.code && ctrl == self.ctrl
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Backspace => "Bksp".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("C-{base}")
        } else {
            base
        }
    }
}

pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

const fn b(scope: Scope, keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding { scope, keys, action, help }
}

use Action as A;
use Scope as S;

pub const BINDINGS: &[Binding] = &[
    b(S::Global, &[ch('?')], A::Help, "show / hide this help"),
    b(S::Global, &[ch('q'), ctrl('c')], A::Quit, "quit (asks while a batch, replay or timing run runs)"),
    b(S::Global, &[code(KeyCode::Tab), ch('l'), code(KeyCode::Right)], A::NextPanel, "next panel"),
    b(S::Global, &[code(KeyCode::BackTab), ch('h'), code(KeyCode::Left)], A::PrevPanel, "previous panel"),
    b(
        S::Global,
        &[ch('1'), ch('2'), ch('3'), ch('4'), ch('5'), ch('6'), ch('7')],
        A::FocusDigit,
        "Heads, Batch, Trace, Results, Timing, Events, Replay",
    ),
    b(S::Global, &[ch('s')], A::Start, "start the batch of the Batch panel (same ID: resume)"),
    b(S::Global, &[ch('p'), ch(' ')], A::PauseResume, "pause / resume (workers finish their card)"),
    b(S::Global, &[ch('x')], A::Stop, "stop: in-flight cards finish, batch stays resumable"),
    b(S::List, &[ch('j'), code(KeyCode::Down)], A::Down, "down"),
    b(S::List, &[ch('k'), code(KeyCode::Up)], A::Up, "up"),
    b(S::List, &[ctrl('d'), code(KeyCode::PageDown)], A::PageDown, "page down"),
    b(S::List, &[ctrl('u'), code(KeyCode::PageUp)], A::PageUp, "page up"),
    b(S::List, &[ch('g'), code(KeyCode::Home)], A::Top, "first row"),
    b(S::List, &[ch('G'), code(KeyCode::End)], A::Bottom, "last row (trace, events: follow)"),
    b(S::List, &[code(KeyCode::Enter)], A::Open, "open the selected row"),
    b(S::List, &[code(KeyCode::Esc)], A::Back, "close the detail view"),
    b(S::Batch, &[code(KeyCode::Enter)], A::Open, "pick plan / profile, edit batch ID / cards"),
    b(S::Trace, &[ch('f')], A::Follow, "follow mode on / off"),
    b(S::Trace, &[ch('H')], A::FilterHead, "filter: cycle head"),
    b(S::Trace, &[ch('C')], A::FilterCard, "filter: card of the selected row / off"),
    b(S::Trace, &[ch('W')], A::FilterSw, "filter: cycle SW class"),
    b(S::Trace, &[ch('w')], A::FilterNotOk, "filter: final SW ≠ 9000 (after 61xx / 6Cxx rounds)"),
    b(S::Trace, &[ch('v')], A::FilterSwValue, "filter: final SW of the selected row / off"),
    b(S::Trace, &[ch('m')], A::FilterCommand, "filter: command of the selected row / off"),
    b(S::Trace, &[ch('c')], A::FilterCase, "filter: case of the selected row / off"),
    b(S::Trace, &[ch('e')], A::FailuresOnly, "filter: the exchanges failed cases failed on (✗)"),
    b(S::Trace, &[ch('/')], A::Search, "search as typed: text, cmd: case: head: card: sw:!9000"),
    b(S::Trace, &[ch('F')], A::ClearFilters, "clear every filter and the search"),
    b(S::Results, &[code(KeyCode::Enter)], A::Open, "open the card: cases, expected vs actual"),
    b(S::CardDetail, &[ch('t')], A::CardTrace, "cases / the card's full trace (its CSV)"),
    b(S::CardDetail, &[code(KeyCode::Enter)], A::Open, "in the trace: open the exchange"),
    b(S::Replay, &[ch('o')], A::OpenTrace, "open a trace file (picker; / types a path)"),
    b(S::Replay, &[ch('d')], A::OpenOther, "open a second trace beside it (side-by-side diff)"),
    b(S::Replay, &[ch('v')], A::SideBySide, "view: the trace alone / side by side with the second"),
    b(S::Replay, &[ch('r')], A::Replay, "replay the selected row's head and card on a lab head"),
    b(S::Replay, &[ch('R')], A::ReplayKeepGoing, "the same, going on after divergences (--keep-going)"),
    b(S::Replay, &[ch('x')], A::StopReplay, "stop the replay (the batch when no replay runs)"),
    b(S::Replay, &[ch('n')], A::NextDiff, "next divergence / differing row"),
    b(S::Replay, &[ch('N')], A::PrevDiff, "previous divergence / differing row"),
    b(S::Timing, &[ch('v')], A::TimingView, "view: batch timing / timing spec run / comparison"),
    b(S::Timing, &[ch('r')], A::RunSpec, "run a timing spec (picker, / types a path) on heads"),
    b(S::Timing, &[ch('x')], A::StopTiming, "stop the timing run (the batch when none runs)"),
    b(S::Timing, &[ch('c')], A::CompareResults, "compare two timing results of logs/ (A, then B)"),
    b(S::Timing, &[ch('a')], A::PoolHeads, "batch view: all DUTs per command / per head"),
    b(S::Timing, &[ch('o')], A::SortColumn, "batch view: sort by the next column"),
    b(S::Timing, &[ch('O')], A::SortOrder, "batch view: sort ascending / descending"),
    b(S::Timing, &[ch('E')], A::Export, "batch view: export the table to CSV (batch folder)"),
    b(S::Timing, &[ch('+'), ch('=')], A::ThresholdUp, "comparison: threshold +0.5%"),
    b(S::Timing, &[ch('-')], A::ThresholdDown, "comparison: threshold -0.5%"),
    b(S::Timing, &[ch('T')], A::TypeThreshold, "comparison: type the threshold (e.g. 2%)"),
    b(S::Picker, &[code(KeyCode::Enter)], A::Open, "choose"),
    b(S::Picker, &[ch(' ')], A::Mark, "head picker of a timing run: mark / unmark a head"),
    b(S::Picker, &[ch('/')], A::TypePath, "type a path (plan, profile, trace, spec, result)"),
    b(S::Picker, &[code(KeyCode::Esc)], A::Back, "cancel"),
    b(S::Edit, &[code(KeyCode::Enter)], A::Open, "accept"),
    b(S::Edit, &[code(KeyCode::Esc)], A::Back, "cancel"),
    b(S::Edit, &[code(KeyCode::Backspace)], A::Doc, "delete a character"),
    b(S::Edit, &[ctrl('u')], A::Doc, "clear the field"),
    b(S::Confirm, &[ch('y')], A::Yes, "stop it cleanly (batch, timing run, replay), then quit"),
    b(S::Confirm, &[ch('n'), code(KeyCode::Esc)], A::No, "keep it going"),
];

/// The action of a key in the first scope (in order) that binds it.
pub fn lookup(scopes: &[Scope], e: &KeyEvent) -> Option<Action> {
    scopes.iter().find_map(|s| {
        BINDINGS
            .iter()
            .filter(|b| b.scope == *s && b.action != Action::Doc)
            .find(|b| b.keys.iter().any(|k| k.matches(e)))
            .map(|b| b.action)
    })
}

/// Scopes in the order the help lists them.
pub const HELP_ORDER: [Scope; 11] = [
    Scope::Global,
    Scope::List,
    Scope::Batch,
    Scope::Trace,
    Scope::Results,
    Scope::CardDetail,
    Scope::Replay,
    Scope::Timing,
    Scope::Picker,
    Scope::Edit,
    Scope::Confirm,
];

/// "j ↓" for a binding's keys.
pub fn keys_label(b: &Binding) -> String {
    b.keys.iter().map(Key::label).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_the_first_scope() {
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Results, Scope::List], &enter), Some(Action::Open));
        let g = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(&[Scope::List, Scope::Global], &g), Some(Action::Bottom));
        let cc = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(&[Scope::Global], &cc), Some(Action::Quit));
        let b = KeyEvent::new(KeyCode::Char('b'), KeyModifiers::NONE);
        assert_eq!(lookup(&[Scope::Trace, Scope::List, Scope::Global], &b), None);
        let st = KeyEvent::new(KeyCode::Tab, KeyModifiers::SHIFT);
        assert_eq!(lookup(&[Scope::Global], &st), Some(Action::PrevPanel));
    }
}
