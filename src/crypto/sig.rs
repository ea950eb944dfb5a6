//! ECDSA over P-256 with SHA-256 (FIPS 186-4), deterministic nonces
//! (RFC 6979), signatures as fixed 64-byte `r ‖ s` (32 bytes each, big-endian).
//!
//! Also: SEC1 point encoding helpers and deterministic test-key derivation.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{CryptoError, Key128};

/// Length of an encoded signature (`r ‖ s`).
pub const SIGNATURE_LEN: usize = 64;
/// Length of an uncompressed SEC1 P-256 point (`04 ‖ X ‖ Y`).
pub const POINT_LEN: usize = 65;

/// Domain-separation prefix of [`key_from_seed`].
pub const KEY_SEED_PREFIX: &[u8] = b"cardbench test key";
/// Domain-separation prefix of [`key128_from_seed`].
pub const KEY128_SEED_PREFIX: &[u8] = b"cardbench test key128";

/// Signs SHA-256(`msg`) with RFC 6979 deterministic ECDSA; returns `r ‖ s`.
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    let sig: Signature = key.sign(msg);
    sig.to_bytes().into()
}

/// Verifies a 64-byte `r ‖ s` signature over SHA-256(`msg`).
///
/// Errors: [`CryptoError::BadSignatureEncoding`] if `sig` is not 64 bytes or
/// `r`/`s` is zero or not below the group order; [`CryptoError::BadSignature`]
/// if the signature does not verify.
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    if sig.len() != SIGNATURE_LEN {
        return Err(CryptoError::BadSignatureEncoding);
    }
    let sig = Signature::from_slice(sig).map_err(|_| CryptoError::BadSignatureEncoding)?;
    key.verify(msg, &sig).map_err(|_| CryptoError::BadSignature)
}

/// Uncompressed SEC1 encoding `04 ‖ X ‖ Y` of a public key.
pub fn encode_point(key: &VerifyingKey) -> [u8; 65] {
    let point = key.to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(point.as_bytes());
    out
}

/// Decodes an uncompressed SEC1 point (exactly 65 bytes starting with `04`)
/// that lies on P-256. Compressed points are refused.
pub fn decode_point(bytes: &[u8]) -> Result<VerifyingKey, CryptoError> {
    if bytes.len() != POINT_LEN || bytes[0] != 0x04 {
        return Err(CryptoError::BadPublicKey);
    }
    VerifyingKey::from_sec1_bytes(bytes).map_err(|_| CryptoError::BadPublicKey)
}

fn seed_len(seed: &[u8]) -> [u8; 2] {
    u16::try_from(seed.len()).expect("test-key seed longer than 65535 bytes").to_be_bytes()
}

/// Deterministic P-256 key for tests and simulators (never for production):
/// the first `counter = 0, 1, 2, …` for which
/// `SHA-256("cardbench test key" ‖ [len(seed)]_16 ‖ seed ‖ label ‖ [counter]_8)`
/// is a valid scalar (non-zero and below the group order) is the private key.
///
/// # Panics
///
/// Panics if `seed` is longer than 65535 bytes (or, with negligible
/// probability ≈ 2^-8192, if no counter value yields a valid scalar).
pub fn key_from_seed(seed: &[u8], label: &str) -> SigningKey {
    let len = seed_len(seed);
    for counter in 0..=u8::MAX {
        let candidate = Sha256::new()
            .chain_update(KEY_SEED_PREFIX)
            .chain_update(len)
            .chain_update(seed)
            .chain_update(label.as_bytes())
            .chain_update([counter])
            .finalize();
        if let Ok(key) = SigningKey::from_bytes(&candidate) {
            return key;
        }
    }
    unreachable!("256 consecutive SHA-256 outputs were all invalid P-256 scalars")
}

