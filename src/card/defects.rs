//! Seeded implementation defects of the reference card, for testing the conformance suite.
//!
//! Each `Defect` is a plausible firmware mistake in one applet. A card carries a set of them
//! (`VirtualCard::set_defects`, profile `[[card]] defects = [...]`); with the empty set (the
//! default) the card is the reference card, byte for byte. Every defect changes behaviour a
//! terminal can see through APDUs (status words, response bytes, state read back with
//! commands); `tests/defects.rs` proves it for each one and `docs/defects.md` describes them.

use std::fmt;
use std::str::FromStr;

macro_rules! defects {
    ($($(#[$doc:meta])* $v:ident = $name:literal, $applet:literal, $desc:literal;)*) => {
        /// One seeded implementation defect.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Defect {
            $($(#[$doc])* $v,)*
        }

        impl Defect {
            /// Every defect, in declaration order (GEN, PURSE, CPAY, XFER key update, XFER transfer).
            pub const ALL: &'static [Defect] = &[$(Defect::$v,)*];

            /// Kebab-case name, as written in a profile's `defects` list.
            pub fn name(self) -> &'static str {
                match self {
                    $(Defect::$v => $name,)*
                }
            }

            /// Applet whose rule the defect breaks: "PURSE", "CPAY" or "XFER"; "GEN" for the
            /// rules of card-spec 1-5 that every applet shares.
            pub fn applet(self) -> &'static str {
                match self {
                    $(Defect::$v => $applet,)*
                }
            }

            /// One sentence: what the defective card does differently.
            pub fn description(self) -> &'static str {
                match self {
                    $(Defect::$v => $desc,)*
                }
            }
        }
    };
}

defects! {
    // ---- GEN (card-spec 1-5: every applet) ----
    /// Not a rule a case can fail on: the card stops answering, and the bench must end the
    /// case at the head's deadline and go on (docs/defects.md, "A mute card").
    MuteAfterSelect = "mute-after-select", "GEN",
        "after answering a SELECT with 9000 the card hangs: no later command gets any answer until the card is powered off";
    // ---- PURSE (seed 000 S1-S2, card-spec 6.4) ----
    CounterNotDecremented = "counter-not-decremented", "PURSE",
        "WRITE VALUE writes amount and date but leaves the backward counter unchanged (and answers the unchanged counter)";
    CounterDecrementedTwice = "counter-decremented-twice", "PURSE",
        "WRITE VALUE decrements the backward counter by two instead of one";
    CounterWraps = "counter-wraps", "PURSE",
        "WRITE VALUE with the counter at 0 is accepted and the counter wraps to FFFFFFFF instead of 6A84";
    CounterSettableAfterLock = "counter-settable-after-lock", "PURSE",
        "PERSO PUT 10 (backward counter) is still accepted after PERSO LOCK, so the counter can be set back up";
    CounterDecrementedOnRefusedWrite = "counter-decremented-on-refused-write", "PURSE",
        "WRITE VALUE decrements the counter in its own transaction before the length check, so a refused write (6700) still costs a counter step";
    // ---- CPAY (seed 000 prior art S21-S24, S38; card-spec 7.3-7.5) ----
    CpayReaderSignatureUnchecked = "cpay-reader-signature-unchecked", "CPAY",
        "PSO VERIFY CERTIFICATE does not verify the center's signature on the reader certificate: any well-formed payment-machine certificate is accepted";
    CpayReaderRoleUnchecked = "cpay-reader-role-unchecked", "CPAY",
        "PSO VERIFY CERTIFICATE accepts a center-signed certificate of any role (charge machine, signing card) as a reader";
    CpaySignsZeroRandom = "cpay-signs-zero-random", "CPAY",
        "SIGN PAYMENT signs 16 zero bytes in place of the reader's random, so its signature can be replayed";
    CpayNonceReusable = "cpay-nonce-reusable", "CPAY",
        "DEBIT does not consume the SIGN PAYMENT nonce: the same authorized DEBIT can be replayed";
    CpayDebitSignatureUnchecked = "cpay-debit-signature-unchecked", "CPAY",
        "DEBIT does not verify the reader's signature over the nonce: any 64 bytes authorize a debit";
    CpayOverdraft = "cpay-overdraft", "CPAY",
        "DEBIT with price > amount is accepted and the amount wraps below zero instead of 6A84";
    // ---- XFER key update (seed 002 S1001-S8105A, card-spec 8.4-8.6) ----
    UpdatePermissionReusable = "update-permission-reusable", "XFER",
        "UPDATE TRANSFER KEY does not consume the key-update permission: after a refused attempt the same update random is still accepted";
    UpdateRandomUnchecked = "update-random-unchecked", "XFER",
        "UPDATE TRANSFER KEY (modes 01/03) does not compare the decrypted random with the permission's random: an old key blob is accepted";
    TkidRangeUnchecked = "tkid-range-unchecked", "XFER",
        "UPDATE TRANSFER KEY skips the transfer-key ID range check: an older transfer key (rollback) is accepted";
    TkidAcceptsCurrent = "tkid-accepts-current", "XFER",
        "UPDATE TRANSFER KEY range check is off by one at the bottom: a new ID equal to the current one is accepted";
    TkidLimitOffByOne = "tkid-limit-off-by-one", "XFER",
        "UPDATE TRANSFER KEY range check is off by one at the top: a new ID equal to the upper limit + 1 is accepted";
    UkidLimitUnchecked = "ukid-limit-unchecked", "XFER",
        "UPDATE TRANSFER KEY mode 04 does not range-check the new update-key ID (current < new <= limit)";
    PeerCertUnchecked = "peer-cert-unchecked", "XFER",
        "public modes 02/04: the peer certificate's CA signature is not verified, so any well-formed transfer-card certificate is accepted (and GET TRANSFER KEY encrypts the transfer key to its key)";
    MultiKeyUnauthenticated = "multi-key-unauthenticated", "XFER",
        "UPDATE TRANSFER KEY mode 03 also accepts an unprotected 20-byte blob random || key ID, switching the key slot without the update key";
    // ---- XFER value transfer (seed 002 S2001-S2105B, card-spec 8.7-8.10) ----
    SendChallengeUnchecked = "send-challenge-unchecked", "XFER",
        "VALUE SEND does not verify the transmission challenge before committing the debit";
    DebitAtSendPermission = "debit-at-send-permission", "XFER",
        "the tentative debit is committed to NVM at VALUE SEND PERMISSION instead of at VALUE SEND, so an abandoned transfer loses value";
    CreditAtReceivePermission = "credit-at-receive-permission", "XFER",
        "VALUE RECEIVE PERMISSION commits the credit immediately instead of keeping it pending until the reception challenge";
    ChallengeOmitsDate = "challenge-omits-date", "XFER",
        "the transmission and reception challenges are MACed over tag, paid value and random without the date";
    OverdraftAllowed = "overdraft-allowed", "XFER",
        "VALUE SEND PERMISSION and VALUE SEND do not check balance >= paid; the balance wraps below zero";
    BalanceCapUnchecked = "balance-cap-unchecked", "XFER",
        "VALUE RECEIVE PERMISSION and VALUE RECEIVE do not check the balance cap or u32 overflow";
    ValidityIgnored = "validity-ignored", "XFER",
        "VALUE SEND / RECEIVE PERMISSION accept a transaction date after the card's term of validity";
    PendingCreditOverwritten = "pending-credit-overwritten", "XFER",
        "VALUE RECEIVE PERMISSION overwrites a credit that is still pending instead of answering 6986";
    ReceiveReplay = "receive-replay", "XFER",
        "VALUE RECEIVE credits but does not clear the pending credit, so the same reception challenge credits again";
    CancelProofUnchecked = "cancel-proof-unchecked", "XFER",
        "CANCEL PENDING CREDIT does not verify the sending card's cancel proof: any 16 bytes cancel a pending credit, also one whose debit was committed";
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown defect name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown defect '{name}'{hint}", hint = crate::suggest::hint(name, Defect::ALL.iter().map(|d| d.name()), ""))]
pub struct UnknownDefect {
    pub name: String,
}

impl FromStr for Defect {
    type Err = UnknownDefect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Defect::ALL.iter().copied().find(|d| d.name() == s).ok_or_else(|| UnknownDefect { name: s.to_string() })
    }
}

