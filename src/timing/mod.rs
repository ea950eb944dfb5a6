//! Timing the card's own work (docs/timing.md): `spec` (what to time, TOML), `run` (the
//! `cardbench time` loop: warm-up, interleaved op and baseline, set-up, limits, heads in
//! parallel), `sample` (one timed exchange), `jitter` (the host timer measured beside a run),
//! `console` (a minimal table until the statistics module is merged).

pub mod console;
pub mod jitter;
pub mod run;
pub mod sample;
pub mod spec;
