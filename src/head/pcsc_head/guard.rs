//! A deadline for pcsc-lite calls.
//!
//! pcsc-lite has no per-call timeout and nothing in its API interrupts a blocked
//! `SCardTransmit` from another thread: the call holds its context's mutex (so
//! `SCardDisconnect` / `SCardReleaseContext` from another thread wait behind it),
//! `SCardCancel` only ends `SCardGetStatusChange`, and the client ignores EINTR. pcscd in turn
//! holds the reader's mutex while the driver works, so a stalled driver stalls every call on
//! that reader, from any context. What does end the call is its socket: the client waits in
//! `poll` + `read` on the context's own connection to pcscd, and reads EOF there
//! (`SCARD_F_COMM_ERROR`) once that socket is shut down.
//!
//! So every context is created here, under one lock, and the new pcscd connection is found
//! in `/proc/self/fd`. A watchdog thread (one per head, idle between calls) shuts that socket
//! down when a call overruns its deadline; the call then returns at once and the caller turns
//! the result into a timeout. The context is dead after that and must be dropped; pcscd notices
//! the closed connection only when its own blocked call returns.

use nix::sys::socket::{getpeername, shutdown, Shutdown, UnixAddr};
use std::collections::HashSet;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where pcsc-lite's client connects (its `PCSCLITE_CSOCK_NAME` override, or the default).
fn pcscd_socket_path() -> PathBuf {
    std::env::var_os("PCSCLITE_CSOCK_NAME").map_or_else(|| PathBuf::from("/run/pcscd/pcscd.comm"), PathBuf::from)
}

/// File descriptors of this process connected to pcscd.
fn pcscd_fds(path: &std::path::Path) -> HashSet<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return HashSet::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| {
            let is_socket = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
            // If another thread closed the descriptor meanwhile, getpeername fails harmlessly.
            is_socket && getpeername::<UnixAddr>(fd).is_ok_and(|a| a.path() == Some(path))
        })
        .collect()
}

/// Serialises context creation so that exactly one new pcscd connection appears per call.
static ESTABLISH: Mutex<()> = Mutex::new(());

/// A pcsc-lite context together with its connection to pcscd, which the watchdog may cut.
pub struct GuardedContext {
    pub ctx: pcsc::Context,
    /// None when the connection could not be identified (no /proc, another PC/SC stack):
    /// calls then run without a deadline.
    sock: Option<RawFd>,
}

impl GuardedContext {
    /// Every pcsc context of the process must be made here, or the connection found for one
    /// context could belong to another.
    pub fn establish() -> Result<GuardedContext, pcsc::Error> {
        let _one_at_a_time = ESTABLISH.lock().unwrap_or_else(|p| p.into_inner());
        let path = pcscd_socket_path();
        let before = pcscd_fds(&path);
        let ctx = pcsc::Context::establish(pcsc::Scope::User)?;
        let mut new: Vec<RawFd> = pcscd_fds(&path).difference(&before).copied().collect();
        let sock = if new.len() == 1 { new.pop() } else { None };
        Ok(GuardedContext { ctx, sock })
    }
}

/// What a guarded call came back with.
pub struct Guarded<T> {
    pub result: T,
    /// How long the call took.
    pub waited: Duration,
    /// The deadline passed and the watchdog cut the context's connection: whatever `result`
    /// says, the context is dead and the call's outcome at the reader is unknown.
    pub cut: bool,
}

#[derive(Default)]
struct State {
    /// The call in flight: its socket, deadline and whether it was cut.
    flight: Option<(RawFd, Instant, bool)>,
    /// When the watchdog will look next (None: it sleeps until a call is armed).
    wakes_at: Option<Instant>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// One watchdog thread per head, started on first use and ended when the head is dropped.
/// Between calls it sleeps; during a run of calls it wakes at most once per deadline period,
/// so arming it costs two uncontended mutex operations per call, not a thread switch.
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    name: String,
}