/// A set of defects: one bit per `Defect` (declaration order). `Default` is the empty set,
/// i.e. the reference card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Defects(u64);

// One bit per defect must fit.
const _: () = assert!(Defect::ALL.len() <= 64);

impl Defects {
    pub const NONE: Defects = Defects(0);

    pub fn new() -> Defects {
        Defects::NONE
    }

    pub fn has(&self, d: Defect) -> bool {
        self.0 & (1u64 << d as u32) != 0
    }

    pub fn insert(&mut self, d: Defect) {
        self.0 |= 1u64 << d as u32;
    }

    pub fn remove(&mut self, d: Defect) {
        self.0 &= !(1u64 << d as u32);
    }

    pub fn with(mut self, d: Defect) -> Defects {
        self.insert(d);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// The defects in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        Defect::ALL.iter().copied().filter(move |d| self.has(*d))
    }

    /// Parse a list of names; the first unknown one is the error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Defects, UnknownDefect> {
        names.iter().map(|n| n.as_ref().parse::<Defect>()).collect()
    }
}

impl From<Defect> for Defects {
    fn from(d: Defect) -> Self {
        Defects::NONE.with(d)
    }
}

impl FromIterator<Defect> for Defects {
    fn from_iter<I: IntoIterator<Item = Defect>>(iter: I) -> Self {
        let mut s = Defects::NONE;
        for d in iter {
            s.insert(d);
        }
        s
    }
}

impl fmt::Display for Defects {
    /// Comma-separated names, or "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Defect::name).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut s = Defects::new();
        assert!(s.is_empty());
        s.insert(Defect::ReceiveReplay);
        s.insert(Defect::CounterWraps);
        assert!(s.has(Defect::ReceiveReplay) && s.has(Defect::CounterWraps));
        assert!(!s.has(Defect::CpayOverdraft));
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "counter-wraps, receive-replay");
        s.remove(Defect::CounterWraps);
        assert_eq!(s, Defects::from(Defect::ReceiveReplay));
        let all: Defects = Defect::ALL.iter().copied().collect();
        assert_eq!(all.len(), Defect::ALL.len());
        assert_eq!(all.iter().collect::<Vec<_>>(), Defect::ALL);
    }

    #[test]
    fn parse_lists_valid_names_on_error() {
        assert_eq!(
            Defects::parse(&["receive-replay", "counter-wraps"]).unwrap(),
            Defects::from(Defect::ReceiveReplay).with(Defect::CounterWraps)
        );
        let e = Defects::parse(&["counter-wraps", "nope"]).unwrap_err();
        assert_eq!(e.name, "nope");
        let msg = e.to_string();
        assert!(msg.starts_with("unknown defect 'nope' (one of: counter-not-decremented, "));
        for d in Defect::ALL {
            assert!(msg.contains(d.name()));
        }
        let near = Defects::parse(&["counter-wrap"]).unwrap_err().to_string();
        assert_eq!(near, "unknown defect 'counter-wrap': did you mean counter-wraps?");
    }
}
