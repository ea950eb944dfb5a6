//! pcscd + vsmartcard vpcd for tests, shared by every test binary that needs PC/SC.
//!
//! pcscd is one per machine (hard-wired to /run/pcscd/pcscd.comm), while cargo runs test
//! binaries one after the other and developers run several at once: `Pcscd::start` takes an
//! exclusive lock on `/tmp/cardbench-pcscd.lock` and holds it until the value is dropped, so
//! users of pcscd take turns instead of killing each other's daemon.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const LOCK: &str = "/tmp/cardbench-pcscd.lock";

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(ROOT);
    c
}

/// pcscd for the duration of the test, stopped even when an assertion fails.
pub struct Pcscd {
    pub dir: PathBuf,
    readers: u32,
    extra_args: String,
    // Released (closed) after `Drop::drop` stopped pcscd: fields drop after the body.
    _lock: File,
}

impl Pcscd {
    pub fn start(readers: u32, dir: &Path) -> Pcscd {
        Pcscd::start_with_args(readers, dir, "")
    }

    /// pcscd with extra command-line options (`PCSCD_ARGS` of scripts/pcscd-lab.sh, e.g.
    /// `--apdu` to log every APDU).
    pub fn start_with_args(readers: u32, dir: &Path, args: &str) -> Pcscd {
        let lock = File::options().create(true).truncate(false).write(true).open(LOCK).unwrap();
        lock.lock().unwrap();
        let p = Pcscd { dir: dir.to_path_buf(), readers, extra_args: args.into(), _lock: lock };
        p.start_again();
        p
    }

    /// Start pcscd (again, after `kill`) with the same readers and directory.
    pub fn start_again(&self) {
        let out = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/pcscd-lab.sh"))
            .args(["start", &self.readers.to_string()])
            .arg(&self.dir)
            .env("PCSCD_ARGS", &self.extra_args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pcscd: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// pcscd dies (SIGKILL, as in a crash): its clients' connections break.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pcscd.pid")).unwrap();
        let st = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
        assert!(st.success());
        // Until it is reaped: pcscd-lab.sh refuses to start while any pcscd (even a zombie) exists.
        let t0 = Instant::now();
        while Path::new("/proc").join(pid.trim()).exists() {
            assert!(t0.elapsed() < Duration::from_secs(30), "pcscd {pid} was not reaped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// pcscd stops (as `scripts/pcscd-lab.sh stop` does) and stays down, the lock still held:
    /// no other test brings a pcscd up meanwhile.
    pub fn stop(&self) {
        let st = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/pcscd-lab.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// pcscd's own log (stdout and stderr of the daemon).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pcscd.log")).unwrap_or_default()
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let _ =
            Command::new("bash").arg(Path::new(ROOT).join("scripts/pcscd-lab.sh")).arg("stop").arg(&self.dir).status();
    }
}

/// `cardbench sim vpcd` serving one card of profiles/vpcd-lab.toml to vpcd reader `reader`.
pub struct Bridge(pub Child);

impl Bridge {
    pub fn start(card: &str, reader: u32, delay_us: u32) -> Bridge {
        Bridge::start_with(card, reader, &["--delay-us", &delay_us.to_string()])
    }

    /// A bridge with extra `cardbench sim vpcd` options (e.g. `--stall-after N`).
    pub fn start_with(card: &str, reader: u32, extra: &[&str]) -> Bridge {
        let port = vpcd_port(reader);
        let child = bin()
            .args(["sim", "vpcd", "--profile", "profiles/vpcd-lab.toml", "--card", card])
            .args(["--port", &port.to_string()])
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Bridge(child)
    }

    /// Any command line serving vpcd reader `reader` (e.g. `sim replay`), as a bridge.
    pub fn spawn(args: &[&str]) -> Bridge {
        Bridge(bin().args(args).stderr(Stdio::null()).spawn().unwrap())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TCP port vpcd reader `reader` listens on (scripts/pcscd-lab.sh).
pub fn vpcd_port(reader: u32) -> u16 {
    35963 + 2 * reader as u16
}

/// Whether pcscd and vpcd can run here (root, packages installed). CI must run them.
pub fn available() -> bool {
    let root = uid() == 0;
    let have =
        Path::new("/usr/sbin/pcscd").exists() && Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists();
    if !(root && have) {
        // CI installs pcscd and vpcd and runs as root (.ci/run); anywhere else, say why we skip.
        assert!(std::env::var_os("CI").is_none(), "CI must run the PC/SC test: pcscd/vpcd missing or not root");
        eprintln!("NOTICE: PC/SC test skipped (needs root, pcscd and vsmartcard-vpcd)");
    }
    root && have
}

fn uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(1)
}

/// Wait until exactly `n` vpcd readers hold a card; `cardbench heads` output.
pub fn wait_readers_with_cards(n: usize) -> String {
    let t0 = Instant::now();
    loop {
        let out = bin().arg("heads").output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        if s.lines().filter(|l| l.contains(" card ")).count() == n {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "cards did not appear in pcscd:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lines of a child's stream (a `cardbench batch` waiting for cards), read on a thread so a
/// test can wait for the line that says a state was reached.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> crossbeam_channel::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}
