//! ECIES-style public-key encryption to a P-256 key.
//!
//! ```text
//! E   = ephemeral public key, R = recipient public key (both SEC1 uncompressed, 65 bytes)
//! Z   = x-coordinate of ECDH(ephemeral secret, R)                 (32 bytes)
//! KDK = CMAC(key = 0^16, Z)         (SP 800-56C two-step, extraction with a zero salt)
//! K   = derive(KDK, "cardbench ECIES", context = E ‖ R, 32 bytes)  (SP 800-108, see kdf)
//! enc = K[0..16], mac = K[16..32]
//! out = E ‖ ae::seal((enc, mac), IV, aad = "", plaintext)
//! ```

use p256::ecdh::diffie_hellman;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroize;

use super::ae::{self, AeKeys};
use super::{kdf, mac, CryptoError, Key128};

/// Length of the ephemeral public key at the start of a ciphertext.
pub const POINT_LEN: usize = 65;
/// Bytes added by [`encrypt`]: ephemeral point + IV + tag.
pub const OVERHEAD: usize = POINT_LEN + ae::OVERHEAD;
/// Label of the SP 800-108 expansion step.
pub const LABEL: &[u8] = b"cardbench ECIES";

fn encode(pk: &PublicKey) -> [u8; 65] {
    let point = pk.to_encoded_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(point.as_bytes());
    out
}

/// Key schedule shared by both directions.
fn keys(secret: &SecretKey, peer: &PublicKey, e: &[u8; 65], r: &[u8; 65]) -> AeKeys {
    let shared = diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let mut kdk: Key128 = mac::cmac(&[0u8; 16], &[shared.raw_secret_bytes().as_slice()]);
    let mut context = [0u8; 130];
    context[..65].copy_from_slice(e);
    context[65..].copy_from_slice(r);
    let mut okm = [0u8; 32];
    kdf::derive(&kdk, LABEL, &context, &mut okm);
    let mut enc = [0u8; 16];
    let mut mac_key = [0u8; 16];
    enc.copy_from_slice(&okm[..16]);
    mac_key.copy_from_slice(&okm[16..]);
    let keys = AeKeys::from_parts(enc, mac_key);
    kdk.zeroize();
    okm.zeroize();
    enc.zeroize();
    mac_key.zeroize();
    keys
}

/// Encrypts `plaintext` to `recipient` with a fresh random ephemeral key and
/// a random IV drawn from `rng`. Output: `E (65) ‖ IV (16) ‖ CT ‖ TAG (16)`.
pub fn encrypt<R: CryptoRngCore>(rng: &mut R, recipient: &PublicKey, plaintext: &[u8]) -> Vec<u8> {
    let ephemeral = SecretKey::random(rng);
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    encrypt_with(&ephemeral, &iv, recipient, plaintext)
}

/// Deterministic variant of [`encrypt`] with a caller-chosen ephemeral key
/// and IV (for test vectors; never reuse an ephemeral key in real use).
pub fn encrypt_with(ephemeral: &SecretKey, iv: &[u8; 16], recipient: &PublicKey, plaintext: &[u8]) -> Vec<u8> {
    let e = encode(&ephemeral.public_key());
    let r = encode(recipient);
    let keys = keys(ephemeral, recipient, &e, &r);
    let sealed = ae::seal(&keys, iv, b"", plaintext);
    let mut out = Vec::with_capacity(POINT_LEN + sealed.len());
    out.extend_from_slice(&e);
    out.extend_from_slice(&sealed);
    out
}

/// Decrypts a ciphertext produced by [`encrypt`] / [`encrypt_with`] for the
/// public key of `secret`.
///
/// Errors: [`CryptoError::TooShort`] below [`OVERHEAD`] bytes,
/// [`CryptoError::BadPublicKey`] if `E` is not an uncompressed point on
/// P-256, [`CryptoError::TagMismatch`] for a wrong key or any modification.
pub fn decrypt(secret: &SecretKey, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    decrypt_with(secret, &secret.public_key(), ciphertext)
}

