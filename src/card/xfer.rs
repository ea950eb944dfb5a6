//! XFER applet (seed 002): transfer-key update (embodiments 1-5) and card-to-card value
//! transfer (Fig. 4), with the receiving side's pending credit kept in NVM.

use super::defects::Defect;
use super::image::{LastDebit, PendingCredit, SendRecord, SendState, SEND_LOG_LEN};
use super::ins::*;
use super::{arr16, be32, status, Reply, VirtualCard};
use crate::apdu::{Command, Response};
use crate::crypto::{ae, cert, ecies, mac, sig};
use crate::secret::Secret;
pub use crate::spec::message::{cancel_proof, challenge, transport_aad, transport_signed};
use crate::sw;
use p256::ecdsa::{SigningKey, VerifyingKey};

/// A key-update permission handed out by this card (S1102A, S3102A, …): single use.
#[derive(Debug, Clone)]
pub struct KeyUpdateSession {
    pub mode: u8,
    pub random: [u8; 16],
    pub peer: Option<VerifyingKey>,
}

/// The sending card's tentative debit between S2101A and S2104A: RAM only, so a reset
/// discards it and the balance never moves before the transmission challenge verifies.
#[derive(Debug, Clone)]
pub struct SendSession {
    pub paid: u32,
    pub date: u32,
    pub rnd_send: [u8; 16],
}

/// A key ID with its key, as decrypted from a key-transport message.
type IdKey = (u32, [u8; 16]);

fn is_public(mode: u8) -> bool {
    mode == MODE_PUBLIC || mode == MODE_PUBLIC_UK
}

impl VirtualCard {
    pub(crate) fn xfer(&mut self, cmd: &Command) -> Reply {
        if let Err(e) = self.lose_volatile_credit() {
            return e;
        }
        if self.defects.has(Defect::ReadsEndSendSession) && matches!(cmd.ins, XFER_GET_INFO | XFER_READ_STATE) {
            self.ram.send = None;
        }
        let r = match cmd.ins {
            XFER_GET_INFO => self.xfer_info(cmd),
            XFER_UPDATE_PERMISSION => self.xfer_update_permission(cmd),
            XFER_GET_TRANSFER_KEY => self.xfer_get_transfer_key(cmd),
            XFER_UPDATE_TRANSFER_KEY => self.xfer_update_transfer_key(cmd),
            XFER_SEND_PERMISSION => self.xfer_send_permission(cmd),
            XFER_RECEIVE_PERMISSION => self.xfer_receive_permission(cmd),
            XFER_SEND => self.xfer_send(cmd),
            XFER_RECEIVE => self.xfer_receive(cmd),
            XFER_READ_STATE => self.xfer_read_state(cmd),
            XFER_CANCEL_PENDING => self.xfer_cancel(cmd),
            XFER_CANCEL_PROOF => self.xfer_cancel_proof(cmd),
            _ => Err(status(sw::INS_NOT_SUPPORTED)),
        };
        r.unwrap_or_else(|e| e)
    }

