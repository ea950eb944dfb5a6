//! Seed 002 transfer-key update, embodiments 1-5 (Figs. 3, 7, 10, 11, 14, 17, 18).
//!
//! Step labels follow the seed: terminal steps `S<e>001`-`S<e>006`, card steps `S<e>1xxA`/`B`, where
//! `<e>` is 1 (common key), 3 (public key), 4/5 (3rd embodiment: common / public chosen by
//! update-key IDs), 6 (multi-key) or 7/8 (5th: common / public moving the update key too).
//! "A" is always the card being updated and "B" the card holding the newer key, as in the
//! seed's figures.

use super::revocation::{check_cards, read_certificate, require_certificate, CardCert};
use super::{exec, finish, no_data, ok_data, parsed, reject, EngineError, Flow, Outcome, RejectKind, Terminal};
use crate::apdu::Response;
use crate::cmds;
use crate::link::Link;
use crate::spec::codes::*;
use crate::spec::layout::block16;
use crate::spec::layout::xfer::transfer_key;
pub use crate::spec::layout::xfer::CardInfo;
use crate::sw;

/// Which embodiment the terminal runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateMode {
    /// 1st embodiment: shared update key.
    Common,
    /// 2nd: card key pairs and CA-signed certificates.
    Public,
    /// 3rd: common if the update-key IDs match, else public.
    Auto,
    /// 4th: preloaded transfer keys, only the ID moves.
    Multi,
    /// 5th: like Auto, and the public path moves the update key as well.
    Rollover,
}

impl UpdateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateMode::Common => "common",
            UpdateMode::Public => "public",
            UpdateMode::Auto => "auto",
            UpdateMode::Multi => "multi",
            UpdateMode::Rollover => "rollover",
        }
    }

    /// The mode's name in plans and on the command line (`common`, `public`, …).
    pub fn parse(s: &str) -> Option<UpdateMode> {
        Some(match s {
            "common" => UpdateMode::Common,
            "public" => UpdateMode::Public,
            "auto" => UpdateMode::Auto,
            "multi" => UpdateMode::Multi,
            "rollover" => UpdateMode::Rollover,
            _ => return None,
        })
    }
}

/// Select XFER and read the card information (S1101A/B and their twins).
pub(crate) fn read_info(link: &mut Link, select_step: &str, step: &str) -> Flow<CardInfo> {
    super::select(link, select_step, &AID_XFER)?;
    read_info_selected(link, step)
}

pub(crate) fn read_info_selected(link: &mut Link, step: &str) -> Flow<CardInfo> {
    let data = ok_data(link, step, &cmds::xfer_info())?;
    let i = parsed(step, CardInfo::parse(&data))?;
    link.card_id = hex::encode_upper(i.card_id);
    Ok(i)
}

pub fn key_update(a: &mut Link, b: &mut Link, t: &mut Terminal, mode: UpdateMode) -> Result<Outcome, EngineError> {
    finish(flow(a, b, t, mode))
}

fn flow(x: &mut Link, y: &mut Link, t: &mut Terminal, mode: UpdateMode) -> Flow<Outcome> {
    let e = match mode {
        UpdateMode::Common => 1,
        UpdateMode::Public => 3,
        UpdateMode::Auto => 4,
        UpdateMode::Multi => 6,
        UpdateMode::Rollover => 7,
    };
    let s = |e: u32, n: &str| format!("S{e}{n}");
    let ix = read_info(x, &s(e, "001"), &format!("S{e}002/S{e}101A"))?;
    let iy = read_info(y, &s(e, "001"), &format!("S{e}002/S{e}101B"))?;
    // Every mode reads both certificates: the CRL check at S?003 needs them, not only the
    // public paths' key transport (a card without one is checked by its ID: revocation.rs).
    let cx = read_certificate(x, &format!("S{e}002/S{e}101A"))?;
    let cy = read_certificate(y, &format!("S{e}002/S{e}101B"))?;
    // S?003: validity, certificates and CRL, then which card is older.
    let check = s(e, "003");
    for i in [&ix, &iy] {
        if t.now > i.validity {
            return reject(
                &check,
                RejectKind::CardExpired,
                format!("card {} expired (validity {})", hex::encode_upper(i.card_id), i.validity),
            );
        }
    }
    // The 3rd and 5th embodiments' public paths number their check S5003 / S8003 (the path
    // follows from the update-key IDs, known before either card is chosen as A).
    let cert_check = match mode {
        UpdateMode::Auto if ix.ukid != iy.ukid => s(5, "003"),
        UpdateMode::Rollover if ix.ukid != iy.ukid => s(8, "003"),
        _ => check.clone(),
    };
    check_cards(t, x, &cert_check, [(&ix, cx.as_deref()), (&iy, cy.as_deref())])?;
    if ix.tkid == iy.tkid {
        x.note_step(&check, "same transfer key ID: no update");
        return Ok(Outcome::Skipped(format!("both cards hold transfer key ID {}", ix.tkid)));
    }
    // The seed's A is the card being updated, B the one with the newer key.
    if ix.tkid < iy.tkid {
        update_older(x, y, mode, (&ix, &cx), (&iy, &cy))
    } else {
        update_older(y, x, mode, (&iy, &cy), (&ix, &cx))
    }
}

