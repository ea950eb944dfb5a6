//! In-process head holding a `VirtualCard` that can be inserted and removed.

use super::service::{wait_until, ServiceModel};
use super::{Head, HeadError, HeadInfo, Wire};
/// The card a virtual head holds (the reference card). The runner, replay and timing move it
/// between heads and snapshot it through this head's API, never through the card's code.
pub use crate::card::VirtualCard;
use std::time::{Duration, Instant};

/// Where a scheduled power cut falls relative to one wire exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// The card loses power before the command reaches it: nothing happens on the card.
    BeforeCommand,
    /// The card runs the command (and commits), then loses power before its answer reaches
    /// the terminal: the EMV "torn transaction", the case a terminal must not retry blindly.
    AfterCommand,
}

/// A power cut armed on a virtual head: at the `at`-th transmit from now (1 = the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerCut {
    pub at: u64,
    pub point: CutPoint,
}

/// Which transmits count towards a cut's `at`: all of them, or (`Some(ins)`) only those of
/// commands with that INS, so that the same cut falls on the same command of a T=0 and a T=1
/// card, whose GET RESPONSE and `6Cxx` re-sends differ (card-spec 2.3).
pub fn counts(ins: Option<u8>, apdu: &[u8]) -> bool {
    ins.is_none_or(|ins| apdu.get(1) == Some(&ins))
}

pub struct VirtualHead {
    info: HeadInfo,
    card: Option<VirtualCard>,
    /// Modelled card service time per command (a slow card, a long ECDSA).
    service: ServiceModel,
    /// Transmits since the head was made; tear campaigns count fault points with it.
    transmits: u64,
    cut: Option<PowerCut>,
    /// The INS whose commands the armed cut counts (`counts`), if only those.
    cut_ins: Option<u8>,
}

impl VirtualHead {
    pub fn new(name: &str) -> Self {
        VirtualHead {
            info: HeadInfo { name: name.to_string(), driver: "virtual", reader: format!("virtual:{name}") },
            card: None,
            service: ServiceModel::default(),
            transmits: 0,
            cut: None,
            cut_ins: None,
        }
    }

    /// Arm (or with `None` disarm) a power cut at a later transmit. The cut powers the card
    /// off and the transmit fails with `HeadError::Mute`, as a reader sees a card that lost
    /// its field; the cut disarms itself once it fired.
    pub fn cut_power(&mut self, cut: Option<PowerCut>) {
        self.cut_power_at(cut, None);
    }

    /// `cut_power` counting only the commands with INS `ins` (`None`: every transmit).
    pub fn cut_power_at(&mut self, cut: Option<PowerCut>, ins: Option<u8>) {
        self.cut = cut.filter(|c| c.at > 0);
        self.cut_ins = ins;
    }

    /// Whether an armed power cut is still waiting for its transmit.
    pub fn cut_pending(&self) -> bool {
        self.cut.is_some()
    }

    /// Transmits through this head so far (the ones a power cut interrupted included).
    pub fn transmits(&self) -> u64 {
        self.transmits
    }

    /// Which point the armed cut fires at, when the transmit now starting is its one.
    fn fire_cut(&mut self, apdu: &[u8]) -> Option<CutPoint> {
        if !counts(self.cut_ins, apdu) {
            return None;
        }
        let c = self.cut.as_mut()?;
        c.at -= 1;
        if c.at > 0 {
            return None;
        }
        let point = c.point;
        self.cut = None;
        Some(point)
    }

    /// The same modelled service time for every command.
    pub fn with_service_time(mut self, t: Duration) -> Self {
        self.service = ServiceModel::fixed(t);
        self
    }

    /// A modelled service time per INS (fixed or from a seeded distribution).
    pub fn with_service(mut self, m: ServiceModel) -> Self {
        self.service = m;
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
        self.transmits += 1;
        let cut = self.fire_cut(apdu);
        let card = self.card.as_mut().ok_or(HeadError::NoCard)?;
        if cut == Some(CutPoint::BeforeCommand) {
            card.power_off();
            return Err(HeadError::Mute);
        }
        let start = Instant::now();
        let answer = card.process(apdu);
        if cut == Some(CutPoint::AfterCommand) {
            card.power_off();
            return Err(HeadError::Mute);
        }
        if !self.service.is_zero() {
            // The model is the card's whole time for the command, its processing included.
            wait_until(start + self.service.draw(apdu));
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
