//! PC/SC reader heads over pcsc-lite (the `pcsc` crate): one reader selected by a name
//! pattern, shared or exclusive, T=0 / T=1 / any.
//!
//! The pcsc crate's rule is one `Context` per thread; each head owns its own context and
//! is used by one worker thread at a time. Every pcsc error becomes a `HeadError` naming
//! what a lab operator needs to know (no card, card removed, reader gone, service stopped).

use super::{Head, HeadError, HeadInfo, Wire};
use pcsc::{Card, Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Largest response pcsc-lite can carry (extended APDUs).
const MAX_RESPONSE: usize = pcsc::MAX_BUFFER_SIZE_EXTENDED;

impl From<pcsc::Error> for HeadError {
    fn from(e: pcsc::Error) -> Self {
        use pcsc::Error as E;
        match e {
            E::NoSmartcard => HeadError::NoCard,
            E::RemovedCard => HeadError::CardRemoved,
            E::UnpoweredCard | E::UnresponsiveCard => HeadError::Mute,
            E::ReaderUnavailable | E::UnknownReader | E::NoReadersAvailable => HeadError::ReaderGone(e.to_string()),
            E::NoService | E::ServiceStopped => HeadError::ServiceStopped,
            E::Timeout => HeadError::Timeout(Duration::ZERO),
            other => HeadError::Transport(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    Shared,
    Exclusive,
}

pub struct PcscHead {
    info: HeadInfo,
    pattern: String,
    share: Share,
    protocols: Protocols,
    ctx: Option<Context>,
    reader: Option<CString>,
    card: Option<Card>,
    atr: Option<Vec<u8>>,
    buf: Vec<u8>,
}

impl PcscHead {
    pub fn new(name: &str, pattern: &str, share: Share, protocols: Protocols) -> PcscHead {
        PcscHead {
            info: HeadInfo { name: name.into(), driver: "pcsc", reader: pattern.into() },
            pattern: pattern.into(),
            share,
            protocols,
            ctx: None,
            reader: None,
            card: None,
            atr: None,
            buf: vec![0; MAX_RESPONSE],
        }
    }

    fn ctx(&mut self) -> Result<&Context, HeadError> {
        if self.ctx.is_none() {
            self.ctx = Some(Context::establish(Scope::User)?);
        }
        Ok(self.ctx.as_ref().expect("established above"))
    }

    /// Resolve the pattern to a reader name (first match in pcscd's order).
    fn reader(&mut self) -> Result<CString, HeadError> {
        if let Some(r) = &self.reader {
            return Ok(r.clone());
        }
        let pattern = self.pattern.clone();
        let readers = self.ctx()?.list_readers_owned().map_err(|e| match e {
            pcsc::Error::NoReadersAvailable => HeadError::ReaderGone(format!("no reader matches '{pattern}'")),
            e => e.into(),
        })?;
        let r = readers
            .into_iter()
            .find(|r| r.to_string_lossy().contains(&pattern))
            .ok_or_else(|| HeadError::ReaderGone(format!("no reader matches '{pattern}'")))?;
        self.info.reader = r.to_string_lossy().into_owned();
        self.reader = Some(r.clone());
        Ok(r)
    }

    fn share_mode(&self) -> ShareMode {
        match self.share {
            Share::Shared => ShareMode::Shared,
            Share::Exclusive => ShareMode::Exclusive,
        }
    }

    fn read_atr(&mut self) -> Result<Vec<u8>, HeadError> {
        let card = self.card.as_ref().ok_or(HeadError::Unpowered)?;
        let atr = card.status2_owned()?.atr().to_vec();
        self.atr = Some(atr.clone());
        Ok(atr)
    }

    /// Drop the connection after an error that ended it, so the next use reconnects.
    fn forget_on(&mut self, e: &HeadError) {
        match e {
            HeadError::CardRemoved | HeadError::NoCard | HeadError::Mute => {
                self.card = None;
                self.atr = None;
            }
            HeadError::ReaderGone(_) | HeadError::ServiceStopped => {
                self.card = None;
                self.atr = None;
                self.reader = None;
                self.ctx = None;
            }
            _ => {}
        }
    }

    /// Wait up to `timeout` for the reader's card state to change to `present`.
    pub fn wait_presence(&mut self, present: bool, timeout: Duration) -> Result<bool, HeadError> {
        let reader = self.reader()?;
        let deadline = Instant::now() + timeout;
        let mut rs = [ReaderState::new(reader, State::UNAWARE)];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ctx()?.get_status_change(left, &mut rs) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            let st = rs[0].event_state();
            if st.intersects(State::UNKNOWN | State::UNAVAILABLE) {
                return Err(HeadError::ReaderGone(self.info.reader.clone()));
            }
            if st.contains(State::PRESENT) == present {
                return Ok(true);
            }
            rs[0].sync_current_state();
            if left.is_zero() {
                return Ok(false);
            }
        }
    }
}

impl Head for PcscHead {
    fn info(&self) -> &HeadInfo {
        &self.info
    }

    fn card_present(&mut self) -> Result<bool, HeadError> {
        let reader = self.reader()?;
        let mut rs = [ReaderState::new(reader, State::UNAWARE)];
        self.ctx()?.get_status_change(Duration::ZERO, &mut rs)?;
        Ok(rs[0].event_state().contains(State::PRESENT))
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.atr.clone()
    }

    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        let r = (|| {
            let (share, protocols) = (self.share_mode(), self.protocols);
            if let Some(card) = self.card.as_mut() {
                card.reconnect(share, protocols, Disposition::UnpowerCard)?;
            } else {
                let reader = self.reader()?;
                let card = self.ctx()?.connect(&reader, share, protocols)?;
                self.card = Some(card);
            }
            self.read_atr()
        })();
        if let Err(e) = &r {
            self.forget_on(e);
        }
        r
    }

    fn power_off(&mut self) -> Result<(), HeadError> {
        self.atr = None;
        if let Some(card) = self.card.take() {
            card.disconnect(Disposition::UnpowerCard).map_err(|(_, e)| HeadError::from(e))?;
        }
        Ok(())
    }

    fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        let (share, protocols) = (self.share_mode(), self.protocols);
        let card = self.card.as_mut().ok_or(HeadError::Unpowered)?;
        if let Err(e) = card.reconnect(share, protocols, Disposition::ResetCard) {
            let e = HeadError::from(e);
            self.forget_on(&e);
            return Err(e);
        }
        self.read_atr()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        let card = self.card.as_ref().ok_or(HeadError::Unpowered)?;
        let start = Instant::now();
        let r = card.transmit(apdu, &mut self.buf);
        let duration = start.elapsed();
        match r {
            Ok(resp) if resp.len() >= 2 => Ok(Wire { response: resp.to_vec(), duration }),
            Ok(_) => {
                // A reader that answers without even a status word lost the card in the middle
                // of the exchange (vpcd does this when its card disconnects): ask pcscd which.
                // pcscd learns of a removal from the driver's polling (about every 0.5 s for
                // vpcd), so give it a moment before calling the card mute.
                let e = match self.wait_presence(false, Duration::from_millis(1500)) {
                    Ok(true) => HeadError::CardRemoved,
                    Ok(false) => HeadError::Mute,
                    Err(e) => e,
                };
                self.forget_on(&e);
                Err(e)
            }
            Err(e) => {
                let e = HeadError::from(e);
                self.forget_on(&e);
                Err(e)
            }
        }
    }

    fn wait_for_card(&mut self, present: bool, timeout: Duration) -> Result<bool, HeadError> {
        self.wait_presence(present, timeout)
    }
}

/// One PC/SC reader as `cardbench heads` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderListing {
    pub name: String,
    pub present: bool,
    pub atr: Vec<u8>,
}

