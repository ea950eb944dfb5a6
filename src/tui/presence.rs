//! Live presence and ATR of the profile's real heads in the Heads panel: PC/SC readers through
//! pcscd's status-change wait (`pcsc_head::watch`, passive, so it also runs during a batch),
//! PN532 heads polled about once a second while no batch, replay or timing run holds them.

use super::app::{App, LogKind, Msg};
use crate::head::pcsc_head::{self, PresenceEvent};
use crate::lab::Lab;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Held by whatever uses the profile's real heads (a batch, a replay, a timing run) for as
/// long as it runs, and by a PN532 poll while it looks: a poll never opens a port a run has
/// open (serial ports are opened exclusively), and a run waits for a poll in progress.
pub static HEADS: Mutex<()> = Mutex::new(());

/// How often PN532 heads are looked at while idle.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What one PN532 poll found per head: card present and its ATR, or why the head failed.
pub type Polled = Vec<(String, Result<(bool, Option<Vec<u8>>), String>)>;

impl App {
    /// A PC/SC reader's slot changed (or was seen at the start of the watch).
    pub(super) fn presence(&mut self, reader: &str, present: bool, atr: Vec<u8>) {
        let lost = self.pcsc_lost.take();
        for h in self.heads.iter_mut().filter(|h| h.driver == "pcsc" && !h.reader.is_empty()) {
            if lost.as_ref().is_some_and(|l| *l == h.fault) {
                h.fault.clear();
            }
            // The profile names a reader by a pattern; once pcscd names it, the full name.
            if reader.contains(h.reader.as_str()) {
                h.reader = reader.to_string();
                h.present = Some(present);
                h.atr = if present && !atr.is_empty() { Some(atr.clone()) } else { None };
            }
        }
    }

    /// pcscd went away (or never answered): the PC/SC heads' presence is unknown.
    pub(super) fn presence_lost(&mut self, why: String) {
        for h in self.heads.iter_mut().filter(|h| h.driver == "pcsc") {
            h.present = None;
            h.atr = None;
            h.fault.clone_from(&why);
        }
        self.log(LogKind::Error, why.clone());
        self.pcsc_lost = Some(why);
    }

    /// A PN532 poll's findings, for the profile still chosen and while no run holds the heads.
    pub(super) fn polled(&mut self, profile: &Path, found: Result<Polled, String>) {
        self.polling = false;
        let Ok(found) = found else { return };
        if self.form.profile_path() != Some(profile) || self.heads_busy() {
            return;
        }
        for (name, r) in found {
            let Some(h) = self.head_mut(&name) else { continue };
            match r {
                Ok((present, atr)) => {
                    h.present = Some(present);
                    h.atr = atr;
                    h.fault.clear();
                }
                Err(e) => {
                    h.present = None;
                    h.atr = None;
                    h.fault = e;
                }
            }
        }
    }

    /// A batch, a replay or a timing run uses the profile's heads.
    pub fn heads_busy(&self) -> bool {
        self.batch.phase.active()
            || self.replay.live.as_ref().is_some_and(|l| l.phase.active())
            || self.timing_view.running()
    }

    /// On the ticker: poll the PN532 heads when it is time and nothing holds them.
    pub(super) fn poll_due(&mut self) -> Option<PathBuf> {
        let due = self.last_poll.is_none_or(|t| self.now.mono.saturating_duration_since(t) >= POLL_EVERY);
        if self.polling || !due || self.heads_busy() || !self.heads.iter().any(|h| h.driver == "pn532") {
            return None;
        }
        let profile = self.form.profile_path()?.to_path_buf();
        self.polling = true;
        self.last_poll = Some(self.now.mono);
        Some(profile)
    }
}

/// Look at the PN532 heads of `profile`: card present, and its ATR (the card is activated
/// and released again). Skipped (nothing found) when a run holds the heads.
pub fn poll_pn532(profile: &Path) -> Result<Polled, String> {
    let Ok(_held) = HEADS.try_lock() else { return Ok(Vec::new()) };
    let loaded = crate::profile::load(profile).map_err(|e| e.to_string())?;
    let mut lab = Lab::from_profile(&loaded).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for h in lab.heads.iter_mut().filter(|h| h.head.info().driver == "pn532") {
        let r = match h.head.card_present() {
            Ok(true) => {
                let atr = h.head.power_on().ok();
                let _ = h.head.power_off();
                Ok((true, atr))
            }
            Ok(false) => Ok((false, None)),
            Err(e) => Err(crate::head::usable::Unusable::of(h.head.as_ref(), e).to_string()),
        };
        found.push((h.name.clone(), r));
    }
    // The lab (and every port it opened) is dropped here, before the lock is released.
    drop(lab);
    Ok(found)
}

/// Watch pcscd's readers until `stop`, sending each slot's state as `Msg::Presence`; while
/// pcscd cannot be reached, one `Msg::PresenceLost` and a new try every second.
pub fn watch_pcsc(tx: Sender<Msg>, stop: Arc<AtomicBool>) {
    let (ptx, prx) = crossbeam_channel::unbounded::<PresenceEvent>();
    let fwd = tx.clone();
    // Set when the watch reported something: it reached pcscd since the last loss.
    let seen = Arc::new(AtomicBool::new(false));
    let seen2 = seen.clone();
    let _ = std::thread::Builder::new().name("cardbench-presence-fwd".into()).spawn(move || {
        for e in prx {
            seen2.store(true, Ordering::Relaxed);
            let m = match e {
                PresenceEvent::ReaderAdded(reader) | PresenceEvent::CardRemoved(reader) => {
                    Msg::Presence { reader, present: false, atr: Vec::new() }
                }
                PresenceEvent::CardInserted { reader, atr } => Msg::Presence { reader, present: true, atr },
                PresenceEvent::ReaderRemoved(reader) => {
                    Msg::PresenceLost(format!("reader '{reader}' was removed from pcscd"))
                }
            };
            if fwd.send(m).is_err() {
                break;
            }
        }
    });
    let _ = std::thread::Builder::new().name("cardbench-presence".into()).spawn(move || {
        let mut lost = false;
        while !stop.load(Ordering::Relaxed) {
            match pcsc_head::watch(ptx.clone(), &stop, Duration::from_millis(250)) {
                Ok(()) => break,
                Err(e) => {
                    if !lost || seen.swap(false, Ordering::Relaxed) {
                        let hint = crate::head::usable::hint("pcsc", &e);
                        if tx.send(Msg::PresenceLost(format!("PC/SC: {e}; {hint}"))).is_err() {
                            break;
                        }
                        lost = true;
                    }
                    // pcscd may come back: look again in a second (the operator's time scale).
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
    });
}
