//! Terminal-side builders for every reference-card command (docs/card-spec.md), so engines
//! and plans never spell instruction bytes by hand.

use crate::apdu::Command;
use crate::spec::codes::*;

pub fn select(aid: &[u8]) -> Command {
    Command::new(CLA_ISO, SELECT, 0x04, 0x00).data(aid.to_vec())
}

pub fn perso_put(object: u8, data: &[u8]) -> Command {
    Command::new(CLA_PROP, PERSO_PUT, object, 0).data(data.to_vec())
}

pub fn perso_status() -> Command {
    Command::new(CLA_PROP, PERSO_STATUS, 0, 0).le(1)
}

pub fn perso_lock() -> Command {
    Command::new(CLA_PROP, PERSO_LOCK, 0, 0)
}

pub fn read_field(field: u8, le: usize) -> Command {
    Command::new(CLA_PROP, READ_FIELD, field, 0).le(le)
}

pub fn purse_read_all() -> Command {
    Command::new(CLA_PROP, PURSE_READ_ALL, 0, 0).le(256)
}

pub fn purse_write_value(amount: u32, date: u32) -> Command {
    Command::new(CLA_PROP, PURSE_WRITE_VALUE, 0, 0).data([amount.to_be_bytes(), date.to_be_bytes()].concat()).le(4)
}

pub fn purse_write_signature(sig: &[u8]) -> Command {
    Command::new(CLA_PROP, PURSE_WRITE_SIGNATURE, 0, 0).data(sig.to_vec())
}

pub fn purse_write_certificate(cert: &[u8]) -> Command {
    Command::new(CLA_PROP, PURSE_WRITE_CERTIFICATE, 0, 0).data(cert.to_vec())
}

pub fn cpay_verify_reader(cert: &[u8]) -> Command {
    Command::new(CLA_ISO, CPAY_VERIFY_READER, 0x00, 0xBE).data(cert.to_vec())
}

pub fn cpay_sign(reader_random: &[u8; 16]) -> Command {
    Command::new(CLA_PROP, CPAY_SIGN, 0, 0).data(reader_random.to_vec()).le(256)
}

pub fn cpay_debit(price: u32, date: u32, sig: &[u8]) -> Command {
    Command::new(CLA_PROP, CPAY_DEBIT, 0, 0).data([&price.to_be_bytes()[..], &date.to_be_bytes(), sig].concat()).le(4)
}

pub fn xfer_info() -> Command {
    Command::new(CLA_PROP, XFER_GET_INFO, 0, 0).le(256)
}

pub fn xfer_certificate() -> Command {
    Command::new(CLA_PROP, XFER_GET_INFO, 1, 0).le(256)
}

pub fn xfer_update_permission(mode: u8, peer_cert: &[u8]) -> Command {
    let c = Command::new(CLA_PROP, XFER_UPDATE_PERMISSION, mode, 0).le(16);
    if peer_cert.is_empty() {
        c
    } else {
        c.data(peer_cert.to_vec())
    }
}

pub fn xfer_get_transfer_key(mode: u8, random: &[u8], peer_cert: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_GET_TRANSFER_KEY, mode, 0).data([random, peer_cert].concat()).le(256)
}

pub fn xfer_update_transfer_key(mode: u8, blob: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_UPDATE_TRANSFER_KEY, mode, 0).data(blob.to_vec())
}

pub fn xfer_send_permission(paid: u32, date: u32) -> Command {
    Command::new(CLA_PROP, XFER_SEND_PERMISSION, 0, 0).data([paid.to_be_bytes(), date.to_be_bytes()].concat()).le(16)
}

pub fn xfer_receive_permission(paid: u32, date: u32, rnd_send: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_RECEIVE_PERMISSION, 0, 0)
        .data([&paid.to_be_bytes()[..], &date.to_be_bytes(), rnd_send].concat())
        .le(32)
}

pub fn xfer_send(challenge: &[u8], rnd_recv: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_SEND, 0, 0).data([challenge, rnd_recv].concat()).le(16)
}

pub fn xfer_receive(challenge: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_RECEIVE, 0, 0).data(challenge.to_vec()).le(4)
}

pub fn xfer_read_state(which: u8) -> Command {
    Command::new(CLA_PROP, XFER_READ_STATE, which, 0).le(256)
}

/// CANCEL PENDING CREDIT with the sending card's cancel proof (16 bytes).
pub fn xfer_cancel_pending(proof: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_CANCEL_PENDING, 0, 0).data(proof.to_vec())
}

/// CANCEL PROOF to the sending card, with the receiver's pending credit as READ TRANSFER
/// STATE 01 returns it: paid ‖ date ‖ rnd_send ‖ rnd_recv (40 bytes).
pub fn xfer_cancel_proof(pending: &[u8]) -> Command {
    Command::new(CLA_PROP, XFER_CANCEL_PROOF, 0, 0).data(pending.to_vec()).le(16)
}

/// Name of a command for traces and the TUI, from its header alone.
pub fn name(cla: u8, ins: u8) -> &'static str {
    match (cla, ins) {
        (CLA_ISO, SELECT) => "SELECT",
        (CLA_ISO, GET_RESPONSE) => "GET RESPONSE",
        (CLA_PROP, PERSO_PUT) => "PERSO PUT",
        (CLA_PROP, PERSO_LOCK) => "PERSO LOCK",
        (CLA_PROP, PERSO_STATUS) => "PERSO STATUS",
        (CLA_PROP, PURSE_READ_ALL) => "READ ALL",
        (CLA_PROP, READ_FIELD) => "READ FIELD",
        (CLA_PROP, PURSE_WRITE_VALUE) => "WRITE VALUE",
        (CLA_PROP, PURSE_WRITE_SIGNATURE) => "WRITE SIGNATURE",
        (CLA_PROP, PURSE_WRITE_CERTIFICATE) => "WRITE CERTIFICATE",
        (CLA_PROP, CPAY_SIGN) => "SIGN PAYMENT",
        (CLA_PROP, CPAY_DEBIT) => "DEBIT",
        (CLA_PROP, XFER_GET_INFO) => "GET CARD INFO",
        (CLA_ISO, CPAY_VERIFY_READER) => "PSO VERIFY CERTIFICATE",
        (CLA_PROP, XFER_GET_TRANSFER_KEY) => "GET TRANSFER KEY",
        (CLA_PROP, XFER_UPDATE_PERMISSION) => "KEY UPDATE PERMISSION",
        (CLA_PROP, XFER_UPDATE_TRANSFER_KEY) => "UPDATE TRANSFER KEY",
        (CLA_PROP, XFER_SEND_PERMISSION) => "VALUE SEND PERMISSION",
        (CLA_PROP, XFER_RECEIVE_PERMISSION) => "VALUE RECEIVE PERMISSION",
        (CLA_PROP, XFER_SEND) => "VALUE SEND",
        (CLA_PROP, XFER_RECEIVE) => "VALUE RECEIVE",
        (CLA_PROP, XFER_READ_STATE) => "READ TRANSFER STATE",
        (CLA_PROP, XFER_CANCEL_PENDING) => "CANCEL PENDING CREDIT",
        (CLA_PROP, XFER_CANCEL_PROOF) => "CANCEL PROOF",
        _ => "UNKNOWN",
    }
}
