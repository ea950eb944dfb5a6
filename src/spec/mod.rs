//! The card specification as code: the protocol vocabulary that the reference card and the
//! terminal side both speak (AIDs, instruction bytes, status words, response layouts, message
//! formats) and the requirement IDs of `docs/card-spec.md`. Terminal code reads the spec from
//! here, never from `crate::card`, so that the reference card is one device under test among
//! others.

pub mod applet;
pub mod codes;
pub mod layout;
pub mod message;
pub mod protocol;
pub mod requirements;
pub mod sw;

pub use applet::Applet;
pub use protocol::Protocol;
