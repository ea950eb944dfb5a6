//! The reference virtual card: three applets (PURSE, CPAY, XFER) over one NVM image.
//!
//! `VirtualCard::process` is the whole card as seen from the contacts: bytes in, bytes out,
//! with the T=0 / T=1 response-delivery rules applied here so the terminal's procedure-byte
//! handling meets the same behaviour as on silicon. It never panics on any input.

pub mod atr;
pub mod cpay;
pub mod defects;
pub mod image;
pub mod ins;
mod keycache;
pub mod nvm;
pub mod perso;
pub mod purse;
pub mod xfer;

use crate::apdu::{Command, Response};
pub use crate::spec::{applet::Applet, protocol::Protocol};
use crate::sw;
use defects::{Defect, Defects};
use image::CardImage;
use nvm::{Nvm, NvmFailure};
use p256::ecdsa::VerifyingKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Volatile state: lost on every power-off or reset, like card RAM.
#[derive(Debug, Default)]
pub(crate) struct Ram {
    pub selected: Option<Applet>,
    pub get_response: Option<Vec<u8>>,
    pub cpay_reader: Option<VerifyingKey>,
    pub cpay_nonce: Option<[u8; 16]>,
    pub key_update: Option<xfer::KeyUpdateSession>,
    pub send: Option<xfer::SendSession>,
    /// Set by a pending credit made since the last reset or SELECT (`Defect::PendingCreditInRam`).
    pub xfer_credit_live: bool,
}

/// Outcome of one applet command: a response, or the card going mute (power cut mid-write).
pub(crate) enum Reply {
    Answer(Response),
    Mute,
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply::Answer(r)
    }
}

pub(crate) fn status(sw: u16) -> Reply {
    Reply::Answer(Response::status(sw))
}

pub struct VirtualCard {
    pub(crate) nvm: Nvm<CardImage>,
    pub(crate) ram: Ram,
    pub(crate) rng: ChaCha20Rng,
    protocol: Protocol,
    powered: bool,
    /// Seeded implementation defects (none on the reference card). Not NVM: a property of
    /// the card's firmware, set by the lab.
    pub(crate) defects: Defects,
    /// Signing keys built from the NVM scalars (host-side cache, `keycache`).
    pub(crate) keys: keycache::KeyCache,
    /// An allowed variant's ATR in place of the reference one (`atr::check`ed by the lab).
    atr_variant: Option<Vec<u8>>,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualCard({})", hex::encode_upper(self.nvm.get().card_id))
    }
}

impl VirtualCard {
    /// A blank, unlocked card. `rng_seed` makes its randoms reproducible (same trace on
    /// every run); `None` draws them from the OS.
    pub fn blank(protocol: Protocol, rng_seed: Option<[u8; 32]>) -> Self {
        let rng = match rng_seed {
            Some(s) => ChaCha20Rng::from_seed(s),
            None => ChaCha20Rng::from_entropy(),
        };
        VirtualCard {
            nvm: Nvm::new(CardImage::default()),
            ram: Ram::default(),
            rng,
            protocol,
            powered: false,
            defects: Defects::NONE,
            keys: keycache::KeyCache::default(),
            atr_variant: None,
        }
    }

    /// Answer power-on with `atr` instead of the reference ATR of card-spec 2.1 (`None`: the
    /// reference one). The caller checks it (`atr::check`): it must announce `protocol()`.
    pub fn set_atr(&mut self, atr: Option<Vec<u8>>) {
        self.atr_variant = atr;
    }

    /// Give this card seeded implementation defects (`Defects::NONE`: the reference card).
    /// Draw the card's randoms from the OS from now on (an allowed variant: silicon draws
    /// fresh randoms, the reference card seeded ones so that runs repeat).
    pub fn use_os_rng(&mut self) {
        self.rng = ChaCha20Rng::from_entropy();
    }

    pub fn set_defects(&mut self, d: Defects) {
        self.defects = d;
    }

    pub fn defects(&self) -> &Defects {
        &self.defects
    }

    pub fn image(&self) -> &CardImage {
        self.nvm.get()
    }

