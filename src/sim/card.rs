//! What a simulated reader needs of the card in it: power, ATR, identity, and bytes in,
//! bytes out. The reference `VirtualCard` is one; a card played back from a trace
//! (`replay::card::TraceCard`) is another, so `cardbench sim vpcd|pn532|replay` serve either.

use crate::card::VirtualCard;

pub trait SimCard: Send {
    /// Card ID (the PN532 simulator derives the UID from its last seven bytes).
    fn card_id(&self) -> [u8; 8];
    /// ATR the card answers a cold reset with.
    fn atr(&self) -> Vec<u8>;
    fn is_powered(&self) -> bool;
    /// Cold reset: power the card and return its ATR.
    fn power_on(&mut self) -> Vec<u8>;
    fn power_off(&mut self);
    /// One command APDU in, the response APDU out; `None` when the card does not answer.
    fn process(&mut self, apdu: &[u8]) -> Option<Vec<u8>>;
    /// Whether the card hangs (powered, never answering until powered off): a simulator
    /// then sends nothing at all, as a reader waits on a card that never answers.
    fn is_hung(&self) -> bool {
        false
    }
}

impl SimCard for VirtualCard {
    fn card_id(&self) -> [u8; 8] {
        VirtualCard::card_id(self)
    }

    fn atr(&self) -> Vec<u8> {
        VirtualCard::atr(self)
    }

    fn is_powered(&self) -> bool {
        VirtualCard::is_powered(self)
    }

    fn power_on(&mut self) -> Vec<u8> {
        VirtualCard::power_on(self)
    }

    fn power_off(&mut self) {
        VirtualCard::power_off(self)
    }

    fn process(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        VirtualCard::process(self, apdu)
    }

    fn is_hung(&self) -> bool {
        VirtualCard::is_hung(self)
    }
}
