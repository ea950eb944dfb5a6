//! XFER responses (card-spec 8.1, 8.5, 8.8, 8.11).

use super::{arr, bad, be32, exact, Parsed};
use crate::spec::codes::{MODE_COMMON, MODE_MULTI, MODE_PUBLIC, MODE_PUBLIC_UK};

/// GET CARD INFO flag bits (8.1, offset 32); the other four bits are 0.
pub const FLAG_UPDATE_KEY: u8 = 0x01;
pub const FLAG_CARD_KEY: u8 = 0x02;
pub const FLAG_PENDING_CREDIT: u8 = 0x04;
pub const FLAG_LAST_DEBIT: u8 = 0x08;
const FLAGS_DEFINED: u8 = FLAG_UPDATE_KEY | FLAG_CARD_KEY | FLAG_PENDING_CREDIT | FLAG_LAST_DEBIT;
/// At most 8 preloaded transfer keys (5.1, object `38`).
pub const MAX_SLOTS: usize = 8;

const INFO: &str = "GET CARD INFO";

/// GET CARD INFO, P1 = `00` (8.1): 34 + 4n bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    pub card_id: [u8; 8],
    pub validity: u32,
    pub balance: u32,
    pub ukid: u32,
    pub tkid: u32,
    pub ukid_limit: u32,
    pub tkid_limit: u32,
    pub flags: u8,
    /// IDs of the preloaded transfer keys, strictly ascending.
    pub slots: Vec<u32>,
}

impl CardInfo {
    pub fn parse(b: &[u8]) -> Parsed<CardInfo> {
        if b.len() < 34 {
            return bad(INFO, "length", format!("{} bytes, at least 34 expected", b.len()));
        }
        let n = b[33] as usize;
        if n > MAX_SLOTS {
            return bad(INFO, "slot count (offset 33)", format!("{n}, at most {MAX_SLOTS}"));
        }
        if b.len() != 34 + 4 * n {
            return bad(INFO, "length", format!("{} bytes, expected 34 + 4 × {n}", b.len()));
        }
        let flags = b[32];
        if flags & !FLAGS_DEFINED != 0 {
            return bad(
                INFO,
                "flags (offset 32)",
                format!("{flags:02X}: reserved bits {:02X} set", flags & !FLAGS_DEFINED),
            );
        }
        let slots: Vec<u32> = (0..n).map(|i| be32(b, 34 + 4 * i)).collect();
        if let Some(w) = slots.windows(2).find(|w| w[0] >= w[1]) {
            return bad(INFO, "slot IDs (offset 34)", format!("{} then {}: not strictly ascending", w[0], w[1]));
        }
        Ok(CardInfo {
            card_id: arr(b, 0),
            validity: be32(b, 8),
            balance: be32(b, 12),
            ukid: be32(b, 16),
            tkid: be32(b, 20),
            ukid_limit: be32(b, 24),
            tkid_limit: be32(b, 28),
            flags,
            slots,
        })
    }

    pub fn has_update_key(&self) -> bool {
        self.flags & FLAG_UPDATE_KEY != 0
    }

    pub fn has_card_key(&self) -> bool {
        self.flags & FLAG_CARD_KEY != 0
    }

    pub fn has_pending_credit(&self) -> bool {
        self.flags & FLAG_PENDING_CREDIT != 0
    }

    pub fn has_last_debit(&self) -> bool {
        self.flags & FLAG_LAST_DEBIT != 0
    }
}

/// VALUE RECEIVE PERMISSION (8.8): transmission challenge ‖ `rnd_recv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivePermission {
    pub challenge: [u8; 16],
    pub rnd_recv: [u8; 16],
}

impl ReceivePermission {
    pub fn parse(b: &[u8]) -> Parsed<ReceivePermission> {
        exact("VALUE RECEIVE PERMISSION", b, 32)?;
        Ok(ReceivePermission { challenge: arr(b, 0), rnd_recv: arr(b, 16) })
    }
}

/// READ TRANSFER STATE `01` (8.11): the pending credit, 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCredit {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
    pub rnd_recv: [u8; 16],
}

impl PendingCredit {
    pub fn parse(b: &[u8]) -> Parsed<PendingCredit> {
        exact("READ TRANSFER STATE 01", b, 40)?;
        Ok(PendingCredit { paid: be32(b, 0), date: be32(b, 4), rnd_send: arr(b, 8), rnd_recv: arr(b, 24) })
    }
}

