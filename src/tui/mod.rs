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
pub mod decode;
mod feed;
mod input;
pub mod keymap;
pub mod launch;
pub mod panels;
pub mod presence;
pub mod replay;
pub mod runloop;
pub mod scan;
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
    let given = profile.is_some();
    let mut app = startup(Config::discover(plan, profile), given, Now::current());
    app.bell = bell;
    runloop::run(app)
}

/// The app as it opens. Without a profile given, the first of `cfg.profiles` that can run a
/// batch is chosen (not merely the first file); when none can, the Batch panel lists each
/// one and why.
pub fn startup(mut cfg: Config, profile_given: bool, now: Now) -> App {
    let mut unusable = Vec::new();
    if !profile_given {
        let (usable, why) = launch::first_batch_profile(&cfg.profiles);
        if usable.is_none() {
            unusable = why;
        }
        cfg.profile = usable;
    }
    let mut app = App::new(cfg, now);
    app.unusable_profiles = unusable;
    app
}
