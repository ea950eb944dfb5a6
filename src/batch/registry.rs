//! Which card IDs the batch has certified or is certifying, so that a card inserted a second
//! time is refused (or, with `--recertify`, certified again in its own place) instead of being
//! counted as another card of the batch.

use super::header::Recertified;
use crate::report::CardResult;
use std::collections::HashMap;
use std::sync::Mutex;

struct Entry {
    index: u64,
    /// The verdict word of its latest certification; None while a head is certifying it.
    verdict: Option<&'static str>,
    certifications: u32,
}

/// What a worker may do with the card it has just identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A card new to the batch: certify it as the index the worker took from the queue.
    New,
    /// Already certified, and `--recertify`: certify it again as `index`, its
    /// `certification`-th time; `previous` is the verdict that the new one replaces.
    Recertify { index: u64, certification: u32, previous: &'static str },
    /// Already certified (`verdict`) or being certified on another head (`None`): refused.
    Duplicate { index: u64, verdict: Option<&'static str> },
}

pub struct Registry {
    cards: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// The cards of the journal: `done` with one result per index, and which of them were
    /// certified more than once.
    pub fn new(done: &[CardResult], recertified: &[Recertified]) -> Registry {
        let mut cards = HashMap::new();
        for c in done {
            let certifications = recertified.iter().find(|r| r.index == c.index).map_or(1, |r| r.certification);
            cards.insert(c.card_id.clone(), Entry { index: c.index, verdict: Some(c.verdict.word()), certifications });
        }
        Registry { cards: Mutex::new(cards) }
    }

    /// Claim `card_id` for certification as `index` (the next index of the queue). A `New` or
    /// `Recertify` claim marks the card as being certified until `finished` or `released`.
    pub fn claim(&self, card_id: &str, index: u64, recertify: bool) -> Claim {
        let mut cards = self.cards.lock().expect("registry lock");
        match cards.get_mut(card_id) {
            None => {
                cards.insert(card_id.to_string(), Entry { index, verdict: None, certifications: 0 });
                Claim::New
            }
            Some(e) => match e.verdict {
                Some(previous) if recertify => {
                    e.verdict = None;
                    Claim::Recertify { index: e.index, certification: e.certifications + 1, previous }
                }
                verdict => Claim::Duplicate { index: e.index, verdict },
            },
        }
    }

    /// The card's result is journaled.
    pub fn finished(&self, card_id: &str, verdict: &'static str) {
        if let Some(e) = self.cards.lock().expect("registry lock").get_mut(card_id) {
            e.verdict = Some(verdict);
            e.certifications += 1;
        }
    }

    /// The card was not certified after all (a bench error): forget the claim.
    pub fn released(&self, card_id: &str, claim: &Claim) {
        let mut cards = self.cards.lock().expect("registry lock");
        match claim {
            Claim::New => {
                cards.remove(card_id);
            }
            Claim::Recertify { previous, .. } => {
                if let Some(e) = cards.get_mut(card_id) {
                    e.verdict = Some(previous);
                }
            }
            Claim::Duplicate { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;

    fn card(index: u64, id: &str) -> CardResult {
        CardResult {
            index,
            card_id: id.into(),
            head: "E".into(),
            verdict: Verdict::Pass,
            cases: vec![],
            trace: String::new(),
            started: String::new(),
            duration_ms: 0.0,
        }
    }

    #[test]
    fn a_card_is_claimed_once_and_recertified_only_when_asked() {
        let r = Registry::new(&[card(1, "A")], &[]);
        assert_eq!(r.claim("A", 2, false), Claim::Duplicate { index: 1, verdict: Some("pass") });
        assert_eq!(r.claim("B", 2, false), Claim::New);
        // B is on a head: the same ID on another head is refused even with --recertify.
        assert_eq!(r.claim("B", 3, true), Claim::Duplicate { index: 2, verdict: None });
        r.finished("B", "fail");
        assert_eq!(r.claim("B", 3, true), Claim::Recertify { index: 2, certification: 2, previous: "fail" });
        r.released("B", &Claim::Recertify { index: 2, certification: 2, previous: "fail" });
        assert_eq!(r.claim("B", 3, false), Claim::Duplicate { index: 2, verdict: Some("fail") });
        assert_eq!(r.claim("C", 3, false), Claim::New);
        r.released("C", &Claim::New);
        assert_eq!(r.claim("C", 3, false), Claim::New);
    }
}
