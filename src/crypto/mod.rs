//! Cryptographic constructions of the bench.
//!
//! Every primitive (AES, CMAC, CTR, ECDSA, ECDH, SHA-256) comes from a
//! RustCrypto crate; this module only assembles them into the constructions
//! described in `docs/crypto.md`:
//!
//! * [`kdf`]: NIST SP 800-108r1 counter-mode KDF with AES-128-CMAC.
//! * [`mac`]: AES-128-CMAC (ISO/IEC 9797-1 MAC algorithm 5) for challenges.
//! * [`ae`]: encrypt-then-MAC with AES-128-CTR and AES-128-CMAC.
//! * [`ecies`]: ECIES-style encryption to a P-256 public key.
//! * [`sig`]: ECDSA P-256/SHA-256 with fixed 64-byte `r ‖ s` signatures.
//! * [`cert`]: card-verifiable certificates and CRLs in BER-TLV.

pub mod ae;
pub mod cert;
pub mod ecies;
pub mod kdf;
pub mod mac;
pub mod sig;

/// An AES-128 key.
pub type Key128 = [u8; 16];

/// Errors reported by the constructions of this module.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// A MAC tag did not match (wrong key, wrong associated data, or tampering).
    #[error("authentication tag mismatch")]
    TagMismatch,
    /// The input is shorter than the fixed overhead of the construction.
    #[error("ciphertext too short ({0} bytes)")]
    TooShort(usize),
    /// A public key is not a valid uncompressed SEC1 P-256 point.
    #[error("invalid public key encoding")]
    BadPublicKey,
    /// A signature is not 64 bytes or `r`/`s` is out of range.
    #[error("invalid signature encoding")]
    BadSignatureEncoding,
    /// A well-formed signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A certificate does not follow the expected layout.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// A certificate revocation list does not follow the expected layout.
    #[error("malformed CRL: {0}")]
    MalformedCrl(String),
}
