//! Property tests of the APDU codec (ISO/IEC 7816-4 §5.1): every valid command of cases 1-4,
//! short and extended, encodes with the right length fields and parses back to itself;
//! responses round-trip; parsing arbitrary bytes never panics. docs/fuzzing.md.

use cardbench::apdu::{ApduError, Case, Command, Response};
use proptest::prelude::*;

/// Data lengths around every boundary of the encodings, and a few anywhere up to 65535.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..=300,
        1 => prop::sample::select(vec![1usize, 254, 255, 256, 257, 65534, 65535]),
        1 => 0usize..=65535,
    ]
}

/// Ne: absent, or 1..=65536 around the short/extended boundaries.
fn ne() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        1 => Just(None),
        2 => (1usize..=300).prop_map(Some),
        1 => prop::sample::select(vec![255usize, 256, 257, 65535, 65536]).prop_map(Some),
        1 => (1usize..=65536).prop_map(Some),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    (any::<[u8; 4]>(), data_len(), any::<u8>(), ne()).prop_map(|(h, n, fill, le)| Command {
        cla: h[0],
        ins: h[1],
        p1: h[2],
        p2: h[3],
        data: (0..n).map(|i| fill.wrapping_add(i as u8)).collect(),
        le,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_valid_command_round_trips_with_the_right_length_fields(c in command()) {
        let b = c.to_bytes().unwrap();
        prop_assert_eq!(&Command::parse(&b).unwrap(), &c);
        prop_assert_eq!(&b[..4], &[c.cla, c.ins, c.p1, c.p2]);
        let n = c.data.len();
        let ext = n > 255 || c.le.is_some_and(|le| le > 256);
        prop_assert_eq!(c.is_extended(), ext);
        // Lc, then the data, then Le; 256 and 65536 encode as zero.
        let mut want = Vec::new();
        if n > 0 {
            if ext {
                want.push(0);
                want.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                want.push(n as u8);
            }
            want.extend_from_slice(&c.data);
        }
        match (c.le, ext) {
            (None, _) => {}
            (Some(le), false) => want.push((le % 256) as u8),
            (Some(le), true) => {
                if n == 0 {
                    want.push(0);
                }
                want.extend_from_slice(&((le % 65536) as u16).to_be_bytes());
            }
        }
        prop_assert_eq!(&b[4..], &want[..]);
        let case = match (n > 0, c.le.is_some()) {
            (false, false) => Case::One,
            (false, true) => Case::Two,
            (true, false) => Case::Three,
            (true, true) => Case::Four,
        };
        prop_assert_eq!(c.case(), case);
    }

    #[test]
    fn every_response_round_trips(data in prop::collection::vec(any::<u8>(), 0..600), sw in any::<u16>()) {
        let r = Response::new(data.clone(), sw);
        let b = r.to_bytes();
        prop_assert_eq!(b.len(), data.len() + 2);
        prop_assert_eq!(&b[b.len() - 2..], &sw.to_be_bytes());
        prop_assert_eq!(Response::parse(&b).unwrap(), r);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics_and_what_parses_re_encodes(
        b in prop::collection::vec(any::<u8>(), 0..600)
    ) {
        if let Ok(c) = Command::parse(&b) {
            let again = c.to_bytes().unwrap();
            prop_assert_eq!(Command::parse(&again).unwrap(), c);
        }
        match Response::parse(&b) {
            Ok(r) => prop_assert_eq!(r.to_bytes(), b),
            Err(e) => prop_assert_eq!(e, ApduError::NoStatusWord(b.len())),
        }
    }

    #[test]
    fn out_of_range_lengths_are_refused(n in 65536usize..70000, le in 65537usize..1_000_000) {
        prop_assert_eq!(Command::new(0, 0xD6, 0, 0).data(vec![0; n]).to_bytes(), Err(ApduError::DataTooLong(n)));
        prop_assert_eq!(Command::new(0, 0xB0, 0, 0).le(le).to_bytes(), Err(ApduError::LeTooLarge(le)));
    }
}

/// Ne = 0 has no encoding (an absent Le means no response data): `Some(0)` used to encode
/// as `00`, which means Ne = 256, so the command parsed back as another one.
#[test]
fn le_zero_is_refused_rather_than_sent_as_256() {
    assert_eq!(Command::new(0, 0xB0, 0, 0).le(0).to_bytes(), Err(ApduError::ZeroLe));
    assert_eq!(Command::new(0, 0xD6, 0, 0).data(vec![1; 300]).le(0).to_bytes(), Err(ApduError::ZeroLe));
}
