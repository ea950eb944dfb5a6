//! Whether a run's heads can be used at all, asked before anything is written: a head whose
//! reader service is down, whose reader is missing or whose port does not open makes the
//! command exit 2 with the head, the reader and what to try, and leaves no folder behind.

use super::{Head, HeadError};
use crate::lab::LabHead;
use thiserror::Error;

/// A head that cannot be used: which one, on which reader, why, and what to try.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("head {head} ({driver} reader '{reader}'): {error}; {}", hint(driver, error))]
pub struct Unusable {
    pub head: String,
    pub driver: &'static str,
    /// The reader's full name when the service named it, else the profile's pattern or port.
    pub reader: String,
    pub error: HeadError,
}

impl Unusable {
    pub fn of(head: &dyn Head, error: HeadError) -> Unusable {
        let info = head.info();
        Unusable { head: info.name.clone(), driver: info.driver, reader: info.reader.clone(), error }
    }
}

/// Whether `e` says the head's reader (or the service behind it) is out of use, rather than
/// something about the card in it.
pub fn infrastructure(e: &HeadError) -> bool {
    matches!(e, HeadError::ServiceStopped | HeadError::ReaderGone(_))
}

/// What an operator should try for `error` on a head of `driver`.
pub fn hint(driver: &str, error: &HeadError) -> &'static str {
    match (driver, error) {
        ("pcsc", HeadError::ServiceStopped) => "is pcscd running? (`scripts/pcscd-lab.sh start` for the vpcd lab)",
        ("pcsc", HeadError::ReaderGone(_)) => {
            "is the reader plugged in? `cardbench heads` lists the readers pcscd sees \
             (`scripts/pcscd-lab.sh start N` makes N vpcd readers)"
        }
        ("pcsc", _) => "is pcscd running? (`scripts/pcscd-lab.sh start`); `cardbench heads` lists the readers",
        ("pn532", _) => "is the PN532 connected to that port? (`cardbench sim pn532 --link PORT` plays one)",
        _ => "check the head's entry in the profile",
    }
}

/// Open the heads `which` (indices into `heads`): the first that cannot be used is the error.
pub fn open(heads: &mut [LabHead], which: impl IntoIterator<Item = usize>) -> Result<(), Unusable> {
    let mut which: Vec<usize> = which.into_iter().collect();
    which.sort_unstable();
    which.dedup();
    for i in which {
        let h = heads[i].head.as_mut();
        h.open().map_err(|e| Unusable::of(h, e))?;
    }
    Ok(())
}

/// Open every head of `heads`, each on its own: `(index, why)` for each one that cannot be used.
pub fn open_each(heads: &mut [LabHead]) -> Vec<(usize, Unusable)> {
    let mut bad = Vec::new();
    for (i, h) in heads.iter_mut().enumerate() {
        let h = h.head.as_mut();
        if let Err(e) = h.open() {
            bad.push((i, Unusable::of(h, e)));
        }
    }
    bad
}

/// After a run whose cases ended with errors: the first of the heads `which` that cannot be
/// used any more (pcscd stopped or a reader unplugged during the run), so the command can
/// say so and exit 2 instead of counting the bench's failure as the cards'.
pub fn lost(heads: &mut [LabHead], which: impl IntoIterator<Item = usize>) -> Option<Unusable> {
    for i in which {
        let h = heads[i].head.as_mut();
        if let Err(e) = h.open() {
            if infrastructure(&e) {
                return Some(Unusable::of(h, e));
            }
        }
    }
    None
}