/// Every reader pcscd knows, with card state and ATR (like pcsc_scan, once).
pub fn list_readers() -> Result<Vec<ReaderListing>, HeadError> {
    let ctx = Context::establish(Scope::User)?;
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut states: Vec<ReaderState> = names.iter().map(|n| ReaderState::new(n.clone(), State::UNAWARE)).collect();
    if !states.is_empty() {
        ctx.get_status_change(Duration::ZERO, &mut states)?;
    }
    Ok(states
        .iter()
        .map(|s| ReaderListing {
            name: s.name().to_string_lossy().into_owned(),
            present: s.event_state().contains(State::PRESENT),
            atr: if s.event_state().contains(State::PRESENT) { s.atr().to_vec() } else { Vec::new() },
        })
        .collect())
}

/// What changed in pcscd's reader list or in a reader's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    ReaderAdded(String),
    ReaderRemoved(String),
    CardInserted { reader: String, atr: Vec<u8> },
    CardRemoved(String),
}

/// Watch every reader and pcscd's plug-and-play notifications until `stop` is set, sending
/// each change (the state at start included, as insertions). Ends with an error if pcscd goes
/// away. `SCardGetStatusChange` waits at most `poll` so `stop` is honoured.
pub fn watch(
    tx: crossbeam_channel::Sender<PresenceEvent>,
    stop: &std::sync::atomic::AtomicBool,
    poll: Duration,
) -> Result<(), HeadError> {
    use std::sync::atomic::Ordering;
    let ctx = Context::establish(Scope::User)?;
    // Readers, then the plug-and-play pseudo reader; each keeps its last seen state so the
    // next call blocks until something changes.
    let mut states: Vec<ReaderState> = vec![ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE)];
    let mut present: std::collections::HashMap<CString, bool> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let names = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let pnp = states.pop().expect("the PnP entry is always last");
        states.retain(|r| {
            let keep = names.iter().any(|n| n.as_c_str() == r.name());
            if !keep {
                present.remove(r.name());
                let _ = tx.send(PresenceEvent::ReaderRemoved(r.name().to_string_lossy().into_owned()));
            }
            keep
        });
        for n in &names {
            if !states.iter().any(|r| r.name() == n.as_c_str()) {
                states.push(ReaderState::new(n.clone(), State::UNAWARE));
                let _ = tx.send(PresenceEvent::ReaderAdded(n.to_string_lossy().into_owned()));
            }
        }
        states.push(pnp);
        match ctx.get_status_change(poll, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        let last = states.len() - 1;
        for s in &mut states[..last] {
            let name = s.name().to_owned();
            let now = s.event_state().contains(State::PRESENT);
            let was = present.insert(name.clone(), now).unwrap_or(false);
            let reader = name.to_string_lossy().into_owned();
            if now && !was {
                let _ = tx.send(PresenceEvent::CardInserted { reader, atr: s.atr().to_vec() });
            } else if !now && was {
                let _ = tx.send(PresenceEvent::CardRemoved(reader));
            }
        }
        for s in &mut states {
            s.sync_current_state();
        }
    }
    Ok(())
}
