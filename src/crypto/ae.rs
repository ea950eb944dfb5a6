//! Authenticated encryption: encrypt-then-MAC with AES-128-CTR and
//! AES-128-CMAC.
//!
//! ```text
//! sealed = IV (16) ‖ CT ‖ TAG (16)
//! CT     = AES-128-CTR(enc, initial counter block = IV, plaintext)
//! TAG    = CMAC(mac, [len(aad)]_16 ‖ aad ‖ IV ‖ CT)
//! ```
//!
//! The counter is the whole 16-byte block, incremented as a 128-bit
//! big-endian integer (wrapping), i.e. `ctr::Ctr128BE<aes::Aes128>`.

use core::fmt;

use aes::Aes128;
use cmac::{Cmac, Mac};
use ctr::cipher::{KeyIvInit, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{kdf, CryptoError, Key128};

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Length of the IV (initial counter block) at the start of a sealed message.
pub const IV_LEN: usize = 16;
/// Length of the CMAC tag at the end of a sealed message.
pub const TAG_LEN: usize = 16;
/// Bytes added by [`seal`]: `IV_LEN + TAG_LEN`.
pub const OVERHEAD: usize = IV_LEN + TAG_LEN;

/// Label of the SP 800-108 derivation of the encryption key in [`AeKeys::from_key`].
pub const ENC_LABEL: &[u8] = b"cardbench AE enc";
/// Label of the SP 800-108 derivation of the MAC key in [`AeKeys::from_key`].
pub const MAC_LABEL: &[u8] = b"cardbench AE mac";

/// The encryption key and the MAC key of the AE construction.
///
/// Both keys are wiped from memory when the value is dropped; `Debug` does not
/// print them.
#[derive(Clone)]
pub struct AeKeys {
    enc: Key128,
    mac: Key128,
}

impl AeKeys {
    /// Derives both keys from one master key:
    /// `enc = derive(key, "cardbench AE enc", "", 16)`,
    /// `mac = derive(key, "cardbench AE mac", "", 16)` (see [`kdf::derive`]).
    pub fn from_key(key: &Key128) -> Self {
        let mut enc = [0u8; 16];
        let mut mac = [0u8; 16];
        kdf::derive(key, ENC_LABEL, b"", &mut enc);
        kdf::derive(key, MAC_LABEL, b"", &mut mac);
        let keys = Self { enc, mac };
        enc.zeroize();
        mac.zeroize();
        keys
    }

    /// Uses the two given keys as they are.
    pub fn from_parts(enc: Key128, mac: Key128) -> Self {
        Self { enc, mac }
    }
}

impl Drop for AeKeys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.mac.zeroize();
    }
}

impl ZeroizeOnDrop for AeKeys {}

impl fmt::Debug for AeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeKeys(..)")
    }
}

fn tag(keys: &AeKeys, aad: &[u8], iv: &[u8], ct: &[u8]) -> [u8; 16] {
    let aad_len = u16::try_from(aad.len()).expect("associated data longer than 65535 bytes");
    let mut mac = <Cmac<Aes128> as Mac>::new((&keys.mac).into());
    mac.update(&aad_len.to_be_bytes());
    mac.update(aad);
    mac.update(iv);
    mac.update(ct);
    mac.finalize().into_bytes().into()
}

/// Encrypts and authenticates `plaintext`, binding `aad`; returns
/// `IV ‖ CT ‖ TAG` (`plaintext.len() + OVERHEAD` bytes).
///
/// The IV must never repeat under the same keys (use a random one).
///
/// # Panics
///
/// Panics if `aad` is longer than 65535 bytes (its length is MACed as a `u16`).
pub fn seal(keys: &AeKeys, iv: &[u8; 16], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(iv);
    out.extend_from_slice(plaintext);
    let mut cipher = Aes128Ctr::new((&keys.enc).into(), iv.into());
    cipher.apply_keystream(&mut out[IV_LEN..]);
    let t = tag(keys, aad, iv, &out[IV_LEN..]);
    out.extend_from_slice(&t);
    out
}