    /// `Defect::PendingCreditInRam`: a credit not made since the last reset or SELECT is lost.
    fn lose_volatile_credit(&mut self) -> Result<(), Reply> {
        if self.defects.has(Defect::PendingCreditInRam)
            && !self.ram.xfer_credit_live
            && self.nvm.get().xfer.pending_credit.is_some()
        {
            self.commit(|img| {
                img.xfer.pending_credit = None;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// P2 as the parameter commands check it (`Defect::P2IgnoredByInfoAndReadState`: not at all).
    fn p2_of(&self, cmd: &Command) -> u8 {
        if self.defects.has(Defect::P2IgnoredByInfoAndReadState) {
            0
        } else {
            cmd.p2
        }
    }

    fn xfer_info(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let d = self.defects;
        let p2 = self.p2_of(cmd);
        let img = self.nvm.get();
        let x = &img.xfer;
        let data = match (cmd.p1, p2) {
            (0x00, 0x00) => {
                let mut v = Vec::with_capacity(66);
                if d.has(Defect::InfoCardIdSerialOnly) {
                    v.extend_from_slice(&[0; 4]);
                    v.extend_from_slice(&img.card_id[4..]);
                } else {
                    v.extend_from_slice(&img.card_id);
                }
                let (ul, tl) = if d.has(Defect::InfoLimitsSwapped) {
                    (x.tkid_limit, x.ukid_limit)
                } else {
                    (x.ukid_limit, x.tkid_limit)
                };
                for n in [x.validity, x.balance, x.ukid, x.tkid, ul, tl] {
                    v.extend_from_slice(&n.to_be_bytes());
                }
                let flags = u8::from(x.uk.is_some())
                    | u8::from(x.card_key.is_some()) << 1
                    | u8::from(x.pending_credit.is_some()) << 2
                    | u8::from(x.last_debit.is_some()) << 3;
                v.push(if d.has(Defect::InfoFlagsShifted) { flags << 1 } else { flags });
                v.push(x.slots.len() as u8);
                for (id, _) in &x.slots {
                    v.extend_from_slice(&id.to_be_bytes());
                }
                if d.has(Defect::InfoSlotIdsPadded) {
                    v.resize(34 + 4 * 8, 0);
                }
                v
            }
            (0x01, 0x00) if d.has(Defect::InfoCertIsCpayCert) && !img.cpay.certificate.is_empty() => {
                img.cpay.certificate.clone()
            }
            (0x01, 0x00) if !x.certificate.is_empty() => x.certificate.clone(),
            (0x01, 0x00) => return Err(status(sw::REF_DATA_NOT_FOUND)),
            _ => return Err(status(sw::WRONG_P1P2)),
        };
        Ok(Response::ok(data).into())
    }

    /// A fresh random, or under `Defect::XferRandomsConstant` one derived from the card ID
    /// (the random is drawn all the same, so the card's random stream does not shift).
    fn xfer_random16(&mut self) -> [u8; 16] {
        let r = self.random16();
        if !self.defects.has(Defect::XferRandomsConstant) {
            return r;
        }
        let id = self.nvm.get().card_id;
        let mut c = [0x5A; 16];
        c[..8].copy_from_slice(&id);
        c
    }

    /// Length check of the value-transfer commands (`Defect::TransferLengthsLenient`: longer
    /// data is taken, the excess ignored).
    fn transfer_len_ok(&self, data: &[u8], len: usize) -> bool {
        if self.defects.has(Defect::TransferLengthsLenient) {
            data.len() >= len
        } else {
            data.len() == len
        }
    }

    /// The XFER card key and its public point, from the cache (`keycache`).
    fn card_key(&mut self) -> Result<(SigningKey, p256::PublicKey), Reply> {
        let VirtualCard { nvm, keys, .. } = self;
        nvm.get()
            .xfer
            .card_key
            .as_ref()
            .and_then(|k| keys.get(k))
            .map(|(k, p)| (k.clone(), *p))
            .ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))
    }

    /// Parse a peer certificate and check it against the CA key stored at personalization.
    fn verified_peer(&self, bytes: &[u8]) -> Result<VerifyingKey, Reply> {
        let ca = self.nvm.get().xfer.ca_key.ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?;
        let ca = sig::decode_point(&ca).map_err(|_| status(sw::NO_DIAGNOSIS))?;
        let parse_sw =
            if self.defects.has(Defect::CertParseError6982) { sw::SECURITY_NOT_SATISFIED } else { sw::WRONG_DATA };
        let c = cert::Certificate::parse(bytes).map_err(|_| status(parse_sw))?;
        let signature_ok = self.defects.has(Defect::PeerCertUnchecked) || c.verify_signature(&ca).is_ok();
        if !signature_ok || c.body.role != cert::Role::XferCard {
            return Err(status(sw::SECURITY_NOT_SATISFIED));
        }
        c.public_key().map_err(|_| status(sw::WRONG_DATA))
    }

    fn mode_of(cmd: &Command) -> Result<u8, Reply> {
        match cmd.p1 {
            MODE_COMMON | MODE_PUBLIC | MODE_MULTI | MODE_PUBLIC_UK if cmd.p2 == 0 => Ok(cmd.p1),
            _ => Err(status(sw::WRONG_P1P2)),
        }
    }

    /// S1102A / S3102A / S6102A / S8102A: hand out a fresh update random.
    fn xfer_update_permission(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let d = self.defects;
        if d.has(Defect::PermissionDroppedBeforeModeCheck) {
            self.ram.key_update = None;
        }
        let mode = Self::mode_of(cmd)?;
        if !d.has(Defect::PermissionKeptOnRefusal) {
            self.ram.key_update = None;
        }
        let peer = if is_public(mode) {
            self.card_key()?;
            Some(self.verified_peer(&cmd.data)?)
        } else {
            if !cmd.data.is_empty() && !d.has(Defect::KeyUpdateLengthsLenient) {
                return Err(status(sw::WRONG_LENGTH));
            }
            if self.nvm.get().xfer.uk.is_none() {
                return Err(status(sw::CONDITIONS_NOT_SATISFIED));
            }
            None
        };
        let random = self.xfer_random16();
        self.ram.key_update = Some(KeyUpdateSession { mode, random, peer });
        Ok(Response::ok(random.to_vec()).into())
    }

    /// S1102B / S3102B+S3103B / S6102B / S8102B+S8103B: export the transfer key, protected.
    fn xfer_get_transfer_key(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let d = self.defects;
        if d.has(Defect::TransferKeyClearsPermission) {
            self.ram.key_update = None;
        }
        let mode = match Self::mode_of(cmd) {
            Err(_) if d.has(Defect::TransferKeyModeUnchecked) => MODE_COMMON,
            m => m?,
        };
        let exact_16 = !is_public(mode) && !d.has(Defect::KeyUpdateLengthsLenient);
        if cmd.data.len() < 16 || (exact_16 && cmd.data.len() != 16) {
            return Err(status(sw::WRONG_LENGTH));
        }
        let random = arr16(&cmd.data, 0);
        let x = self.nvm.get().xfer.clone();
        let tk = x.tk.as_ref().ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?;
        let out = if is_public(mode) {
            let peer = self.verified_peer(&cmd.data[16..])?;
            let (key, _) = self.card_key()?;
            let mut pt = Vec::with_capacity(40);
            pt.extend_from_slice(&x.tkid.to_be_bytes());
            pt.extend_from_slice(tk.expose());
            if mode == MODE_PUBLIC_UK {
                let uk = x.uk.as_ref().ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?;
                pt.extend_from_slice(&x.ukid.to_be_bytes());
                pt.extend_from_slice(uk.expose());
            }
            let ct = ecies::encrypt(&mut self.rng, &p256::PublicKey::from(&peer), &pt);
            let signed_random: &[u8] = if d.has(Defect::TransportSignatureWithoutRandom) { &[] } else { &random };
            let signature = sig::sign(&key, &transport_signed(mode, &ct, signed_random));
            [ct, signature.to_vec()].concat()
        } else {
            let uk = x.uk.as_ref().ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?;
            let mut pt = Vec::with_capacity(36);
            pt.extend_from_slice(&random);
            pt.extend_from_slice(&x.tkid.to_be_bytes());
            if mode == MODE_COMMON || d.has(Defect::MultiBlobCarriesKey) {
                pt.extend_from_slice(tk.expose());
            }
            let iv = self.xfer_random16();
            ae::seal(&ae::AeKeys::from_key(uk.expose()), &iv, &self.card_aad(mode), &pt)
        };
        Ok(Response::ok(out).into())
    }

    /// S1103A-S1104A / S3103A-S3105A / S6103A-S6104A / S8103A-S8105A.
    fn xfer_update_transfer_key(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        if self.defects.has(Defect::PermissionDroppedBeforeModeCheck) {
            self.ram.key_update = None;
        }
        let mode = Self::mode_of(cmd)?;
        // The permission is consumed by any attempt, so a random is never accepted twice.
        let session = if self.defects.has(Defect::UpdatePermissionReusable) {
            self.ram.key_update.clone()
        } else {
            self.ram.key_update.take()
        }
        .ok_or_else(|| status(sw::COMMAND_NOT_ALLOWED))?;
        if session.mode != mode && !self.defects.has(Defect::PermissionModeNotBound) {
            return Err(status(sw::COMMAND_NOT_ALLOWED));
        }
        let x = self.nvm.get().xfer.clone();
        let refused = || status(sw::SECURITY_NOT_SATISFIED);
        let d = self.defects;
        let (tkid, tk, uk): (u32, [u8; 16], Option<IdKey>) = if is_public(mode) {
            let min = if d.has(Defect::UpdatePublicMinLength64) { 64 } else { ecies::OVERHEAD + 64 };
            if cmd.data.len() < min {
                return Err(status(sw::WRONG_LENGTH));
            }
            let (ct, signature) = cmd.data.split_at(cmd.data.len() - 64);
            let peer = session.peer.ok_or_else(refused)?;
            let signed = sig::verify(&peer, &transport_signed(mode, ct, &session.random), signature).is_ok();
            if !signed && !d.has(Defect::UpdateSignatureUnchecked) {
                return Err(refused());
            }
            let (key, public) = self.card_key()?;
            let decrypt_sw =
                if d.has(Defect::UpdateDecryptError6A80) { sw::WRONG_DATA } else { sw::SECURITY_NOT_SATISFIED };
            let pt = ecies::decrypt_with(&p256::SecretKey::from(key), &public, ct).map_err(|_| status(decrypt_sw))?;
            match (mode, pt.len()) {
                (MODE_PUBLIC, 20) => (be32(&pt, 0), arr16(&pt, 4), None),
                (MODE_PUBLIC_UK, 40) => (be32(&pt, 0), arr16(&pt, 4), Some((be32(&pt, 20), arr16(&pt, 24)))),
                _ => return Err(status(sw::WRONG_DATA)),
            }
        } else {
            let uk = x.uk.as_ref().ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?;
            let pt = match ae::open(&ae::AeKeys::from_key(uk.expose()), &self.card_aad(mode), &cmd.data) {
                Ok(pt) => pt,
                // Defect: "mode 03 moves only an ID", so a plain random ‖ ID is taken too.
                Err(_)
                    if mode == MODE_MULTI
                        && cmd.data.len() == 20
                        && self.defects.has(Defect::MultiKeyUnauthenticated) =>
                {
                    cmd.data.clone()
                }
                Err(_) => return Err(refused()),
            };
            let want = if mode == MODE_COMMON { 36 } else { 20 };
            if pt.len() != want {
                return Err(status(sw::WRONG_DATA));
            }
            if pt[..16] != session.random && !self.defects.has(Defect::UpdateRandomUnchecked) {
                return Err(refused());
            }
            let tkid = be32(&pt, 16);
            let tk = if mode == MODE_COMMON {
                arr16(&pt, 20)
            } else if d.has(Defect::MultiMovesIdOnly) {
                *x.tk.as_ref().ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))?.expose()
            } else {
                let slot = x.slots.iter().find(|(id, _)| *id == tkid);
                let preloaded = *slot.ok_or_else(|| status(sw::REF_DATA_NOT_USABLE))?.1.expose();
                match x.tk.as_ref() {
                    // Defect: the slot is looked up, but only the ID is committed.
                    Some(old) if d.has(Defect::MultiKeyNotLoaded) => *old.expose(),
                    _ => preloaded,
                }
            };
            (tkid, tk, None)
        };
        // Range checks: current < new <= upper limit, for every ID that moves.
        let above_current = if d.has(Defect::TkidAcceptsCurrent) { x.tkid <= tkid } else { x.tkid < tkid };
        let within_limit = if d.has(Defect::TkidLimitOffByOne) {
            tkid <= x.tkid_limit.saturating_add(1)
        } else {
            tkid <= x.tkid_limit
        };
        let tkid_ok = (above_current && within_limit) || d.has(Defect::TkidRangeUnchecked);
        if !tkid_ok {
            return Err(status(sw::REF_DATA_NOT_USABLE));
        }
        if let Some((ukid, _)) = uk {
            let ukid_ok = (x.ukid < ukid && ukid <= x.ukid_limit) || d.has(Defect::UkidLimitUnchecked);
            if !ukid_ok {
                return Err(status(sw::REF_DATA_NOT_USABLE));
            }
        }
        self.commit(|img| {
            img.xfer.tkid = tkid;
            img.xfer.tk = Some(Secret::new(tk));
            if let Some((ukid, uk)) = uk {
                img.xfer.ukid = ukid;
                img.xfer.uk = Some(Secret::new(uk));
            }
            Ok(())
        })?;
        Ok(status(sw::OK))
    }

