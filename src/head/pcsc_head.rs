//! PC/SC reader heads over pcsc-lite (the `pcsc` crate): one reader selected by a name
//! pattern, shared or exclusive, T=0 / T=1 / any.
//!
//! Each head owns its own context and is used by one worker thread at a time. Every call on
//! the reader runs under the head's deadline (`guard`: a watchdog cuts the context's socket
//! when pcsc-lite does not return in time), and a timed-out card is cold-reset before it takes
//! another command. Every pcsc error becomes a `HeadError` naming what a lab operator needs to
//! know (no card, card removed, reader gone, service stopped, timeout). docs/pcsc.md has the
//! reasoning.

mod guard;

use super::{Head, HeadError, HeadInfo, Wire};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use guard::{GuardedContext, Watchdog};
use pcsc::{Card, Disposition, Protocols, ReaderState, ShareMode, State};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Largest response pcsc-lite can carry (extended APDUs).
const MAX_RESPONSE: usize = pcsc::MAX_BUFFER_SIZE_EXTENDED;

/// Deadline of one exchange (and of every other call on the reader) when the profile gives
/// no `timeout_ms`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl From<pcsc::Error> for HeadError {
    fn from(e: pcsc::Error) -> Self {
        use pcsc::Error as E;
        match e {
            E::NoSmartcard => HeadError::NoCard,
            E::RemovedCard => HeadError::CardRemoved,
            E::UnpoweredCard | E::UnresponsiveCard => HeadError::Mute,
            E::ReaderUnavailable | E::UnknownReader | E::NoReadersAvailable => HeadError::ReaderGone(e.to_string()),
            // pcsc-lite's client reports a lost connection to pcscd (pcscd died or was
            // restarted) as a communication error, or as a security violation when the
            // connection was reset.
            E::NoService | E::ServiceStopped | E::CommError | E::SecurityViolation => HeadError::ServiceStopped,
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

/// A fresh connection with a cold-reset card, made by the reset thread after a timeout.
struct Reconnected {
    gc: GuardedContext,
    reader: CString,
    card: Card,
    atr: Vec<u8>,
}

pub struct PcscHead {
    info: HeadInfo,
    pattern: String,
    share: Share,
    protocols: Protocols,
    timeout: Duration,
    ctx: Option<GuardedContext>,
    reader: Option<CString>,
    card: Option<Card>,
    atr: Option<Vec<u8>>,
    buf: Vec<u8>,
    dog: Watchdog,
    /// Set when a call overran its deadline: the reader may still be working on the command,
    /// and the card must be cold-reset before it takes another one.
    must_reset: bool,
    /// The one thread that reconnects and cold-resets the card after a timeout. It blocks
    /// for as long as the reader is still busy with the abandoned call; `power_on` waits for
    /// it up to the deadline and, if it is not done, leaves it running for the next try.
    resetting: Option<Receiver<Result<Reconnected, HeadError>>>,
    /// This connection holds a PC/SC transaction (`exclusive`): until it is disconnected, no
    /// other application's command reaches the card.
    transaction: bool,
}

impl PcscHead {
    pub fn new(name: &str, pattern: &str, share: Share, protocols: Protocols) -> PcscHead {
        PcscHead {
            info: HeadInfo { name: name.into(), driver: "pcsc", reader: pattern.into() },
            pattern: pattern.into(),
            share,
            protocols,
            timeout: DEFAULT_TIMEOUT,
            ctx: None,
            reader: None,
            card: None,
            atr: None,
            buf: vec![0; MAX_RESPONSE],
            dog: Watchdog::new(name),
            must_reset: false,
            resetting: None,
            transaction: false,
        }
    }

    /// Deadline of every call on the reader (exchange, connect, reset, disconnect).
    pub fn with_timeout(mut self, timeout: Duration) -> PcscHead {
        self.timeout = timeout;
        self
    }

    fn ensure_ctx(&mut self) -> Result<(), HeadError> {
        if self.ctx.is_none() {
            self.ctx = Some(GuardedContext::establish()?);
        }
        Ok(())
    }

    /// Run one pcsc call on the head's context under the deadline `limit`. A call that
    /// overran ends as `Timeout` with the time actually waited, and the connection is dropped
    /// (the watchdog cut it); any other pcsc error drops what it invalidated.
    fn guarded<T>(
        &mut self,
        limit: Duration,
        call: impl FnOnce(&pcsc::Context, Option<&Card>, &mut [u8]) -> Result<T, pcsc::Error>,
    ) -> Result<T, HeadError> {
        self.ensure_ctx()?;
        let gc = self.ctx.as_ref().expect("ensured above");
        let (card, buf) = (self.card.as_ref(), &mut self.buf);
        let g = self.dog.run(gc, limit, |ctx| call(ctx, card, buf));
        self.outcome(g)
    }

    /// After a timeout: the context's connection is cut, so drop it with the card (their
    /// disconnect and release fail at once on the cut socket; pcscd cleans up its side when
    /// its own call returns, leaving a shared card powered). The card is cold-reset on the
    /// next `power_on` before anything else is sent.
    fn cut_off(&mut self) {
        self.transaction = false;
        self.card = None;
        self.atr = None;
        self.ctx = None;
        self.must_reset = true;
    }

    /// Resolve the pattern to a reader name (first match in pcscd's order).
    fn reader(&mut self) -> Result<CString, HeadError> {
        if let Some(r) = &self.reader {
            return Ok(r.clone());
        }
        let r = self
            .guarded(self.timeout, |ctx, _, _| ctx.list_readers_owned())
            .and_then(|readers| find_reader(readers, &self.pattern));
        let r = match r {
            Err(HeadError::ReaderGone(_)) => {
                Err(HeadError::ReaderGone(format!("no reader matches '{}'", self.pattern)))
            }
            r => r,
        }?;
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
        if self.card.is_none() {
            return Err(HeadError::Unpowered);
        }
        let atr =
            self.guarded(self.timeout, |_, card, _| Ok(card.expect("checked").status2_owned()?.atr().to_vec()))?;
        self.atr = Some(atr.clone());
        Ok(atr)
    }

    /// Drop the connection after an error that ended it, so the next use reconnects.
    fn forget_on(&mut self, e: &HeadError) {
        if e.card_gone() {
            self.transaction = false;
        }
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
            let changed =
                self.guarded(left + self.timeout, |ctx, _, _| match ctx.get_status_change(left, &mut rs) {
                    Ok(()) => Ok(true),
                    Err(pcsc::Error::Timeout) => Ok(false),
                    Err(e) => Err(e),
                })?;
            if !changed {
                return Ok(false);
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

    /// Power-on after a timeout: reconnect on a fresh context and cold-reset the card, in a
    /// thread of its own because the reader may still be held by the abandoned call for
    /// longer than any deadline. At most one such thread per head.
    fn power_on_after_timeout(&mut self) -> Result<Vec<u8>, HeadError> {
        // A result that is already waiting is older than this call: if it is a failure (the
        // card was gone while the reader was stuck), try again rather than report it.
        let mut ready = None;
        if let Some(rx) = &self.resetting {
            match rx.try_recv() {
                Ok(Ok(r)) => ready = Some(r),
                Ok(Err(_)) | Err(crossbeam_channel::TryRecvError::Disconnected) => self.resetting = None,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
        }
        if let Some(r) = ready {
            self.resetting = None;
            return Ok(self.adopt(r));
        }
        let rx = match self.resetting.take() {
            Some(rx) => rx,
            None => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let (pattern, share, protocols) = (self.pattern.clone(), self.share_mode(), self.protocols);
                std::thread::Builder::new()
                    .name(format!("pcsc-reset-{}", self.info.name))
                    .spawn(move || {
                        // If the head is gone by the time this returns, the send fails and
                        // the card is dropped (disconnected with a reset).
                        let _ = tx.send(reconnect_cold(&pattern, share, protocols));
                    })
                    .map_err(|e| HeadError::Transport(format!("cannot start the reset thread: {e}")))?;
                rx
            }
        };
        let start = Instant::now();
        match rx.recv_timeout(self.timeout) {
            Ok(Ok(r)) => Ok(self.adopt(r)),
            Ok(Err(e)) => {
                // The reset failed: the next power_on starts a new attempt. A card that left
                // the reader needs no reset any more; otherwise (reader or service gone) it
                // still has to be reset first.
                if matches!(e, HeadError::NoCard | HeadError::CardRemoved) {
                    self.must_reset = false;
                }
                self.forget_on(&e);
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.resetting = Some(rx);
                Err(HeadError::Timeout(start.elapsed()))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(HeadError::Transport("the reset thread ended without an answer".into()))
            }
        }
    }
}

impl PcscHead {
    /// Take over the reset thread's connection: the card was cold-reset on it.
    fn adopt(&mut self, r: Reconnected) -> Vec<u8> {
        self.info.reader = r.reader.to_string_lossy().into_owned();
        self.ctx = Some(r.gc);
        self.reader = Some(r.reader);
        self.card = Some(r.card);
        self.atr = Some(r.atr.clone());
        self.must_reset = false;
        r.atr
    }
}

fn find_reader(readers: Vec<CString>, pattern: &str) -> Result<CString, HeadError> {
    readers
        .into_iter()
        .find(|r| r.to_string_lossy().contains(pattern))
        .ok_or_else(|| HeadError::ReaderGone(format!("no reader matches '{pattern}'")))
}

/// A new context, the reader found again, the card connected and cold-reset.
fn reconnect_cold(pattern: &str, share: ShareMode, protocols: Protocols) -> Result<Reconnected, HeadError> {
    let gc = GuardedContext::establish()?;
    let readers = match gc.ctx.list_readers_owned() {
        Ok(r) => r,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let reader = find_reader(readers, pattern)?;
    let mut card = gc.ctx.connect(&reader, share, protocols)?;
    card.reconnect(share, protocols, Disposition::UnpowerCard)?;
    let atr = card.status2_owned()?.atr().to_vec();
    Ok(Reconnected { gc, reader, card, atr })
}

impl PcscHead {
    /// A guarded call's result as the head reports it: a cut is a timeout after the time
    /// actually waited (the context is dropped); a pcsc error drops what it invalidated.
    fn outcome<T>(&mut self, g: guard::Guarded<Result<T, pcsc::Error>>) -> Result<T, HeadError> {
        if g.cut {
            self.cut_off();
            return Err(HeadError::Timeout(g.waited));
        }
        g.result.map_err(|e| {
            let e = HeadError::from(e);
            self.forget_on(&e);
            e
        })
    }

    /// Reconnect the held card with `how` (cold or warm reset) under the deadline; the card
    /// stays held, and a cut or a lost service is handled as for every other call.
    fn reconnect(&mut self, mut card: Card, how: Disposition) -> Result<(), HeadError> {
        let (share, protocols) = (self.share_mode(), self.protocols);
        let g = self.dog.run(self.ctx.as_ref().expect("a card has a context"), self.timeout, |_| {
            card.reconnect(share, protocols, how)
        });
        self.card = Some(card);
        self.outcome(g)
    }
}

impl Head for PcscHead {
    fn info(&self) -> &HeadInfo {
        &self.info
    }

    fn card_present(&mut self) -> Result<bool, HeadError> {
        let reader = self.reader()?;
        let mut rs = [ReaderState::new(reader, State::UNAWARE)];
        self.guarded(self.timeout, |ctx, _, _| ctx.get_status_change(Duration::ZERO, &mut rs))?;
        Ok(rs[0].event_state().contains(State::PRESENT))
    }

    fn atr(&self) -> Option<Vec<u8>> {
        self.atr.clone()
    }

    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        if self.must_reset {
            return self.power_on_after_timeout();
        }
        let (share, protocols) = (self.share_mode(), self.protocols);
        if let Some(card) = self.card.take() {
            self.reconnect(card, Disposition::UnpowerCard)?;
        } else {
            let reader = self.reader()?;
            let card = self.guarded(self.timeout, |ctx, _, _| ctx.connect(&reader, share, protocols))?;
            self.card = Some(card);
        }
        self.read_atr()
    }

    fn power_off(&mut self) -> Result<(), HeadError> {
        if self.must_reset {
            // The card is still powered in the reader (pcscd leaves a shared card powered when
            // it cleans up the abandoned connection): it can only be unpowered once the reader
            // answers again, through the reset thread's connection.
            match self.power_on_after_timeout() {
                Ok(_) => {}
                Err(HeadError::NoCard | HeadError::CardRemoved) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.atr = None;
        self.transaction = false;
        let Some(card) = self.card.take() else { return Ok(()) };
        let g = self.dog.run(self.ctx.as_ref().expect("a card has a context"), self.timeout, |_| {
            card.disconnect(Disposition::UnpowerCard).map_err(|(_, e)| e)
        });
        self.outcome(g)
    }

    fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        if self.must_reset {
            return self.power_on_after_timeout();
        }
        let card = self.card.take().ok_or(HeadError::Unpowered)?;
        self.reconnect(card, Disposition::ResetCard)?;
        self.read_atr()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        // Without a card (never powered, or dropped after a timeout or a lost service) the
        // command never leaves the host.
        if self.must_reset {
            return Err(HeadError::NotSent("the card has not been reset since an exchange timed out".into()));
        }
        if self.card.is_none() {
            return Err(HeadError::Unpowered);
        }
        let start = Instant::now();
        let r = self
            .guarded(self.timeout, |_, card, buf| card.expect("checked").transmit(apdu, buf).map(|resp| resp.to_vec()));
        let duration = start.elapsed();
        match r {
            Ok(response) if response.len() >= 2 => Ok(Wire { response, duration }),
            // A reader that answers without even a status word, or whose driver failed the
            // exchange, may have lost the card in the middle of it (vpcd does either when its
            // card disconnects, depending on the moment): ask pcscd which. pcscd learns of a
            // removal from the driver's polling (about every 0.5 s for vpcd), so give it a
            // moment before deciding.
            Ok(_) => Err(self.removed_or(HeadError::Mute)),
            Err(e) if e == HeadError::from(pcsc::Error::NotTransacted) => Err(self.removed_or(e)),
            Err(e) => Err(e),
        }
    }

    fn wait_for_card(&mut self, present: bool, timeout: Duration) -> Result<bool, HeadError> {
        self.wait_presence(present, timeout)
    }

    /// pcscd answers and a reader matches the pattern (its full name is then the head's
    /// `info().reader`).
    fn open(&mut self) -> Result<(), HeadError> {
        // Asked of pcscd every time: the reader found earlier (or pcscd itself) may be gone.
        self.reader = None;
        self.reader().map(|_| ())
    }

    /// `SCardBeginTransaction` on the connected card, kept for as long as the connection.
    /// pcsc-lite counts a handle's transactions and the crate's `Transaction` ends one on
    /// drop, so the lock cannot be held in a value beside the card it borrows: it is begun
    /// and left open (forgotten), and released by disconnecting (`LeaveCard`, the card stays
    /// powered; the next `power_on` connects again), which ends every transaction of the
    /// handle. BeginTransaction waits while another application holds the card, so it runs
    /// under the head's deadline like every other call.
    fn exclusive(&mut self, on: bool) -> Result<bool, HeadError> {
        if on == self.transaction {
            return Ok(on);
        }
        if self.must_reset {
            return Err(HeadError::NotSent("the card has not been reset since an exchange timed out".into()));
        }
        let Some(mut card) = self.card.take() else { return Err(HeadError::Unpowered) };
        let gc = self.ctx.as_ref().expect("a card has a context");
        if on {
            let g = self.dog.run(gc, self.timeout, |_| card.transaction().map(std::mem::forget));
            self.card = Some(card);
            self.outcome(g)?;
            self.transaction = true;
            Ok(true)
        } else {
            self.transaction = false;
            self.atr = None;
            let g = self.dog.run(gc, self.timeout, |_| card.disconnect(Disposition::LeaveCard).map_err(|(_, e)| e));
            self.outcome(g)?;
            Ok(false)
        }
    }
}

impl PcscHead {
    /// `CardRemoved` if the card leaves the reader within a moment, else `otherwise`.
    fn removed_or(&mut self, otherwise: HeadError) -> HeadError {
        let e = match self.wait_presence(false, Duration::from_millis(1500)) {
            Ok(true) => HeadError::CardRemoved,
            Ok(false) => otherwise,
            Err(e) => e,
        };
        self.forget_on(&e);
        e
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
    let gc = GuardedContext::establish()?;
    let ctx = &gc.ctx;
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
    let gc = GuardedContext::establish()?;
    let ctx = &gc.ctx;
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
