//! PURSE applet (seed 000): a memory card with a backward counter and no crypto.
//!
//! The counter is the only thing the card enforces: every value write decrements it by
//! exactly one in the same NVM transaction, and nothing can set it. The signature and
//! certificate areas are plain storage; their meaning is checked by the terminals.

use super::defects::Defect;
use super::ins::*;
use super::{be32, status, Reply, VirtualCard};
use crate::apdu::{Command, Response};
use crate::sw;

/// Byte layout of READ ALL; also used by the terminal to parse it.
pub fn encode_record(img: &super::image::CardImage) -> Vec<u8> {
    let p = &img.purse;
    let mut v = Vec::with_capacity(8 + 12 + 2 + p.signature.len() + p.certificate.len());
    v.extend_from_slice(&img.card_id);
    v.extend_from_slice(&p.counter.to_be_bytes());
    v.extend_from_slice(&p.amount.to_be_bytes());
    v.extend_from_slice(&p.date.to_be_bytes());
    v.push(p.signature.len() as u8);
    v.extend_from_slice(&p.signature);
    v.push(p.certificate.len() as u8);
    v.extend_from_slice(&p.certificate);
    v
}

impl VirtualCard {
    pub(crate) fn purse(&mut self, cmd: &Command) -> Reply {
        let img = self.nvm.get();
        match cmd.ins {
            PURSE_READ_ALL => {
                if cmd.p1 != 0 || cmd.p2 != 0 {
                    return status(sw::WRONG_P1P2);
                }
                if self.defects.has(Defect::ReadAllRejectsData) && !cmd.data.is_empty() {
                    return status(sw::WRONG_LENGTH);
                }
                Response::ok(self.defective_record(encode_record(img))).into()
            }
            READ_FIELD => {
                if cmd.p2 != 0 && !self.defects.has(Defect::ReadFieldP2Ignored) {
                    return status(sw::WRONG_P1P2);
                }
                let p = &img.purse;
                let data = match cmd.p1 {
                    FIELD_ID => img.card_id.to_vec(),
                    FIELD_COUNTER => p.counter.to_be_bytes().to_vec(),
                    FIELD_VALUE if self.defects.has(Defect::ReadFieldDateBeforeAmount) => {
                        [p.date.to_be_bytes(), p.amount.to_be_bytes()].concat()
                    }
                    FIELD_VALUE => [p.amount.to_be_bytes(), p.date.to_be_bytes()].concat(),
                    FIELD_SIGNATURE if p.signature.is_empty() && self.defects.has(Defect::ReadFieldEmptyAreaZeros) => {
                        vec![0; 64]
                    }
                    FIELD_SIGNATURE => p.signature.clone(),
                    FIELD_CERTIFICATE => p.certificate.clone(),
                    _ => return status(sw::WRONG_P1P2),
                };
                if data.is_empty() {
                    return status(sw::REF_DATA_NOT_FOUND);
                }
                Response::ok(data).into()
            }
            PURSE_WRITE_VALUE => {
                let defects = self.defects;
                if defects.has(Defect::WriteValueExhaustionFirst) && img.purse.counter == 0 {
                    return status(sw::NOT_ENOUGH_MEMORY);
                }
                if cmd.data.len() != 8 {
                    if defects.has(Defect::CounterDecrementedOnRefusedWrite) {
                        // Defect: the counter step is its own transaction, done before the
                        // command is validated.
                        if let Err(r) = self.commit(|img| {
                            img.purse.counter = img.purse.counter.saturating_sub(1);
                            Ok(())
                        }) {
                            return r;
                        }
                    }
                    return status(sw::WRONG_LENGTH);
                }
                let (amount, date) = (be32(&cmd.data, 0), be32(&cmd.data, 4));
                let step = if defects.has(Defect::CounterNotDecremented) {
                    0
                } else if defects.has(Defect::CounterDecrementedTwice) {
                    2
                } else {
                    1
                };
                // S1 + S2: value and counter step land together or not at all.
                match self.commit(|img| {
                    let p = &mut img.purse;
                    if p.counter == 0 && !defects.has(Defect::CounterWraps) {
                        return Err(sw::NOT_ENOUGH_MEMORY);
                    }
                    let before = p.counter;
                    p.counter = p.counter.wrapping_sub(step);
                    p.amount = amount;
                    p.date = date;
                    if defects.has(Defect::WriteValueClearsSignature) {
                        p.signature.clear();
                    }
                    Ok(if defects.has(Defect::WriteValueAnswersOldCounter) { before } else { p.counter })
                }) {
                    Ok(c) => Response::ok(c.to_be_bytes().to_vec()).into(),
                    Err(r) => r,
                }
            }
            PURSE_WRITE_SIGNATURE | PURSE_WRITE_CERTIFICATE => {
                let sig = cmd.ins == PURSE_WRITE_SIGNATURE;
                let d = self.defects;
                let ok_len = match (sig, cmd.data.len()) {
                    (true, n) if d.has(Defect::WriteSignatureAnyLength) => (1..=64).contains(&n),
                    (true, n) => n == 64,
                    (false, 0) => d.has(Defect::WriteCertificateAcceptsEmpty),
                    (false, n) => n <= 255,
                };
                if !ok_len {
                    return status(sw::WRONG_LENGTH);
                }
                if !sig
                    && d.has(Defect::WriteCertificateParsed)
                    && crate::crypto::cert::Certificate::parse(&cmd.data).is_err()
                {
                    return status(sw::WRONG_DATA);
                }
                let data = cmd.data.clone();
                let into_signature = sig && !d.has(Defect::WriteSignatureIntoCertificate);
                match self.commit(move |img| {
                    if into_signature {
                        img.purse.signature = data;
                    } else {
                        img.purse.certificate = data;
                    }
                    Ok(())
                }) {
                    Ok(()) => status(sw::OK),
                    Err(r) => r,
                }
            }
            _ => status(sw::INS_NOT_SUPPORTED),
        }
    }

    /// The READ ALL record as a defective card lays it out (unchanged on the reference card).
    fn defective_record(&self, mut r: Vec<u8>) -> Vec<u8> {
        if self.defects.has(Defect::ReadAllDateBeforeAmount) {
            r[12..20].rotate_left(4);
        }
        if self.defects.has(Defect::ReadAllPadsEmptySignature) && r[20] == 0 {
            r.splice(20..21, std::iter::once(64).chain(std::iter::repeat_n(0, 64)));
        }
        if self.defects.has(Defect::ReadAllTruncatedAt256) {
            r.truncate(256);
        }
        r
    }
}
