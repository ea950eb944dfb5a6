//! "Did you mean …": the valid name nearest to a mistyped one, for input errors.

/// The candidate nearest to `word`, if it is near enough to be the intended one: at most a
/// third of the word's length in edits (at least 1, at most 3), a transposition counting as
/// one. Two candidates equally near are no answer (the caller lists them all). Case is ignored.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let w = word.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    let mut tied = false;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = strsim::damerau_levenshtein(&w, &c.to_ascii_lowercase());
        match best {
            _ if d > limit => {}
            Some((bd, _)) if d > bd => {}
            Some((bd, b)) if d == bd => tied |= b != c,
            _ => {
                best = Some((d, c));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, c)| c)
}

/// `did you mean X?` with the nearest candidate wrapped in `quote`, if one is near enough.
pub fn did_you_mean<'a, I>(word: &str, candidates: I, quote: &str) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(word, candidates).map(|c| format!("did you mean {quote}{c}{quote}?"))
}

/// `: did you mean X?` when a candidate is near enough, else ` (one of: A, B, …)`: what an
/// error about a mistyped name ends with.
pub fn hint<'a, I>(word: &str, candidates: I, quote: &str) -> String
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    match did_you_mean(word, candidates.clone(), quote) {
        Some(d) => format!(": {d}"),
        None => {
            let all: Vec<String> = candidates.into_iter().map(|c| format!("{quote}{c}{quote}")).collect();
            format!(" (one of: {})", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let codes = ["insufficient-value", "card-expired", "no-record"];
        assert_eq!(nearest("insuficient-value", codes), Some("insufficient-value"));
        assert_eq!(nearest("card-exipred", codes), Some("card-expired"));
        assert_eq!(nearest("gibberish", codes), None);
        assert_eq!(nearest("stat", ["state", "as"]), Some("state"));
        assert_eq!(nearest("x", ["as"]), None);
        assert_eq!(nearest("T=2", ["T=0", "T=1"]), None);
    }
}
