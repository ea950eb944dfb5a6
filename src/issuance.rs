//! Issuer personalization scripts: the PERSO PUT commands that turn a blank reference card
//! into the card a profile describes. The same script personalizes a virtual card in
//! process or a real card through any head.

use crate::apdu::Command;
use crate::cmds::{perso_lock, perso_put};
use crate::crypto::cert::Role;
use crate::crypto::sig;
use crate::keys::Keyset;
use crate::spec::codes::*;

/// Everything a card needs, resolved from a profile's card entry. No secret: the keys come
/// from the keyset by ID, so a trace can carry it (the `note` of an `insert` row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CardPlan {
    pub card_id: [u8; 8],
    pub purse_counter: u32,
    pub cpay_amount: u32,
    pub balance: u32,
    pub max_balance: u32,
    pub validity: u32,
    pub update_key: u32,
    pub transfer_key: u32,
    pub transfer_key_limit: u32,
    pub update_key_limit: u32,
    pub slots: Vec<u32>,
    pub cert_expiry: u32,
}

impl CardPlan {
    /// A card with the profile defaults: counter 1000, no value, keys 1/1, limits 8/4,
    /// validity to 2030-12-31, certificate to 2035-12-31.
    pub fn new(card_id: [u8; 8]) -> CardPlan {
        CardPlan {
            card_id,
            purse_counter: 1000,
            cpay_amount: 0,
            balance: 0,
            max_balance: 0,
            validity: 1_924_991_999,
            update_key: 1,
            transfer_key: 1,
            transfer_key_limit: crate::keys::TRANSFER_KEY_COUNT,
            update_key_limit: crate::keys::UPDATE_KEY_COUNT,
            slots: Vec::new(),
            cert_expiry: 2_082_758_399,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuanceError {
    #[error("keyset has no update key with ID {0}")]
    NoUpdateKey(u32),
    #[error("keyset has no transfer key with ID {0}")]
    NoTransferKey(u32),
}

/// Personalization commands in order, ending with LOCK. Commands carrying secrets are marked
/// so a link sends them with `exec_secret`.
pub fn script(plan: &CardPlan, keys: &Keyset) -> Result<Vec<(Command, bool)>, IssuanceError> {
    let uk = keys.update_key(plan.update_key).ok_or(IssuanceError::NoUpdateKey(plan.update_key))?;
    let tk = keys.transfer_key(plan.transfer_key).ok_or(IssuanceError::NoTransferKey(plan.transfer_key))?;
    let id = &plan.card_id;
    let cpay_key = keys.card_key(id, "cpay");
    let xfer_key = keys.card_key(id, "xfer");
    let cpay_cert = keys.card_cert(id, Role::SigningCard, plan.cert_expiry);
    let xfer_cert = keys.card_cert(id, Role::XferCard, plan.cert_expiry);
    let be = |v: u32| v.to_be_bytes().to_vec();
    let idk = |i: u32, k: &[u8; 16]| [&i.to_be_bytes()[..], k].concat();
    let mut s: Vec<(Command, bool)> = vec![
        (perso_put(PO_CARD_ID, id), false),
        (perso_put(PO_PURSE_COUNTER, &be(plan.purse_counter)), false),
        (perso_put(PO_CPAY_KEY, &cpay_key.to_bytes()), true),
        (perso_put(PO_CPAY_CERT, cpay_cert.encode()), false),
        (perso_put(PO_CPAY_CENTER_KEY, &sig::encode_point(&keys.center_public())), false),
        (perso_put(PO_CPAY_VALUE, &[be(plan.cpay_amount), be(0)].concat()), false),
        (perso_put(PO_XFER_VALIDITY, &be(plan.validity)), false),
        (perso_put(PO_XFER_BALANCE, &be(plan.balance)), false),
        (perso_put(PO_XFER_MAX_BALANCE, &be(plan.max_balance)), false),
        (perso_put(PO_XFER_UPDATE_KEY, &idk(plan.update_key, uk.expose())), true),
        (perso_put(PO_XFER_TRANSFER_KEY, &idk(plan.transfer_key, tk.expose())), true),
        (perso_put(PO_XFER_LIMITS, &[be(plan.update_key_limit), be(plan.transfer_key_limit)].concat()), false),
        (perso_put(PO_XFER_CA_KEY, &sig::encode_point(&keys.ca_public())), false),
        (perso_put(PO_XFER_CERT, xfer_cert.encode()), false),
        (perso_put(PO_XFER_CARD_KEY, &xfer_key.to_bytes()), true),
    ];
    for slot in &plan.slots {
        let k = keys.transfer_key(*slot).ok_or(IssuanceError::NoTransferKey(*slot))?;
        s.push((perso_put(PO_XFER_SLOT, &idk(*slot, k.expose())), true));
    }
    s.push((perso_lock(), false));
    Ok(s)
}