/// S?003 (mode choice, certificate checks) to the final check, with A the older card
/// (also the settlement terminal's update, `engine::settle`).
pub(crate) fn update_older(
    ta: &mut Link,
    tb: &mut Link,
    mode: UpdateMode,
    (ia, ca): (&CardInfo, &CardCert),
    (ib, cb): (&CardInfo, &CardCert),
) -> Flow<Outcome> {
    let s = |e: u32, n: &str| format!("S{e}{n}");
    let (card_mode, e) = match mode {
        UpdateMode::Common => (MODE_COMMON, 1),
        UpdateMode::Public => (MODE_PUBLIC, 3),
        UpdateMode::Multi => (MODE_MULTI, 6),
        UpdateMode::Auto if ia.ukid == ib.ukid => (MODE_COMMON, 4),
        UpdateMode::Auto => (MODE_PUBLIC, 5),
        UpdateMode::Rollover if ia.ukid == ib.ukid => (MODE_COMMON, 7),
        UpdateMode::Rollover => (MODE_PUBLIC_UK, 8),
    };
    let public = matches!(card_mode, MODE_PUBLIC | MODE_PUBLIC_UK);
    let check = s(e, "003");
    // Both certificates passed the CRL check in `flow`; a public path also needs them present.
    let (pa, pb) = if public {
        let ca = require_certificate(&check, ia, ca)?;
        let cb = require_certificate(&check, ib, cb)?;
        (cb, ca)
    } else {
        (&[][..], &[][..])
    };
    ta.note_step(
        &check,
        &format!(
            "update card {} from transfer key ID {} to {} (mode {card_mode:02X})",
            hex::encode_upper(ia.card_id),
            ia.tkid,
            ib.tkid
        ),
    );
    // S?004 → A answers a fresh update random (S?102A).
    let random = ok_data(ta, &format!("S{e}004/S{e}102A"), &cmds::xfer_update_permission(card_mode, pa))?;
    let random = parsed(&s(e, "102A"), block16("KEY UPDATE PERMISSION", &random))?;
    // S?005 → B exports its key protected for A (S?102B, plus S?103B signature in public modes).
    let b_step = if public { format!("S{e}005/S{e}102B-S{e}103B") } else { format!("S{e}005/S{e}102B") };
    let blob = ok_data(tb, &b_step, &cmds::xfer_get_transfer_key(card_mode, &random, pb))?;
    let blob = parsed(&s(e, "102B"), transfer_key(card_mode, &blob))?;
    // S?006 → A authenticates, decrypts, range-checks and applies.
    let (auth_step, final_step) =
        if public { (format!("S{e}103A-S{e}104A"), s(e, "105A")) } else { (s(e, "103A"), s(e, "104A")) };
    let r: Response = exec(ta, &format!("S{e}006/{auth_step}"), &cmds::xfer_update_transfer_key(card_mode, &blob))?;
    if r.sw != sw::OK {
        let at = if r.sw == sw::REF_DATA_NOT_USABLE { &final_step } else { &auth_step };
        return reject(at, RejectKind::CardRefused(r.sw), format!("card A refused the update: {}", sw::describe(r.sw)));
    }
    no_data(&final_step, &r.data, "UPDATE TRANSFER KEY")?;
    let after = read_info_selected(ta, &final_step)?;
    let moved_uk = card_mode == MODE_PUBLIC_UK;
    // Only the transfer key (and in mode 04 the update key) moves: 8.6 step 6.
    let rest = |i: &CardInfo| {
        (
            i.card_id,
            i.validity,
            i.balance,
            i.ukid_limit,
            i.tkid_limit,
            i.flags,
            i.slots.clone(),
            moved_uk || i.ukid == ia.ukid,
        )
    };
    if rest(&after) != rest(ia) {
        return reject(
            &final_step,
            RejectKind::StateMismatch,
            format!(
                "card A changed more than its key IDs: ID, validity, balance, limits, flags ({:02X} → {:02X}), slots or update key ID",
                ia.flags, after.flags
            ),
        );
    }
    if after.tkid != ib.tkid || (moved_uk && after.ukid != ib.ukid) {
        return reject(
            &final_step,
            RejectKind::StateMismatch,
            format!("card A acknowledged but holds transfer key ID {} (expected {})", after.tkid, ib.tkid),
        );
    }
    let uk = if moved_uk { format!(", update key ID {} → {}", ia.ukid, after.ukid) } else { String::new() };
    Ok(Outcome::Success(format!(
        "card {} transfer key ID {} → {}{uk} (S{e}xxx)",
        hex::encode_upper(ia.card_id),
        ia.tkid,
        after.tkid
    )))
}
