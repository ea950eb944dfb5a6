//! Timing the card's own work (docs/timing.md): `spec` (what to time, TOML), `run` (the
//! `cardbench time` loop: warm-up, interleaved op and baseline, set-up, limits, heads in
//! parallel), `sample` (one timed exchange), `jitter` (the host timer measured beside a run),
//! `qos` (CPU idle states held shallow for the run),
//! `stats` (their statistics), `compare` (lots compared), `report` (timing.json/csv/svg and
//! the console table).

pub mod compare;
pub mod jitter;
pub mod qos;
pub mod report;
pub mod run;
pub mod sample;
pub mod spec;
pub mod stats;
