//! A virtual card's modelled service time: how long the card takes for a command, per INS,
//! fixed or drawn from a seeded distribution (a slow ECDSA, a jittery NVM write). The head
//! waits it out by sleeping, and spins only for the last stretch, so modelled cards do not
//! burn a core each and N heads run N times as fast as one.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::{Duration, Instant};

/// The least part of a wait spent spinning: 50 µs of Linux timer slack plus scheduling.
pub const SPIN: Duration = Duration::from_micros(100);
/// The most: a host that wakes this late is too loaded to model a card on anyway, and a
/// spin this long on every command would cost the other heads their core.
const SPIN_MAX: Duration = Duration::from_millis(2);
/// Recent sleeps remembered per length class to learn how late this thread wakes.
const HISTORY: usize = 32;

/// One command's service time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Fixed(Duration),
    /// Uniform between the two bounds (inclusive).
    Uniform(Duration, Duration),
    /// Normal with mean and standard deviation, cut at zero.
    Normal {
        mean: Duration,
        sd: Duration,
    },
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |d: &Duration| d.as_micros();
        match self {
            Dist::Fixed(d) => write!(f, "{} µs", us(d)),
            Dist::Uniform(lo, hi) => write!(f, "uniform {}-{} µs", us(lo), us(hi)),
            Dist::Normal { mean, sd } => write!(f, "normal {} µs sd {} µs", us(mean), us(sd)),
        }
    }
}

impl Dist {
    fn draw(&self, rng: &mut ChaCha20Rng) -> Duration {
        // A uniform in [0, 1) from 53 random bits.
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        match *self {
            Dist::Fixed(d) => d,
            Dist::Uniform(lo, hi) => lo + (hi.saturating_sub(lo)).mul_f64(u()),
            Dist::Normal { mean, sd } => {
                // Box-Muller: one standard normal from two uniforms (1 − u keeps ln away from 0).
                let z = (-2.0 * (1.0 - u()).ln()).sqrt() * (std::f64::consts::TAU * u()).cos();
                Duration::from_secs_f64((mean.as_secs_f64() + z * sd.as_secs_f64()).max(0.0))
            }
        }
    }
}

/// Service time per INS (CLA ignored), with a default for the others.
#[derive(Debug, Clone)]
pub struct ServiceModel {
    pub default: Option<Dist>,
    pub per_ins: Vec<(u8, Dist)>,
    rng: ChaCha20Rng,
}

impl Default for ServiceModel {
    fn default() -> Self {
        ServiceModel::new(None, Vec::new(), 0)
    }
}

impl ServiceModel {
    pub fn new(default: Option<Dist>, per_ins: Vec<(u8, Dist)>, seed: u64) -> Self {
        ServiceModel { default, per_ins, rng: ChaCha20Rng::seed_from_u64(seed) }
    }

    /// The same time for every command.
    pub fn fixed(d: Duration) -> Self {
        ServiceModel::new((!d.is_zero()).then_some(Dist::Fixed(d)), Vec::new(), 0)
    }

    pub fn is_zero(&self) -> bool {
        self.default.is_none() && self.per_ins.is_empty()
    }

    /// One line for logs: "INS 88 40000 µs, INS B2 1000 µs, others 0 µs".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.per_ins.iter().map(|(i, d)| format!("INS {i:02X} {d}")).collect();
        parts.push(match &self.default {
            Some(d) => format!("others {d}"),
            None => "others 0 µs".into(),
        });
        parts.join(", ")
    }

    /// The service time of this command APDU (zero when nothing models it).
    pub fn draw(&mut self, apdu: &[u8]) -> Duration {
        let ins = apdu.get(1).copied();
        let d = self.per_ins.iter().find(|(i, _)| Some(*i) == ins).map(|(_, d)| *d).or(self.default);
        d.map_or(Duration::ZERO, |d| d.draw(&mut self.rng))
    }
}

/// How late `thread::sleep` woke on this thread, per class of sleep length (a power of two
/// of microseconds): a long sleep on a VM lets the vCPU halt and wakes later than a short one,
/// so one fixed spin either misses long deadlines or burns the core on short ones.
struct Lateness {
    recent: [[Duration; HISTORY]; 24],
    next: [usize; 24],
}

impl Lateness {
    fn class(sleep: Duration) -> usize {
        (u128::BITS - sleep.as_micros().leading_zeros()).min(23) as usize
    }

