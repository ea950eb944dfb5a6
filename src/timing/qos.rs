//! Linux PM QoS for the length of a timing run: while `/dev/cpu_dma_latency` is held open with
//! 0 written to it, no CPU enters an idle state it would take time to leave. Without it a
//! thread blocked through a 40 ms card command (the client, pcscd, the reader driver) wakes
//! from a deeper idle state than one blocked for 1 ms, and that difference lands in the
//! card time as a bias of 0.1-0.2 ms on a VM (docs/timing.md, "Figures"). cyclictest and
//! tuned's latency-performance profile hold the same request.

use std::io::Write;

const DEVICE: &str = "/dev/cpu_dma_latency";

/// The request, released when dropped (the kernel drops it when the file closes).
pub struct IdleLatency {
    file: Option<std::fs::File>,
    /// For the console and run.json: what was held, or why not.
    pub state: String,
}

impl IdleLatency {
    /// Ask for 0 µs wake-up latency; a host that refuses (not root, no such device) only
    /// loses precision, so that is said, not failed.
    pub fn hold() -> IdleLatency {
        let opened = std::fs::OpenOptions::new().write(true).open(DEVICE);
        match opened.and_then(|mut f| f.write_all(&0i32.to_ne_bytes()).map(|()| f)) {
            Ok(f) => IdleLatency { file: Some(f), state: format!("held at 0 µs ({DEVICE})") },
            Err(e) => IdleLatency { file: None, state: format!("not held: {DEVICE}: {e}") },
        }
    }

    pub fn off() -> IdleLatency {
        IdleLatency { file: None, state: "not held (--no-pm-qos)".into() }
    }

    pub fn held(&self) -> bool {
        self.file.is_some()
    }
}
