//! NIST SP 800-108r1 key derivation in counter mode, PRF = AES-128-CMAC.
//!
//! Parameters: counter length r = 8 bits, counter placed *before* the fixed
//! input data (CAVP profile `CTRLOCATION=BEFORE_FIXED`, `RLEN=8_BITS`).

use aes::Aes128;
use cmac::{Cmac, Mac};

use super::Key128;

/// Largest output of [`counter_mode`] / [`derive()`]: 255 blocks of 16 bytes
/// (an 8-bit counter runs from 1 to 255).
pub const MAX_OUTPUT: usize = 255 * 16;

/// KDF in counter mode: `K(i) = CMAC(key, [i]_8 ‖ fixed_input)` for
/// `i = 1, 2, …`; `out` receives `K(1) ‖ K(2) ‖ …` truncated to `out.len()`.
///
/// The caller formats `fixed_input` (see [`derive()`] for the SP 800-108
/// `Label ‖ 0x00 ‖ Context ‖ [L]_16` layout).
///
/// # Panics
///
/// Panics if `out.len() > 255 * 16` ([`MAX_OUTPUT`]): the 8-bit counter
/// cannot address more blocks.
pub fn counter_mode(key: &Key128, fixed_input: &[u8], out: &mut [u8]) {
    assert!(
        out.len() <= MAX_OUTPUT,
        "SP 800-108 KDF with an 8-bit counter yields at most {MAX_OUTPUT} bytes, {} requested",
        out.len()
    );
    let prf = <Cmac<Aes128> as Mac>::new(key.into());
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        // i < 255 thanks to the assertion above, so i + 1 fits in a byte.
        let counter = (i + 1) as u8;
        let mut mac = prf.clone();
        mac.update(&[counter]);
        mac.update(fixed_input);
        let block = mac.finalize().into_bytes();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// SP 800-108 KDF with the standard fixed input
/// `label ‖ 0x00 ‖ context ‖ [L]_16`, where `L = 8 * out.len()` is the
/// output length in bits as a big-endian `u16`.
///
/// # Panics
///
/// Panics if `out.len() > 255 * 16` ([`MAX_OUTPUT`]).
pub fn derive(key: &Key128, label: &[u8], context: &[u8], out: &mut [u8]) {
    assert!(
        out.len() <= MAX_OUTPUT,
        "SP 800-108 KDF with an 8-bit counter yields at most {MAX_OUTPUT} bytes, {} requested",
        out.len()
    );
    // out.len() <= 4080, so the bit length (<= 32640) fits in a u16.
    let bits = (out.len() * 8) as u16;
    let mut fixed = Vec::with_capacity(label.len() + 1 + context.len() + 2);
    fixed.extend_from_slice(label);
    fixed.push(0x00);
    fixed.extend_from_slice(context);
    fixed.extend_from_slice(&bits.to_be_bytes());
    counter_mode(key, &fixed, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key128 =
        [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f];

    #[test]
    fn output_is_prefix_consistent_for_counter_mode() {
        let mut long = [0u8; 48];
        counter_mode(&KEY, b"fixed", &mut long);
        for n in 0..48 {
            let mut short = vec![0u8; n];
            counter_mode(&KEY, b"fixed", &mut short);
            assert_eq!(short[..], long[..n]);
        }
    }

    #[test]
    fn first_block_is_cmac_of_counter_and_fixed_input() {
        let mut out = [0u8; 16];
        counter_mode(&KEY, b"abc", &mut out);
        assert_eq!(out, crate::crypto::mac::cmac(&KEY, &[&[1], b"abc"]));
        let mut two = [0u8; 32];
        counter_mode(&KEY, b"abc", &mut two);
        assert_eq!(two[16..], crate::crypto::mac::cmac(&KEY, &[&[2], b"abc"]));
    }

    #[test]
    fn derive_binds_length_label_and_context() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 32];
        derive(&KEY, b"label", b"ctx", &mut a);
        derive(&KEY, b"label", b"ctx", &mut b);
        // L is part of the input, so a 16-byte output is not a prefix of a 32-byte one.
        assert_ne!(a[..], b[..16]);
        let mut c = [0u8; 16];
        derive(&KEY, b"label", b"ctx2", &mut c);
        assert_ne!(a, c);
        derive(&KEY, b"label2", b"ctx", &mut c);
        assert_ne!(a, c);
        // The 0x00 separator keeps label/context boundaries apart.
        derive(&KEY, b"labelc", b"tx", &mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn derive_matches_manual_fixed_input() {
        let mut out = [0u8; 20];
        derive(&KEY, b"L", b"C", &mut out);
        let mut manual = [0u8; 20];
        counter_mode(&KEY, &[b'L', 0, b'C', 0x00, 0xa0], &mut manual);
        assert_eq!(out, manual);
    }

    #[test]
    fn max_output_is_allowed_and_empty_output_is_fine() {
        let mut out = vec![0u8; MAX_OUTPUT];
        derive(&KEY, b"big", b"", &mut out);
        let mut empty = [0u8; 0];
        derive(&KEY, b"big", b"", &mut empty);
    }

    #[test]
    #[should_panic(expected = "at most 4080 bytes")]
    fn too_long_output_panics() {
        let mut out = vec![0u8; MAX_OUTPUT + 1];
        counter_mode(&KEY, b"", &mut out);
    }
}
