//! Keys, turned into actions through the keymap and applied to the app.

use super::app::{App, CardDetail, Effect, Field, LogKind, Modal, Panel};
use super::keymap::{lookup, Action, Scope};
use super::replay::{ReplayRequest, Slot};
use super::timing::{TimingMode, TimingRequest, THRESHOLD_STEP};
use super::trace::CLASSES;
use crate::event::RowKind;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Rows a page key moves.
const PAGE: isize = 10;

#[derive(Debug, Clone, Copy)]
enum Move {
    By(isize),
    Top,
    Bottom,
}

fn moved(cur: usize, len: usize, m: Move) -> usize {
    if len == 0 {
        return 0;
    }
    match m {
        Move::By(d) => (cur as isize + d).clamp(0, len as isize - 1) as usize,
        Move::Top => 0,
        Move::Bottom => len - 1,
    }
}

impl App {
    pub(super) fn key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        self.note = None;
        match self.modal.clone() {
            Modal::Edit { field, buf } => self.edit_key(field, buf, k),
            Modal::ConfirmQuit => {
                match lookup(&[Scope::Confirm], &k) {
                    Some(Action::Yes) => {
                        self.modal = Modal::None;
                        self.quit_cleanly();
                    }
                    Some(Action::No) => self.modal = Modal::None,
                    _ => {}
                }
                Vec::new()
            }
            Modal::Help { scroll } => {
                let scroll = match lookup(&[Scope::List, Scope::Global], &k) {
                    Some(Action::Help | Action::Back | Action::Quit) => {
                        self.modal = Modal::None;
                        return Vec::new();
                    }
                    Some(Action::Down) => scroll.saturating_add(1),
                    Some(Action::Up) => scroll.saturating_sub(1),
                    Some(Action::PageDown) => scroll.saturating_add(PAGE as u16),
                    Some(Action::PageUp) => scroll.saturating_sub(PAGE as u16),
                    Some(Action::Top) => 0,
                    _ => scroll,
                };
                self.modal = Modal::Help { scroll };
                Vec::new()
            }
            Modal::Picker { field, sel } => self.picker_key(field, sel, k),
            Modal::None => {
                // A key refused with an error in the Events panel says it on the status line.
                let errors = self.errors_logged;
                let fx = self.panel_key(k);
                if self.note.is_none() && self.errors_logged > errors {
                    if let Some(e) = self.events.back().map(|e| e.text.clone()) {
                        self.say(e);
                    }
                }
                fx
            }
        }
    }

    /// A key with no window open: the focused panel's binding, else why it does nothing.
    fn panel_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let scopes: &[Scope] = match self.panel {
            Panel::Batch => &[Scope::Batch, Scope::List, Scope::Global],
            Panel::Trace => &[Scope::Trace, Scope::List, Scope::Global],
            Panel::Results if self.card_detail.is_some() => &[Scope::CardDetail, Scope::List, Scope::Global],
            Panel::Results => &[Scope::Results, Scope::List, Scope::Global],
            Panel::Replay => &[Scope::Replay, Scope::List, Scope::Global],
            Panel::Timing => &[Scope::Timing, Scope::List, Scope::Global],
            _ => &[Scope::List, Scope::Global],
        };
        match lookup(scopes, &k) {
            Some(a) => self.act(a, &k),
            None => {
                let key = super::keymap::Key { code: k.code, ctrl: k.modifiers.contains(KeyModifiers::CONTROL) };
                self.say(format!("{} does nothing in {} (? lists every key)", key.label(), self.panel.title()));
                Vec::new()
            }
        }
    }

    fn act(&mut self, a: Action, k: &KeyEvent) -> Vec<Effect> {
        match a {
            Action::Quit => {
                let busy = self.batch.phase.active() || self.timing_view.running() || self.replaying();
                let asked = self.batch.quit_when_done || self.timing_view.quit_when_done || self.quit_after_replay;
                if !busy || asked {
                    // Asked twice: leave now (the journal holds every finished card; a timing
                    // run's samples.csv is not written).
                    self.quit = true;
                } else {
                    self.modal = Modal::ConfirmQuit;
                }
            }
            Action::Help => self.modal = Modal::Help { scroll: 0 },
            Action::NextPanel => self.panel = self.panel.next(),
            Action::PrevPanel => self.panel = self.panel.prev(),
            Action::FocusDigit => {
                if let KeyCode::Char(c @ '1'..='7') = k.code {
                    self.panel = Panel::ALL[c as usize - '1' as usize];
                }
            }
            Action::Start => return self.start(),
            Action::PauseResume => self.pause_resume(),
            Action::Stop => self.stop(),
            Action::Up => self.nav(Move::By(-1)),
            Action::Down => self.nav(Move::By(1)),
            Action::PageUp => self.nav(Move::By(-PAGE)),
            Action::PageDown => self.nav(Move::By(PAGE)),
            Action::Top => self.nav(Move::Top),
            Action::Bottom => self.nav(Move::Bottom),
            Action::Open => return self.open(),
            Action::Back => self.back(),
            Action::Follow => {
                self.trace_sel = match self.trace_sel {
                    Some(_) => None,
                    None => self.trace_selected_row().map(|r| r.id),
                };
            }
            Action::FilterHead => {
                let heads = self.trace.heads();
                self.filter.head = match &self.filter.head {
                    None => heads.first().cloned(),
                    Some(h) => heads.iter().position(|x| x == h).and_then(|i| heads.get(i + 1)).cloned(),
                };
                return self.rescan();
            }
            Action::FilterCard => {
                self.filter.card = match self.filter.card {
                    Some(_) => None,
                    None => self.trace_selected_row().map(|r| r.card_shown().to_string()),
                };
                return self.rescan();
            }
            Action::FilterSw => {
                self.filter.class = match self.filter.class {
                    None => Some(CLASSES[0]),
                    Some(c) => CLASSES.iter().position(|x| *x == c).and_then(|i| CLASSES.get(i + 1)).copied(),
                };
                return self.rescan();
            }
            Action::FilterNotOk => {
                self.filter.not_ok = !self.filter.not_ok;
                return self.rescan();
            }
            Action::FilterSwValue => {
                self.filter.sw = match self.filter.sw {
                    Some(_) => None,
                    None => {
                        let row = self.trace_selected_row();
                        let sw = row.filter(|r| r.is_final() && r.x.kind != RowKind::InDoubt).map(|r| r.x.sw);
                        if sw.is_none() {
                            self.say("v: the selected row has no final SW (not a command, 61xx / 6Cxx followed up, or in doubt)");
                        }
                        sw
                    }
                };
                return self.rescan();
            }
            Action::FilterCommand => {
                self.filter.command = match self.filter.command {
                    Some(_) => None,
                    None => {
                        let row = self.trace_selected_row();
                        let name = row.filter(|r| r.x.kind.is_wire()).map(|r| r.command_name().to_string());
                        if name.is_none() {
                            self.say(
                                "m: the selected row is no command (a power, card or step row), or there is no row",
                            );
                        }
                        name
                    }
                };
                return self.rescan();
            }
            Action::FilterCase => {
                self.filter.case = match self.filter.case {
                    Some(_) => None,
                    None => self.trace_selected_row().map(|r| r.x.test_step.clone()),
                };
                if self.filter.case.is_none() && self.trace_selected_row().is_none() {
                    self.say("c: no row selected to take the case from");
                }
                return self.rescan();
            }
            Action::FailuresOnly => {
                self.filter.failures_only = !self.filter.failures_only;
                return self.rescan();
            }
            Action::Search => {
                self.trace_detail = None;
                self.modal = Modal::Edit { field: Field::Search, buf: self.filter.text.clone() };
            }
            Action::ClearFilters => {
                self.filter = Default::default();
                return self.rescan();
            }
            Action::CardTrace => {
                if let Some(d) = self.card_detail.as_mut() {
                    d.show_trace = !d.show_trace;
                    d.exchange = None;
                    if d.show_trace && d.trace.is_none() {
                        let index = d.index;
                        if let Some(path) = self.card(index).map(|c| self.trace_path(c)) {
                            return vec![Effect::LoadTrace { index, path }];
                        }
                    }
                }
            }
            Action::OpenTrace => return self.pick_trace(Field::Trace),
            Action::OpenOther => {
                if self.replay.file.is_none() {
                    self.refuse(LogKind::Error, "d: open a trace first (o), then the one to compare it with (d)");
                    return Vec::new();
                }
                return self.pick_trace(Field::OtherTrace);
            }
            Action::SideBySide => {
                if self.replay.other.is_some() && self.replay.file.is_some() {
                    self.replay.side_by_side = !self.replay.side_by_side;
                    self.replay.detail = false;
                } else {
                    self.say("v: open a second trace (d) to see the two side by side");
                }
            }
            Action::Replay | Action::ReplayKeepGoing => {
                self.replay.keep_going = a == Action::ReplayKeepGoing;
                self.pick_replay_head();
            }
            Action::StopReplay => {
                if !self.stop_replay() {
                    self.stop();
                }
            }
            Action::NextDiff | Action::PrevDiff => {
                let diffs = self.replay.differences();
                let cur = if self.replay.side_by_side { self.replay.pair_sel } else { self.replay.sel };
                let next = if a == Action::NextDiff {
                    diffs.iter().find(|&&i| i > cur)
                } else {
                    diffs.iter().rev().find(|&&i| i < cur)
                };
                match next {
                    Some(&i) if self.replay.side_by_side => self.replay.pair_sel = i,
                    Some(&i) => {
                        self.replay.sel = i;
                        self.replay.follow = false;
                    }
                    None if diffs.is_empty() => self.say("no divergence or differing row to go to"),
                    None => self.say(if a == Action::NextDiff {
                        "no divergence after this row"
                    } else {
                        "no divergence before this row"
                    }),
                }
            }
            Action::TimingView => {
                self.timing_view.mode = self.timing_view.mode.next();
                self.timing_view.sel = 0;
            }
            Action::PoolHeads | Action::SortColumn | Action::SortOrder | Action::Export
                if self.timing_view.mode != TimingMode::Batch =>
            {
                self.say("that key works in the batch timing view (v)")
            }
            Action::PoolHeads => {
                self.timing_pooled = !self.timing_pooled;
                self.timing_sel = 0;
            }
            Action::SortColumn => {
                self.timing_sort = self.timing_sort.next();
                // Figures read largest first, names in order.
                self.timing_desc = self.timing_sort != super::stats::SortBy::Name;
            }
            Action::SortOrder => self.timing_desc = !self.timing_desc,
            Action::Export => {
                let rows = self.timing_rows();
                if rows.is_empty() {
                    self.say("E: no exchange timed yet: nothing to export");
                } else {
                    let path = self.timing_export_path();
                    return vec![Effect::Export { path, text: super::stats::summaries_csv(&rows) }];
                }
            }
            Action::RunSpec => return self.pick_spec(),
            Action::StopTiming => {
                if !self.stop_timing() {
                    self.stop();
                }
            }
            Action::CompareResults => {
                self.timing_view.compare_a = None;
                self.modal = Modal::Picker { field: Field::CompareA, sel: 0 };
                return vec![Effect::ListTimingResults];
            }
            Action::ThresholdUp => self.set_threshold(self.timing_view.threshold + THRESHOLD_STEP),
            Action::ThresholdDown => self.set_threshold(self.timing_view.threshold - THRESHOLD_STEP),
            Action::TypeThreshold => {
                let buf = format!("{}%", super::panels::timing_compare::threshold_pct(self.timing_view.threshold));
                self.modal = Modal::Edit { field: Field::Threshold, buf };
            }
            Action::Mark | Action::TypePath | Action::Yes | Action::No | Action::Doc => {
                self.say("that key does nothing here (? lists every key)")
            }
        }
        Vec::new()
    }

    /// The operator said yes to quitting: stop what runs cleanly, then quit once it has ended.
    fn quit_cleanly(&mut self) {
        if self.batch.phase.active() {
            self.batch.quit_when_done = true;
            self.stop();
        } else if self.timing_view.running() {
            self.timing_view.quit_when_done = true;
            self.stop_timing();
            self.log(LogKind::Info, "quitting once the timing run has written its files (q again quits now)");
        } else if self.replaying() {
            self.quit_after_replay = true;
            self.stop_replay();
            self.log(LogKind::Info, "quitting once the replay has stopped (q again quits now)");
        } else {
            self.quit = true;
        }
    }

    /// The trace picker, with the list looked up again (it may have new files).
    fn pick_trace(&mut self, field: Field) -> Vec<Effect> {
        let current = match field {
            Field::OtherTrace => self.replay.other.as_ref(),
            _ => self.replay.file.as_ref(),
        };
        let sel = current.and_then(|f| self.replay.traces.iter().position(|p| *p == f.path)).unwrap_or(0);
        self.modal = Modal::Picker { field, sel };
        vec![Effect::ListTraces]
    }

    fn pick_replay_head(&mut self) {
        if self.replay.live.as_ref().is_some_and(|l| l.phase.active()) {
            self.log(LogKind::Info, "a replay is already running (x stops it)");
            return;
        }
        if self.timing_view.running() {
            self.log(LogKind::Error, "a timing run is using the profile's heads: replay once it has ended");
            return;
        }
        // Its heads would be shared with the batch's workers (a real reader cannot serve both).
        if self.batch.phase.active() {
            self.log(LogKind::Error, "a batch is running on the profile's heads: replay once it has ended");
            return;
        }
        if self.replay.stream_of_selection().is_none() {
            self.log(LogKind::Error, "open a trace with rows first (o)");
            return;
        }
        if self.form.profile_path().is_none() || self.heads.is_empty() {
            self.log(
                LogKind::Error,
                "choose a profile with heads in the Batch panel first: the replay runs on one of them",
            );
            return;
        }
        let sel = self.heads.iter().position(|h| h.present == Some(true)).unwrap_or(0);
        self.modal = Modal::Picker { field: Field::ReplayHead, sel };
    }

    /// The spec picker of a timing run, if nothing else uses the heads.
    fn pick_spec(&mut self) -> Vec<Effect> {
        if self.timing_view.running() {
            self.log(LogKind::Info, "a timing run is already running (x stops it)");
        } else if self.batch.phase.active() {
            self.log(LogKind::Error, "a batch is running on the profile's heads: time once it has ended");
        } else if self.replay.live.as_ref().is_some_and(|l| l.phase.active()) {
            self.log(LogKind::Error, "a replay is running on the profile's heads: time once it has ended");
        } else if self.form.profile_path().is_none() || self.heads.is_empty() {
            self.log(
                LogKind::Error,
                "choose a profile with heads in the Batch panel first: the spec runs on its heads",
            );
        } else {
            let sel = self
                .timing_view
                .spec
                .as_ref()
                .and_then(|s| self.timing_view.specs.iter().position(|p| p == s))
                .unwrap_or(0);
            self.modal = Modal::Picker { field: Field::TimingSpec, sel };
        }
        Vec::new()
    }

    fn spec_chosen(&mut self, path: std::path::PathBuf) {
        if !self.timing_view.specs.contains(&path) {
            self.timing_view.specs.insert(0, path.clone());
        }
        self.timing_view.spec = Some(path);
        self.timing_view.marked.retain(|m| self.heads.iter().any(|h| &h.name == m));
        let sel = self.heads.iter().position(|h| h.present == Some(true)).unwrap_or(0);
        self.modal = Modal::Picker { field: Field::TimingHeads, sel };
    }

    /// Run the chosen spec on the marked heads, or on the highlighted one when none is.
    fn start_timing(&mut self, highlighted: usize) -> Vec<Effect> {
        let (Some(spec), Some(profile)) = (self.timing_view.spec.clone(), self.form.profile_path()) else {
            return Vec::new();
        };
        let heads: Vec<String> = if self.timing_view.marked.is_empty() {
            self.heads.get(highlighted).map(|h| h.name.clone()).into_iter().collect()
        } else {
            // In the profile's order, whatever order they were marked in.
            self.heads.iter().filter(|h| self.timing_view.marked.contains(&h.name)).map(|h| h.name.clone()).collect()
        };
        if heads.is_empty() {
            return Vec::new();
        }
        let stem = spec.file_stem().map_or("spec".into(), |s| s.to_string_lossy().into_owned());
        let req = TimingRequest {
            spec,
            profile: profile.to_path_buf(),
            heads,
            run_id: format!("tui-time-{stem}-{}", self.now.wall.format("%Y%m%dT%H%M%S%.3fZ")),
        };
        self.timing_requested(req.clone());
        self.panel = Panel::Timing;
        vec![Effect::Time(req)]
    }

    fn result_chosen(&mut self, field: Field, path: std::path::PathBuf) -> Vec<Effect> {
        if field == Field::CompareA {
            self.timing_view.compare_a = Some(path.clone());
            let sel = self.timing_view.results.iter().position(|p| *p != path).unwrap_or(0);
            self.modal = Modal::Picker { field: Field::CompareB, sel };
            return Vec::new();
        }
        let Some(a) = self.timing_view.compare_a.take() else { return Vec::new() };
        self.timing_view.loading = true;
        self.log(LogKind::Info, format!("comparing timing results {} (A) and {} (B)", a.display(), path.display()));
        vec![Effect::LoadCompare { a, b: path }]
    }

    fn start_replay(&mut self, head: usize) -> Vec<Effect> {
        let (Some(file), Some(profile), Some(h)) =
            (self.replay.file.as_ref(), self.form.profile_path(), self.heads.get(head))
        else {
            return Vec::new();
        };
        let Some((trace_head, card)) = self.replay.stream_of_selection() else { return Vec::new() };
        let req = ReplayRequest {
            trace: file.path.clone(),
            profile: profile.to_path_buf(),
            trace_head,
            head: h.name.clone(),
            card,
            keep_going: self.replay.keep_going,
        };
        self.replay_requested(req.clone());
        vec![Effect::Replay(req)]
    }

    fn nav(&mut self, m: Move) {
        let detail_open = match self.panel {
            Panel::Trace => self.trace_detail.is_some(),
            Panel::Replay => self.replay.detail,
            Panel::Results => self.card_detail.as_ref().is_some_and(|d| d.exchange.is_some()),
            _ => false,
        };
        if detail_open {
            // Pages scroll the open detail; rows move to the previous / next exchange.
            if let Move::By(d) = m {
                if d.abs() > 1 {
                    self.detail_scroll = (self.detail_scroll as isize + d).clamp(0, 1000) as u16;
                    return;
                }
            }
            self.detail_scroll = 0;
        }
        let empty = match self.panel {
            Panel::Heads if self.heads.is_empty() => Some("no heads yet: choose a profile in 2 Batch"),
            Panel::Trace if !detail_open && self.trace.is_empty() => Some("no exchange yet"),
            Panel::Trace if !detail_open && self.trace.visible(&self.filter).is_empty() => {
                Some("no exchange matches the filters (F clears them)")
            }
            Panel::Results if self.card_detail.is_none() && self.results.is_empty() => {
                Some("no card has a verdict yet")
            }
            Panel::Timing if self.timing_view.mode == TimingMode::Batch && self.timing.is_empty() => {
                Some("no exchange timed yet")
            }
            Panel::Replay if self.replay.is_empty() => Some("no trace open (o opens one)"),
            _ => None,
        };
        if let Some(why) = empty {
            return self.say(format!("nothing to move to: {why}"));
        }
        match self.panel {
            Panel::Heads => self.heads_sel = moved(self.heads_sel, self.heads.len(), m),
            Panel::Batch => {
                let i = Field::ALL.iter().position(|f| *f == self.form.field).unwrap_or(0);
                self.form.field = Field::ALL[moved(i, Field::ALL.len(), m)];
            }
            Panel::Trace => {
                let vis = self.trace_view();
                if vis.is_empty() {
                    return;
                }
                let cur = self.trace_pos(&vis);
                if matches!(m, Move::Bottom) && self.trace_detail.is_none() {
                    self.trace_sel = None;
                } else {
                    let new = moved(cur, vis.len(), m);
                    self.trace_sel = Some(vis[new].id);
                }
                if self.trace_detail.is_some() {
                    self.trace_detail = self.trace_selected_row().map(|r| Box::new(r.clone()));
                }
            }
            Panel::Results => {
                let len = self.results.len();
                let lines =
                    self.card_detail.as_ref().and_then(|d| self.card(d.index)).map_or(0, |c| c.cases.len() * 4 + 4);
                match self.card_detail.as_mut() {
                    Some(d) if d.show_trace => {
                        let rows = d.trace.as_ref().and_then(|t| t.as_ref().ok());
                        d.trace_sel = moved(d.trace_sel, rows.map_or(0, Vec::len), m);
                        if d.exchange.is_some() {
                            d.exchange = rows.and_then(|r| r.get(d.trace_sel)).map(|x| Box::new(x.clone()));
                        }
                    }
                    Some(d) => d.scroll = moved(d.scroll, lines, m),
                    None => self.results_sel = moved(self.results_sel, len, m),
                }
            }
            Panel::Timing if self.timing_view.mode == TimingMode::Batch => {
                self.timing_sel = moved(self.timing_sel, self.timing_rows().len(), m)
            }
            Panel::Timing => self.timing_view.sel = moved(self.timing_view.sel, self.timing_view.len(), m),
            Panel::Replay => {
                let r = &mut self.replay;
                let len = r.len();
                if r.side_by_side {
                    r.pair_sel = moved(r.pair_sel, len, m);
                } else {
                    r.sel = moved(r.sel, len, m);
                    // G (last row) during a replay: follow the row being checked again.
                    r.follow = matches!(m, Move::Bottom) && r.live.as_ref().is_some_and(|l| l.phase.active());
                    if let (true, Some(last)) = (r.follow, r.live.as_ref().and_then(|l| l.last)) {
                        r.sel = last;
                    }
                }
            }
            Panel::Events => {
                let len = self.events.len();
                let cur = self.events_sel.unwrap_or(len.saturating_sub(1));
                self.events_sel = match m {
                    Move::Bottom => None,
                    _ => Some(moved(cur, len, m)),
                };
            }
        }
    }

    fn open(&mut self) -> Vec<Effect> {
        match self.panel {
            Panel::Heads => {
                if let Some(h) = self.heads.get(self.heads_sel) {
                    self.filter = Default::default();
                    self.filter.head = Some(h.name.clone());
                    self.panel = Panel::Trace;
                } else {
                    self.say("Enter: no heads yet (choose a profile in 2 Batch)");
                }
            }
            Panel::Batch => {
                let field = self.form.field;
                self.modal = match field {
                    Field::Plan => Modal::Picker { field, sel: self.form.plan.unwrap_or(0) },
                    Field::Profile => Modal::Picker { field, sel: self.form.profile.unwrap_or(0) },
                    Field::BatchId => Modal::Edit { field, buf: self.form.batch_id.clone() },
                    Field::Count => Modal::Edit { field, buf: self.form.count.clone() },
                    // Not fields of the Batch panel.
                    _ => Modal::None,
                };
            }
            Panel::Trace => {
                self.detail_scroll = 0;
                self.trace_detail = self.trace_selected_row().map(|r| Box::new(r.clone()));
            }
            Panel::Results => match self.card_detail.as_mut() {
                Some(d) if d.show_trace && d.exchange.is_none() => {
                    let x = d.trace.as_ref().and_then(|t| t.as_ref().ok()).and_then(|t| t.get(d.trace_sel));
                    d.exchange = x.map(|x| Box::new(x.clone()));
                    self.detail_scroll = 0;
                }
                Some(_) => {}
                None if self.results.is_empty() => self.say("Enter: no card has a verdict yet"),
                None => {
                    if let Some(c) = self.results.get(self.results_sel) {
                        self.card_detail = Some(CardDetail {
                            index: c.index,
                            scroll: 0,
                            show_trace: false,
                            trace: None,
                            trace_sel: 0,
                            exchange: None,
                        });
                    }
                }
            },
            Panel::Replay => {
                if !self.replay.is_empty() {
                    self.replay.detail = true;
                    self.detail_scroll = 0;
                }
            }
            Panel::Timing => self.say("Enter does nothing in Timing: j/k select a row (its histogram is below)"),
            Panel::Events => self.say("Enter does nothing in Events: the selected event is shown whole below the list"),
        }
        Vec::new()
    }

    fn back(&mut self) {
        match self.panel {
            Panel::Trace if self.trace_detail.is_some() => self.trace_detail = None,
            Panel::Results => match self.card_detail.as_mut() {
                Some(d) if d.exchange.is_some() => d.exchange = None,
                Some(d) if d.show_trace => d.show_trace = false,
                Some(_) => self.card_detail = None,
                None => self.say("Esc: nothing open to close"),
            },
            Panel::Replay if self.replay.detail => self.replay.detail = false,
            _ => self.say("Esc: nothing open to close"),
        }
    }

    fn edit_key(&mut self, field: Field, mut buf: String, k: KeyEvent) -> Vec<Effect> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        // A plan or profile path typed in its picker (the Batch panel's fields are picked).
        if k.code == KeyCode::Enter && matches!(field, Field::Plan | Field::Profile) {
            self.modal = Modal::None;
            let path = buf.trim();
            if path.is_empty() {
                return Vec::new();
            }
            return self.form_path_typed(field, std::path::PathBuf::from(path));
        }
        match k.code {
            KeyCode::Enter => {
                match field {
                    Field::BatchId => self.form.batch_id = buf.trim().to_string(),
                    Field::Count => {
                        self.form.count = buf.trim().to_string();
                        self.form.count_edited = true;
                    }
                    Field::Trace | Field::OtherTrace => {
                        self.modal = Modal::None;
                        let path = buf.trim();
                        if path.is_empty() {
                            return Vec::new();
                        }
                        return self.open_trace(field, std::path::PathBuf::from(path));
                    }
                    Field::TimingSpec | Field::CompareA | Field::CompareB => {
                        self.modal = Modal::None;
                        let path = buf.trim();
                        if path.is_empty() {
                            return Vec::new();
                        }
                        let path = std::path::PathBuf::from(path);
                        if field == Field::TimingSpec {
                            self.spec_chosen(path);
                            return Vec::new();
                        }
                        return self.result_chosen(field, path);
                    }
                    Field::Threshold => match crate::timing::compare::parse_threshold(&buf) {
                        Ok(t) => self.set_threshold(t),
                        Err(e) => self.log(LogKind::Error, e.to_string()),
                    },
                    Field::Plan | Field::Profile | Field::ReplayHead | Field::TimingHeads | Field::Search => {}
                }
                self.modal = Modal::None;
                return Vec::new();
            }
            KeyCode::Esc => {
                self.modal = Modal::None;
                if field == Field::Search {
                    // Esc drops the search (Enter keeps it).
                    self.filter.set_text("");
                    return self.rescan();
                }
                return Vec::new();
            }
            KeyCode::Backspace => {
                buf.pop();
            }
            KeyCode::Char('u') if ctrl => buf.clear(),
            // A plan or profile path typed in its picker.
            KeyCode::Char(c)
                if !ctrl && matches!(field, Field::Plan | Field::Profile) && !c.is_control() && buf.len() < 4096 =>
            {
                buf.push(c)
            }
            // A path: any printable character.
            KeyCode::Char(c)
                if !ctrl
                    && matches!(
                        field,
                        Field::Trace
                            | Field::OtherTrace
                            | Field::TimingSpec
                            | Field::CompareA
                            | Field::CompareB
                            | Field::Search
                    )
                    && !c.is_control()
                    && buf.len() < 4096 =>
            {
                buf.push(c)
            }
            KeyCode::Char(c) if !ctrl && buf.len() < 64 => {
                let ok = match field {
                    Field::Count => c.is_ascii_digit(),
                    Field::Threshold => c.is_ascii_digit() || ".%".contains(c),
                    _ => c.is_ascii_alphanumeric() || "-_.".contains(c),
                };
                if ok {
                    buf.push(c);
                }
            }
            _ => {}
        }
        if field == Field::Search && buf != self.filter.text {
            // Incremental: the view narrows as the search is typed.
            self.filter.set_text(&buf);
            self.modal = Modal::Edit { field, buf };
            return self.rescan();
        }
        self.modal = Modal::Edit { field, buf };
        Vec::new()
    }

    fn picker_key(&mut self, field: Field, sel: usize, k: KeyEvent) -> Vec<Effect> {
        let len = match field {
            Field::Plan => self.form.plans.len(),
            Field::Trace | Field::OtherTrace => self.replay.traces.len(),
            Field::ReplayHead | Field::TimingHeads => self.heads.len(),
            Field::TimingSpec => self.timing_view.specs.len(),
            Field::CompareA | Field::CompareB => self.timing_view.results.len(),
            _ => self.form.profiles.len(),
        };
        let sel = match lookup(&[Scope::Picker, Scope::List, Scope::Global], &k) {
            Some(Action::Up) => moved(sel, len, Move::By(-1)),
            Some(Action::Down) => moved(sel, len, Move::By(1)),
            Some(Action::PageUp) => moved(sel, len, Move::By(-PAGE)),
            Some(Action::PageDown) => moved(sel, len, Move::By(PAGE)),
            Some(Action::Top) => 0,
            Some(Action::Bottom) => len.saturating_sub(1),
            Some(Action::Back | Action::Quit) => {
                self.modal = Modal::None;
                return Vec::new();
            }
            Some(Action::TypePath)
                if matches!(
                    field,
                    Field::Trace
                        | Field::OtherTrace
                        | Field::TimingSpec
                        | Field::CompareA
                        | Field::CompareB
                        | Field::Plan
                        | Field::Profile
                ) =>
            {
                // Start from the highlighted file: its folder is usually the one wanted.
                let list = match field {
                    Field::TimingSpec => &self.timing_view.specs,
                    Field::CompareA | Field::CompareB => &self.timing_view.results,
                    Field::Plan => &self.form.plans,
                    Field::Profile => &self.form.profiles,
                    _ => &self.replay.traces,
                };
                let buf = list.get(sel).map_or(String::new(), |p| p.display().to_string());
                self.modal = Modal::Edit { field, buf };
                return Vec::new();
            }
            Some(Action::Mark) if field == Field::TimingHeads => {
                if let Some(h) = self.heads.get(sel) {
                    let m = &mut self.timing_view.marked;
                    match m.iter().position(|x| *x == h.name) {
                        Some(i) => {
                            m.remove(i);
                        }
                        None => m.push(h.name.clone()),
                    }
                }
                sel
            }
            Some(Action::Open) => {
                self.modal = Modal::None;
                if len == 0 {
                    return Vec::new();
                }
                match field {
                    Field::Trace | Field::OtherTrace => {
                        let path = self.replay.traces[sel.min(len - 1)].clone();
                        return self.open_trace(field, path);
                    }
                    Field::ReplayHead => return self.start_replay(sel.min(len - 1)),
                    Field::TimingHeads => return self.start_timing(sel.min(len - 1)),
                    Field::TimingSpec => {
                        let path = self.timing_view.specs[sel.min(len - 1)].clone();
                        self.spec_chosen(path);
                        return Vec::new();
                    }
                    Field::CompareA | Field::CompareB => {
                        let path = self.timing_view.results[sel.min(len - 1)].clone();
                        return self.result_chosen(field, path);
                    }
                    _ => {}
                }
                if field == Field::Plan {
                    self.form.plan = Some(sel);
                    return Vec::new();
                }
                if self.form.profile == Some(sel) {
                    return Vec::new();
                }
                self.form.profile = Some(sel);
                self.form.profile_note = None;
                self.unusable_profiles.clear();
                if !self.form.count_edited {
                    self.form.count.clear();
                }
                return vec![Effect::Probe(self.form.profiles[sel].clone())];
            }
            _ => sel,
        };
        self.modal = Modal::Picker { field, sel };
        Vec::new()
    }

    /// A plan or profile path typed in its picker: listed (first) and chosen; a missing file
    /// is refused with its path.
    fn form_path_typed(&mut self, field: Field, path: std::path::PathBuf) -> Vec<Effect> {
        if !path.is_file() {
            self.refuse(LogKind::Error, format!("{}: no such file", path.display()));
            return Vec::new();
        }
        let list = if field == Field::Plan { &mut self.form.plans } else { &mut self.form.profiles };
        let i = match list.iter().position(|p| *p == path) {
            Some(i) => i,
            None => {
                list.insert(0, path.clone());
                0
            }
        };
        if field == Field::Plan {
            self.form.plan = Some(i);
            return Vec::new();
        }
        self.form.profile = Some(i);
        self.form.profile_note = None;
        self.unusable_profiles.clear();
        if !self.form.count_edited {
            self.form.count.clear();
        }
        vec![Effect::Probe(path)]
    }

    fn open_trace(&mut self, field: Field, path: std::path::PathBuf) -> Vec<Effect> {
        let slot = if field == Field::OtherTrace { Slot::Other } else { Slot::Main };
        self.replay.loading = Some(path.clone());
        self.panel = Panel::Replay;
        vec![Effect::OpenTrace { slot, path }]
    }

    /// Position of the selected row among the visible ones (the last when following; the
    /// next live row when the selected one left the window).
    pub fn trace_pos(&self, vis: &[&super::trace::TraceRow]) -> usize {
        let last = vis.len().saturating_sub(1);
        match self.trace_sel {
            None => last,
            Some(id) => vis
                .iter()
                .position(|r| r.id == id)
                .unwrap_or_else(|| vis.iter().position(|r| r.id > id && r.id < (1 << 62)).unwrap_or(last)),
        }
    }

    pub fn trace_selected_row(&self) -> Option<&super::trace::TraceRow> {
        let vis = self.trace_view();
        vis.get(self.trace_pos(&vis)).copied()
    }
}
