//! PURSE responses (card-spec 6.2-6.4).

use super::{bad, be32, exact, Parsed};

/// READ ALL (6.2): the record, 22 + s + c bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub card_id: [u8; 8],
    pub counter: u32,
    pub amount: u32,
    pub date: u32,
    /// Empty or 64 bytes.
    pub signature: Vec<u8>,
    /// 0-255 bytes.
    pub certificate: Vec<u8>,
}

const READ_ALL: &str = "READ ALL";

impl Record {
    pub fn parse(b: &[u8]) -> Parsed<Record> {
        if b.len() < 22 {
            return bad(READ_ALL, "length", format!("{} bytes, at least 22 expected", b.len()));
        }
        let s = b[20] as usize;
        if s != 0 && s != 64 {
            return bad(READ_ALL, "signature length (offset 20)", format!("{s}, expected 0 or 64"));
        }
        let cert_at = 21 + s;
        let c = b[cert_at] as usize;
        if b.len() != cert_at + 1 + c {
            return bad(
                READ_ALL,
                "length",
                format!("{} bytes, expected 22 + {s} + {c} from the two length bytes", b.len()),
            );
        }
        Ok(Record {
            card_id: super::arr(b, 0),
            counter: be32(b, 8),
            amount: be32(b, 12),
            date: be32(b, 16),
            signature: b[21..cert_at].to_vec(),
            certificate: b[cert_at + 1..].to_vec(),
        })
    }

    pub fn is_blank(&self) -> bool {
        self.signature.is_empty() && self.certificate.is_empty()
    }

    /// A value (or date) without signature and certificate: a first write whose S3/S4 never
    /// happened. Charging over it would hide the interrupted write.
    pub fn is_unsigned_value(&self) -> bool {
        self.is_blank() && (self.amount != 0 || self.date != 0)
    }
}

/// READ FIELD `03` of PURSE and CPAY (6.3, 7.2): `amount ‖ date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value {
    pub amount: u32,
    pub date: u32,
}

impl Value {
    pub fn parse(layout: &'static str, b: &[u8]) -> Parsed<Value> {
        exact(layout, b, 8)?;
        Ok(Value { amount: be32(b, 0), date: be32(b, 4) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(s: usize, c: usize) -> Vec<u8> {
        let mut b = vec![0xCB; 8];
        b.extend([0, 0, 3, 0xE7, 0, 0, 0, 100, 0x6A, 0x1D, 0x74, 0x40]);
        b.push(s as u8);
        b.extend(vec![0x11; s]);
        b.push(c as u8);
        b.extend(vec![0x22; c]);
        b
    }

    #[test]
    fn a_record_reads_field_by_field() {
        let r = Record::parse(&record(64, 186)).unwrap();
        assert_eq!((r.counter, r.amount, r.date), (999, 100, 0x6A1D_7440));
        assert_eq!((r.signature.len(), r.certificate.len()), (64, 186));
        assert!(Record::parse(&record(0, 0)).unwrap().is_blank());
    }

    #[test]
    fn a_signature_length_other_than_0_or_64_is_refused() {
        let e = Record::parse(&record(63, 0)).unwrap_err();
        assert_eq!(e.field, "signature length (offset 20)");
    }

    #[test]
    fn trailing_or_missing_bytes_are_refused() {
        let mut b = record(64, 10);
        b.push(0);
        assert_eq!(Record::parse(&b).unwrap_err().field, "length");
        assert_eq!(Record::parse(&record(64, 10)[..90]).unwrap_err().field, "length");
        assert_eq!(Record::parse(&[0; 21]).unwrap_err().field, "length");
    }
}
