//! The protocol's codes, re-exported from `crate::spec::codes` so the card's modules (and
//! code written against `card::ins`) keep their names; the spec owns them.

pub use crate::spec::codes::*;