    /// A challenge as this card computes it: `challenge`, or without the date under
    /// `Defect::ChallengeOmitsDate`.
    fn card_challenge(&self, tk: &[u8; 16], tag: u8, paid: u32, date: u32, random: &[u8; 16]) -> [u8; 16] {
        if self.defects.has(Defect::ChallengeOmitsDate) {
            mac::cmac(tk, &[&[tag], &paid.to_be_bytes(), random])
        } else {
            challenge(tk, tag, paid, date, random)
        }
    }

    /// Constant-time check of a peer's challenge against `card_challenge`.
    fn card_challenge_ok(&self, tk: &[u8; 16], tag: u8, paid: u32, date: u32, random: &[u8; 16], got: &[u8]) -> bool {
        if self.defects.has(Defect::ChallengeOmitsDate) {
            return mac::verify(tk, &[&[tag], &paid.to_be_bytes(), random], got);
        }
        let parts: [&[u8]; 4] = [&[tag], &paid.to_be_bytes(), &date.to_be_bytes(), random];
        mac::verify(tk, &parts, got)
    }

    /// The key-transport AAD as this card uses it (`Defect::TransportAadWithoutMode`: no mode).
    fn card_aad(&self, mode: u8) -> Vec<u8> {
        if self.defects.has(Defect::TransportAadWithoutMode) {
            DOM_XFER_KEY.to_vec()
        } else {
            transport_aad(mode)
        }
    }

