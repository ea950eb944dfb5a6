//! Simulated card readers that expose a card (the reference virtual card, or one played back
//! from a trace) to real reader stacks.

pub mod card;
pub mod pn532;
pub mod pn532_faults;
pub mod vpcd;