/// READ TRANSFER STATE `02` (8.11): the last debit, 56 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastDebit {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
    pub rnd_recv: [u8; 16],
    pub challenge: [u8; 16],
}

impl LastDebit {
    pub fn parse(b: &[u8]) -> Parsed<LastDebit> {
        exact("READ TRANSFER STATE 02", b, 56)?;
        Ok(LastDebit {
            paid: be32(b, 0),
            date: be32(b, 4),
            rnd_send: arr(b, 8),
            rnd_recv: arr(b, 24),
            challenge: arr(b, 40),
        })
    }
}

/// Length of the GET TRANSFER KEY response in `mode` (8.2, 8.3): the AE blob (16 + |P| + 16)
/// or ECIES ciphertext (65 + 16 + |P| + 16) and signature (64); `None` for an unknown mode.
pub fn transfer_key_len(mode: u8) -> Option<usize> {
    match mode {
        MODE_COMMON => Some(68),
        MODE_MULTI => Some(52),
        MODE_PUBLIC => Some(181),
        MODE_PUBLIC_UK => Some(201),
        _ => None,
    }
}

/// GET TRANSFER KEY (8.5): exactly the mode's length.
pub fn transfer_key(mode: u8, b: &[u8]) -> Parsed<Vec<u8>> {
    match transfer_key_len(mode) {
        Some(len) => exact("GET TRANSFER KEY", b, len).map(|()| b.to_vec()),
        None => bad("GET TRANSFER KEY", "mode", format!("{mode:02X} is not a key-update mode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's example (8.1): card A of the virtual lab before any transfer.
    const EXAMPLE: &str = "CB00000000000A01 72BD0BFF 00002710 00000001 00000001 00000004 00000008 03 00";

    fn example() -> Vec<u8> {
        hex::decode(EXAMPLE.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_spec_example_parses() {
        let i = CardInfo::parse(&example()).unwrap();
        assert_eq!((i.validity, i.balance, i.ukid, i.tkid), (0x72BD_0BFF, 10_000, 1, 1));
        assert_eq!((i.ukid_limit, i.tkid_limit), (4, 8));
        assert!(i.has_update_key() && i.has_card_key() && !i.has_pending_credit() && !i.has_last_debit());
        assert!(i.slots.is_empty());
    }

    fn with_slots(ids: &[u32]) -> Vec<u8> {
        let mut b = example();
        b[33] = ids.len() as u8;
        for id in ids {
            b.extend(id.to_be_bytes());
        }
        b
    }

    #[test]
    fn slots_must_be_strictly_ascending_and_at_most_eight() {
        assert_eq!(CardInfo::parse(&with_slots(&[2, 3, 9])).unwrap().slots, vec![2, 3, 9]);
        assert_eq!(CardInfo::parse(&with_slots(&[3, 2])).unwrap_err().field, "slot IDs (offset 34)");
        assert_eq!(CardInfo::parse(&with_slots(&[3, 3])).unwrap_err().field, "slot IDs (offset 34)");
        let nine: Vec<u32> = (1..=9).collect();
        assert_eq!(CardInfo::parse(&with_slots(&nine)).unwrap_err().field, "slot count (offset 33)");
    }

    #[test]
    fn reserved_flag_bits_are_refused() {
        let mut b = example();
        b[32] = 0x13;
        let e = CardInfo::parse(&b).unwrap_err();
        assert_eq!(e.to_string(), "GET CARD INFO: flags (offset 32): 13: reserved bits 10 set");
    }

    #[test]
    fn the_length_must_follow_the_slot_count() {
        let mut b = with_slots(&[2]);
        b.pop();
        assert_eq!(CardInfo::parse(&b).unwrap_err().field, "length");
        assert_eq!(CardInfo::parse(&b[..33]).unwrap_err().field, "length");
    }

    #[test]
    fn transfer_state_records_have_fixed_lengths() {
        assert_eq!(PendingCredit::parse(&[0; 40]).unwrap().paid, 0);
        assert!(PendingCredit::parse(&[0; 41]).is_err());
        assert!(LastDebit::parse(&[0; 56]).is_ok());
        assert!(LastDebit::parse(&[0; 40]).is_err());
        assert_eq!(transfer_key(MODE_PUBLIC, &[0; 181]).map(|b| b.len()), Ok(181));
        assert!(transfer_key(MODE_COMMON, &[0; 52]).is_err());
        assert!(transfer_key(7, &[0; 52]).is_err());
    }
}