    pub fn card_id(&self) -> [u8; 8] {
        self.nvm.get().card_id
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn nvm(&self) -> &Nvm<CardImage> {
        &self.nvm
    }

    pub fn nvm_mut(&mut self) -> &mut Nvm<CardImage> {
        &mut self.nvm
    }

    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// ATR: direct convention, TD1 announcing the protocol, historical bytes "CARDBENCH".
    pub fn atr(&self) -> Vec<u8> {
        if let Some(a) = &self.atr_variant {
            return a.clone();
        }
        let hist = b"CARDBENCH";
        let t = match self.protocol {
            Protocol::T0 => 0x00,
            Protocol::T1 => 0x01,
        };
        // TS, T0 (TD1 present, K = 9), TD1 (protocol t, nothing follows).
        let mut atr = vec![0x3B, 0x80 | hist.len() as u8, t];
        atr.extend_from_slice(hist);
        if t != 0 {
            // TCK is present whenever a protocol other than T=0 is indicated (7816-3 §8.2.5).
            let tck = atr[1..].iter().fold(0u8, |a, b| a ^ b);
            atr.push(tck);
        }
        atr
    }

    pub fn power_on(&mut self) -> Vec<u8> {
        self.clear_ram_at_power_event();
        if self.defects.has(Defect::SendLogInRam) && !self.nvm.get().xfer.sends.is_empty() {
            // A firmware that declared the log volatile: it starts empty after every reset.
            let _ = self.nvm.update(|img| {
                img.xfer.sends.clear();
                Ok(())
            });
        }
        self.powered = true;
        self.atr()
    }

    pub fn power_off(&mut self) {
        self.clear_ram_at_power_event();
        self.powered = false;
    }

    /// RAM is lost at power-on and power-off; two GEN defects keep a part of it.
    fn clear_ram_at_power_event(&mut self) {
        let selected = self.ram.selected.filter(|_| self.defects.has(Defect::ResetKeepsSelection));
        let get_response = self.ram.get_response.take().filter(|_| self.defects.has(Defect::ResetKeepsGetResponse));
        self.ram = Ram { selected, get_response, ..Ram::default() };
    }

    /// One command in, one response out; `None` when the card does not answer (unpowered,
    /// or power was cut in the middle of an NVM write).
    pub fn process(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if !self.powered {
            return None;
        }
        let cmd = match self.parse(bytes) {
            Ok(c) => c,
            Err(_) => {
                if self.defects.has(Defect::UnparsableClearsGetResponse) {
                    self.ram.get_response = None;
                }
                return Some(Response::status(sw::WRONG_LENGTH).to_bytes());
            }
        };
        if cmd.cla == ins::CLA_ISO && cmd.ins == ins::GET_RESPONSE {
            if self.defects.has(Defect::GetResponseNeedsApplet) && self.ram.selected.is_none() {
                return Some(Response::status(sw::COMMAND_NOT_ALLOWED).to_bytes());
            }
            return Some(self.get_response(&cmd).to_bytes());
        }
        if !self.defects.has(Defect::GetResponseNotCleared) {
            self.ram.get_response = None;
        }
        match self.dispatch(&cmd) {
            Reply::Answer(r) if r.sw == sw::INS_NOT_SUPPORTED && self.defects.has(Defect::RefusalWithData) => {
                Some(Response::new(vec![cmd.ins], r.sw).to_bytes())
            }
            Reply::Answer(r) => Some(self.deliver(&cmd, r).to_bytes()),
            Reply::Mute => {
                self.power_off();
                None
            }
        }
    }

    /// `Command::parse`, bent by the GEN defects that misparse.
    fn parse(&self, bytes: &[u8]) -> Result<Command, crate::apdu::ApduError> {
        let d = self.defects;
        match Command::parse(bytes) {
            Err(crate::apdu::ApduError::TrailingBytes(n)) if d.has(Defect::LenientApduParse) => {
                Command::parse(&bytes[..bytes.len() - n])
            }
            // The extended form: Lc or Le introduced by a 00 byte, 7 bytes at least.
            Ok(_) if d.has(Defect::ExtendedApdu6700) && bytes.len() >= 7 && bytes[4] == 0 => {
                Err(crate::apdu::ApduError::TruncatedExtendedLength)
            }
            r => r,
        }
    }

    fn dispatch(&mut self, cmd: &Command) -> Reply {
        let d = self.defects;
        let perso_cla = cmd.cla == ins::CLA_PROP || (cmd.cla == ins::CLA_ISO && d.has(Defect::PersoAnyCla));
        let perso_here = self.ram.selected.is_some() || !d.has(Defect::PersoNeedsApplet);
        let select_here = self.ram.selected.is_none() || !d.has(Defect::SelectInsideApplet);
        match (cmd.cla, cmd.ins) {
            (ins::CLA_ISO, ins::SELECT) if select_here => self.select(cmd),
            (_, ins::PERSO_PUT | ins::PERSO_LOCK | ins::PERSO_STATUS) if perso_cla && perso_here => self.perso(cmd),
            (ins::CLA_ISO | ins::CLA_PROP, _) => {
                let Some(applet) = self.ram.selected else {
                    let sw = if d.has(Defect::NoApplet6D00) { sw::INS_NOT_SUPPORTED } else { sw::COMMAND_NOT_ALLOWED };
                    return status(sw);
                };
                match self.common_checks(applet, cmd) {
                    Some(sw) => {
                        if d.has(Defect::RefusedCommandClearsRam) {
                            self.ram = Ram { selected: Some(applet), ..Ram::default() };
                        }
                        status(sw)
                    }
                    None if d.has(Defect::ReadAllInEveryApplet) && cmd.ins == ins::PURSE_READ_ALL => self.purse(cmd),
                    None => match applet {
                        Applet::Purse => self.purse(cmd),
                        Applet::Cpay => self.cpay(cmd),
                        Applet::Xfer => self.xfer(cmd),
                    },
                }
            }
            _ if d.has(Defect::UnknownCla6D00) => status(sw::INS_NOT_SUPPORTED),
            _ => status(sw::CLA_NOT_SUPPORTED),
        }
    }

    /// Section 1.6 checks of an applet command, in order: the refusal, if any.
    fn common_checks(&self, applet: Applet, cmd: &Command) -> Option<u16> {
        let d = self.defects;
        // Proprietary commands are CLA 80 only; the one interindustry command of an
        // applet (PSO VERIFY CERTIFICATE in CPAY) is CLA 00 only.
        let iso = applet == Applet::Cpay && cmd.ins == ins::CPAY_VERIFY_READER;
        if (cmd.cla == ins::CLA_ISO) != iso && !d.has(Defect::ClaNotBound) {
            return Some(sw::INS_NOT_SUPPORTED);
        }
        if d.has(Defect::UnknownInsBeforeP1p2) && !knows(applet, cmd.ins) {
            return Some(sw::INS_NOT_SUPPORTED);
        }
        if !params_used(applet, cmd.ins) && (cmd.p1, cmd.p2) != (0, 0) {
            return Some(sw::WRONG_P1P2);
        }
        // An issued card only: before LOCK the counter and keys are still settable.
        if !self.nvm.get().locked {
            return Some(sw::CONDITIONS_NOT_SATISFIED);
        }
        if d.has(Defect::UnknownIns6A81) && !knows(applet, cmd.ins) {
            return Some(sw::FUNC_NOT_SUPPORTED);
        }
        None
    }

    fn select(&mut self, cmd: &Command) -> Reply {
        let d = self.defects;
        if cmd.p1 != 0x04 || (cmd.p2 & 0xF3 != 0x00 && !d.has(Defect::SelectP2Unchecked)) {
            return status(sw::WRONG_P1P2);
        }
        let (cpay, xfer) = if d.has(Defect::CpayXferAidsSwapped) {
            (ins::AID_XFER, ins::AID_CPAY)
        } else {
            (ins::AID_CPAY, ins::AID_XFER)
        };
        let partial =
            |aid: &[u8]| d.has(Defect::SelectPartialAid) && !cmd.data.is_empty() && aid.starts_with(&cmd.data);
        let aid = cmd.data.as_slice();
        let applet = match () {
            _ if aid == ins::AID_PURSE || partial(&ins::AID_PURSE) => Applet::Purse,
            _ if aid == cpay => Applet::Cpay,
            _ if aid == xfer => Applet::Xfer,
            _ => {
                if d.has(Defect::SelectUnknownAidDeselects) {
                    self.ram = Ram::default();
                }
                return status(sw::FILE_NOT_FOUND);
            }
        };
        if d.has(Defect::SelectKeepsRam) {
            self.ram.selected = Some(applet);
        } else {
            // Selecting ends every session of the previously selected applet.
            let kept_send = self.ram.send.take().filter(|_| d.has(Defect::SendSessionSurvivesSelect));
            self.ram = Ram { selected: Some(applet), send: kept_send, ..Ram::default() };
        }
        if d.has(Defect::SelectReturnsFci) {
            return Response::ok(cmd.data.clone()).into();
        }
        status(sw::OK)
    }

    /// Response delivery rules. T=0: a case-3/4 command with response data answers 61xx and
    /// leaves the data for GET RESPONSE; a case-2 command with the wrong Le answers 6Cxx.
    /// T=1: data beyond Ne is left for GET RESPONSE with 61xx.
    fn deliver(&mut self, cmd: &Command, r: Response) -> Response {
        let d = self.defects;
        let t0 = self.protocol == Protocol::T0;
        if r.data.is_empty() {
            if d.has(Defect::T0Case4Empty6100) && t0 && r.sw == sw::OK && !cmd.data.is_empty() && cmd.le.is_some() {
                return Response::status(0x6100);
            }
            return r;
        }
        let len = r.data.len();
        if d.has(Defect::Case1DataNo61) && cmd.le.is_none() {
            return r;
        }
        match (self.protocol, cmd.data.is_empty(), cmd.le) {
            (Protocol::T0, true, Some(le)) if le != len && len <= 256 && !d.has(Defect::T0WrongLeNo6C) => {
                Response::status(0x6C00 | (len as u16 & 0xFF))
            }
            (Protocol::T0, true, Some(le)) if le == len && d.has(Defect::T0ExactLe61) => {
                self.ram.get_response = Some(r.data);
                Response::status(0x6100 | (len.min(256) as u16 & 0xFF))
            }
            (Protocol::T0, false, _) | (_, _, None) => {
                self.ram.get_response = Some(r.data);
                Response::status(0x6100 | (len.min(256) as u16 & 0xFF))
            }
            (_, _, Some(le)) => {
                if len <= le {
                    r
                } else if d.has(Defect::LongResponseTruncated) {
                    Response::ok(r.data[..le].to_vec())
                } else {
                    let (now, later) = r.data.split_at(le);
                    let rest = later.len();
                    self.ram.get_response = Some(later.to_vec());
                    Response::new(now.to_vec(), 0x6100 | (rest.min(256) as u16 & 0xFF))
                }
            }
        }
    }

    fn get_response(&mut self, cmd: &Command) -> Response {
        let d = self.defects;
        if (cmd.p1, cmd.p2) != (0, 0) && !d.has(Defect::GetResponseP1p2Unchecked) {
            return Response::status(sw::WRONG_P1P2);
        }
        if !cmd.data.is_empty() && d.has(Defect::GetResponseData6700) {
            return Response::status(sw::WRONG_LENGTH);
        }
        let Some(mut pending) = self.ram.get_response.take() else {
            if d.has(Defect::GetResponseEmpty9000) {
                return Response::ok(Vec::new());
            }
            return Response::status(sw::COMMAND_NOT_ALLOWED);
        };
        let le = cmd.le.unwrap_or(256).min(256);
        if le > pending.len() {
            if d.has(Defect::GetResponseShort9000) {
                return Response::ok(pending);
            }
            let n = pending.len();
            self.ram.get_response = Some(pending);
            return Response::status(0x6C00 | (n as u16 & 0xFF));
        }
        let rest = pending.split_off(le);
        if rest.is_empty() || d.has(Defect::GetResponseDropsRest) {
            Response::ok(pending)
        } else {
            let sw = 0x6100 | (rest.len().min(256) as u16 & 0xFF);
            self.ram.get_response = Some(rest);
            Response::new(pending, sw)
        }
    }

    /// Commit an NVM update; a torn commit makes the card mute.
    pub(crate) fn commit<R>(&mut self, f: impl FnOnce(&mut CardImage) -> Result<R, u16>) -> Result<R, Reply> {
        match self.nvm.update(f) {
            Ok(r) => Ok(r),
            Err(NvmFailure::Refused(sw)) => Err(status(sw)),
            Err(NvmFailure::Torn) => Err(Reply::Mute),
        }
    }

    pub(crate) fn random16(&mut self) -> [u8; 16] {
        let mut r = [0u8; 16];
        self.rng.fill_bytes(&mut r);
        r
    }
}

/// Commands whose P1/P2 carry a parameter; every other applet command requires P1 = P2 = 00.
fn params_used(applet: Applet, ins: u8) -> bool {
    match applet {
        Applet::Purse => matches!(ins, ins::READ_FIELD),
        Applet::Cpay => matches!(ins, ins::READ_FIELD | ins::CPAY_VERIFY_READER),
        Applet::Xfer => matches!(
            ins,
            ins::XFER_GET_INFO
                | ins::XFER_UPDATE_PERMISSION
                | ins::XFER_GET_TRANSFER_KEY
                | ins::XFER_UPDATE_TRANSFER_KEY
                | ins::XFER_READ_STATE
        ),
    }
}

/// Whether the applet has a command with this INS (any CLA): GEN defects that look an INS up
/// out of order need it; the applets themselves answer 6D00 to the others.
fn knows(applet: Applet, i: u8) -> bool {
    match applet {
        Applet::Purse => matches!(
            i,
            ins::PURSE_READ_ALL
                | ins::READ_FIELD
                | ins::PURSE_WRITE_VALUE
                | ins::PURSE_WRITE_SIGNATURE
                | ins::PURSE_WRITE_CERTIFICATE
        ),
        Applet::Cpay => matches!(i, ins::READ_FIELD | ins::CPAY_VERIFY_READER | ins::CPAY_SIGN | ins::CPAY_DEBIT),
        Applet::Xfer => matches!(
            i,
            ins::XFER_GET_INFO
                | ins::XFER_UPDATE_PERMISSION
                | ins::XFER_GET_TRANSFER_KEY
                | ins::XFER_UPDATE_TRANSFER_KEY
                | ins::XFER_SEND_PERMISSION
                | ins::XFER_RECEIVE_PERMISSION
                | ins::XFER_SEND
                | ins::XFER_RECEIVE
                | ins::XFER_READ_STATE
                | ins::XFER_CANCEL_PENDING
                | ins::XFER_CANCEL_PROOF
        ),
    }
}

/// Big-endian u32 at `off`; callers check lengths first.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(crate) fn arr16(b: &[u8], off: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    a
}
