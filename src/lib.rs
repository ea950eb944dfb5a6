//! cardbench: a bench for smart-card test labs.
//!
//! Data flows one way: profile → heads → plan runner → protocol engines → trace/report sinks.

#![forbid(unsafe_code)]

pub mod apdu;
pub mod batch;
pub mod card;
pub mod cli;
pub mod cmds;
pub mod coverage;
pub mod crypto;
pub mod engine;
pub mod event;
pub mod head;
pub mod interop;
pub mod issuance;
pub mod keys;
pub mod lab;
pub mod link;
pub mod mask;
pub mod plan;
pub mod print;
pub mod profile;
pub mod queue;
pub mod replay;
pub mod report;
pub mod runner;
pub mod secret;
pub mod sim;
pub mod sinks;
pub mod spec;
pub mod state_read;
pub mod store;
pub mod suggest;
/// The status words live with the rest of the protocol vocabulary (`spec::sw`).
pub use spec::sw;
pub mod tear;
pub mod timing;
pub mod trace;
pub mod tui;