    fn transfer_key(&self) -> Result<[u8; 16], Reply> {
        self.nvm.get().xfer.tk.as_ref().map(|k| *k.expose()).ok_or_else(|| status(sw::CONDITIONS_NOT_SATISFIED))
    }

    /// Common checks of both permissions: key present, amount and validity.
    fn transfer_preconditions(&self, data: &[u8], len: usize) -> Result<(u32, u32, [u8; 16]), Reply> {
        if !self.transfer_len_ok(data, len) {
            return Err(status(sw::WRONG_LENGTH));
        }
        let tk = self.transfer_key()?;
        let (paid, date) = (be32(data, 0), be32(data, 4));
        if paid == 0 && !self.defects.has(Defect::ZeroTransferAllowed) {
            return Err(status(sw::WRONG_DATA));
        }
        if date > self.nvm.get().xfer.validity && !self.defects.has(Defect::ValidityIgnored) {
            return Err(status(sw::CONDITIONS_NOT_SATISFIED));
        }
        Ok((paid, date, tk))
    }

    /// S2101A-S2102A: tentative debit (RAM) and the transmission random.
    fn xfer_send_permission(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let d = self.defects;
        let earlier = if d.has(Defect::SendPermissionKeepsFirstSession) { self.ram.send.clone() } else { None };
        if !d.has(Defect::SendSessionKeptOnRefusal) {
            self.ram.send = None;
        }
        let (paid, date, _) = self.transfer_preconditions(&cmd.data, 8)?;
        if self.nvm.get().xfer.balance < paid && !d.has(Defect::OverdraftAllowed) {
            return Err(status(sw::NOT_ENOUGH_MEMORY));
        }
        let rnd_send = self.xfer_random16();
        let early_debit = d.has(Defect::DebitAtSendPermission);
        let drop_newest = d.has(Defect::SendLogDropsNewest);
        // The session is logged in NVM (the balance does not move): after a reset the card
        // can still tell that this session never debited (CANCEL PROOF).
        self.commit(|img| {
            if early_debit {
                // Defect: the tentative debit goes straight to NVM.
                img.xfer.balance = img.xfer.balance.wrapping_sub(paid);
            }
            let log = &mut img.xfer.sends;
            if log.len() >= SEND_LOG_LEN {
                log.remove(if drop_newest { log.len() - 1 } else { 0 });
            }
            log.push(SendRecord { paid, date, rnd_send, state: SendState::Open });
            Ok(())
        })?;
        self.ram.send = Some(earlier.unwrap_or(SendSession { paid, date, rnd_send }));
        Ok(Response::ok(rnd_send.to_vec()).into())
    }

