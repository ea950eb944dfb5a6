//! Timing of card operations (docs/timing.md): samples, their statistics, lot comparison
//! and reports.

pub mod compare;
pub mod report;
pub mod sample;
pub mod stats;
