//! PN532 NFC front end over its high-speed UART (HSU): framing, typed commands, and a
//! `Head` driving ISO/IEC 14443-4 type A cards. See docs/pn532.md.

pub mod commands;
pub mod driver;
pub mod frame;

pub use driver::{Pn532Config, Pn532Head};