    /// S2101B-S2103B: tentative credit kept in NVM, transmission challenge, reception random.
    fn xfer_receive_permission(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let (paid, date, tk) = self.transfer_preconditions(&cmd.data, 24)?;
        let rnd_send = arr16(&cmd.data, 8);
        let d = self.defects;
        let x = &self.nvm.get().xfer;
        if x.pending_credit.is_some() && !d.has(Defect::PendingCreditOverwritten) {
            return Err(status(sw::COMMAND_NOT_ALLOWED));
        }
        if x.balance.checked_add(paid).is_none_or(|b| b > x.balance_cap()) && !d.has(Defect::BalanceCapUnchecked) {
            if d.has(Defect::ReceivePermissionRefusalStores) {
                // The record was written before the check and not rolled back (no random drawn).
                self.commit(|img| {
                    img.xfer.pending_credit = Some(PendingCredit { paid, date, rnd_send, rnd_recv: [0; 16] });
                    Ok(())
                })?;
            }
            return Err(status(sw::NOT_ENOUGH_MEMORY));
        }
        let rnd_recv = self.xfer_random16();
        let chal = self.card_challenge(&tk, TAG_TRANSMISSION, paid, date, &rnd_send);
        self.commit(|img| {
            if d.has(Defect::CreditAtReceivePermission) {
                // Defect: the credit lands now; the pending record only waits for the MAC.
                img.xfer.balance = img.xfer.balance.wrapping_add(paid);
            }
            img.xfer.pending_credit = Some(PendingCredit { paid, date, rnd_send, rnd_recv });
            Ok(())
        })?;
        self.ram.xfer_credit_live = true;
        Ok(Response::ok([chal, rnd_recv].concat()).into())
    }

