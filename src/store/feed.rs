//! Where a batch's workers take their next card index: the local queue of the indices this
//! batch's journal lacks, or, in a shared store (PostgreSQL), the database, which hands each
//! index to one station at a time so that no card is certified twice across stations.

use super::{Store, StoreError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

pub struct Feed<'a> {
    local: Mutex<VecDeque<u64>>,
    shared: Option<Shared<'a>>,
    /// Set when the batch stops taking cards (a bench error): no more claims.
    closed: AtomicBool,
    /// Local indices handed out and not yet settled: one may come back (`give_back`: a card
    /// silent at identification, a duplicate), so a head waiting for a card keeps waiting.
    in_flight: AtomicUsize,
}

struct Shared<'a> {
    store: &'a Store,
    batch_id: String,
    station: String,
}

impl<'a> Feed<'a> {
    /// Cards from this process's own queue.
    pub fn local(indices: impl IntoIterator<Item = u64>) -> Feed<'a> {
        Feed {
            local: Mutex::new(indices.into_iter().collect()),
            shared: None,
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Cards handed out by a shared store, to `station`.
    pub fn shared(store: &'a Store, batch_id: &str, station: &str) -> Feed<'a> {
        Feed {
            local: Mutex::new(VecDeque::new()),
            shared: Some(Shared { store, batch_id: batch_id.into(), station: station.into() }),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next card index, `None` when there is none left for this station.
    pub fn next(&self) -> Result<Option<u64>, StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match &self.shared {
            None => {
                let mut q = self.queue();
                let i = q.pop_front();
                if i.is_some() {
                    // Counted under the queue's lock: `may_come` never sees the index in neither.
                    self.in_flight.fetch_add(1, Ordering::SeqCst);
                }
                Ok(i)
            }
            Some(s) => s.store.claim_next(&s.batch_id, &s.station),
        }
    }

    /// The index a worker took is settled: its card is certified, or the index was given back
    /// first. Call once per index `next` handed out.
    pub fn settled(&self) {
        if self.shared.is_none() {
            let _q = self.queue();
            let _ = self.in_flight.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// The index `next` would hand out now, without taking it (a local queue only: a shared
    /// store's next index depends on the other stations). For the operator's display.
    pub fn peek(&self) -> Option<u64> {
        match &self.shared {
            None if !self.closed.load(Ordering::Relaxed) => self.queue().front().copied(),
            _ => None,
        }
    }

    /// A worker could not take the card `index` (its head stopped, the card was refused): it
    /// goes back first in line, here or, shared, to every station.
    pub fn give_back(&self, index: u64) -> Result<(), StoreError> {
        match &self.shared {
            None => {
                self.queue().push_front(index);
                Ok(())
            }
            Some(s) => s.store.release(&s.batch_id, index, &s.station),
        }
    }

    /// Stop handing out cards (a bench error stops the batch).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.queue().clear();
    }

    /// Whether another card may come (a real reader's worker then waits for this one to be
    /// taken out). A store that cannot say is taken as "yes": waiting costs the operator a
    /// card removal, not a card.
    pub fn has_more(&self) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        match &self.shared {
            None => !self.queue().is_empty(),
            Some(s) => s.store.has_free(&s.batch_id).unwrap_or(true),
        }
    }

    /// Whether a head waiting for a card should go on waiting: an index is queued, or one that
    /// another head took may still come back. `has_more` alone would let a waiting head stop
    /// while its sibling holds the last index of a card that then does not answer.
    pub fn may_come(&self) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        match &self.shared {
            None => {
                let q = self.queue();
                !q.is_empty() || self.in_flight.load(Ordering::SeqCst) > 0
            }
            Some(s) => s.store.has_free(&s.batch_id).unwrap_or(true),
        }
    }

    /// The card of `index` is in the head and identified: a shared store refuses a card that
    /// another station certified or is certifying (`StoreError::Refused`).
    pub fn card_identified(&self, index: u64, card_id: &str) -> Result<(), StoreError> {
        match &self.shared {
            None => Ok(()),
            Some(s) => s.store.card_identified(&s.batch_id, index, card_id, &s.station),
        }
    }
}
