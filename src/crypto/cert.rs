//! Card-verifiable certificates and certificate revocation lists, encoded in
//! BER-TLV (ISO/IEC 7816-8 CV-certificate style) with the `iso7816-tlv` crate.
//!
//! ```text
//! 7F21 Certificate
//!   7F4E  Certificate body
//!     5F29  profile identifier, 1 byte = 00
//!     42    issuer (certification authority reference), 8 bytes
//!     5F20  subject (certificate holder reference), 8 bytes
//!     5F4C  role, 1 byte
//!     7F49  public key
//!       86  P-256 point, 65 bytes uncompressed
//!     5F24  expiry, u32 BE, seconds since the Unix epoch (UTC)
//!     C1    serial number, u32 BE
//!   5F37  signature r ‖ s (64 bytes) by the issuer over the encoded 7F4E TLV
//!
//! E1 CRL
//!   E0 body
//!     42    issuer, 8 bytes
//!     5F25  issue date, u32 BE seconds
//!     5F24  next-update date, u32 BE seconds: after it the list is stale
//!     C3    revoked serial numbers, 4 bytes BE each (possibly empty)
//!   5F37  signature r ‖ s (64 bytes) by the CA over the encoded E0 TLV
//! ```
//!
//! Parsing is strict (exact tags, order, lengths, no trailing bytes, and the
//! encoding must be exactly the one this module produces) and never panics on
//! arbitrary input. Because the BER-TLV parser of `iso7816-tlv` is recursive,
//! inputs longer than [`MAX_CERT_LEN`] / [`MAX_CRL_LEN`] are refused before
//! parsing, which bounds the recursion depth.

use core::convert::TryFrom;

use iso7816_tlv::ber::{Tag, Tlv, Value};
use p256::ecdsa::{SigningKey, VerifyingKey};

use super::{sig, CryptoError};

const T_CERT: u16 = 0x7F21;
const T_BODY: u16 = 0x7F4E;
const T_PROFILE: u16 = 0x5F29;
const T_ISSUER: u16 = 0x42;
const T_SUBJECT: u16 = 0x5F20;
const T_ROLE: u16 = 0x5F4C;
const T_PUBKEY: u16 = 0x7F49;
const T_POINT: u16 = 0x86;
const T_EXPIRY: u16 = 0x5F24;
const T_SERIAL: u16 = 0xC1;
const T_SIGNATURE: u16 = 0x5F37;
const T_CRL: u16 = 0xE1;
const T_CRL_BODY: u16 = 0xE0;
const T_ISSUED: u16 = 0x5F25;
/// The CRL's next update takes the certificate's expiry tag: both say "not to be relied on after".
const T_NEXT_UPDATE: u16 = 0x5F24;
const T_REVOKED: u16 = 0xC3;

/// Value of the profile identifier (tag `5F29`).
pub const PROFILE_ID: u8 = 0x00;
/// Length of an encoded certificate (every field has a fixed size).
pub const CERT_LEN: usize = 186;
/// Longest input [`Certificate::parse`] looks at; longer inputs are refused
/// before BER-TLV parsing.
pub const MAX_CERT_LEN: usize = 1024;
/// Most revoked serial numbers a CRL may list; [`Crl::issue`] panics beyond.
pub const MAX_REVOKED: usize = 1000;
/// Longest input [`Crl::parse`] accepts: the encoding of a CRL with
/// [`MAX_REVOKED`] serial numbers.
pub const MAX_CRL_LEN: usize = 4103;

/// Role of a certificate holder (tag `5F4C`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Central authority (CA).
    Center = 1,
    /// Charging machine.
    ChargeMachine = 2,
    /// Payment machine.
    PaymentMachine = 3,
    /// Value-transfer card.
    XferCard = 4,
    /// Signing card.
    SigningCard = 5,
    /// Settlement terminal.
    SettlementTerminal = 6,
}

impl Role {
    /// All roles, in code order.
    pub const ALL: [Role; 6] = [
        Role::Center,
        Role::ChargeMachine,
        Role::PaymentMachine,
        Role::XferCard,
        Role::SigningCard,
        Role::SettlementTerminal,
    ];