    /// The spin margin for a wait of this length: the second-latest wake-up of the class's
    /// recent sleeps (one preemption does not make every later wait spin) plus a guard, at
    /// most a tenth of the wait: heads that spin make each other wake later, and without the
    /// cap that loop ends with every head spinning its whole wait.
    fn margin(&self, wait: Duration) -> Duration {
        let mut r = self.recent[Self::class(wait)];
        r.sort_unstable();
        let most = (wait / 10).clamp(SPIN, SPIN_MAX);
        (r[HISTORY - 2] + Duration::from_micros(25)).clamp(SPIN, most)
    }

    fn record(&mut self, sleep: Duration, late: Duration) {
        let c = Self::class(sleep);
        self.recent[c][self.next[c]] = late;
        self.next[c] = (self.next[c] + 1) % HISTORY;
    }
}

thread_local! {
    static LATENESS: std::cell::RefCell<Lateness> =
        const { std::cell::RefCell::new(Lateness { recent: [[Duration::ZERO; HISTORY]; 24], next: [0; 24] }) };
}

/// Wait until `deadline`: sleep while more than this thread's learnt wake-up lateness is left,
/// then spin, so a modelled time is met to the microsecond without a core per head.
pub fn wait_until(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    LATENESS.with_borrow_mut(|l| {
        let margin = l.margin(left);
        if left > margin {
            let sleep = left - margin;
            let woke_due = Instant::now() + sleep;
            std::thread::sleep(sleep);
            l.record(left, Instant::now().saturating_duration_since(woke_due));
        }
    });
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ins_times_and_seeded_draws() {
        let ms = Duration::from_millis;
        let mut m = ServiceModel::new(
            Some(Dist::Fixed(ms(1))),
            vec![(0x88, Dist::Fixed(ms(40))), (0xD0, Dist::Normal { mean: ms(5), sd: ms(1) })],
            7,
        );
        assert_eq!(m.draw(&[0x80, 0x88, 0, 0]), ms(40));
        assert_eq!(m.draw(&[0x80, 0xB2, 1, 0]), ms(1));
        let a: Vec<Duration> = (0..1000).map(|_| m.draw(&[0x80, 0xD0, 0, 0])).collect();
        let mut m2 = ServiceModel::new(None, vec![(0xD0, Dist::Normal { mean: ms(5), sd: ms(1) })], 7);
        let b: Vec<Duration> = (0..1000).map(|_| m2.draw(&[0x80, 0xD0, 0, 0])).collect();
        assert_eq!(a, b, "the same seed gives the same times");
        let mean = a.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
        assert!((mean - 0.005).abs() < 0.0002, "mean {mean}");
        let mut u = ServiceModel::new(Some(Dist::Uniform(ms(2), ms(3))), vec![], 1);
        assert!((0..100).map(|_| u.draw(&[0, 0xA4])).all(|d| d >= ms(2) && d <= ms(3)));
        assert!(ServiceModel::default().draw(&[0, 0xA4]).is_zero());
        assert_eq!(m.describe(), "INS 88 40000 µs, INS D0 normal 5000 µs sd 1000 µs, others 1000 µs");
    }

    #[test]
    fn spin_margin_learns_per_length_class_and_is_capped() {
        let us = Duration::from_micros;
        let mut l = Lateness { recent: [[Duration::ZERO; HISTORY]; 24], next: [0; 24] };
        assert_eq!(l.margin(us(40_000)), SPIN, "nothing learnt yet");
        // One late wake-up is taken for a preemption, two make the margin.
        l.record(us(40_000), us(700));
        assert_eq!(l.margin(us(40_000)), SPIN);
        l.record(us(40_000), us(600));
        assert_eq!(l.margin(us(40_000)), us(625));
        assert_eq!(l.margin(us(1_000)), SPIN, "another length class learns on its own");
        // A short wait never spins more than a tenth of itself (SPIN at least), a long one 2 ms.
        for _ in 0..HISTORY {
            l.record(us(3_000), us(5_000));
            l.record(us(40_000), us(5_000));
        }
        assert_eq!(l.margin(us(3_000)), us(300));
        assert_eq!(l.margin(us(40_000)), SPIN_MAX);
        // Old lateness is forgotten after HISTORY sleeps.
        for _ in 0..HISTORY {
            l.record(us(40_000), us(10));
        }
        assert_eq!(l.margin(us(40_000)), SPIN);
    }

    #[test]
    fn a_wait_never_ends_before_its_deadline() {
        for d in [0u64, 50, 150, 1_000, 3_000] {
            let deadline = Instant::now() + Duration::from_micros(d);
            wait_until(deadline);
            assert!(Instant::now() >= deadline);
        }
    }
}
