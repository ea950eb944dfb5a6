//! A virtual card's modelled service time: how long the card takes for a command, per INS,
//! fixed or drawn from a seeded distribution (a slow ECDSA, a jittery NVM write). The head
//! waits it out by sleeping, and spins only for the last stretch, so modelled cards do not
//! burn a core each and N heads run N times as fast as one.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::{Duration, Instant};

/// What `thread::sleep` may overshoot by on a loaded Linux host (50 µs of timer slack plus
/// scheduling): the part of a wait spent spinning for precision.
pub const SPIN: Duration = Duration::from_micros(100);

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

/// Wait until `deadline`: sleep while more than `SPIN` is left, then spin.
pub fn wait_until(deadline: Instant) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::hint::spin_loop();
        }
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
}
