//! Reader heads: one trait for every transport (in-process virtual, PC/SC, serial).
//!
//! A head moves bytes and measures the wire time; it knows nothing about T=0 procedure
//! bytes, which `crate::link` handles once for all heads.

pub mod pcsc_head;
pub mod pn532;
pub mod replay_head;
pub mod service;
pub mod tap;
pub mod usable;
pub mod virtual_head;

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadError {
    #[error("no card in the reader")]
    NoCard,
    #[error("card removed")]
    CardRemoved,
    #[error("card is mute (no answer)")]
    Mute,
    #[error("card not powered")]
    Unpowered,
    #[error("reader gone: {0}")]
    ReaderGone(String),
    #[error("reader service stopped")]
    ServiceStopped,
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("{0} is not supported by this head")]
    Unsupported(&'static str),
    /// The head failed before any byte of the command left the host.
    #[error("not sent: {0}")]
    NotSent(String),
}

impl HeadError {
    /// Whether the card may have received (and executed) the command that got this error.
    /// Only errors the head raises before the command leaves the host are safe; every other
    /// failure leaves the command's outcome unknown, and nothing may re-send it blindly.
    pub fn maybe_delivered(&self) -> bool {
        !matches!(self, HeadError::NoCard | HeadError::Unpowered | HeadError::Unsupported(_) | HeadError::NotSent(_))
    }

    /// Whether the card or its reader is gone, so nothing more can be sent to it until it is
    /// powered (or found) again.
    pub fn card_gone(&self) -> bool {
        matches!(
            self,
            HeadError::NoCard
                | HeadError::CardRemoved
                | HeadError::Mute
                | HeadError::ReaderGone(_)
                | HeadError::ServiceStopped
        )
    }
}

/// Who a head is, for traces and the TUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadInfo {
    /// Name given in the profile (e.g. "A"); used in every trace row.
    pub name: String,
    /// Driver kind: "virtual", "pcsc", "pn532", "replay".
    pub driver: &'static str,
    /// Reader or port the driver talks to.
    pub reader: String,
}

/// One exchange on the wire: raw response bytes and the time the transport call took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub response: Vec<u8>,
    pub duration: Duration,
}

pub trait Head: Send {
    fn info(&self) -> &HeadInfo;

    /// True when a card sits in the reader (powered or not).
    fn card_present(&mut self) -> Result<bool, HeadError>;

    /// ATR of the powered card, if any.
    fn atr(&self) -> Option<Vec<u8>>;

    /// Cold reset: power the card and return its ATR.
    fn power_on(&mut self) -> Result<Vec<u8>, HeadError>;

    fn power_off(&mut self) -> Result<(), HeadError>;

    /// Warm reset. Heads that cannot do one natively cycle power.
    fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        self.power_off()?;
        self.power_on()
    }

    /// Send one command APDU and return the raw response (data + SW1 SW2). The duration is
    /// measured with the monotonic clock around the transport call only.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError>;

    /// Wait until a card is present (`present`) or gone (`!present`), up to `timeout`;
    /// `Ok(false)` on timeout. Heads without presence events poll.
    fn wait_for_card(&mut self, present: bool, timeout: Duration) -> Result<bool, HeadError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.card_present()? == present {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Hold (`on`) or release the reader for this process alone while a measurement runs, so
    /// no other application's commands land between ours (PC/SC: `SCardBeginTransaction`).
    /// `Ok(true)` when the head now holds such a lock, `Ok(false)` when it has none to take
    /// (in-process heads: nothing else can reach them).
    fn exclusive(&mut self, on: bool) -> Result<bool, HeadError> {
        let _ = on;
        Ok(false)
    }

    /// Make sure the reader can be used before anything is written for a run: the reader
    /// service answers and the reader is found (PC/SC), the port opens and the chip answers
    /// (PN532). A card need not be present. In-process heads have nothing to open.
    fn open(&mut self) -> Result<(), HeadError> {
        Ok(())
    }

    /// Virtual heads expose their slot so tests and feeders can insert, remove and inspect
    /// cards; real transports answer `None`.
    fn as_virtual(&mut self) -> Option<&mut virtual_head::VirtualHead> {
        None
    }
}