    /// Human-readable name (lower case, words separated by a space).
    pub fn name(&self) -> &'static str {
        match self {
            Role::Center => "center",
            Role::ChargeMachine => "charge machine",
            Role::PaymentMachine => "payment machine",
            Role::XferCard => "transfer card",
            Role::SigningCard => "signing card",
            Role::SettlementTerminal => "settlement terminal",
        }
    }
}

impl TryFrom<u8> for Role {
    type Error = CryptoError;

    /// Fails with [`CryptoError::MalformedCertificate`] for an unknown code.
    fn try_from(v: u8) -> Result<Self, CryptoError> {
        Role::ALL
            .into_iter()
            .find(|r| *r as u8 == v)
            .ok_or_else(|| CryptoError::MalformedCertificate(format!("unknown role 0x{v:02X}")))
    }
}

/// The signed content of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertBody {
    /// Certification authority reference (tag `42`).
    pub issuer: [u8; 8],
    /// Certificate holder reference (tag `5F20`).
    pub subject: [u8; 8],
    /// Holder role (tag `5F4C`).
    pub role: Role,
    /// Holder public key, uncompressed SEC1 P-256 point (tag `86` in `7F49`).
    pub public_key: [u8; 65],
    /// Expiry, seconds since the Unix epoch, UTC (tag `5F24`).
    pub expiry: u32,
    /// Serial number (tag `C1`).
    pub serial: u32,
}

/// A certificate: body, issuer signature and the exact encodings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Decoded body.
    pub body: CertBody,
    /// Issuer signature `r ‖ s` over [`Certificate::body_bytes`].
    pub signature: [u8; 64],
    body_der: Vec<u8>,
    raw: Vec<u8>,
}

/// A certificate revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    /// Reference of the issuing CA (tag `42`).
    pub issuer: [u8; 8],
    /// Issue date, seconds since the Unix epoch, UTC (tag `5F25`).
    pub issued: u32,
    /// Next-update date (tag `5F24`): a terminal whose clock is past it holds a stale list.
    pub next_update: u32,
    /// Revoked serial numbers, in encoding order (tag `C3`).
    pub revoked: Vec<u32>,
    /// CA signature `r ‖ s` over the encoded `E0` body.
    pub signature: [u8; 64],
    body_der: Vec<u8>,
    raw: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Encoding helpers (all framing is done by iso7816-tlv).

fn tag(t: u16) -> Tag {
    Tag::try_from(t).expect("constant tags are valid")
}

fn primitive(t: u16, value: &[u8]) -> Tlv {
    Tlv::new(tag(t), Value::Primitive(value.to_vec())).expect("constant tag is primitive")
}

fn constructed(t: u16, children: Vec<Tlv>) -> Tlv {
    Tlv::new(tag(t), Value::Constructed(children)).expect("constant tag is constructed")
}

fn signed(outer: u16, body: Tlv, key: &SigningKey) -> ([u8; 64], Vec<u8>, Vec<u8>) {
    let body_der = body.to_vec();
    let signature = sig::sign(key, &body_der);
    let raw = constructed(outer, vec![body, primitive(T_SIGNATURE, &signature)]).to_vec();
    (signature, body_der, raw)
}

// ---------------------------------------------------------------------------
// Strict decoding helpers; errors are one-line descriptions.

fn tag_hex(t: &Tag) -> String {
    hex::encode_upper(t.to_bytes())
}

fn parse_top(bytes: &[u8], max_len: usize, t: u16, name: &str) -> Result<Tlv, String> {
    if bytes.len() > max_len {
        return Err(format!("{} bytes, more than the {max_len}-byte limit", bytes.len()));
    }
    let (tlv, rest) = Tlv::parse(bytes);
    let tlv = tlv.map_err(|e| format!("invalid BER-TLV: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the {name}", rest.len()));
    }
    expect_tag(&tlv, t, name)?;
    if tlv.to_vec() != bytes {
        return Err("non-canonical BER-TLV length encoding".to_string());
    }
    Ok(tlv)
}

fn expect_tag(tlv: &Tlv, t: u16, name: &str) -> Result<(), String> {
    let want = tag(t);
    if *tlv.tag() != want {
        return Err(format!("expected tag {} ({name}), found {}", tag_hex(&want), tag_hex(tlv.tag())));
    }
    Ok(())
}

