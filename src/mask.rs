//! PROVISIONAL (replay-session branch): the lead's `Mask` type replaces this file's type on
//! merge; `dynamic`, `dynamic_chunk` and `dynamic_command` stay, calling `table`.

mod table;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mask(Vec<(usize, usize)>);

impl Mask {
    pub fn none() -> Mask {
        Mask(Vec::new())
    }

    pub fn all() -> Mask {
        Mask(vec![(0, usize::MAX)])
    }

    pub fn ranges(r: &[(usize, usize)]) -> Mask {
        Mask(r.to_vec())
    }

    pub fn covers(&self, i: usize) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&i))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        f.write_str(&parts.join(" "))
    }
}

/// Response bytes of `command`'s response that the card spec says are dynamic by nature
/// (docs/card-spec.md, "Dynamic response bytes").
pub fn dynamic(command: &[u8], response: &[u8]) -> Mask {
    Mask(table::response(command, response))
}

/// The dynamic bytes of one chunk of a response delivered in several exchanges: `command` is
/// the command the terminal sent first (not the GET RESPONSE), `earlier` the data of the
/// chunks before this one.
pub fn dynamic_chunk(command: &[u8], earlier: &[u8], chunk: &[u8]) -> Mask {
    Mask(table::chunk(command, earlier, chunk))
}

/// Command bytes that differ between two correct sessions (the terminal's randoms and what it
/// forwards or computes from the card's randoms).
pub fn dynamic_command(command: &[u8]) -> Mask {
    Mask(table::command(command))
}

/// The masks of consecutive wire rows of one head: a GET RESPONSE row carries a chunk of the
/// response to the command that started its group, so its dynamic bytes depend on that
/// command and on the chunks before it, which a row alone does not show.
#[derive(Debug, Clone, Default)]
pub struct RowMasks {
    /// The command that started the current group (as first sent) and the data so far.
    first: Vec<u8>,
    earlier: Vec<u8>,
}

impl RowMasks {
    /// Command and response masks of the next wire row of this head, in trace order.
    pub fn row(&mut self, kind: crate::event::RowKind, command: &[u8], response: &[u8]) -> (Mask, Mask) {
        use crate::event::RowKind;
        match kind {
            // A chunk of the group's response, or the group's last command again with another
            // Le (a 6Cxx answer carries no data, so the chunks so far stay what they were).
            RowKind::GetResponse | RowKind::Resend6C => {}
            _ => {
                self.first = command.to_vec();
                self.earlier.clear();
            }
        }
        let resp = dynamic_chunk(&self.first, &self.earlier, response);
        self.earlier.extend_from_slice(response);
        (dynamic_command(command), resp)
    }
}
