//! Fixed-size secret bytes: never printed, wiped on drop.

use zeroize::Zeroize;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<const N: usize>(pub [u8; N]);

impl<const N: usize> Secret<N> {
    pub fn new(bytes: [u8; N]) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; N]>::try_from(b).ok().map(Secret)
    }
}

impl<const N: usize> std::fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret<{N}>(..)")
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

pub type Key16 = Secret<16>;
pub type Scalar32 = Secret<32>;
