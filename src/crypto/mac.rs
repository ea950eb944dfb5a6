//! AES-128-CMAC (ISO/IEC 9797-1 MAC algorithm 5, NIST SP 800-38B, RFC 4493),
//! used for the value-transfer challenges.
//!
//! Challenge layout (see `docs/crypto.md`):
//! `cmac(transfer_key, [tag] ‖ value (u32 BE) ‖ date (u32 BE) ‖ random (16 bytes))`
//! with tag `0x01` for the transmission challenge (S2102B) and `0x02` for the
//! reception challenge (S2105A).

use aes::Aes128;
use cmac::{Cmac, Mac};
use subtle::ConstantTimeEq;

use super::Key128;

/// AES-128-CMAC of the concatenation of `parts`.
pub fn cmac(key: &Key128, parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Cmac<Aes128> as Mac>::new(key.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks `tag` against the CMAC of the concatenation of `parts`, in constant
/// time. Returns `false` when `tag` is not exactly 16 bytes long.
pub fn verify(key: &Key128, parts: &[&[u8]], tag: &[u8]) -> bool {
    if tag.len() != 16 {
        return false;
    }
    let expected = cmac(key, parts);
    expected.ct_eq(tag).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key128 = [7; 16];

    #[test]
    fn parts_are_concatenated() {
        assert_eq!(cmac(&KEY, &[b"hello ", b"", b"world"]), cmac(&KEY, &[b"hello world"]));
        assert_eq!(cmac(&KEY, &[]), cmac(&KEY, &[b""]));
    }

    #[test]
    fn verify_accepts_good_and_rejects_bad_tags() {
        let tag = cmac(&KEY, &[b"msg"]);
        assert!(verify(&KEY, &[b"msg"], &tag));
        assert!(verify(&KEY, &[b"m", b"sg"], &tag));
        assert!(!verify(&KEY, &[b"msh"], &tag));
        assert!(!verify(&[8; 16], &[b"msg"], &tag));
        for i in 0..16 {
            let mut bad = tag;
            bad[i] ^= 0x01;
            assert!(!verify(&KEY, &[b"msg"], &bad));
        }
        assert!(!verify(&KEY, &[b"msg"], &tag[..15]));
        assert!(!verify(&KEY, &[b"msg"], &[]));
        let mut long = tag.to_vec();
        long.push(0);
        assert!(!verify(&KEY, &[b"msg"], &long));
    }
}
