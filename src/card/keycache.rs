//! The card's private keys ready for use. Building a `SigningKey` from the stored scalar
//! computes its public point (a full P-256 scalar multiplication), which doubled the host cost
//! of every SIGN PAYMENT and public-mode key transport. The cache keeps the key built from the
//! scalar it was built from, so a personalization or a restored NVM image (which replace the
//! scalar) are seen at once: a key is only ever used for the scalar now in NVM. It is host
//! memory of the simulator, not card state (not NVM, not RAM: a reset keeps it).

use crate::secret::Scalar32;
use p256::ecdsa::SigningKey;
use p256::PublicKey;
use subtle::ConstantTimeEq;

/// Keys of the last few scalars the card used (CPAY key, XFER card key).
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Vec<(Scalar32, SigningKey, PublicKey)>,
}

/// More than the card's two keys: a personalization test that swaps keys does not thrash.
const ENTRIES: usize = 4;

impl KeyCache {
    /// The signing key and public key of `scalar`; `None` if it is not a valid P-256 key.
    pub(crate) fn get(&mut self, scalar: &Scalar32) -> Option<(&SigningKey, &PublicKey)> {
        let at = match self.entries.iter().position(|(s, _, _)| bool::from(s.expose().ct_eq(scalar.expose()))) {
            Some(i) => i,
            None => {
                let key = SigningKey::from_slice(scalar.expose()).ok()?;
                let public = PublicKey::from(key.verifying_key());
                if self.entries.len() == ENTRIES {
                    self.entries.remove(0);
                }
                self.entries.push((scalar.clone(), key, public));
                self.entries.len() - 1
            }
        };
        let (_, k, p) = &self.entries[at];
        Some((k, p))
    }
}