/// Deterministic AES-128 key for tests and simulators: the first 16 bytes of
/// `SHA-256("cardbench test key128" ‖ [len(seed)]_16 ‖ seed ‖ label)`.
///
/// # Panics
///
/// Panics if `seed` is longer than 65535 bytes.
pub fn key128_from_seed(seed: &[u8], label: &str) -> Key128 {
    let digest = Sha256::new()
        .chain_update(KEY128_SEED_PREFIX)
        .chain_update(seed_len(seed))
        .chain_update(seed)
        .chain_update(label.as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_determinism() {
        let key = key_from_seed(b"unit", "signer");
        let vk = key.verifying_key();
        let s1 = sign(&key, b"message");
        let s2 = sign(&key, b"message");
        assert_eq!(s1, s2, "RFC 6979 signing is deterministic");
        assert_eq!(verify(vk, b"message", &s1), Ok(()));
        assert_ne!(sign(&key, b"message2"), s1);
    }

    #[test]
    fn tampering_is_detected() {
        let key = key_from_seed(b"unit", "signer");
        let vk = key.verifying_key();
        let sig = sign(&key, b"message");
        assert_eq!(verify(vk, b"messagf", &sig), Err(CryptoError::BadSignature));
        for i in 0..64 {
            let mut bad = sig;
            bad[i] ^= 0x01;
            let r = verify(vk, b"message", &bad);
            assert!(
                r == Err(CryptoError::BadSignature) || r == Err(CryptoError::BadSignatureEncoding),
                "byte {i}: {r:?}"
            );
        }
        let other = key_from_seed(b"unit", "other");
        assert_eq!(verify(other.verifying_key(), b"message", &sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn malformed_signatures() {
        let key = key_from_seed(b"unit", "signer");
        let vk = key.verifying_key();
        let sig = sign(&key, b"m");
        assert_eq!(verify(vk, b"m", &sig[..63]), Err(CryptoError::BadSignatureEncoding));
        let mut long = sig.to_vec();
        long.push(0);
        assert_eq!(verify(vk, b"m", &long), Err(CryptoError::BadSignatureEncoding));
        assert_eq!(verify(vk, b"m", &[0u8; 64]), Err(CryptoError::BadSignatureEncoding));
        assert_eq!(verify(vk, b"m", &[0xffu8; 64]), Err(CryptoError::BadSignatureEncoding));
        assert_eq!(verify(vk, b"m", &[]), Err(CryptoError::BadSignatureEncoding));
    }

    #[test]
    fn point_round_trip_and_rejections() {
        let key = key_from_seed(b"unit", "point");
        let vk = *key.verifying_key();
        let enc = encode_point(&vk);
        assert_eq!(enc[0], 0x04);
        assert_eq!(decode_point(&enc), Ok(vk));
        // Compressed form is refused.
        let compressed = vk.to_encoded_point(true);
        assert_eq!(decode_point(compressed.as_bytes()), Err(CryptoError::BadPublicKey));
        // Wrong length, wrong prefix, point off the curve, identity.
        assert_eq!(decode_point(&enc[..64]), Err(CryptoError::BadPublicKey));
        assert_eq!(decode_point(&[]), Err(CryptoError::BadPublicKey));
        let mut bad = enc;
        bad[0] = 0x06;
        assert_eq!(decode_point(&bad), Err(CryptoError::BadPublicKey));
        let mut off = enc;
        off[64] ^= 0x01;
        assert_eq!(decode_point(&off), Err(CryptoError::BadPublicKey));
        assert_eq!(decode_point(&[0x00]), Err(CryptoError::BadPublicKey));
        let mut zeros = [0u8; 65];
        zeros[0] = 0x04;
        assert_eq!(decode_point(&zeros), Err(CryptoError::BadPublicKey));
    }

    #[test]
    fn seeded_keys_are_deterministic_and_separated() {
        let a = key_from_seed(b"seed", "a");
        assert_eq!(a.to_bytes(), key_from_seed(b"seed", "a").to_bytes());
        assert_ne!(a.to_bytes(), key_from_seed(b"seed", "b").to_bytes());
        assert_ne!(a.to_bytes(), key_from_seed(b"seed2", "a").to_bytes());
        // The length prefix separates seed from label.
        assert_ne!(key_from_seed(b"ab", "c").to_bytes(), key_from_seed(b"a", "bc").to_bytes());
        let first = Sha256::new()
            .chain_update(b"cardbench test key")
            .chain_update([0u8, 4])
            .chain_update(b"seed")
            .chain_update(b"a")
            .chain_update([0u8])
            .finalize();
        // Counter 0 is a valid scalar here with overwhelming probability.
        assert_eq!(a.to_bytes(), first);

        let k = key128_from_seed(b"seed", "a");
        assert_eq!(k, key128_from_seed(b"seed", "a"));
        assert_ne!(k, key128_from_seed(b"seed", "b"));
        assert_ne!(&k[..], &a.to_bytes()[..16]);
    }
}
