//! Simulated card readers that expose the reference virtual card to real reader stacks.

pub mod pn532;
pub mod pn532_faults;
pub mod vpcd;
