//! The card's three applets (card-spec 1.1) and what selects them.

use super::codes::{AID_CPAY, AID_PURSE, AID_XFER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applet {
    Purse,
    Cpay,
    Xfer,
}

impl Applet {
    /// The AID of SELECT (1.1).
    pub fn aid(self) -> [u8; 7] {
        match self {
            Applet::Purse => AID_PURSE,
            Applet::Cpay => AID_CPAY,
            Applet::Xfer => AID_XFER,
        }
    }

    /// The applet's name in plans (`purse`, `cpay`, `xfer`).
    pub fn parse(name: &str) -> Option<Applet> {
        match name {
            "purse" => Some(Applet::Purse),
            "cpay" => Some(Applet::Cpay),
            "xfer" => Some(Applet::Xfer),
            _ => None,
        }
    }
}
