//! A model of card non-volatile memory whose multi-field updates are all-or-nothing.
//!
//! Real cards get atomicity from a transaction buffer; here an update works on a copy and
//! the copy replaces the committed image in one step, so a failed check or a cut power
//! (modelled by `tear_after`) leaves every field as it was.

/// Committed NVM image plus the bookkeeping a tear test needs.
#[derive(Debug, Clone)]
pub struct Nvm<T: Clone> {
    committed: T,
    commits: u64,
    /// When set, the commit with this ordinal (1-based, counted from now) is lost, as if
    /// power were cut before the transaction buffer was written back.
    tear_after: Option<u64>,
}

/// Why an NVM update did not land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvmFailure {
    /// The closure refused the update with this status word; nothing changed.
    Refused(u16),
    /// Power was cut during the commit; nothing changed and the card is now unpowered.
    Torn,
}

impl<T: Clone> Nvm<T> {
    pub fn new(image: T) -> Self {
        Nvm { committed: image, commits: 0, tear_after: None }
    }

    pub fn get(&self) -> &T {
        &self.committed
    }

    /// Number of successful commits since creation (wear and tear-test bookkeeping).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    pub fn tear_after(&mut self, n: Option<u64>) {
        self.tear_after = n;
    }

    /// Whether an armed tear is still waiting for its commit.
    pub fn tear_pending(&self) -> bool {
        self.tear_after.is_some()
    }

    /// Apply `f` to a working copy and commit it only if `f` succeeds.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> Result<R, u16>) -> Result<R, NvmFailure> {
        let mut work = self.committed.clone();
        let r = f(&mut work).map_err(NvmFailure::Refused)?;
        if let Some(n) = self.tear_after {
            if n <= 1 {
                self.tear_after = None;
                return Err(NvmFailure::Torn);
            }
            self.tear_after = Some(n - 1);
        }
        self.committed = work;
        self.commits += 1;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_update_changes_nothing() {
        let mut n = Nvm::new((1u32, 2u32));
        let r = n.update(|s| {
            s.0 = 10;
            s.1 = 20;
            Err::<(), u16>(0x6A84)
        });
        assert_eq!(r, Err(NvmFailure::Refused(0x6A84)));
        assert_eq!(*n.get(), (1, 2));
        assert_eq!(n.commits(), 0);
    }

    #[test]
    fn torn_commit_changes_nothing_and_later_commits_land() {
        let mut n = Nvm::new(0u32);
        n.tear_after(Some(2));
        n.update(|s| {
            *s = 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(
            n.update(|s| {
                *s = 2;
                Ok(())
            }),
            Err(NvmFailure::Torn)
        );
        assert_eq!(*n.get(), 1);
        n.update(|s| {
            *s = 3;
            Ok(())
        })
        .unwrap();
        assert_eq!(*n.get(), 3);
    }
}
