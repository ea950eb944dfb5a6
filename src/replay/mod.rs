//! Replaying captured traces (docs/replay.md).

pub mod card;
pub mod compare;