impl Watchdog {
    pub fn new(name: &str) -> Watchdog {
        Watchdog {
            shared: Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() }),
            thread: None,
            name: name.into(),
        }
    }

    /// Run `call` (a pcsc call on `gc`); if it has not returned after `limit`, cut `gc`'s
    /// connection so that it returns. The caller is blocked for `limit` plus the time the
    /// client library needs to see EOF (microseconds), never longer.
    pub fn run<T>(
        &mut self,
        gc: &GuardedContext,
        limit: Duration,
        call: impl FnOnce(&pcsc::Context) -> T,
    ) -> Guarded<T> {
        self.run_on(gc.sock, limit, || call(&gc.ctx))
    }

    /// Run `call`, which blocks on the socket `sock`, and shut that socket down if `call` has
    /// not returned after `limit`. `sock` must stay open until this returns. Without a socket
    /// the call runs unguarded.
    fn run_on<T>(&mut self, sock: Option<RawFd>, limit: Duration, call: impl FnOnce() -> T) -> Guarded<T> {
        let Some(fd) = sock else {
            let start = Instant::now();
            let result = call();
            return Guarded { result, waited: start.elapsed(), cut: false };
        };
        self.ensure_thread();
        let start = Instant::now();
        let deadline = start + limit;
        {
            let mut st = self.lock();
            st.flight = Some((fd, deadline, false));
            // Wake the watchdog only if it would otherwise look later than this deadline: in a
            // run of calls with one limit the deadlines only grow, so this is rare.
            if st.wakes_at.is_none_or(|w| deadline < w) {
                self.shared.wake.notify_one();
            }
        }
        let result = call();
        let waited = start.elapsed();
        let cut = self.lock().flight.take().is_some_and(|f| f.2);
        Guarded { result, waited, cut }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ensure_thread(&mut self) {
        if self.thread.is_some() {
            return;
        }
        let shared = self.shared.clone();
        let t = std::thread::Builder::new()
            .name(format!("pcsc-watchdog-{}", self.name))
            .spawn(move || watch(&shared))
            .expect("spawning a thread");
        self.thread = Some(t);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(shared: &Shared) {
    let mut st = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if st.closed {
            return;
        }
        let now = Instant::now();
        match st.flight {
            Some((fd, deadline, false)) if now >= deadline => {
                // The caller is still inside the call (it clears `flight` under this lock
                // before it can drop the context), so `fd` is still the context's socket.
                let _ = shutdown(fd, Shutdown::Both);
                st.flight = Some((fd, deadline, true));
            }
            Some((_, deadline, false)) => {
                st.wakes_at = Some(deadline);
                st = shared.wake.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
                st.wakes_at = None;
            }
            _ => {
                st.wakes_at = None;
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// A blocking read on a socket nobody writes to (as pcsc-lite waits for pcscd's answer).
    fn blocked_read(s: &UnixStream) -> usize {
        let mut b = [0u8; 8];
        (&*s).read(&mut b).unwrap_or(0)
    }

    #[test]
    fn a_call_past_its_deadline_is_cut_and_reports_the_time_waited() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let mut dog = Watchdog::new("t");
        let limit = Duration::from_millis(50);
        let g = dog.run_on(Some(ours.as_raw_fd()), limit, || blocked_read(&ours));
        assert!(g.cut);
        assert_eq!(g.result, 0, "the read saw EOF");
        assert!(g.waited >= limit, "{:?}", g.waited);
    }

    #[test]
    fn calls_that_return_in_time_are_not_cut_and_the_socket_stays_usable() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut dog = Watchdog::new("t");
        for i in 0..100u8 {
            peer.write_all(&[i]).unwrap();
            let g = dog.run_on(Some(ours.as_raw_fd()), Duration::from_secs(60), || blocked_read(&ours));
            assert!(!g.cut);
            assert_eq!(g.result, 1);
        }
        // A later call with a shorter deadline than the one the watchdog sleeps towards is
        // still cut on time.
        let g = dog.run_on(Some(ours.as_raw_fd()), Duration::from_millis(20), || blocked_read(&ours));
        assert!(g.cut && g.result == 0);
    }
}
