//! Tear campaigns (docs/tear.md): cut power at every wire exchange and every NVM commit of a
//! sequence, settle the cards, and check that no value, key or record was lost or doubled.
//!
//! `fault` (fault points, a power cut at exchange boundaries for any head), `sequence` (what
//! is faulted), `state` (card state read back), `settle` (what the terminal does after a
//! fault), `invariants` (the checks and the verdict), `campaign` (the driver), `matrix`
//! (the report).

pub mod campaign;
pub mod fault;
pub mod invariants;
pub mod matrix;
pub mod sequence;
pub mod settle;
pub mod state;

use thiserror::Error;

/// Why a campaign could not run (the bench, not the cards: exit 2).
#[derive(Debug, Error)]
pub enum TearError {
    #[error("{0}")]
    Unfit(String),
    #[error(
        "head {head} is a {driver} head: a campaign puts fresh cards from the profile's templates in its heads for \
         every fault point, so it runs on virtual heads with a card; for a device under test use the plan step `tear` \
         (docs/tear.md)"
    )]
    NotVirtual { head: String, driver: &'static str },
    #[error("sequence {seq}: setup failed: {detail}")]
    Setup { seq: String, detail: String },
    #[error("sequence {seq}: fault-free run failed: {detail}")]
    Baseline { seq: String, detail: String },
}
