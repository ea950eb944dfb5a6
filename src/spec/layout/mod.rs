//! Response layouts (card-spec 6-8) with parsers that check every byte the spec constrains:
//! lengths, field ranges, reserved bits, ordering. A terminal that parses a response here
//! rejects a card that answers anything the spec does not allow, naming the field.

pub mod cpay;
pub mod purse;
pub mod xfer;

use thiserror::Error;

/// A response that breaks its documented layout: which response, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{layout}: {field}: {problem}")]
pub struct LayoutError {
    /// The response, as card-spec names it (e.g. "GET CARD INFO").
    pub layout: &'static str,
    /// The field at fault (e.g. "flags", "slot IDs", "length").
    pub field: &'static str,
    pub problem: String,
}

pub type Parsed<T> = Result<T, LayoutError>;

pub(crate) fn bad<T>(layout: &'static str, field: &'static str, problem: impl Into<String>) -> Parsed<T> {
    Err(LayoutError { layout, field, problem: problem.into() })
}

/// Exactly `len` bytes.
pub fn exact(layout: &'static str, b: &[u8], len: usize) -> Parsed<()> {
    if b.len() != len {
        return bad(layout, "length", format!("{} bytes, expected {len}", b.len()));
    }
    Ok(())
}

/// A response that is one `[x]_32` (a counter, an amount, a balance).
pub fn u32_answer(layout: &'static str, b: &[u8]) -> Parsed<u32> {
    exact(layout, b, 4)?;
    Ok(be32(b, 0))
}

/// A response that is 16 bytes (a random, a challenge, a proof).
pub fn block16(layout: &'static str, b: &[u8]) -> Parsed<[u8; 16]> {
    exact(layout, b, 16)?;
    Ok(arr(b, 0))
}

/// A card ID answer (READ FIELD `01`): 8 bytes.
pub fn card_id(layout: &'static str, b: &[u8]) -> Parsed<[u8; 8]> {
    exact(layout, b, 8)?;
    Ok(arr(b, 0))
}

/// A certificate area read back (READ FIELD `05`, GET CARD INFO `01`): 1-255 bytes; an empty
/// area is `6A88`, never an empty `9000`.
pub fn certificate(layout: &'static str, b: &[u8]) -> Parsed<Vec<u8>> {
    if b.is_empty() || b.len() > 255 {
        return bad(layout, "length", format!("{} bytes, expected 1-255", b.len()));
    }
    Ok(b.to_vec())
}

pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(arr(b, off))
}

/// `N` bytes at `off`; callers check the length first.
pub(crate) fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_answers_name_their_length() {
        assert_eq!(u32_answer("DEBIT", &[0, 0, 1, 0]), Ok(256));
        let e = u32_answer("DEBIT", &[0, 0, 1]).unwrap_err();
        assert_eq!(e.to_string(), "DEBIT: length: 3 bytes, expected 4");
        assert!(block16("VALUE SEND", &[0; 17]).is_err());
        assert!(certificate("READ FIELD 05", &[]).is_err());
        assert!(certificate("READ FIELD 05", &[0; 256]).is_err());
        assert_eq!(certificate("READ FIELD 05", &[7; 186]).map(|c| c.len()), Ok(186));
    }
}
