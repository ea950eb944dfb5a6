//! Atomic file replacement shared by the report writers: a reader of `path` sees either the
//! previous file or the complete new one, never a half-written file.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary file `write_atomically` writes before the rename: `path` with `.tmp`
/// appended (`summary.csv` → `summary.csv.tmp`), in the same directory so the rename stays
/// on one filesystem.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Write `path` through `write`: the bytes go to `path.tmp`, which is flushed, fsynced and
/// renamed over `path`; the directory is then fsynced (Unix, best effort) so the rename itself
/// is durable.
/// On any error the temporary file is removed and `path` is left as it was.
///
/// Two writers of the same `path` at the same time share the temporary name; the batch runner
/// writes each report from one thread.
pub(crate) fn write_atomically<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let tmp = tmp_path(path);
    let result = write_then_rename(path, &tmp, write);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename<F>(path: &Path, tmp: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut out = BufWriter::new(File::create(tmp)?);
    write(&mut out)?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    sync_parent_dir(path);
    Ok(())
}

/// Best effort: the new file is already in place, and some filesystems refuse to fsync a
/// directory, so a failure here is not reported.
#[cfg(unix)]
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) {}
