//! The settlement terminal's certificate checks on transfer cards: CA signature, role,
//! subject, expiry and the CRL, for both cards, before any key update (every mode, at the
//! embodiment's S?003) and before every value transfer (S2001).
//!
//! Seed 002 holds the CRL "to inhibit value transfer to a smart card holding an invalid
//! public key certificate" (2nd and 3rd embodiments); the terminal reads both cards'
//! certificates at S?002 in every embodiment, so a revoked card is stopped whichever key
//! moves and whether or not a key moves at all.
//!
//! A card without a certificate (GET CARD INFO P1=01 answers 6A88: card-spec 8.1 lets a card be
//! issued without one) is checked by its card ID: its serial, the last four bytes of the ID
//! (card-spec 1.3), must not be on the CRL. It can take part in the common and multi-key
//! paths and in transfers, never in a public path, which needs the certificate's key.

use super::key_update::CardInfo;
use super::{exec, reject, EngineError, Flow, RejectKind, Stop, Terminal};
use crate::cmds;
use crate::crypto::cert::{Certificate, Role};
use crate::keys::{card_serial, rfc3339};
use crate::link::Link;
use crate::sw;

/// A card's certificate as GET CARD INFO P1=01 returned it, or `None` when the card has none.
pub type CardCert = Option<Vec<u8>>;

/// Read the card's certificate (S?002 / S?101A-B; the XFER applet is selected). 6A88 means the
/// card holds none; any other refusal stops the engine at `step` as the card refusing.
pub(crate) fn read_certificate(link: &mut Link, step: &str) -> Flow<CardCert> {
    let r = exec(link, step, &cmds::xfer_certificate())?;
    match r.sw {
        sw::OK => super::parsed(step, crate::spec::layout::certificate("GET CARD INFO 01", &r.data)).map(Some),
        sw::REF_DATA_NOT_FOUND => Ok(None),
        other => {
            reject(step, RejectKind::CardRefused(other), format!("card answered {other:04X}: {}", sw::describe(other)))
        }
    }
}

/// Read both cards' certificates (the XFER applet selected on each, rows labelled `read_step`)
/// and check them at `step`: the whole check for an engine that moves a key or value between
/// two cards it has just read (`transfer`; the combined settlement flow). Returns the
/// certificates for a public key-update path.
pub(crate) fn check_pair(
    x: &mut Link,
    y: &mut Link,
    t: &Terminal,
    read_step: &str,
    step: &str,
    (ix, iy): (&CardInfo, &CardInfo),
) -> Flow<(CardCert, CardCert)> {
    let cx = read_certificate(x, read_step)?;
    let cy = read_certificate(y, read_step)?;
    check_cards(t, x, step, [(ix, cx.as_deref()), (iy, cy.as_deref())])?;
    Ok((cx, cy))
}

/// Check both cards at `step`: first that the terminal's CRL can be relied on (a bench
/// error otherwise: no card is at fault), then each card in turn. `note` receives the trace
/// note when a stale CRL is accepted by the profile. Nothing is sent to either card.
pub(crate) fn check_cards(t: &Terminal, note: &Link, step: &str, cards: [(&CardInfo, Option<&[u8]>); 2]) -> Flow<()> {
    crl_usable(t, note, step)?;
    for (info, cert) in cards {
        check_card(t, step, info, cert)?;
    }
    Ok(())
}

/// The CRL must be the CA's and current at the terminal's clock.
fn crl_usable(t: &Terminal, note: &Link, step: &str) -> Flow<()> {
    let crl = &t.keys.crl;
    if crl.verify_signature(&t.keys.ca_public()).is_err() {
        return reject(step, RejectKind::CertificateInvalid, "terminal CRL is not signed by the CA");
    }
    if crl.is_stale(t.now) {
        if !t.keys.accept_stale_crl {
            return Err(Stop::Bench(EngineError::StaleCrl {
                step: step.into(),
                next_update: rfc3339(crl.next_update),
                now: rfc3339(t.now),
            }));
        }
        note.note_step(
            step,
            &format!("CRL stale since {}: accepted ([keyset] accept_stale_crl)", rfc3339(crl.next_update)),
        );
    }
    Ok(())
}

/// One card: with a certificate, CA signature, role 04, subject = card ID, expiry, then its
/// serial against the CRL; without one, the card ID's serial against the CRL.
fn check_card(t: &Terminal, step: &str, info: &CardInfo, cert: Option<&[u8]>) -> Flow<()> {
    let side = hex::encode_upper(info.card_id);
    let serial = match cert {
        None => card_serial(&info.card_id),
        Some(bytes) => {
            let Ok(cert) = Certificate::parse(bytes) else {
                return reject(
                    step,
                    RejectKind::CertificateInvalid,
                    format!("card {side}: certificate does not parse"),
                );
            };
            if cert.verify_signature(&t.keys.ca_public()).is_err() || cert.body.role != Role::XferCard {
                return reject(
                    step,
                    RejectKind::CertificateInvalid,
                    format!("card {side}: certificate not issued by the CA"),
                );
            }
            if cert.body.subject != info.card_id {
                return reject(
                    step,
                    RejectKind::CertificateInvalid,
                    format!("card {side}: certificate names another card"),
                );
            }
            if cert.is_expired(t.now) {
                return reject(step, RejectKind::CertificateExpired, format!("card {side}: certificate expired"));
            }
            cert.body.serial
        }
    };
    if t.keys.crl.is_revoked(serial) {
        let whose = if cert.is_some() { "certificate serial" } else { "card without certificate: its ID's serial" };
        return reject(
            step,
            RejectKind::CertificateRevoked,
            format!("card {side}: {whose} {serial:08X} is on the CRL"),
        );
    }
    Ok(())
}

/// A public path needs both certificates: a card without one is refused at `step`.
pub(crate) fn require_certificate<'c>(step: &str, info: &CardInfo, cert: &'c CardCert) -> Flow<&'c [u8]> {
    match cert {
        Some(c) => Ok(c),
        None => reject(
            step,
            RejectKind::CertificateMissing,
            format!("card {} has no certificate: the public path needs one", hex::encode_upper(info.card_id)),
        ),
    }
}