    /// S2103A-S2105A: verify the transmission challenge, commit the debit, answer the
    /// reception challenge.
    fn xfer_send(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let d = self.defects;
        let early_take = d.has(Defect::SendLengthCheckedAfterSession);
        let taken = if early_take { self.ram.send.take() } else { None };
        if cmd.data.len() != 32 {
            return Err(status(sw::WRONG_LENGTH));
        }
        let s = if early_take { taken } else { self.ram.send.take() }.ok_or_else(|| status(sw::COMMAND_NOT_ALLOWED))?;
        let tk = self.transfer_key()?;
        if !d.has(Defect::SendChallengeUnchecked)
            && !self.card_challenge_ok(&tk, TAG_TRANSMISSION, s.paid, s.date, &s.rnd_send, &cmd.data[..16])
        {
            if d.has(Defect::SendSessionKeptOnBadChallenge) {
                self.ram.send = Some(s);
            }
            return Err(status(sw::SECURITY_NOT_SATISFIED));
        }
        let rnd_recv = arr16(&cmd.data, 16);
        let chal = self.card_challenge(&tk, TAG_RECEPTION, s.paid, s.date, &rnd_recv);
        self.commit(|img| {
            // Defect debit-at-send-permission: the balance already moved.
            if !d.has(Defect::DebitAtSendPermission) {
                if img.xfer.balance < s.paid && !d.has(Defect::OverdraftAllowed) {
                    return Err(sw::NOT_ENOUGH_MEMORY);
                }
                img.xfer.balance = img.xfer.balance.wrapping_sub(s.paid);
            }
            if !d.has(Defect::LastDebitNotRecorded) {
                img.xfer.last_debit =
                    Some(LastDebit { paid: s.paid, date: s.date, rnd_send: s.rnd_send, rnd_recv, challenge: chal });
            }
            // A live session is always the newest logged one (a new permission replaces both).
            if let Some(r) = img.xfer.sends.iter_mut().rev().find(|r| r.rnd_send == s.rnd_send) {
                r.state = SendState::Debited;
            }
            Ok(())
        })?;
        if d.has(Defect::SendSessionKeptAfterDebit) {
            self.ram.send = Some(s);
        }
        Ok(Response::ok(chal.to_vec()).into())
    }