/// Checks the tag of `sealed = IV ‖ CT ‖ TAG` (in constant time, before any
/// decryption) and returns the plaintext.
///
/// Errors: [`CryptoError::TooShort`] if `sealed` is shorter than
/// [`OVERHEAD`]; [`CryptoError::TagMismatch`] for a wrong key, a wrong `aad`
/// or any modification of `sealed`.
///
/// # Panics
///
/// Panics if `aad` is longer than 65535 bytes.
pub fn open(keys: &AeKeys, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptoError::TooShort(sealed.len()));
    }
    let (iv, rest) = sealed.split_at(IV_LEN);
    let (ct, received) = rest.split_at(rest.len() - TAG_LEN);
    let expected = tag(keys, aad, iv, ct);
    if !bool::from(expected.ct_eq(received)) {
        return Err(CryptoError::TagMismatch);
    }
    let mut plaintext = ct.to_vec();
    let mut cipher = Aes128Ctr::new((&keys.enc).into(), iv.into());
    cipher.apply_keystream(&mut plaintext);
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AeKeys {
        AeKeys::from_key(&[0x42; 16])
    }

    const IV: [u8; 16] = [0x11; 16];

    #[test]
    fn round_trip_various_lengths() {
        let k = keys();
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = seal(&k, &IV, b"aad", &pt);
            assert_eq!(sealed.len(), len + OVERHEAD);
            assert_eq!(&sealed[..IV_LEN], &IV);
            if len > 0 {
                assert_ne!(&sealed[IV_LEN..IV_LEN + len], &pt[..]);
            }
            assert_eq!(open(&k, b"aad", &sealed).unwrap(), pt);
        }
    }

    #[test]
    fn any_modified_byte_is_rejected() {
        let k = keys();
        let sealed = seal(&k, &IV, b"header", b"some secret payload");
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                assert_eq!(open(&k, b"header", &bad), Err(CryptoError::TagMismatch));
            }
        }
    }

    #[test]
    fn wrong_key_and_wrong_aad_are_rejected() {
        let k = keys();
        let sealed = seal(&k, &IV, b"header", b"payload");
        let other = AeKeys::from_key(&[0x43; 16]);
        assert_eq!(open(&other, b"header", &sealed), Err(CryptoError::TagMismatch));
        assert_eq!(open(&k, b"headeR", &sealed), Err(CryptoError::TagMismatch));
        assert_eq!(open(&k, b"", &sealed), Err(CryptoError::TagMismatch));
        // Swapped enc/mac keys are different keys.
        let mut enc = [0u8; 16];
        let mut mac = [0u8; 16];
        kdf::derive(&[0x42; 16], ENC_LABEL, b"", &mut enc);
        kdf::derive(&[0x42; 16], MAC_LABEL, b"", &mut mac);
        let same = AeKeys::from_parts(enc, mac);
        assert_eq!(open(&same, b"header", &sealed).unwrap(), b"payload");
        let swapped = AeKeys::from_parts(mac, enc);
        assert_eq!(open(&swapped, b"header", &sealed), Err(CryptoError::TagMismatch));
    }

    #[test]
    fn truncation_and_extension_are_rejected() {
        let k = keys();
        let sealed = seal(&k, &IV, b"", b"payload");
        for n in 0..OVERHEAD {
            assert_eq!(open(&k, b"", &sealed[..n]), Err(CryptoError::TooShort(n)));
        }
        for n in OVERHEAD..sealed.len() {
            assert_eq!(open(&k, b"", &sealed[..n]), Err(CryptoError::TagMismatch));
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(open(&k, b"", &longer), Err(CryptoError::TagMismatch));
        // An empty plaintext seals to exactly OVERHEAD bytes and opens.
        let empty = seal(&k, &IV, b"", b"");
        assert_eq!(open(&k, b"", &empty).unwrap(), b"");
    }

    #[test]
    fn aad_length_is_bound() {
        // Moving a byte between aad and the start of the IV must not verify:
        // the aad length prefix separates them.
        let k = keys();
        let sealed = seal(&k, &IV, b"ab", b"x");
        assert_eq!(open(&k, b"a", &sealed), Err(CryptoError::TagMismatch));
        let max_aad = vec![0u8; 65535];
        let sealed = seal(&k, &IV, &max_aad, b"x");
        assert_eq!(open(&k, &max_aad, &sealed).unwrap(), b"x");
    }

    #[test]
    fn counter_wraps_at_all_ones_iv() {
        let k = keys();
        let iv = [0xff; 16];
        let sealed = seal(&k, &iv, b"", &[0u8; 64]);
        assert_eq!(open(&k, b"", &sealed).unwrap(), vec![0u8; 64]);
        // The second block uses the counter block 00…00.
        let ks0 = seal(&k, &[0u8; 16], b"", &[0u8; 16]);
        assert_eq!(&sealed[IV_LEN + 16..IV_LEN + 32], &ks0[IV_LEN..IV_LEN + 16]);
    }

    #[test]
    fn debug_hides_keys() {
        let k = AeKeys::from_parts([0xab; 16], [0xcd; 16]);
        assert_eq!(format!("{k:?}"), "AeKeys(..)");
        assert_eq!(format!("{k:#?}"), "AeKeys(..)");
    }
}
