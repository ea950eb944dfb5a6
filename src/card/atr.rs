//! A card's ATR other than the reference one (card-spec 2.1 gives the reference card's bytes;
//! another card of the same spec may answer with other interface and historical bytes). An
//! ATR a lab gives a virtual card must still be one a reader can take: well formed by
//! ISO/IEC 7816-3 section 8 and announcing the protocol the card follows, since the delivery
//! rules of card-spec 2.3 depend on it and pcscd picks the protocol from these bytes.

use super::Protocol;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtrError {
    #[error("an ATR has 2 to 33 bytes, this one {0}")]
    Length(usize),
    #[error("TS is {0:02X}: 3B (direct) or 3F (inverse convention)")]
    Ts(u8),
    #[error("the interface bytes announced by T0 and the TDi bytes run past the end of the ATR")]
    Truncated,
    #[error("T0 announces {announced} historical bytes{tck}, the ATR has {have} bytes after the interface bytes")]
    Historical { announced: usize, tck: &'static str, have: usize },
    #[error("TCK is wrong: the XOR of T0 … TCK is {0:02X}, must be 00")]
    Tck(u8),
    #[error("the ATR announces {announced} and the card follows {card}: an ATR offers the card's protocol only")]
    Protocol { announced: String, card: &'static str },
}

/// `atr` is a well-formed ATR whose only protocol (T=15 global bytes aside) is `protocol`.
pub fn check(atr: &[u8], protocol: Protocol) -> Result<(), AtrError> {
    if !(2..=33).contains(&atr.len()) {
        return Err(AtrError::Length(atr.len()));
    }
    if !matches!(atr[0], 0x3B | 0x3F) {
        return Err(AtrError::Ts(atr[0]));
    }
    let k = (atr[1] & 0x0F) as usize;
    // Walk the interface bytes: each Y nibble says which of TA, TB, TC, TD follow.
    let (mut at, mut y) = (2usize, atr[1] >> 4);
    let mut offered = Vec::new();
    loop {
        let present = (y & 0x07).count_ones() as usize + usize::from(y & 0x08 != 0);
        let td = at + present - 1;
        if at + present > atr.len() {
            return Err(AtrError::Truncated);
        }
        at += present;
        if y & 0x08 == 0 {
            break;
        }
        offered.push(atr[td] & 0x0F);
        y = atr[td] >> 4;
    }
    // 7816-3 8.2.5: TCK is absent when only T=0 is indicated, present otherwise.
    let tck = offered.iter().any(|t| *t != 0);
    let after = atr.len() - at;
    if after != k + usize::from(tck) {
        let tck = if tck { " and a TCK" } else { "" };
        return Err(AtrError::Historical { announced: k, tck, have: after });
    }
    if tck {
        let x = atr[1..].iter().fold(0u8, |a, b| a ^ b);
        if x != 0 {
            return Err(AtrError::Tck(x));
        }
    }
    let mut protocols: Vec<u8> = offered.into_iter().filter(|t| *t != 15).collect();
    if protocols.is_empty() {
        // No TD1: T=0 is implied.
        protocols.push(0);
    }
    protocols.dedup();
    let card = match protocol {
        Protocol::T0 => 0,
        Protocol::T1 => 1,
    };
    if protocols != [card] {
        let announced = protocols.iter().map(|t| format!("T={t}")).collect::<Vec<_>>().join(" and ");
        return Err(AtrError::Protocol { announced, card: protocol.name() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_reference_atrs_of_card_spec_2_1_are_well_formed() {
        assert_eq!(check(&b("3B89004341524442454E4348"), Protocol::T0), Ok(()));
        assert_eq!(check(&b("3B89014341524442454E4348DE"), Protocol::T1), Ok(()));
        for p in [Protocol::T0, Protocol::T1] {
            let mut c = super::super::VirtualCard::blank(p, Some([0; 32]));
            assert_eq!(check(&c.power_on(), p), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn other_interface_and_historical_bytes_are_accepted() {
        // TA1 11, T=0, ten historical bytes.
        assert_eq!(check(&b("3B 9A 11 00 56 41 52 49 41 4E 54 41 54 52"), Protocol::T0), Ok(()));
        // No TD1 at all: T=0 implied.
        assert_eq!(check(&b("3B 02 14 50"), Protocol::T0), Ok(()));
        // TB1 TC1 TD1(T=1) TD2(T=1) TA3 (IFSC) TB3 (BWI/CWI), 9 historical bytes, TCK.
        let mut t1 = b("3B E9 00 00 81 31 FE 45 4A 43 4F 50 56 41 52 49 41");
        t1.push(t1[1..].iter().fold(0, |a, b| a ^ b));
        assert_eq!(check(&t1, Protocol::T1), Ok(()));
    }

    #[test]
    fn malformed_atrs_and_other_protocols_are_refused() {
        assert_eq!(check(&b("3B"), Protocol::T0), Err(AtrError::Length(1)));
        assert_eq!(check(&b("3C 00"), Protocol::T0), Err(AtrError::Ts(0x3C)));
        assert_eq!(check(&b("3B 90"), Protocol::T0), Err(AtrError::Truncated));
        assert!(matches!(check(&b("3B 02 14"), Protocol::T0), Err(AtrError::Historical { .. })));
        assert_eq!(check(&b("3B89014341524442454E4348DF"), Protocol::T1), Err(AtrError::Tck(0x01)));
        // A T=1 ATR on a T=0 card, and one offering both.
        assert!(matches!(check(&b("3B89014341524442454E4348DE"), Protocol::T0), Err(AtrError::Protocol { .. })));
        let mut both = b("3B 80 80 01");
        both.push(both[1..].iter().fold(0, |a, b| a ^ b));
        let e = check(&both, Protocol::T0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the ATR announces T=0 and T=1 and the card follows T=0: an ATR offers the card's protocol only"
        );
    }
}
