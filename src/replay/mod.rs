//! Replaying captured traces (docs/replay.md).

pub mod compare;
