//! Message formats: what is signed, MACed or authenticated by card and terminal (card-spec
//! 6.1, 7.1, 8.3, 8.8-8.12). Both sides build the bytes here, so a signature made by one
//! verifies on the other only if both follow the spec.

use super::codes::{DOM_CPAY_DEBIT, DOM_CPAY_SIGN, DOM_PURSE_RECORD, DOM_XFER_KEY, TAG_CANCEL};
use crate::crypto::mac;

/// PURSE value record signed by its writer (6.1): `"CBPURSE1" ‖ id ‖ counter ‖ date ‖ amount`.
/// Date before amount, unlike the card's value area.
pub fn record_message(card_id: &[u8; 8], counter: u32, date: u32, amount: u32) -> Vec<u8> {
    [DOM_PURSE_RECORD.as_slice(), card_id, &counter.to_be_bytes(), &date.to_be_bytes(), &amount.to_be_bytes()].concat()
}

/// `M_pay` (7.1), signed by the CPAY card at SIGN PAYMENT.
pub fn sign_message(id: &[u8; 8], date: u32, amount: u32, reader_random: &[u8]) -> Vec<u8> {
    [DOM_CPAY_SIGN.as_slice(), id, &date.to_be_bytes(), &amount.to_be_bytes(), reader_random].concat()
}

/// `M_debit` (7.1), the reader's authorization of a DEBIT over the card's nonce.
pub fn debit_message(id: &[u8; 8], price: u32, date: u32, card_nonce: &[u8]) -> Vec<u8> {
    [DOM_CPAY_DEBIT.as_slice(), id, &price.to_be_bytes(), &date.to_be_bytes(), card_nonce].concat()
}

/// Transmission (tag 01) and reception (tag 02) challenges (8.8, 8.9): AES-CMAC under the
/// transfer key over `tag ‖ paid ‖ date ‖ random`.
pub fn challenge(tk: &[u8; 16], tag: u8, paid: u32, date: u32, random: &[u8; 16]) -> [u8; 16] {
    mac::cmac(tk, &[&[tag], &paid.to_be_bytes(), &date.to_be_bytes(), random])
}

/// The sending card's proof that a send session never debited and never will (tag 03, 8.12),
/// checked by the receiving card before it cancels the matching pending credit.
pub fn cancel_proof(tk: &[u8; 16], paid: u32, date: u32, rnd_send: &[u8; 16], rnd_recv: &[u8; 16]) -> [u8; 16] {
    mac::cmac(tk, &[&[TAG_CANCEL], &paid.to_be_bytes(), &date.to_be_bytes(), rnd_send, rnd_recv])
}

/// Associated data of the key-transport AE in the common and multi-key modes (8.3).
pub fn transport_aad(mode: u8) -> Vec<u8> {
    [DOM_XFER_KEY.as_slice(), &[mode]].concat()
}

/// What the sending card signs in the public-key modes (8.3, S3103B / S8103B).
pub fn transport_signed(mode: u8, ciphertext: &[u8], random: &[u8]) -> Vec<u8> {
    [DOM_XFER_KEY.as_slice(), &[mode], ciphertext, random].concat()
}

/// Pending credit as READ TRANSFER STATE `01` returns it and CANCEL PROOF takes it (8.11,
/// 8.13): `paid ‖ date ‖ rnd_send ‖ rnd_recv`, 40 bytes.
pub fn pending_credit(paid: u32, date: u32, rnd_send: &[u8], rnd_recv: &[u8]) -> Vec<u8> {
    [&paid.to_be_bytes()[..], &date.to_be_bytes(), rnd_send, rnd_recv].concat()
}