fn children<'a>(tlv: &'a Tlv, t: u16, name: &str, count: usize) -> Result<&'a [Tlv], String> {
    expect_tag(tlv, t, name)?;
    match tlv.value() {
        Value::Constructed(c) if c.len() == count => Ok(c),
        Value::Constructed(c) => {
            Err(format!("{name} ({}) holds {} data objects, expected {count}", tag_hex(tlv.tag()), c.len()))
        }
        Value::Primitive(_) => Err(format!("{name} ({}) is not constructed", tag_hex(tlv.tag()))),
    }
}

fn value<'a>(tlv: &'a Tlv, t: u16, name: &str) -> Result<&'a [u8], String> {
    expect_tag(tlv, t, name)?;
    match tlv.value() {
        Value::Primitive(v) => Ok(v),
        Value::Constructed(_) => Err(format!("{name} ({}) is constructed", tag_hex(tlv.tag()))),
    }
}

fn fixed<const N: usize>(tlv: &Tlv, t: u16, name: &str) -> Result<[u8; N], String> {
    let v = value(tlv, t, name)?;
    <[u8; N]>::try_from(v).map_err(|_| format!("{name} ({}) has {} bytes, expected {N}", tag_hex(tlv.tag()), v.len()))
}

// ---------------------------------------------------------------------------

impl Certificate {
    /// Encodes `body`, signs the encoded `7F4E` TLV with `issuer_key` and
    /// wraps both in `7F21`.
    ///
    /// The body is not validated: a test bench may issue deliberately broken
    /// certificates (e.g. an invalid point), which [`Certificate::parse`]
    /// will then refuse.
    pub fn issue(body: CertBody, issuer_key: &SigningKey) -> Certificate {
        let body_tlv = constructed(
            T_BODY,
            vec![
                primitive(T_PROFILE, &[PROFILE_ID]),
                primitive(T_ISSUER, &body.issuer),
                primitive(T_SUBJECT, &body.subject),
                primitive(T_ROLE, &[body.role as u8]),
                constructed(T_PUBKEY, vec![primitive(T_POINT, &body.public_key)]),
                primitive(T_EXPIRY, &body.expiry.to_be_bytes()),
                primitive(T_SERIAL, &body.serial.to_be_bytes()),
            ],
        );
        let (signature, body_der, raw) = signed(T_CERT, body_tlv, issuer_key);
        Certificate { body, signature, body_der, raw }
    }

    /// Strictly decodes a certificate (see the module documentation).
    /// Does not verify the signature.
    ///
    /// Fails with [`CryptoError::MalformedCertificate`] naming the problem.
    pub fn parse(bytes: &[u8]) -> Result<Certificate, CryptoError> {
        Self::parse_inner(bytes).map_err(CryptoError::MalformedCertificate)
    }

    fn parse_inner(bytes: &[u8]) -> Result<Certificate, String> {
        let top = parse_top(bytes, MAX_CERT_LEN, T_CERT, "certificate")?;
        let [body_tlv, sig_tlv] = children(&top, T_CERT, "certificate", 2)? else {
            unreachable!("children() checked the count")
        };
        let [profile, issuer, subject, role, pubkey, expiry, serial] =
            children(body_tlv, T_BODY, "certificate body", 7)?
        else {
            unreachable!("children() checked the count")
        };
        let [profile] = fixed::<1>(profile, T_PROFILE, "profile identifier")?;
        if profile != PROFILE_ID {
            return Err(format!("unsupported profile identifier 0x{profile:02X}"));
        }
        let issuer = fixed::<8>(issuer, T_ISSUER, "issuer")?;
        let subject = fixed::<8>(subject, T_SUBJECT, "subject")?;
        let [role] = fixed::<1>(role, T_ROLE, "role")?;
        let role = Role::try_from(role).map_err(|_| format!("unknown role 0x{role:02X}"))?;
        let [point] = children(pubkey, T_PUBKEY, "public key", 1)? else {
            unreachable!("children() checked the count")
        };
        let public_key = fixed::<65>(point, T_POINT, "public key point")?;
        sig::decode_point(&public_key).map_err(|_| "public key is not a valid uncompressed P-256 point".to_string())?;
        let expiry = u32::from_be_bytes(fixed::<4>(expiry, T_EXPIRY, "expiry")?);
        let serial = u32::from_be_bytes(fixed::<4>(serial, T_SERIAL, "serial number")?);
        let signature = fixed::<64>(sig_tlv, T_SIGNATURE, "signature")?;
        Ok(Certificate {
            body: CertBody { issuer, subject, role, public_key, expiry, serial },
            signature,
            body_der: body_tlv.to_vec(),
            raw: bytes.to_vec(),
        })
    }

