//! The bounded event queue between the bench threads (links, engines, runner) and the sinks
//! thread, with group commit.
//!
//! Why not a plain channel: a channel wakes its consumer once per event, and its receive
//! loop spins (`sched_yield`) before parking. On a reader head that answers every ~20 µs
//! that doubled the client CPU per APDU, and an unbounded channel let a fast head run ahead
//! of the disk by a million rows (600 MB, and a kill would have lost them). Here:
//! - the queue holds at most `CAPACITY` events; a producer that finds it full waits;
//! - the consumer sleeps until the first event, then gathers for up to `GATHER` before it
//!   takes everything at once, so one wake-up, one write and one flush serve many rows;
//! - a producer wakes the consumer only when it is asleep, when the queue is half full, or
//!   for an urgent event, so the per-event cost on the hot path is a lock and a push;
//! - a *durable* event (an in-doubt command) makes its producer wait until the sinks have
//!   written and flushed it: it is on disk before anything else is sent to a card.
//! - a failing essential sink (the trace file) marks the queue failed; links check the flag
//!   before every transmit, so nothing more reaches a card whose exchanges cannot be recorded.

use crate::event::Event;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Events held before producers wait for the sinks (bounded memory: a few MB).
pub const CAPACITY: usize = 4096;

/// Longest time an event waits in the queue before the sinks see it (the trace's lag).
pub const GATHER: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consumer {
    /// Asleep on an empty queue: the next push must wake it.
    Asleep,
    /// Gathering a batch on a timer: only urgent pushes or a half-full queue wake it.
    Gathering,
    /// Writing, or about to look at the queue again.
    Busy,
}

struct State {
    buf: VecDeque<Event>,
    senders: usize,
    receivers: usize,
    consumer: Consumer,
    urgent: bool,
    /// Events ever pushed, and events the sinks have written and flushed.
    pushed: u64,
    done: u64,
    waiting_room: usize,
    waiting_done: usize,
    /// A sinks thread drains the queue; without one (tests draining by hand), durable sends
    /// cannot wait for a write that nobody will do.
    drained: bool,
    failure: Option<String>,
}

struct Queue {
    st: Mutex<State>,
    wake: Condvar,
    room: Condvar,
    written: Condvar,
    failed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking sink must not take the bench down with a poisoned lock.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a producer hands over an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written within `GATHER`.
    Normal,
    /// The sinks are woken now.
    Urgent,
    /// The sinks are woken now and the producer waits until the event is written and flushed.
    Durable,
}

/// The producing end; every clone counts as a sender until dropped.
pub struct Sender {
    q: Arc<Queue>,
}

/// The consuming end (the sinks thread; tests drain it directly).
pub struct Receiver {
    q: Arc<Queue>,
}

pub fn bounded() -> (Sender, Receiver) {
    let q = Arc::new(Queue {
        st: Mutex::new(State {
            buf: VecDeque::with_capacity(256),
            senders: 1,
            receivers: 1,
            consumer: Consumer::Busy,
            urgent: false,
            pushed: 0,
            done: 0,
            waiting_room: 0,
            waiting_done: 0,
            drained: false,
            failure: None,
        }),
        wake: Condvar::new(),
        room: Condvar::new(),
        written: Condvar::new(),
        failed: AtomicBool::new(false),
    });
    (Sender { q: q.clone() }, Receiver { q })
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.q.lock().senders += 1;
        Sender { q: self.q.clone() }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut st = self.q.lock();
        st.senders -= 1;
        if st.senders == 0 && st.consumer != Consumer::Busy {
            st.consumer = Consumer::Busy;
            self.q.wake.notify_all();
        }
    }
}

impl Sender {
    pub fn send(&self, e: Event, how: Delivery) {
        let q = &*self.q;
        let mut st = q.lock();
        if st.receivers == 0 {
            return;
        }
        while st.buf.len() >= CAPACITY && st.receivers > 0 {
            st.consumer = Consumer::Busy;
            q.wake.notify_one();
            st.waiting_room += 1;
            st = q.room.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting_room -= 1;
        }
        if st.receivers == 0 {
            return;
        }
        st.buf.push_back(e);
        st.pushed += 1;
        let mine = st.pushed;
        let wake = match st.consumer {
            Consumer::Asleep => true,
            Consumer::Gathering => how != Delivery::Normal || st.buf.len() >= CAPACITY / 2,
            Consumer::Busy => false,
        };
        if how != Delivery::Normal {
            st.urgent = true;
        }
        if wake {
            st.consumer = Consumer::Busy;
            q.wake.notify_one();
        }
        if how == Delivery::Durable && st.drained {
            while st.done < mine && st.receivers > 0 && st.failure.is_none() {
                st.waiting_done += 1;
                st = q.written.wait(st).unwrap_or_else(|p| p.into_inner());
                st.waiting_done -= 1;
            }
        }
    }

    /// Why the sinks can no longer record, once an essential sink failed.
    pub fn failure(&self) -> Option<String> {
        if !self.q.failed.load(Ordering::Acquire) {
            return None;
        }
        self.q.lock().failure.clone()
    }

    /// Events handed over but not yet written and flushed by the sinks.
    pub fn backlog(&self) -> u64 {
        let st = self.q.lock();
        st.pushed - st.done
    }

    /// Cheap check for the hot path.
    pub fn failed(&self) -> bool {
        self.q.failed.load(Ordering::Acquire)
    }

