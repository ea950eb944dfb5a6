//! CPAY applet: the seed-000 prior art ("Card to Card", \[0004\]-\[0008\]), a card with its own
//! P-256 key that signs ID, date, amount and the reader's random (S24).
//!
//! Beyond the seed: the debit that follows S38 must carry the reader's signature over a fresh
//! card nonce, so only a reader whose certificate the card checked in S21 can take value.

use super::defects::Defect;
use super::ins::*;
use super::{be32, status, Reply, VirtualCard};
use crate::apdu::{Command, Response};
use crate::crypto::{cert, sig};
pub use crate::spec::message::{debit_message, sign_message};
use crate::sw;

impl VirtualCard {
    pub(crate) fn cpay(&mut self, cmd: &Command) -> Reply {
        match cmd.ins {
            READ_FIELD => {
                let img = self.nvm.get();
                let d = self.defects;
                let data = match (cmd.p1, cmd.p2) {
                    (FIELD_ID, 0) => img.card_id.to_vec(),
                    (FIELD_VALUE, 0) if d.has(Defect::CpayReadFieldPurseValue) => {
                        [img.purse.amount.to_be_bytes(), img.purse.date.to_be_bytes()].concat()
                    }
                    (FIELD_VALUE, 0) => [img.cpay.amount.to_be_bytes(), img.cpay.date.to_be_bytes()].concat(),
                    (FIELD_COUNTER, 0) if d.has(Defect::CpayReadFieldCounter) => {
                        img.purse.counter.to_be_bytes().to_vec()
                    }
                    (FIELD_CERTIFICATE, 0) => img.cpay.certificate.clone(),
                    _ => return status(sw::WRONG_P1P2),
                };
                if data.is_empty() {
                    return status(sw::REF_DATA_NOT_FOUND);
                }
                Response::ok(data).into()
            }
            CPAY_VERIFY_READER => {
                let d = self.defects;
                if d.has(Defect::CpayPsoClearsBeforeP1P2) {
                    self.ram.cpay_reader = None;
                    self.ram.cpay_nonce = None;
                }
                if (cmd.p1, cmd.p2) != (0x00, 0xBE) {
                    return status(sw::WRONG_P1P2);
                }
                // S21-S23: the card checks the reader's certified key with the center key.
                // A new reader invalidates any nonce issued under the previous one.
                if !d.has(Defect::CpayRefusedPsoKeepsReader) {
                    self.ram.cpay_reader = None;
                    if !d.has(Defect::PsoKeepsNonce) {
                        self.ram.cpay_nonce = None;
                    }
                }
                let Some(center) = self.nvm.get().cpay.center_key else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                let Ok(center) = sig::decode_point(&center) else {
                    return status(sw::NO_DIAGNOSIS);
                };
                let Ok(c) = cert::Certificate::parse(&cmd.data) else {
                    if d.has(Defect::CpayPsoUnparsable6982) {
                        return status(sw::SECURITY_NOT_SATISFIED);
                    }
                    return status(sw::WRONG_DATA);
                };
                let signature_ok =
                    self.defects.has(Defect::CpayReaderSignatureUnchecked) || c.verify_signature(&center).is_ok();
                let role_ok =
                    self.defects.has(Defect::CpayReaderRoleUnchecked) || c.body.role == cert::Role::PaymentMachine;
                // Defect: the card has no clock, so it compares with its last value date.
                let expired = d.has(Defect::CpayReaderExpiryChecked) && c.body.expiry < self.nvm.get().cpay.date;
                if !signature_ok || !role_ok || expired {
                    return status(sw::SECURITY_NOT_SATISFIED);
                }
                match c.public_key() {
                    Ok(k) => {
                        if !d.has(Defect::PsoKeepsNonce) {
                            self.ram.cpay_nonce = None;
                        }
                        self.ram.cpay_reader = Some(k);
                        status(sw::OK)
                    }
                    Err(_) => status(sw::WRONG_DATA),
                }
            }
            CPAY_SIGN => {
                // S24: sign ID, date, amount and the reader's random.
                let d = self.defects;
                let no_reader = self.ram.cpay_reader.is_none() && !d.has(Defect::CpaySignWithoutReader);
                if no_reader && d.has(Defect::CpaySignReaderCheckedFirst) {
                    return status(sw::COMMAND_NOT_ALLOWED);
                }
                if cmd.data.len() != 16 {
                    return status(sw::WRONG_LENGTH);
                }
                if no_reader {
                    return status(sw::COMMAND_NOT_ALLOWED);
                }
                let img = self.nvm.get();
                let Some((key, _)) = img.cpay.key.as_ref().and_then(|k| self.keys.get(k)) else {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                };
                let (id, date, amount) = (img.card_id, img.cpay.date, img.cpay.amount);
                let random: &[u8] = if self.defects.has(Defect::CpaySignsZeroRandom) { &[0; 16] } else { &cmd.data };
                let signature = sig::sign(key, &sign_message(&id, date, amount, random));
                let fresh = self.random16();
                let nonce = match self.ram.cpay_nonce {
                    Some(old) if d.has(Defect::CpayNonceNotReplaced) => old,
                    _ => fresh,
                };
                self.ram.cpay_nonce = Some(nonce);
                let mut out = Vec::with_capacity(8 + 8 + 16 + 64);
                out.extend_from_slice(&id);
                if d.has(Defect::CpaySignAmountBeforeDate) {
                    out.extend_from_slice(&amount.to_be_bytes());
                    out.extend_from_slice(&date.to_be_bytes());
                } else {
                    out.extend_from_slice(&date.to_be_bytes());
                    out.extend_from_slice(&amount.to_be_bytes());
                }
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&signature);
                Response::ok(out).into()
            }
            CPAY_DEBIT => {
                let d = self.defects;
                if d.has(Defect::CpayDebitNonceConsumedByBadLength) && cmd.data.len() != 8 + 64 {
                    self.ram.cpay_nonce = None;
                }
                if cmd.data.len() != 8 + 64 {
                    return status(sw::WRONG_LENGTH);
                }
                // The nonce is single-use whatever happens next.
                let nonce = if self.defects.has(Defect::CpayNonceReusable) {
                    self.ram.cpay_nonce
                } else {
                    self.ram.cpay_nonce.take()
                };
                let (Some(nonce), Some(reader)) = (nonce, self.ram.cpay_reader) else {
                    return status(sw::COMMAND_NOT_ALLOWED);
                };
                let (price, date) = (be32(&cmd.data, 0), be32(&cmd.data, 4));
                let id = self.nvm.get().card_id;
                if !self.defects.has(Defect::CpayDebitSignatureUnchecked)
                    && sig::verify(&reader, &debit_message(&id, price, date, &nonce), &cmd.data[8..]).is_err()
                {
                    return status(sw::SECURITY_NOT_SATISFIED);
                }
                // Defect: only a bad signature is taken to burn the nonce.
                let keep_nonce = d.has(Defect::CpayNonceKeptOnValueRefusal);
                if price == 0 && !d.has(Defect::CpayDebitZeroPrice) {
                    if keep_nonce {
                        self.ram.cpay_nonce = Some(nonce);
                    }
                    return status(sw::WRONG_DATA);
                }
                let overdraft = self.defects.has(Defect::CpayOverdraft);
                let keeps_date = d.has(Defect::CpayDebitKeepsDate);
                let reader_single_use = d.has(Defect::CpayReaderSingleUse);
                match self.commit(|img| {
                    if img.cpay.amount < price && !overdraft {
                        return Err(sw::NOT_ENOUGH_MEMORY);
                    }
                    img.cpay.amount = img.cpay.amount.wrapping_sub(price);
                    if !keeps_date {
                        img.cpay.date = date;
                    }
                    Ok(img.cpay.amount)
                }) {
                    Ok(a) => {
                        if reader_single_use {
                            self.ram.cpay_reader = None;
                        }
                        Response::ok(a.to_be_bytes().to_vec()).into()
                    }
                    Err(r) => {
                        if keep_nonce && !matches!(r, Reply::Mute) {
                            self.ram.cpay_nonce = Some(nonce);
                        }
                        r
                    }
                }
            }
            _ => status(sw::INS_NOT_SUPPORTED),
        }
    }
}
