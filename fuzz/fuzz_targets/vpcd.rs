//! The vpcd bridge: a byte stream from vpcd read message by message (`read_message`) and
//! each message handled by the bridge (`handle`) with the lab's card A. Nothing may panic,
//! and every answer fits a vpcd message (at most 65535 bytes).
#![no_main]

mod common;

use cardbench::sim::vpcd::{handle, read_message};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut card = common::lab_card(0);
    let mut r = Cursor::new(data);
    while let Ok(Some(msg)) = read_message(&mut r, |_| {}) {
        if let Some(a) = handle(&mut card, &msg) {
            assert!(a.len() <= 65535);
        }
    }
});
