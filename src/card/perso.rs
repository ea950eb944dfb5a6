//! Issuer personalization: PUT objects until LOCK. Nothing here ever reads a key back.

use super::defects::Defect;
use super::ins::*;
use super::{be32, status, Reply, VirtualCard};
use crate::apdu::{Command, Response};
use crate::secret::Secret;
use crate::sw;

impl VirtualCard {
    pub(crate) fn perso(&mut self, cmd: &Command) -> Reply {
        let d = self.defects;
        let p1p2_checked = match cmd.ins {
            PERSO_PUT => false,
            PERSO_LOCK => !(d.has(Defect::LockChecksLockedFirst) && self.nvm.get().locked),
            _ => !d.has(Defect::PersoStatusP1p2Unchecked),
        };
        if p1p2_checked && (cmd.p1, cmd.p2) != (0, 0) {
            return status(sw::WRONG_P1P2);
        }
        if cmd.ins == PERSO_STATUS {
            let img = self.nvm.get();
            return Response::ok(vec![u8::from(img.locked != d.has(Defect::PersoStatusInverted))]).into();
        }
        if d.has(Defect::RelockAccepted) && cmd.ins == PERSO_LOCK && self.nvm.get().locked {
            return status(sw::OK);
        }
        if d.has(Defect::PersoPutObjectCheckedFirst)
            && cmd.ins == PERSO_PUT
            && (cmd.p2 != 0 || !PERSO_OBJECTS.contains(&cmd.p1))
        {
            return status(sw::WRONG_P1P2);
        }
        // Defect: the lock check forgets the counter object.
        let counter_hole =
            self.defects.has(Defect::CounterSettableAfterLock) && cmd.ins == PERSO_PUT && cmd.p1 == PO_PURSE_COUNTER;
        if self.nvm.get().locked && !counter_hole {
            return status(sw::COMMAND_NOT_ALLOWED);
        }
        if cmd.ins == PERSO_LOCK {
            return match self.commit(|img| {
                img.locked = true;
                Ok(())
            }) {
                Ok(()) => status(sw::OK),
                Err(r) => r,
            };
        }
        if cmd.p2 != 0 {
            return status(sw::WRONG_P1P2);
        }
        let d = cmd.data.clone();
        let n = d.len();
        let want = |len: usize| {
            if n == len {
                Ok(())
            } else {
                Err(sw::WRONG_LENGTH)
            }
        };
        let p1 = cmd.p1;
        let r = self.commit(move |img| {
            match p1 {
                PO_CARD_ID => {
                    want(8)?;
                    img.card_id.copy_from_slice(&d);
                }
                PO_PURSE_COUNTER => {
                    want(4)?;
                    img.purse.counter = be32(&d, 0);
                }
                PO_CPAY_KEY => {
                    want(32)?;
                    valid_scalar(&d)?;
                    img.cpay.key = Secret::from_slice(&d);
                }
                PO_CPAY_CERT => {
                    if n == 0 || n > 255 {
                        return Err(sw::WRONG_LENGTH);
                    }
                    img.cpay.certificate = d;
                }
                PO_CPAY_CENTER_KEY => {
                    want(65)?;
                    valid_point(&d)?;
                    img.cpay.center_key = <[u8; 65]>::try_from(d.as_slice()).ok();
                }
                PO_CPAY_VALUE => {
                    want(8)?;
                    img.cpay.amount = be32(&d, 0);
                    img.cpay.date = be32(&d, 4);
                }
                PO_XFER_VALIDITY => {
                    want(4)?;
                    img.xfer.validity = be32(&d, 0);
                }
                PO_XFER_BALANCE => {
                    want(4)?;
                    img.xfer.balance = be32(&d, 0);
                }
                PO_XFER_MAX_BALANCE => {
                    want(4)?;
                    img.xfer.max_balance = be32(&d, 0);
                }
                PO_XFER_UPDATE_KEY => {
                    want(20)?;
                    img.xfer.ukid = be32(&d, 0);
                    img.xfer.uk = Secret::from_slice(&d[4..]);
                }
                PO_XFER_TRANSFER_KEY => {
                    want(20)?;
                    img.xfer.tkid = be32(&d, 0);
                    img.xfer.tk = Secret::from_slice(&d[4..]);
                }
                PO_XFER_LIMITS => {
                    want(8)?;
                    // Same order as GET CARD INFO: update-key limit, then transfer-key limit.
                    img.xfer.ukid_limit = be32(&d, 0);
                    img.xfer.tkid_limit = be32(&d, 4);
                }
                PO_XFER_CA_KEY => {
                    want(65)?;
                    valid_point(&d)?;
                    img.xfer.ca_key = <[u8; 65]>::try_from(d.as_slice()).ok();
                }
                PO_XFER_CERT => {
                    if n == 0 || n > 255 {
                        return Err(sw::WRONG_LENGTH);
                    }
                    img.xfer.certificate = d;
                }
                PO_XFER_CARD_KEY => {
                    want(32)?;
                    valid_scalar(&d)?;
                    img.xfer.card_key = Secret::from_slice(&d);
                }
                PO_XFER_SLOT => {
                    want(20)?;
                    let id = be32(&d, 0);
                    if img.xfer.slots.len() >= 8 && !img.xfer.slots.iter().any(|(i, _)| *i == id) {
                        return Err(sw::NOT_ENOUGH_MEMORY);
                    }
                    img.xfer.slots.retain(|(i, _)| *i != id);
                    img.xfer.slots.push((id, Secret::from_slice(&d[4..]).expect("20-byte slot checked")));
                    img.xfer.slots.sort_by_key(|(i, _)| *i);
                }
                _ => return Err(sw::WRONG_P1P2),
            }
            Ok(())
        });
        match r {
            Ok(()) => status(sw::OK),
            Err(r) => r,
        }
    }
}

/// Keys are checked when they are written, so a bad personalization fails at PUT (6A80)
/// rather than later in the field.
fn valid_scalar(d: &[u8]) -> Result<(), u16> {
    p256::ecdsa::SigningKey::from_slice(d).map(|_| ()).map_err(|_| sw::WRONG_DATA)
}

fn valid_point(d: &[u8]) -> Result<(), u16> {
    crate::crypto::sig::decode_point(d).map(|_| ()).map_err(|_| sw::WRONG_DATA)
}

/// The objects of card-spec 5.1 (a GEN defect looks P1 up before the lock check).
const PERSO_OBJECTS: [u8; 16] = [
    PO_CARD_ID,
    PO_PURSE_COUNTER,
    PO_CPAY_KEY,
    PO_CPAY_CERT,
    PO_CPAY_CENTER_KEY,
    PO_CPAY_VALUE,
    PO_XFER_VALIDITY,
    PO_XFER_BALANCE,
    PO_XFER_UPDATE_KEY,
    PO_XFER_TRANSFER_KEY,
    PO_XFER_LIMITS,
    PO_XFER_CA_KEY,
    PO_XFER_CERT,
    PO_XFER_CARD_KEY,
    PO_XFER_SLOT,
    PO_XFER_MAX_BALANCE,
];