    /// The complete encoding (the `7F21` TLV).
    pub fn encode(&self) -> &[u8] {
        &self.raw
    }

    /// The encoded `7F4E` TLV (tag, length, value): the signed bytes.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body_der
    }

    /// Verifies the signature over [`Certificate::body_bytes`] with the
    /// issuer's public key ([`CryptoError::BadSignature`] /
    /// [`CryptoError::BadSignatureEncoding`] on failure).
    pub fn verify_signature(&self, issuer: &VerifyingKey) -> Result<(), CryptoError> {
        sig::verify(issuer, &self.body_der, &self.signature)
    }

    /// The holder's public key ([`CryptoError::BadPublicKey`] if the point
    /// does not decode, which only happens for an issued broken certificate).
    pub fn public_key(&self) -> Result<VerifyingKey, CryptoError> {
        sig::decode_point(&self.body.public_key)
    }

    /// `true` once `now` (seconds since the Unix epoch) is past the expiry;
    /// the certificate is still valid during the expiry second itself.
    pub fn is_expired(&self, now: u32) -> bool {
        now > self.body.expiry
    }
}

impl Crl {
    /// Encodes and signs a CRL (serial numbers kept in the given order).
    ///
    /// # Panics
    ///
    /// Panics if more than [`MAX_REVOKED`] serial numbers are given.
    pub fn issue(issuer: [u8; 8], issued: u32, next_update: u32, revoked: Vec<u32>, key: &SigningKey) -> Crl {
        assert!(
            revoked.len() <= MAX_REVOKED,
            "a CRL lists at most {MAX_REVOKED} serial numbers, {} given",
            revoked.len()
        );
        let list: Vec<u8> = revoked.iter().flat_map(|s| s.to_be_bytes()).collect();
        let body_tlv = constructed(
            T_CRL_BODY,
            vec![
                primitive(T_ISSUER, &issuer),
                primitive(T_ISSUED, &issued.to_be_bytes()),
                primitive(T_NEXT_UPDATE, &next_update.to_be_bytes()),
                primitive(T_REVOKED, &list),
            ],
        );
        let (signature, body_der, raw) = signed(T_CRL, body_tlv, key);
        Crl { issuer, issued, next_update, revoked, signature, body_der, raw }
    }

    /// Strictly decodes a CRL (see the module documentation). Does not
    /// verify the signature.
    ///
    /// Fails with [`CryptoError::MalformedCrl`] naming the problem.
    pub fn parse(bytes: &[u8]) -> Result<Crl, CryptoError> {
        Self::parse_inner(bytes).map_err(CryptoError::MalformedCrl)
    }

    fn parse_inner(bytes: &[u8]) -> Result<Crl, String> {
        let top = parse_top(bytes, MAX_CRL_LEN, T_CRL, "CRL")?;
        let [body_tlv, sig_tlv] = children(&top, T_CRL, "CRL", 2)? else {
            unreachable!("children() checked the count")
        };
        let [issuer, issued, next_update, revoked] = children(body_tlv, T_CRL_BODY, "CRL body", 4)? else {
            unreachable!("children() checked the count")
        };
        let issuer = fixed::<8>(issuer, T_ISSUER, "issuer")?;
        let issued = u32::from_be_bytes(fixed::<4>(issued, T_ISSUED, "issue date")?);
        let next_update = u32::from_be_bytes(fixed::<4>(next_update, T_NEXT_UPDATE, "next-update date")?);
        let list = value(revoked, T_REVOKED, "revoked serial numbers")?;
        if list.len() % 4 != 0 {
            return Err(format!("revoked serial numbers (C3) have {} bytes, not a multiple of 4", list.len()));
        }
        if list.len() / 4 > MAX_REVOKED {
            return Err(format!("more than {MAX_REVOKED} revoked serial numbers"));
        }
        let revoked = list.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        let signature = fixed::<64>(sig_tlv, T_SIGNATURE, "signature")?;
        Ok(Crl { issuer, issued, next_update, revoked, signature, body_der: body_tlv.to_vec(), raw: bytes.to_vec() })
    }

