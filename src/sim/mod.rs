//! Simulated card readers that expose the reference virtual card to real reader stacks.

pub mod pn532;
pub mod vpcd;