    /// S2104B-S2105B: verify the reception challenge, commit the credit.
    fn xfer_receive(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        if !self.transfer_len_ok(&cmd.data, 16) {
            return Err(status(sw::WRONG_LENGTH));
        }
        let d = self.defects;
        let tk = self.transfer_key()?;
        let none_sw =
            if d.has(Defect::NoCreditStatusSwapped) { sw::REF_DATA_NOT_FOUND } else { sw::COMMAND_NOT_ALLOWED };
        let p = self.nvm.get().xfer.pending_credit.clone().ok_or_else(|| status(none_sw))?;
        if !self.card_challenge_ok(&tk, TAG_RECEPTION, p.paid, p.date, &p.rnd_recv, &cmd.data[..16]) {
            if d.has(Defect::BadChallengeClearsCredit) {
                self.commit(|img| {
                    img.xfer.pending_credit = None;
                    Ok(())
                })?;
            }
            return Err(status(sw::SECURITY_NOT_SATISFIED));
        }
        let balance = self.commit(|img| {
            let x = &mut img.xfer;
            let b = if d.has(Defect::CreditAtReceivePermission) {
                x.balance
            } else if d.has(Defect::BalanceCapUnchecked) {
                x.balance.wrapping_add(p.paid)
            } else {
                x.balance.checked_add(p.paid).filter(|b| *b <= x.balance_cap()).ok_or(sw::NOT_ENOUGH_MEMORY)?
            };
            let before = x.balance;
            x.balance = b;
            if !d.has(Defect::ReceiveReplay) {
                x.pending_credit = None;
            }
            Ok(if d.has(Defect::ReceiveAnswersOldBalance) { before } else { b })
        })?;
        Ok(Response::ok(balance.to_be_bytes().to_vec()).into())
    }

    fn xfer_read_state(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        let df = self.defects;
        let p2 = self.p2_of(cmd);
        let x = &self.nvm.get().xfer;
        let empty = |n: usize| {
            if df.has(Defect::ReadStateEmptyZeros) {
                Ok(vec![0; n])
            } else {
                Err(status(sw::REF_DATA_NOT_FOUND))
            }
        };
        let data = match (cmd.p1, p2) {
            (0x01, 0) => match x.pending_credit.as_ref() {
                Some(p) if df.has(Defect::PendingStateRandomsSwapped) => {
                    [&p.paid.to_be_bytes()[..], &p.date.to_be_bytes(), &p.rnd_recv, &p.rnd_send].concat()
                }
                Some(p) => [&p.paid.to_be_bytes()[..], &p.date.to_be_bytes(), &p.rnd_send, &p.rnd_recv].concat(),
                None => empty(40)?,
            },
            (0x02, 0) => match x.last_debit.as_ref() {
                Some(d) if df.has(Defect::LastDebitStateWithoutChallenge) => {
                    [&d.paid.to_be_bytes()[..], &d.date.to_be_bytes(), &d.rnd_send, &d.rnd_recv].concat()
                }
                Some(d) => {
                    [&d.paid.to_be_bytes()[..], &d.date.to_be_bytes(), &d.rnd_send, &d.rnd_recv, &d.challenge].concat()
                }
                None => empty(56)?,
            },
            _ => return Err(status(sw::WRONG_P1P2)),
        };
        Ok(Response::ok(data).into())
    }

