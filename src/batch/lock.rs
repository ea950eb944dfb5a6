//! One process per batch folder: an advisory lock (flock) on `<batch>/batch.lock`, held for
//! the batch's lifetime. Two runs on one folder would both certify the cards the journal does
//! not list yet and journal them twice; the second run is refused before it touches anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const LOCK_FILE: &str = "batch.lock";

#[derive(Debug, Error)]
pub enum LockError {
    #[error("batch folder {} is in use by another cardbench{}; wait for it to end or stop it", dir.display(), holder.map_or(String::new(), |p| format!(" (pid {p})")))]
    Busy { dir: PathBuf, holder: Option<u32> },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Held while the batch runs; the lock goes with the file descriptor (also when the process
/// is killed), so a stale lock file never blocks a resume.
#[derive(Debug)]
pub struct BatchLock {
    _file: File,
}

impl BatchLock {
    /// Take the folder's lock or fail at once. The lock file is left in place afterwards:
    /// deleting it could let two processes hold locks on two different files.
    pub fn acquire(dir: &Path) -> Result<BatchLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        // No truncation on open: the file may be another process's, holding its pid.
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(LockError::Busy { dir: dir.to_path_buf(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Ours now: say who holds it, for the message another run will print.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(BatchLock { _file: file })
    }
}
