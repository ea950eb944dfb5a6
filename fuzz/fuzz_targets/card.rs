//! The four personalized cards of the virtual lab under arbitrary APDU sequences, power
//! cycles and torn commits. Nothing may panic; an unpowered card never answers; a powered
//! card goes mute only through a torn commit; every answer carries a status word.
//!
//! Input: records. `op` = first byte, card = `op & 3`:
//! - `op >> 6 == 0`: APDU: two length bytes (big endian), then that many bytes;
//! - `op >> 6 == 1`: power cycle (off, on);
//! - `op >> 6 == 2`: lose the n-th commit from now, n = next byte (a power cut mid-write);
//! - `op >> 6 == 3`: power off.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cards: Vec<_> = (0..4).map(common::lab_card).collect();
    for c in cards.iter_mut() {
        c.power_on();
    }
    let mut tear_armed = [false; 4];
    let mut d = data;
    while let Some((&op, rest)) = d.split_first() {
        d = rest;
        let i = usize::from(op & 3);
        let card = &mut cards[i];
        match op >> 6 {
            0 => {
                let Some((len, rest)) = d.split_first_chunk::<2>() else { break };
                let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
                let (apdu, rest) = rest.split_at(n);
                d = rest;
                let powered = card.is_powered();
                let commits = card.nvm_mut().commits();
                match card.process(apdu) {
                    Some(r) => {
                        assert!(powered, "an unpowered card answered");
                        assert!(r.len() >= 2, "answer without status word: {r:02X?}");
                    }
                    None if powered => {
                        assert!(tear_armed[i], "card went mute without a torn commit");
                        assert_eq!(card.nvm_mut().commits(), commits, "a torn commit landed");
                        assert!(!card.is_powered());
                        tear_armed[i] = false;
                    }
                    None => {}
                }
            }
            1 => {
                card.power_off();
                card.power_on();
            }
            2 => {
                let Some((&n, rest)) = d.split_first() else { break };
                d = rest;
                card.nvm_mut().tear_after(Some(u64::from(n)));
                tear_armed[i] = true;
            }
            _ => card.power_off(),
        }
    }
});
