//! The terminal UI (`cardbench` in a terminal, `cardbench tui`): the operator's bench, a view
//! over the same batch engine as the headless commands. See docs/tui.md.
//!
//! - `app`: the state and `App::event`, the only place it changes (`input` for keys, `feed`
//!   for the batch's events);
//! - `ui` and `panels/*`: drawing, one file per panel, reading the state only;
//! - `runloop`: threads and channels (input, batch, ticker), bounded redraw rate;
//! - `launch`: the batch thread and the other effects; `term`: the terminal and its restoring;
//! - `replay` (with `check`, `align`): trace files opened, replayed live, compared side by side.

pub mod align;
pub mod app;
pub mod check;
mod feed;
mod input;
pub mod keymap;
pub mod launch;
pub mod panels;
pub mod presence;
pub mod replay;
pub mod runloop;
pub mod stats;
pub mod term;
pub mod theme;
pub mod timing;
pub mod trace;
pub mod ui;

pub use app::{App, Config, Effect, Msg, Now, Panel};

use std::path::PathBuf;

/// Open the UI on the terminal until the operator quits; `bell`: ring the terminal bell
/// with each operator prompt.
pub fn run(profile: Option<PathBuf>, plan: Option<PathBuf>, bell: bool) -> anyhow::Result<()> {
    let mut cfg = Config::discover(plan, profile.clone());
    let mut unusable = Vec::new();
    if profile.is_none() {
        // The first profile that can run a batch, not merely the first file.
        let (usable, why) = launch::first_batch_profile(&cfg.profiles);
        if usable.is_none() {
            unusable = why;
        }
        cfg.profile = usable;
    }
    let mut app = App::new(cfg, Now::current());
    app.unusable_profiles = unusable;
    app.bell = bell;
    runloop::run(app)
}
