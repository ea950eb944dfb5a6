//! The protocol's codes: AIDs, CLA and INS bytes, P1 values (fields, key-update modes,
//! personalization objects), challenge tags and the domain prefixes of everything signed.
//! The card and the terminal both read them here so the two cannot drift apart;
//! docs/card-spec.md 1.4 is the normative table.

pub const CLA_ISO: u8 = 0x00;
pub const CLA_PROP: u8 = 0x80;

pub const AID_PURSE: [u8; 7] = [0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x01];
pub const AID_CPAY: [u8; 7] = [0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x02];
pub const AID_XFER: [u8; 7] = [0xA0, 0x00, 0x00, 0x07, 0x77, 0x00, 0x03];

pub const SELECT: u8 = 0xA4;
pub const GET_RESPONSE: u8 = 0xC0;

// Personalization (with or without an applet selected, until LOCK).
pub const PERSO_PUT: u8 = 0xE0;
pub const PERSO_LOCK: u8 = 0xEE;
pub const PERSO_STATUS: u8 = 0xEC;

// PURSE (seed 000).
pub const PURSE_READ_ALL: u8 = 0xB0;
pub const READ_FIELD: u8 = 0xB2;
pub const PURSE_WRITE_VALUE: u8 = 0xD0;
pub const PURSE_WRITE_SIGNATURE: u8 = 0xD2;
pub const PURSE_WRITE_CERTIFICATE: u8 = 0xD4;

// READ FIELD P1 values.
pub const FIELD_ID: u8 = 0x01;
pub const FIELD_COUNTER: u8 = 0x02;
pub const FIELD_VALUE: u8 = 0x03;
pub const FIELD_SIGNATURE: u8 = 0x04;
pub const FIELD_CERTIFICATE: u8 = 0x05;

// CPAY (seed 000 prior art, card-signed payment).
/// PERFORM SECURITY OPERATION: VERIFY CERTIFICATE (ISO/IEC 7816-8), P1-P2 = 00 BE.
pub const CPAY_VERIFY_READER: u8 = 0x2A;
pub const CPAY_SIGN: u8 = 0x88;
pub const CPAY_DEBIT: u8 = 0xD6;

// XFER (seed 002).
pub const XFER_GET_INFO: u8 = 0x10;
pub const XFER_UPDATE_PERMISSION: u8 = 0x20;
pub const XFER_GET_TRANSFER_KEY: u8 = 0x22;
pub const XFER_UPDATE_TRANSFER_KEY: u8 = 0x24;
pub const XFER_SEND_PERMISSION: u8 = 0x30;
pub const XFER_RECEIVE_PERMISSION: u8 = 0x32;
pub const XFER_SEND: u8 = 0x34;
pub const XFER_RECEIVE: u8 = 0x36;
pub const XFER_READ_STATE: u8 = 0x38;
pub const XFER_CANCEL_PENDING: u8 = 0x3A;
pub const XFER_CANCEL_PROOF: u8 = 0x3C;

/// Key-update modes (P1 of the three key-update commands).
pub const MODE_COMMON: u8 = 0x01;
pub const MODE_PUBLIC: u8 = 0x02;
pub const MODE_MULTI: u8 = 0x03;
pub const MODE_PUBLIC_UK: u8 = 0x04;

/// Challenge direction tags (docs/crypto.md).
pub const TAG_TRANSMISSION: u8 = 0x01;
pub const TAG_RECEPTION: u8 = 0x02;
/// Tag of the sending card's cancel proof (CANCEL PROOF, checked by CANCEL PENDING CREDIT).
pub const TAG_CANCEL: u8 = 0x03;

// Domain-separation prefixes of everything signed or authenticated.
pub const DOM_PURSE_RECORD: &[u8; 8] = b"CBPURSE1";
pub const DOM_CPAY_SIGN: &[u8; 8] = b"CBCPAY01";
pub const DOM_CPAY_DEBIT: &[u8; 8] = b"CBCPAYDB";
pub const DOM_XFER_KEY: &[u8; 8] = b"CBXFERTK";

// Personalization objects (P1 of PERSO_PUT).
pub const PO_CARD_ID: u8 = 0x01;
pub const PO_PURSE_COUNTER: u8 = 0x10;
pub const PO_CPAY_KEY: u8 = 0x20;
pub const PO_CPAY_CERT: u8 = 0x21;
pub const PO_CPAY_CENTER_KEY: u8 = 0x22;
pub const PO_CPAY_VALUE: u8 = 0x23;
pub const PO_XFER_VALIDITY: u8 = 0x30;
pub const PO_XFER_BALANCE: u8 = 0x31;
pub const PO_XFER_UPDATE_KEY: u8 = 0x32;
pub const PO_XFER_TRANSFER_KEY: u8 = 0x33;
pub const PO_XFER_LIMITS: u8 = 0x34;
pub const PO_XFER_CA_KEY: u8 = 0x35;
pub const PO_XFER_CERT: u8 = 0x36;
pub const PO_XFER_CARD_KEY: u8 = 0x37;
pub const PO_XFER_SLOT: u8 = 0x38;
pub const PO_XFER_MAX_BALANCE: u8 = 0x39;

/// Personalization objects whose data is a secret key: traces redact their data field.
pub fn perso_object_is_secret(p1: u8) -> bool {
    matches!(p1, PO_CPAY_KEY | PO_XFER_UPDATE_KEY | PO_XFER_TRANSFER_KEY | PO_XFER_CARD_KEY | PO_XFER_SLOT)
}