    /// The complete encoding (the `E1` TLV).
    pub fn encode(&self) -> &[u8] {
        &self.raw
    }

    /// The encoded `E0` TLV (tag, length, value): the signed bytes.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body_der
    }

    /// Verifies the CA signature over the encoded `E0` body.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CryptoError> {
        sig::verify(key, &self.body_der, &self.signature)
    }

    /// `true` if `serial` is listed.
    pub fn is_revoked(&self, serial: u32) -> bool {
        self.revoked.contains(&serial)
    }

    /// `true` once `now` is past the next-update date: a newer list should exist, so a
    /// serial missing from this one proves nothing. Valid during the next-update second itself,
    /// like [`Certificate::is_expired`].
    pub fn is_stale(&self, now: u32) -> bool {
        now > self.next_update
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sig::{encode_point, key_from_seed};
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn ca() -> SigningKey {
        key_from_seed(b"unit", "ca")
    }

    fn body() -> CertBody {
        CertBody {
            issuer: *b"UNITCA01",
            subject: *b"CARD0042",
            role: Role::XferCard,
            public_key: encode_point(key_from_seed(b"unit", "card").verifying_key()),
            expiry: 1_800_000_000,
            serial: 0x0102_0304,
        }
    }

    fn cert() -> Certificate {
        Certificate::issue(body(), &ca())
    }

    fn crl(revoked: Vec<u32>) -> Crl {
        Crl::issue(*b"UNITCA01", 1_700_000_000, 1_700_864_000, revoked, &ca())
    }

    #[test]
    fn role_codes_and_names() {
        for (i, role) in Role::ALL.iter().enumerate() {
            assert_eq!(*role as u8, i as u8 + 1);
            assert_eq!(Role::try_from(i as u8 + 1), Ok(*role));
            assert!(!role.name().is_empty());
        }
        assert!(Role::try_from(0).is_err());
        assert!(Role::try_from(7).is_err());
        assert!(Role::try_from(0xFF).is_err());
        assert_eq!(Role::SettlementTerminal.name(), "settlement terminal");
    }

    #[test]
    fn certificate_round_trip() {
        let c = cert();
        assert_eq!(c.encode().len(), CERT_LEN);
        assert!(c.encode().windows(c.body_bytes().len()).any(|w| w == c.body_bytes()));
        let p = Certificate::parse(c.encode()).unwrap();
        assert_eq!(p, c);
        assert_eq!(p.body, body());
        assert_eq!(p.verify_signature(ca().verifying_key()), Ok(()));
        assert_eq!(p.public_key().unwrap(), *key_from_seed(b"unit", "card").verifying_key());
        for role in Role::ALL {
            let c = Certificate::issue(CertBody { role, ..body() }, &ca());
            assert_eq!(Certificate::parse(c.encode()).unwrap().body.role, role);
        }
    }

    #[test]
    fn certificate_layout() {
        let c = cert();
        let raw = c.encode();
        assert_eq!(&raw[..3], &[0x7F, 0x21, 0x81]);
        assert_eq!(raw[3] as usize, CERT_LEN - 4);
        let body = c.body_bytes();
        assert_eq!(&body[..3], &[0x7F, 0x4E, 0x70]);
        assert_eq!(&raw[4..4 + body.len()], body);
        assert_eq!(&body[3..7], &[0x5F, 0x29, 0x01, 0x00]);
        assert_eq!(&raw[4 + body.len()..4 + body.len() + 3], &[0x5F, 0x37, 0x40]);
        assert_eq!(&raw[raw.len() - 64..], &c.signature);
    }

    #[test]
    fn flipped_signature_byte_fails_verification() {
        let c = cert();
        let vk = *ca().verifying_key();
        let sig_start = c.encode().len() - 64;
        for i in 0..64 {
            let mut raw = c.encode().to_vec();
            raw[sig_start + i] ^= 0x01;
            let p = Certificate::parse(&raw).unwrap();
            assert!(p.verify_signature(&vk).is_err(), "signature byte {i}");
        }
    }

    #[test]
    fn modified_body_fails_verification_or_parsing() {
        let c = cert();
        let vk = *ca().verifying_key();
        for i in 0..c.body_bytes().len() {
            let mut raw = c.encode().to_vec();
            raw[4 + i] ^= 0x01;
            if let Ok(p) = Certificate::parse(&raw) {
                assert_eq!(p.verify_signature(&vk), Err(CryptoError::BadSignature), "byte {i}");
            }
        }
    }

    #[test]
    fn certificate_signed_by_another_key_fails() {
        let other = key_from_seed(b"unit", "rogue ca");
        let c = Certificate::issue(body(), &other);
        assert_eq!(c.verify_signature(ca().verifying_key()), Err(CryptoError::BadSignature));
        assert_eq!(c.verify_signature(other.verifying_key()), Ok(()));
    }

    #[test]
    fn expiry() {
        let c = cert();
        assert!(!c.is_expired(0));
        assert!(!c.is_expired(1_799_999_999));
        assert!(!c.is_expired(1_800_000_000));
        assert!(c.is_expired(1_800_000_001));
        assert!(c.is_expired(u32::MAX));
    }

    #[test]
    fn strict_certificate_parsing() {
        let c = cert();
        let raw = c.encode();
        let err = |bytes: &[u8]| match Certificate::parse(bytes) {
            Err(CryptoError::MalformedCertificate(m)) => m,
            other => panic!("expected MalformedCertificate, got {other:?}"),
        };
        // Trailing bytes.
        let mut long = raw.to_vec();
        long.push(0);
        assert!(err(&long).contains("trailing"));
        // Wrong outer tag.
        let mut t = raw.to_vec();
        t[1] = 0x22;
        assert!(err(&t).contains("7F21"));
        // Unknown profile, unknown role.
        let mut p = raw.to_vec();
        p[10] = 0x01;
        assert!(err(&p).contains("profile"));
        let role_at = raw.windows(3).position(|w| w == [0x5F, 0x4C, 0x01]).unwrap() + 3;
        let mut r = raw.to_vec();
        r[role_at] = 9;
        assert!(err(&r).contains("role"));
        // Invalid point (coordinate changed) and compressed prefix.
        let point_at = raw.windows(2).position(|w| w == [0x86, 0x41]).unwrap() + 2;
        let mut q = raw.to_vec();
        q[point_at + 64] ^= 0x01;
        assert!(err(&q).contains("point"));
        q = raw.to_vec();
        q[point_at] = 0x02;
        assert!(err(&q).contains("point"));
        // Non-canonical length: re-encode the outer length 81 B6 as 82 00 B6.
        let mut nc = vec![0x7F, 0x21, 0x82, 0x00];
        nc.extend_from_slice(&raw[3..]);
        assert!(err(&nc).contains("non-canonical"));
        // A CRL is not a certificate.
        assert!(err(crl(vec![]).encode()).contains("expected tag 7F21"));
        // Too long input is refused before parsing.
        assert!(err(&vec![0u8; MAX_CERT_LEN + 1]).contains("limit"));
        assert!(err(&[]).contains("BER-TLV"));
    }

    #[test]
    fn wrong_field_sizes_are_refused() {
        // Re-encode a body with a 7-byte issuer and a valid outer frame.
        let b = body();
        let body_tlv = constructed(
            T_BODY,
            vec![
                primitive(T_PROFILE, &[PROFILE_ID]),
                primitive(T_ISSUER, &b.issuer[..7]),
                primitive(T_SUBJECT, &b.subject),
                primitive(T_ROLE, &[b.role as u8]),
                constructed(T_PUBKEY, vec![primitive(T_POINT, &b.public_key)]),
                primitive(T_EXPIRY, &b.expiry.to_be_bytes()),
                primitive(T_SERIAL, &b.serial.to_be_bytes()),
            ],
        );
        let (_, _, raw) = signed(T_CERT, body_tlv, &ca());
        assert_eq!(
            Certificate::parse(&raw),
            Err(CryptoError::MalformedCertificate("issuer (42) has 7 bytes, expected 8".into()))
        );
        // Fields out of order.
        let body_tlv = constructed(
            T_BODY,
            vec![
                primitive(T_PROFILE, &[PROFILE_ID]),
                primitive(T_SUBJECT, &b.subject),
                primitive(T_ISSUER, &b.issuer),
                primitive(T_ROLE, &[b.role as u8]),
                constructed(T_PUBKEY, vec![primitive(T_POINT, &b.public_key)]),
                primitive(T_EXPIRY, &b.expiry.to_be_bytes()),
                primitive(T_SERIAL, &b.serial.to_be_bytes()),
            ],
        );
        let (_, _, raw) = signed(T_CERT, body_tlv, &ca());
        assert_eq!(
            Certificate::parse(&raw),
            Err(CryptoError::MalformedCertificate("expected tag 42 (issuer), found 5F20".into()))
        );
        // Missing serial number.
        let body_tlv = constructed(
            T_BODY,
            vec![
                primitive(T_PROFILE, &[PROFILE_ID]),
                primitive(T_ISSUER, &b.issuer),
                primitive(T_SUBJECT, &b.subject),
                primitive(T_ROLE, &[b.role as u8]),
                constructed(T_PUBKEY, vec![primitive(T_POINT, &b.public_key)]),
                primitive(T_EXPIRY, &b.expiry.to_be_bytes()),
            ],
        );
        let (_, _, raw) = signed(T_CERT, body_tlv, &ca());
        assert!(matches!(
            Certificate::parse(&raw),
            Err(CryptoError::MalformedCertificate(m)) if m.contains("expected 7")
        ));
    }

    #[test]
    fn crl_round_trip_and_revocation() {
        let vk = *ca().verifying_key();
        let empty = crl(vec![]);
        let p = Crl::parse(empty.encode()).unwrap();
        assert_eq!(p, empty);
        assert!(p.revoked.is_empty());
        assert!(!p.is_revoked(0));
        assert_eq!(p.verify_signature(&vk), Ok(()));

        let list = crl(vec![5, 0x0102_0304, u32::MAX]);
        let p = Crl::parse(list.encode()).unwrap();
        assert_eq!(p, list);
        assert_eq!(p.issuer, *b"UNITCA01");
        assert_eq!(p.issued, 1_700_000_000);
        assert_eq!(p.next_update, 1_700_864_000);
        assert!(!p.is_stale(1_700_864_000));
        assert!(p.is_stale(1_700_864_001));
        assert!(p.is_revoked(5));
        assert!(p.is_revoked(0x0102_0304));
        assert!(p.is_revoked(u32::MAX));
        assert!(!p.is_revoked(6));
        assert!(p.is_revoked(cert().body.serial));
        assert_eq!(p.verify_signature(&vk), Ok(()));
        assert_eq!(
            p.verify_signature(key_from_seed(b"unit", "rogue ca").verifying_key()),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(&p.encode()[2..2 + p.body_bytes().len()], p.body_bytes());
    }

    #[test]
    fn crl_all_sizes_round_trip() {
        // Covers every length-field size of the E0 body and the C3 list, across
        // the one-byte / 81 / 82 boundaries.
        for n in (0..=70).chain([250, 999, MAX_REVOKED]) {
            let c = crl((0..n as u32).collect());
            assert_eq!(Crl::parse(c.encode()).as_ref(), Ok(&c), "n = {n}");
        }
        assert_eq!(crl((0..MAX_REVOKED as u32).collect()).encode().len(), MAX_CRL_LEN);
    }

    #[test]
    #[should_panic(expected = "at most 1000 serial numbers")]
    fn crl_with_too_many_serials_panics() {
        crl((0..=MAX_REVOKED as u32).collect());
    }

    #[test]
    fn crl_tampering_and_strictness() {
        let vk = *ca().verifying_key();
        let c = crl(vec![1, 2, 3]);
        for i in 0..c.encode().len() {
            let mut raw = c.encode().to_vec();
            raw[i] ^= 0x01;
            if let Ok(p) = Crl::parse(&raw) {
                assert!(p.verify_signature(&vk).is_err(), "byte {i}");
            }
        }
        let mut long = c.encode().to_vec();
        long.push(0);
        assert!(matches!(Crl::parse(&long), Err(CryptoError::MalformedCrl(m)) if m.contains("trailing")));
        assert!(
            matches!(Crl::parse(cert().encode()), Err(CryptoError::MalformedCrl(m)) if m.contains("expected tag E1"))
        );
        // Serial list not a multiple of 4 bytes.
        let body_tlv = constructed(
            T_CRL_BODY,
            vec![
                primitive(T_ISSUER, b"UNITCA01"),
                primitive(T_ISSUED, &[0, 0, 0, 1]),
                primitive(T_NEXT_UPDATE, &[0, 0, 0, 2]),
                primitive(T_REVOKED, &[1, 2, 3, 4, 5]),
            ],
        );
        let (_, _, raw) = signed(T_CRL, body_tlv, &ca());
        assert!(matches!(Crl::parse(&raw), Err(CryptoError::MalformedCrl(m)) if m.contains("multiple of 4")));
        assert!(
            matches!(Crl::parse(&vec![0xE1; MAX_CRL_LEN + 1]), Err(CryptoError::MalformedCrl(m)) if m.contains("limit"))
        );
    }

    /// Both parsers must return (never panic, never overflow the stack) on
    /// any input: truncations, random bytes, mutations, deep nesting.
    #[test]
    fn parsers_never_panic() {
        fn check(bytes: &[u8]) {
            if let Ok(c) = Certificate::parse(bytes) {
                assert_eq!(c.encode(), bytes);
            }
            if let Ok(c) = Crl::parse(bytes) {
                assert_eq!(c.encode(), bytes);
            }
        }
        let valid_cert = cert().encode().to_vec();
        let valid_crl = crl(vec![1, 2, 3, 0xDEAD_BEEF]).encode().to_vec();
        for valid in [&valid_cert, &valid_crl] {
            for n in 0..valid.len() {
                check(&valid[..n]);
                check(&valid[n..]);
                assert!(Certificate::parse(&valid[..n]).is_err());
                assert!(Crl::parse(&valid[..n]).is_err());
            }
        }
        let mut rng = ChaCha20Rng::seed_from_u64(0x0C0F_FEE0);
        for _ in 0..3000 {
            let len = (rng.next_u32() % 300) as usize;
            let mut buf = vec![0u8; len];
            rng.fill_bytes(&mut buf);
            check(&buf);
            // Random bytes behind a plausible header.
            for prefix in [[0x7F, 0x21], [0xE1, 0x81]] {
                let mut b = prefix.to_vec();
                b.extend_from_slice(&buf);
                check(&b);
            }
        }
        for _ in 0..3000 {
            for valid in [&valid_cert, &valid_crl] {
                let mut b = valid.clone();
                for _ in 0..1 + rng.next_u32() % 4 {
                    let i = rng.next_u32() as usize % b.len();
                    match rng.next_u32() % 3 {
                        0 => b[i] = rng.next_u32() as u8,
                        1 => {
                            b.remove(i);
                        }
                        _ => b.insert(i, rng.next_u32() as u8),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                check(&b);
            }
        }
        // Deep nesting of constructed tags, up to the size limits: the
        // recursive BER-TLV parser must stay within a 2 MiB test-thread stack.
        for unit in [[0xE0u8, 0x7F], [0x7F, 0x4E], [0xE1, 0x00], [0x7F, 0x21]] {
            for size in [MAX_CERT_LEN, MAX_CRL_LEN] {
                check(&unit.repeat(size / 2));
            }
        }
        let mut deep = vec![0x7F, 0x21];
        deep.extend([0x7F, 0x4E, 0x7F, 0x49].repeat(MAX_CERT_LEN / 4));
        deep.truncate(MAX_CERT_LEN);
        check(&deep);
    }
}