    /// CANCEL PENDING CREDIT: only with the sending card's proof that it never debited.
    fn xfer_cancel(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        if !self.transfer_len_ok(&cmd.data, 16) {
            return Err(status(sw::WRONG_LENGTH));
        }
        let d = self.defects;
        let tk = self.transfer_key()?;
        let none_sw =
            if d.has(Defect::NoCreditStatusSwapped) { sw::COMMAND_NOT_ALLOWED } else { sw::REF_DATA_NOT_FOUND };
        let p = self.nvm.get().xfer.pending_credit.clone().ok_or_else(|| status(none_sw))?;
        let parts: [&[u8]; 5] = [&[TAG_CANCEL], &p.paid.to_be_bytes(), &p.date.to_be_bytes(), &p.rnd_send, &p.rnd_recv];
        if !mac::verify(&tk, &parts, &cmd.data[..16]) && !d.has(Defect::CancelProofUnchecked) {
            return Err(status(sw::SECURITY_NOT_SATISFIED));
        }
        if !d.has(Defect::CancelDoesNotClearCredit) {
            self.commit(|img| {
                img.xfer.pending_credit = None;
                Ok(())
            })?;
        }
        Ok(status(sw::OK))
    }

    /// CANCEL PROOF, on the sending card: given a receiver's pending credit, prove that the
    /// send session it names never debited, and make sure it never will.
    fn xfer_cancel_proof(&mut self, cmd: &Command) -> Result<Reply, Reply> {
        if !self.transfer_len_ok(&cmd.data, 40) {
            return Err(status(sw::WRONG_LENGTH));
        }
        let df = self.defects;
        let tk = self.transfer_key()?;
        let (paid, date) = (be32(&cmd.data, 0), be32(&cmd.data, 4));
        let (rnd_send, rnd_recv) = (arr16(&cmd.data, 8), arr16(&cmd.data, 24));
        let x = &self.nvm.get().xfer;
        // Only the log proves a session: a session this card has no record of (another
        // sender's, or one pushed out of the log) might have debited.
        let found = x.sends.iter().enumerate().rev().find(|(_, r)| r.rnd_send == rnd_send).map(|(i, r)| (i, r.clone()));
        let (at, rec) = match found {
            Some(f) => f,
            // Defect: a session the card has no record of is taken as never debited.
            None if df.has(Defect::CancelProofUnknownSession) => {
                return Ok(Response::ok(self.proof_of(&tk, paid, date, &rnd_send, &rnd_recv).to_vec()).into());
            }
            None => return Err(status(sw::REF_DATA_NOT_FOUND)),
        };
        if (rec.paid, rec.date) != (paid, date) && !df.has(Defect::CancelProofIgnoresAmount) {
            return Err(status(sw::WRONG_DATA));
        }
        // Debited: the credit is to be completed, never cancelled. The last-debit check also
        // covers a debit whose rnd_recv was paired with another session's challenge.
        let debited_here = x.last_debit.as_ref().is_some_and(|d| d.rnd_recv == rnd_recv || d.rnd_send == rnd_send);
        if (rec.state == SendState::Debited || debited_here) && !df.has(Defect::CancelProofForDebited) {
            return Err(status(sw::COMMAND_NOT_ALLOWED));
        }
        if rec.state == SendState::Cancelled && df.has(Defect::CancelProofOnce) {
            return Err(status(sw::COMMAND_NOT_ALLOWED));
        }
        if self.ram.send.as_ref().is_some_and(|s| s.rnd_send == rnd_send) && !df.has(Defect::CancelProofKeepsSession) {
            self.ram.send = None;
        }
        if rec.state == SendState::Open {
            self.commit(|img| {
                img.xfer.sends[at].state = SendState::Cancelled;
                Ok(())
            })?;
        }
        Ok(Response::ok(self.proof_of(&tk, paid, date, &rnd_send, &rnd_recv).to_vec()).into())
    }

    /// The cancel proof as this card computes it (`Defect::CancelProofWithoutTag`: no tag 03).
    fn proof_of(&self, tk: &[u8; 16], paid: u32, date: u32, rnd_send: &[u8; 16], rnd_recv: &[u8; 16]) -> [u8; 16] {
        if self.defects.has(Defect::CancelProofWithoutTag) {
            mac::cmac(tk, &[&paid.to_be_bytes(), &date.to_be_bytes(), rnd_send, rnd_recv])
        } else {
            cancel_proof(tk, paid, date, rnd_send, rnd_recv)
        }
    }
}
