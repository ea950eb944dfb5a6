//! In-process head holding a `VirtualCard` that can be inserted and removed.

use super::{Head, HeadError, HeadInfo, Wire};
use crate::card::VirtualCard;
use std::time::{Duration, Instant};

pub struct VirtualHead {
    info: HeadInfo,
    card: Option<VirtualCard>,
    /// Modelled card service time added to every command (a slow card, a long ECDSA).
    service_time: Duration,
}

impl VirtualHead {
    pub fn new(name: &str) -> Self {
        VirtualHead {
            info: HeadInfo { name: name.to_string(), driver: "virtual", reader: format!("virtual:{name}") },
            card: None,
            service_time: Duration::ZERO,
        }
    }

    pub fn with_service_time(mut self, t: Duration) -> Self {
        self.service_time = t;
        self
    }

    /// Insert a card (unpowered). Returns the card that was in the slot, if any.
    pub fn insert(&mut self, card: VirtualCard) -> Option<VirtualCard> {
        let mut card = card;
        card.power_off();
        self.card.replace(card).map(|mut old| {
            old.power_off();
            old
        })
    }

    pub fn remove(&mut self) -> Option<VirtualCard> {
        self.card.take().map(|mut c| {
            c.power_off();
            c
        })
    }

    pub fn card(&self) -> Option<&VirtualCard> {
        self.card.as_ref()
    }

    pub fn card_mut(&mut self) -> Option<&mut VirtualCard> {
        self.card.as_mut()
    }
}

impl Head for VirtualHead {
    fn info(&self) -> &HeadInfo {
        &self.info
    }

    fn card_present(&mut self) -> Result<bool, HeadError> {
        Ok(self.card.is_some())
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.card.as_ref().filter(|c| c.is_powered()).map(|c| c.atr())
    }

    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        let card = self.card.as_mut().ok_or(HeadError::NoCard)?;
        Ok(card.power_on())
    }

    fn power_off(&mut self) -> Result<(), HeadError> {
        if let Some(c) = self.card.as_mut() {
            c.power_off();
        }
        Ok(())
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        let card = self.card.as_mut().ok_or(HeadError::NoCard)?;
        if !card.is_powered() {
            return Err(HeadError::Unpowered);
        }
        let start = Instant::now();
        let answer = card.process(apdu);
        if !self.service_time.is_zero() {
            // Spin rather than sleep: sleep granularity would swamp sub-millisecond models.
            while start.elapsed() < self.service_time {
                std::hint::spin_loop();
            }
        }
        let duration = start.elapsed();
        match answer {
            Some(response) => Ok(Wire { response, duration }),
            None => Err(HeadError::Mute),
        }
    }

    fn as_virtual(&mut self) -> Option<&mut VirtualHead> {
        Some(self)
    }
}