/// `decrypt` for a recipient that keeps its own public key (`public` must be `secret`'s):
/// deriving it is a scalar multiplication as costly as the decryption's own ECDH.
pub fn decrypt_with(secret: &SecretKey, public: &PublicKey, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if ciphertext.len() < OVERHEAD {
        return Err(CryptoError::TooShort(ciphertext.len()));
    }
    let (e_bytes, sealed) = ciphertext.split_at(POINT_LEN);
    if e_bytes[0] != 0x04 {
        return Err(CryptoError::BadPublicKey);
    }
    let ephemeral = PublicKey::from_sec1_bytes(e_bytes).map_err(|_| CryptoError::BadPublicKey)?;
    let mut e = [0u8; 65];
    e.copy_from_slice(e_bytes);
    let r = encode(public);
    let keys = keys(secret, &ephemeral, &e, &r);
    ae::open(&keys, b"", sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn recipient() -> SecretKey {
        SecretKey::from(crate::crypto::sig::key_from_seed(b"unit", "recipient"))
    }

    #[test]
    fn round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = recipient();
        for len in [0usize, 1, 16, 17, 200] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let ct = encrypt(&mut rng, &sk.public_key(), &pt);
            assert_eq!(ct.len(), len + OVERHEAD);
            assert_eq!(decrypt(&sk, &ct).unwrap(), pt);
        }
    }

    #[test]
    fn randomized_encryptions_differ() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let pk = recipient().public_key();
        let a = encrypt(&mut rng, &pk, b"same");
        let b = encrypt(&mut rng, &pk, b"same");
        assert_ne!(a[..65], b[..65]);
        assert_ne!(a[65..81], b[65..81]);
    }

    #[test]
    fn any_modified_byte_is_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sk = recipient();
        let ct = encrypt(&mut rng, &sk.public_key(), b"top secret");
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let r = decrypt(&sk, &bad);
            if i < POINT_LEN {
                // A modified ephemeral point is either off the curve or yields other keys.
                assert!(r == Err(CryptoError::BadPublicKey) || r == Err(CryptoError::TagMismatch), "byte {i}: {r:?}");
            } else {
                assert_eq!(r, Err(CryptoError::TagMismatch), "byte {i}");
            }
        }
    }

    #[test]
    fn wrong_recipient_is_rejected() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let ct = encrypt(&mut rng, &recipient().public_key(), b"x");
        let other = SecretKey::from(crate::crypto::sig::key_from_seed(b"unit", "other"));
        assert_eq!(decrypt(&other, &ct), Err(CryptoError::TagMismatch));
    }

    #[test]
    fn malformed_inputs() {
        let sk = recipient();
        for n in [0usize, 1, 64, 65, 96] {
            assert_eq!(decrypt(&sk, &vec![4u8; n]), Err(CryptoError::TooShort(n)));
        }
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let ct = encrypt(&mut rng, &sk.public_key(), b"");
        assert_eq!(ct.len(), OVERHEAD);
        // Compressed-point prefix, identity, garbage coordinates.
        for first in [0x00u8, 0x02, 0x03, 0x05, 0x06] {
            let mut bad = ct.clone();
            bad[0] = first;
            assert_eq!(decrypt(&sk, &bad), Err(CryptoError::BadPublicKey));
        }
        let mut zeros = ct.clone();
        zeros[1..65].fill(0);
        assert_eq!(decrypt(&sk, &zeros), Err(CryptoError::BadPublicKey));
    }

    #[test]
    fn deterministic_variant_matches_layout() {
        let sk = recipient();
        let eph = SecretKey::from(crate::crypto::sig::key_from_seed(b"unit", "eph"));
        let iv = [9u8; 16];
        let a = encrypt_with(&eph, &iv, &sk.public_key(), b"hello");
        let b = encrypt_with(&eph, &iv, &sk.public_key(), b"hello");
        assert_eq!(a, b);
        assert_eq!(a[..65], encode(&eph.public_key()));
        assert_eq!(a[65..81], iv);
        assert_eq!(decrypt(&sk, &a).unwrap(), b"hello");
    }
}