    /// Wait until every event pushed so far has been written and flushed (or the sinks are
    /// gone or failed).
    pub fn sync(&self) {
        let q = &*self.q;
        let mut st = q.lock();
        let mine = st.pushed;
        if st.done >= mine || !st.drained {
            return;
        }
        st.urgent = true;
        if st.consumer != Consumer::Busy {
            st.consumer = Consumer::Busy;
            q.wake.notify_one();
        }
        while st.done < mine && st.receivers > 0 && st.failure.is_none() {
            st.waiting_done += 1;
            st = q.written.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting_done -= 1;
        }
    }
}

impl Clone for Receiver {
    fn clone(&self) -> Self {
        self.q.lock().receivers += 1;
        Receiver { q: self.q.clone() }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut st = self.q.lock();
        st.receivers -= 1;
        if st.receivers == 0 {
            // Producers blocked on a full queue or on a durable write must not hang.
            st.buf.clear();
            self.q.room.notify_all();
            self.q.written.notify_all();
        }
    }
}

impl Receiver {
    /// Declare that a thread drains this queue (`sinks::spawn`), so durable sends wait for it.
    pub fn drained_by_thread(&self) {
        self.q.lock().drained = true;
    }

    /// Block for the next batch: sleep until an event comes, gather for up to `GATHER`
    /// (less when woken by an urgent event or a half-full queue), then move every queued
    /// event into `out`. Returns the count of events pushed so far, to pass to `done`, or
    /// `None` once the queue is empty and every sender is gone.
    pub fn recv_batch(&self, out: &mut Vec<Event>) -> Option<u64> {
        let q = &*self.q;
        let mut st = q.lock();
        let mut gathered = false;
        loop {
            if !st.buf.is_empty() {
                if !gathered && !st.urgent && st.senders > 0 && st.buf.len() < CAPACITY / 2 {
                    gathered = true;
                    st.consumer = Consumer::Gathering;
                    st = q.wake.wait_timeout(st, GATHER).unwrap_or_else(|p| p.into_inner()).0;
                    continue;
                }
                out.extend(st.buf.drain(..));
                st.urgent = false;
                st.consumer = Consumer::Busy;
                if st.waiting_room > 0 {
                    q.room.notify_all();
                }
                return Some(st.pushed);
            }
            if st.senders == 0 {
                return None;
            }
            st.consumer = Consumer::Asleep;
            st = q.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The events up to `upto` (from `recv_batch`) are written and flushed.
    pub fn done(&self, upto: u64) {
        let mut st = self.q.lock();
        st.done = st.done.max(upto);
        if st.waiting_done > 0 {
            self.q.written.notify_all();
        }
    }

    /// An essential sink failed: every later transmit is refused, and durable waits end.
    pub fn fail(&self, why: String) {
        let mut st = self.q.lock();
        if st.failure.is_none() {
            st.failure = Some(why);
        }
        self.q.failed.store(true, Ordering::Release);
        self.q.written.notify_all();
    }

    /// Take every queued event without waiting (tests and single-threaded drains).
    pub fn try_iter(&self) -> std::vec::IntoIter<Event> {
        let mut st = self.q.lock();
        let v: Vec<Event> = st.buf.drain(..).collect();
        st.done = st.pushed;
        if st.waiting_room > 0 {
            self.q.room.notify_all();
        }
        if st.waiting_done > 0 {
            self.q.written.notify_all();
        }
        v.into_iter()
    }

    /// Every event until all senders are gone, blocking between batches.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        let mut batch = Vec::new().into_iter();
        std::iter::from_fn(move || loop {
            if let Some(e) = batch.next() {
                return Some(e);
            }
            let mut v = Vec::new();
            let upto = self.recv_batch(&mut v)?;
            self.done(upto);
            batch = v.into_iter();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: usize) -> Event {
        Event::RunEnded { passed: n, failed: 0 }
    }

    #[test]
    fn every_event_arrives_in_order_across_a_full_queue() {
        let (tx, rx) = bounded();
        let n = CAPACITY * 3 + 7;
        let t = std::thread::spawn(move || {
            for i in 0..n {
                tx.send(ev(i), Delivery::Normal);
            }
        });
        let got: Vec<usize> = rx
            .iter()
            .map(|e| match e {
                Event::RunEnded { passed, .. } => passed,
                _ => unreachable!(),
            })
            .collect();
        t.join().unwrap();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_durable_send_returns_only_after_the_consumer_marked_it_done() {
        let (tx, rx) = bounded();
        let seen = Arc::new(AtomicBool::new(false));
        let s2 = seen.clone();
        rx.drained_by_thread();
        let consumer = std::thread::spawn(move || {
            let mut v = Vec::new();
            while let Some(upto) = rx.recv_batch(&mut v) {
                if v.iter().any(|e| matches!(e, Event::RunEnded { passed: 1, .. })) {
                    s2.store(true, Ordering::SeqCst);
                }
                v.clear();
                rx.done(upto);
            }
        });
        tx.send(ev(0), Delivery::Normal);
        tx.send(ev(1), Delivery::Durable);
        assert!(seen.load(Ordering::SeqCst), "durable event handled before send returned");
        drop(tx);
        consumer.join().unwrap();
    }

    #[test]
    fn producers_do_not_hang_when_the_consumer_is_gone() {
        let (tx, rx) = bounded();
        rx.drained_by_thread();
        drop(rx);
        for i in 0..CAPACITY * 2 {
            tx.send(ev(i), Delivery::Normal);
        }
        tx.send(ev(0), Delivery::Durable);
        tx.sync();
    }

    #[test]
    fn a_failure_is_visible_to_senders_and_ends_durable_waits() {
        let (tx, rx) = bounded();
        assert!(!tx.failed());
        rx.fail("disk full".into());
        assert!(tx.failed());
        assert_eq!(tx.failure().as_deref(), Some("disk full"));
        tx.send(ev(0), Delivery::Durable);
    }
}
