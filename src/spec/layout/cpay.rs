//! CPAY responses (card-spec 7.4).

use super::{arr, be32, exact, Parsed};

/// SIGN PAYMENT (7.4): 96 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayment {
    pub card_id: [u8; 8],
    pub date: u32,
    pub amount: u32,
    pub nonce: [u8; 16],
    pub signature: [u8; 64],
}

impl SignedPayment {
    pub fn parse(b: &[u8]) -> Parsed<SignedPayment> {
        exact("SIGN PAYMENT", b, 96)?;
        Ok(SignedPayment {
            card_id: arr(b, 0),
            date: be32(b, 8),
            amount: be32(b, 12),
            nonce: arr(b, 16),
            signature: arr(b, 32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_payment_is_96_bytes() {
        let mut b = vec![1; 8];
        b.extend([0, 0, 0, 9, 0, 0, 1, 0]);
        b.extend([7; 16]);
        b.extend([5; 64]);
        let p = SignedPayment::parse(&b).unwrap();
        assert_eq!((p.date, p.amount, p.nonce, p.signature[63]), (9, 256, [7; 16], 5));
        assert_eq!(SignedPayment::parse(&b[..95]).unwrap_err().field, "length");
    }
}
