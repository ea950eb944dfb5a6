//! Bridge from the reference virtual card to vsmartcard's vpcd driver, so the real PC/SC
//! stack (pcscd) shows a reader with our card in it.
//!
//! vpcd listens on TCP; the virtual card connects as a client. Every message in both
//! directions is a 2-byte big-endian length and a payload. From vpcd, a 1-byte payload is a
//! control code (00 power off, 01 power on, 02 reset, 04 get ATR, which is answered with the
//! ATR); anything longer is a command APDU answered with the response APDU.
//!
//! vpcd 0.8 writes length and payload in two writes without TCP_NODELAY, so the card must
//! re-arm TCP_QUICKACK before every read or each APDU waits ~40 ms for a delayed ACK; and the
//! card must write length + payload in one write with TCP_NODELAY so its own answer is not
//! held back by Nagle.

use crate::head::service::{wait_until, ServiceModel};
use crate::sim::card::SimCard;
use socket2::SockRef;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEFAULT_PORT: u16 = 35963;

const CTRL_OFF: u8 = 0x00;
const CTRL_ON: u8 = 0x01;
const CTRL_RESET: u8 = 0x02;
const CTRL_ATR: u8 = 0x04;

/// Counters of what the bridge served, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Served {
    pub connections: u64,
    /// APDUs answered.
    pub apdus: u64,
    /// The bridge stalled (see `Behaviour`).
    pub stalled: bool,
}

/// How the bridged card behaves beyond the reference card's own answers.
#[derive(Debug, Default, Clone)]
pub struct Behaviour {
    /// The card's modelled service time per command: its whole time, counted from the
    /// command's arrival, its processing included (as in the in-process head).
    pub service: ServiceModel,
    /// Stall after answering this many APDUs: the next one is read and never answered.
    pub stall_after: Option<u64>,
    /// Stall on the first APDU that arrives once this file exists.
    pub stall_file: Option<PathBuf>,
}

impl Behaviour {
    fn stalls_now(&self, served: &Served) -> bool {
        self.stall_after.is_some_and(|n| served.apdus >= n) || self.stall_file.as_ref().is_some_and(|f| f.exists())
    }
}

fn send(s: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| io::Error::other("message longer than 65535 bytes"))?;
    let mut buf = Vec::with_capacity(2 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    s.write_all(&buf)
}

fn quickack(s: &TcpStream) {
    // Best effort: without it the bridge still works, only slower.
    let _ = SockRef::from(s).set_quickack(true);
}

/// Read one message; `Ok(None)` when vpcd closed the connection cleanly.
fn recv(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    read_message(s, quickack)
}

/// Read one length-prefixed message from any reader; `Ok(None)` on a clean end of stream.
/// `rearm` runs before each of the two reads (the socket re-arms TCP_QUICKACK there).
pub fn read_message<R: Read>(r: &mut R, rearm: impl Fn(&R)) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    rearm(r);
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut payload = vec![0u8; u16::from_be_bytes(len) as usize];
    rearm(r);
    r.read_exact(&mut payload)?;
    Ok(Some(payload))
}

/// Serve one connection until vpcd closes it or `stop` is set.
fn session<C: SimCard>(
    s: &mut TcpStream,
    card: &mut C,
    stop: &AtomicBool,
    how: &Behaviour,
    served: &mut Served,
    service: &mut ServiceModel,
) -> io::Result<()> {
    s.set_nodelay(true)?;
    // A read timeout lets the loop notice `stop`; vpcd polls often enough to keep it busy.
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let msg = match recv(s) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        let arrived = Instant::now();
        let is_apdu = msg.len() != 1;
        if is_apdu && how.stalls_now(served) {
            stall(stop, served, &msg);
            return Ok(());
        }
        let answer = handle(card, &msg);
        if is_apdu && card.is_hung() && answer.as_deref().is_some_and(<[u8]>::is_empty) {
            // The card itself hangs (seeded defect `mute-after-select`): no answer either.
            stall(stop, served, &msg);
            return Ok(());
        }
        if is_apdu {
            served.apdus += 1;
            if !service.is_zero() {
                // Sleeps, and spins only for the last stretch: N bridges do not need N cores.
                wait_until(arrived + service.draw(&msg));
            }
        }
        if let Some(a) = answer {
            send(s, &a)?;
        }
    }
}

/// A stalled card: the command arrived and no answer ever comes, while the connection
/// stays up (as with a card that hangs in the middle of a command). vpcd, and pcscd's
/// reader with it, wait until the bridge is stopped.
fn stall(stop: &AtomicBool, served: &mut Served, msg: &[u8]) {
    eprintln!("vpcd bridge: stalled on APDU #{} {}", served.apdus + 1, hex::encode_upper(msg));
    served.stalled = true;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the card does with one message from vpcd, and the answer to send back (`None`: the
/// message carries no answer).
pub fn handle<C: SimCard>(card: &mut C, msg: &[u8]) -> Option<Vec<u8>> {
    match msg {
        [CTRL_OFF] => card.power_off(),
        [CTRL_ON] => {
            card.power_on();
        }
        [CTRL_RESET] => {
            card.power_off();
            card.power_on();
        }
        [CTRL_ATR] => return Some(card.atr()),
        [_] => {} // unknown control codes carry no answer
        // An unpowered or mute card gives vpcd an empty answer, which it reports as a
        // transmission error rather than a response.
        apdu => return Some(card.process(apdu).unwrap_or_default()),
    }
    None
}

/// Connect to vpcd at `host:port` and serve `card` until `stop` is set; reconnects when vpcd
/// drops the connection (pcscd restarted). `how` can slow the card down or stall it.
/// Returns what it served.
pub fn serve<C: SimCard>(
    host: &str,
    port: u16,
    mut card: C,
    how: &Behaviour,
    stop: Arc<AtomicBool>,
) -> io::Result<Served> {
    let mut served = Served::default();
    // One stream of draws for the whole life of the card, across reconnections.
    let mut service = how.service.clone();
    while !stop.load(Ordering::Relaxed) {
        let mut s = match TcpStream::connect((host, port)) {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        served.connections += 1;
        let r = session(&mut s, &mut card, &stop, how, &mut served, &mut service);
        let _ = s.shutdown(Shutdown::Both);
        if let Err(e) = r {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            eprintln!("vpcd bridge {host}:{port}: {e}; reconnecting");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(served)
}
