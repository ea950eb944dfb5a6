//! The PN532 simulator's host input: arbitrary bytes in arbitrary chunks, time passing,
//! and the lab controls (stall, corrupted answer, card removed or put back), with the lab's
//! card A in the field. Nothing may panic, and everything the simulator sends must be
//! well-formed frames (ACK, syntax error, or an information frame from the PN532), except
//! the one answer the lab asked to corrupt.
//!
//! Input: records, `op` = first byte:
//! - `op % 8 < 4`: feed the next `len` bytes (`len` = next byte);
//! - `4`: time passes: (next byte) ms, then `tick`;
//! - `5`: toggle the stall; `6`: corrupt the next answer; `7`: remove / put back the card.
#![no_main]

mod common;

use cardbench::head::pn532::frame::{Decoder, Frame, TFI_PN532};
use cardbench::sim::pn532::Pn532Sim;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut sim = Pn532Sim::new(Some(common::lab_card(0)));
    let mut now = Instant::now();
    let mut stall = false;
    let mut corrupt_armed = false;
    let mut out_of_field = None;
    let mut host = Decoder::new();
    let mut d = data;
    while let Some((&op, rest)) = d.split_first() {
        d = rest;
        let out = match op % 8 {
            0..=3 => {
                let Some((&len, rest)) = d.split_first() else { break };
                let n = usize::from(len).min(rest.len());
                let (bytes, rest) = rest.split_at(n);
                d = rest;
                sim.feed(bytes, now)
            }
            4 => {
                let Some((&ms, rest)) = d.split_first() else { break };
                d = rest;
                now += Duration::from_millis(u64::from(ms));
                sim.tick(now)
            }
            5 => {
                stall = !stall;
                sim.set_stall(stall);
                continue;
            }
            6 => {
                sim.corrupt_next_answer();
                corrupt_armed = true;
                continue;
            }
            _ => {
                match out_of_field.take() {
                    Some(card) => {
                        sim.insert_card(card);
                    }
                    None => out_of_field = sim.remove_card(),
                }
                continue;
            }
        };
        host.push(&out);
        while let Some(f) = host.next_frame() {
            match f {
                Ok(Frame::Ack | Frame::Error) => {}
                Ok(Frame::Info { tfi, data }) => {
                    assert_eq!(tfi, TFI_PN532);
                    assert!(!data.is_empty());
                }
                Ok(Frame::Nack) => panic!("the PN532 sent a NACK"),
                Err(e) => {
                    assert!(corrupt_armed, "malformed frame from the simulator: {e}");
                    corrupt_armed = false;
                }
            }
        }
        assert_eq!(host.pending(), 0, "the simulator left a partial frame on the line");
    }
});
