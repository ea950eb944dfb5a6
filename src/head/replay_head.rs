//! The `replay` head driver: a `TraceCard` (a card played from a trace) in a head, so a plan
//! runs against a captured card without the card (docs/replay.md).

use super::{Head, HeadError, HeadInfo, Wire};
use crate::replay::card::TraceCard;
use crate::sim::card::SimCard;
use std::time::Instant;

pub struct ReplayHead {
    info: HeadInfo,
    card: TraceCard,
}

impl ReplayHead {
    /// `source` names where the card comes from, for `cardbench heads` (e.g. `trace.csv#CB…`).
    pub fn new(name: &str, source: &str, card: TraceCard) -> Self {
        ReplayHead { info: HeadInfo { name: name.into(), driver: "replay", reader: source.into() }, card }
    }

    pub fn card(&self) -> &TraceCard {
        &self.card
    }
}

impl Head for ReplayHead {
    fn info(&self) -> &HeadInfo {
        &self.info
    }

    fn card_present(&mut self) -> Result<bool, HeadError> {
        Ok(true)
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.card.is_powered().then(|| self.card.atr())
    }

    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        Ok(self.card.power_on())
    }

    fn power_off(&mut self) -> Result<(), HeadError> {
        self.card.power_off();
        Ok(())
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        if !self.card.is_powered() {
            return Err(HeadError::Unpowered);
        }
        let start = Instant::now();
        let answer = self.card.process(apdu);
        let duration = start.elapsed();
        match answer {
            Some(response) => Ok(Wire { response, duration }),
            // A captured in-doubt row: the card is mute, as it was in the capture.
            None => Err(HeadError::Mute),
        }
    }
}
