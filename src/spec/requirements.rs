//! Requirement IDs of `docs/card-spec.md`: every normative statement about the card carries an
//! ID in square brackets where it is defined, `[XFER-8.1-R3] Card information is 34 + 4n bytes`,
//! and plans cite it without brackets (`verifies = ["XFER-8.1-R3"]`).
//!
//! The document is embedded in the binary so that `cardbench coverage`, `check` and `run` judge
//! a plan against the spec this build implements, wherever they run.
//!
//! Every bracketed ID in the document is a definition, except inside backticks or a fenced code
//! block: that is how the document shows the format without defining anything.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// The spec this build implements.
pub const SPEC_DOC: &str = include_str!("../../docs/card-spec.md");
/// Where `SPEC_DOC` comes from, for error messages.
pub const SPEC_PATH: &str = "docs/card-spec.md";

/// The section group an ID's prefix names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prefix {
    /// §1-§5: AIDs, CLA, processing order, SELECT, transmission, NVM, status words, personalization.
    Gen,
    /// §6: the PURSE applet.
    Purse,
    /// §7: the CPAY applet.
    Cpay,
    /// §8-§9: the XFER applet and value transfer.
    Xfer,
}

impl Prefix {
    pub const ALL: [Prefix; 4] = [Prefix::Gen, Prefix::Purse, Prefix::Cpay, Prefix::Xfer];

    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Gen => "GEN",
            Prefix::Purse => "PURSE",
            Prefix::Cpay => "CPAY",
            Prefix::Xfer => "XFER",
        }
    }

    fn parse(s: &str) -> Option<Prefix> {
        Prefix::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The prefix of the requirements of top-level section `n`; `None` for sections that hold
    /// no requirement (§0 conventions, §10 on: traceability, examples, notes).
    pub fn of_section(n: u32) -> Option<Prefix> {
        match n {
            1..=5 => Some(Prefix::Gen),
            6 => Some(Prefix::Purse),
            7 => Some(Prefix::Cpay),
            8 | 9 => Some(Prefix::Xfer),
            _ => None,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requirement as the spec defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// `XFER-8.1-R3`.
    pub id: String,
    pub prefix: Prefix,
    /// The (sub)section the statement lives in: `8.1`, `6`.
    pub section: String,
    /// The `n` of `-R<n>`.
    pub number: u32,
    /// The statement on one line: the rest of the line after the ID (a table row's cells joined
    /// with ` | `), whitespace collapsed.
    pub text: String,
    /// 1-based line of the definition in the document.
    pub line: usize,
}

/// A document whose requirement IDs cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    #[error(
        "{path}:{line}: '{found}' is not a requirement ID: {why} (the form is PREFIX-SECTION-R<n>, e.g. XFER-8.1-R3)"
    )]
    Malformed { path: String, line: usize, found: String, why: String },
    #[error("{path}:{line}: {id} is defined twice (first at line {first})")]
    Duplicate { path: String, line: usize, id: String, first: usize },
    #[error("{path}:{line}: {id} is defined in section {section}: its middle part must be {section}")]
    WrongSection { path: String, line: usize, id: String, section: String },
    #[error("{path}:{line}: {id} is defined in section {section}, whose requirements are {expected}-*")]
    WrongPrefix { path: String, line: usize, id: String, section: String, expected: Prefix },
    #[error(
        "{path}:{line}: {id} is defined {where_}, where no requirement belongs (only sections 1-9 hold requirements)"
    )]
    OutsideSections { path: String, line: usize, id: String, where_: String },
}

/// The requirements of a document, in document order.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    list: Vec<Requirement>,
    index: HashMap<String, usize>,
}

/// Is `s` a well-formed requirement ID (the brief's regex, no leading zeros)?
pub fn is_id(s: &str) -> bool {
    check_id(s).is_ok()
}

/// The parts of a well-formed ID, or why it is not one.
fn check_id(s: &str) -> Result<(Prefix, String, u32), String> {
    let mut parts = s.splitn(3, '-');
    let (Some(p), Some(sec), Some(r)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("it needs three parts separated by '-'".into());
    };
    let prefix = Prefix::parse(p).ok_or_else(|| format!("prefix '{p}' is not one of GEN, PURSE, CPAY, XFER"))?;
    let numbers: Vec<&str> = sec.split('.').collect();
    if numbers.len() > 2 || numbers.iter().any(|n| !canonical_number(n)) {
        return Err(format!("section '{sec}' is not a section number like 8 or 8.1"));
    }
    let n = r
        .strip_prefix('R')
        .filter(|n| canonical_number(n))
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{r}' is not R<n> with n = 1, 2, …"))?;
    Ok((prefix, sec.to_string(), n))
}

/// Decimal digits without a leading zero: `R01` and `R1` would otherwise be two IDs.
fn canonical_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// The section number of a heading line (`### 8.1 GET CARD INFO`, `## 6. PURSE applet`), cut to
/// two levels (IDs name at most `8.1`).
fn heading_section(line: &str) -> Option<Option<String>> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() || !rest.starts_with(' ') {
        return None;
    }
    let word = rest.split_whitespace().next().unwrap_or("");
    let word = word.trim_end_matches('.');
    let numbers: Vec<&str> = word.split('.').collect();
    if word.is_empty() || numbers.iter().any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())) {
        // A heading without a number (`#### Flags`) stays in the section around it.
        return Some(None);
    }
    Some(Some(numbers.iter().take(2).copied().collect::<Vec<_>>().join(".")))
}

/// Byte ranges of `line` that are inline code (between backticks).
fn code_spans(line: &str) -> Vec<(usize, usize)> {
    let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
    ticks.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect()
}

/// The statement after an ID on its line: a table row's remaining cells joined with ` | `.
/// Emphasis or a colon right after the ID (`**[ID]**: …`) is not part of it.
fn statement(after: &str) -> String {
    let after = after.trim_start_matches(|c: char| c == '*' || c == '_' || c == ':' || c.is_whitespace());
    let cells: Vec<&str> = after.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    // Bold inside a statement (`**nothing changes**`) is emphasis, not content.
    cells.join(" | ").replace("**", "").split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Requirements {
    /// Parse and validate the requirement definitions of a document (`path` names it in errors).
    pub fn parse(path: &str, doc: &str) -> Result<Requirements, RequirementError> {
        let mut reqs = Requirements::default();
        let mut section: Option<String> = None;
        let mut fenced = false;
        let lines: Vec<&str> = doc.lines().collect();
        for (i, line) in lines.iter().copied().enumerate() {
            let line_no = i + 1;
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced {
                continue;
            }
            if let Some(s) = heading_section(line) {
                if let Some(s) = s {
                    section = Some(s);
                }
                continue;
            }
            let code = code_spans(line);
            for (at, _) in line.match_indices('[') {
                if code.iter().any(|(a, b)| *a < at && at < *b) {
                    continue;
                }
                let Some(len) = line[at + 1..].find(']') else { continue };
                let inner = &line[at + 1..at + 1 + len];
                if !looks_like_id(inner) {
                    continue;
                }
                let err = |why: String| RequirementError::Malformed {
                    path: path.into(),
                    line: line_no,
                    found: inner.into(),
                    why,
                };
                let (prefix, sec, number) = check_id(inner).map_err(err)?;
                let id = inner.to_string();
                let here = section.clone().ok_or_else(|| RequirementError::OutsideSections {
                    path: path.into(),
                    line: line_no,
                    id: id.clone(),
                    where_: "before the first numbered section".into(),
                })?;
                let top: u32 = here.split('.').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let Some(expected) = Prefix::of_section(top) else {
                    return Err(RequirementError::OutsideSections {
                        path: path.into(),
                        line: line_no,
                        id,
                        where_: format!("in section {here}"),
                    });
                };
                if prefix != expected {
                    return Err(RequirementError::WrongPrefix {
                        path: path.into(),
                        line: line_no,
                        id,
                        section: here,
                        expected,
                    });
                }
                if sec != here {
                    return Err(RequirementError::WrongSection { path: path.into(), line: line_no, id, section: here });
                }
                if let Some(&first) = reqs.index.get(&id) {
                    return Err(RequirementError::Duplicate {
                        path: path.into(),
                        line: line_no,
                        id,
                        first: reqs.list[first].line,
                    });
                }
                let text = statement_from(&lines, i, at + 2 + len);
                reqs.index.insert(id.clone(), reqs.list.len());
                reqs.list.push(Requirement { id, prefix, section: sec, number, text, line: line_no });
            }
        }
        Ok(reqs)
    }

    /// The requirements of the spec embedded in this build (`docs/card-spec.md`).
    pub fn spec() -> Result<&'static Requirements, RequirementError> {
        static SPEC: OnceLock<Result<Requirements, RequirementError>> = OnceLock::new();
        SPEC.get_or_init(|| Requirements::parse(SPEC_PATH, SPEC_DOC)).as_ref().map_err(Clone::clone)
    }

    /// Every requirement, in document order.
    pub fn all(&self) -> &[Requirement] {
        &self.list
    }

    pub fn get(&self, id: &str) -> Option<&Requirement> {
        self.index.get(id).map(|&i| &self.list[i])
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Why `id` names no requirement, with the nearest one or the IDs of its section: the end of
    /// an "unknown requirement" error.
    pub fn unknown(&self, id: &str) -> String {
        if let Err(why) = check_id(id) {
            return format!(
                "'{id}' is not a requirement ID: {why} (the form is PREFIX-SECTION-R<n>, e.g. XFER-8.1-R3)"
            );
        }
        let near = crate::suggest::did_you_mean(id, self.list.iter().map(|r| r.id.as_str()), "");
        if let Some(d) = near {
            return format!("{SPEC_PATH} defines no requirement {id}: {d}");
        }
        let (_, sec, _) = check_id(id).unwrap_or((Prefix::Gen, String::new(), 0));
        let mut same: Vec<&Requirement> =
            self.list.iter().filter(|r| r.section == sec && id.starts_with(r.prefix.as_str())).collect();
        same.sort_by_key(|r| r.number);
        match same.as_slice() {
            [] => format!("{SPEC_PATH} defines no requirement {id} (and none in section {sec})"),
            [only] => format!("{SPEC_PATH} defines no requirement {id}: did you mean {}?", only.id),
            [first, .., last] => {
                format!("{SPEC_PATH} defines no requirement {id} (section {sec} has {} to {})", first.id, last.id)
            }
        }
    }
}

/// Where the next bracketed ID starts in `line` (from byte `from`), if any.
fn next_id(line: &str, from: usize) -> Option<usize> {
    line[from..]
        .match_indices('[')
        .map(|(i, _)| from + i)
        .find(|&at| line[at + 1..].find(']').is_some_and(|len| looks_like_id(&line[at + 1..at + 1 + len])))
}

/// A line that starts a block of its own: the statement before it has ended.
fn starts_block(line: &str) -> bool {
    let t = line.trim_start();
    let numbered = t.split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    t.is_empty() || t.starts_with(['#', '|', '*', '-', '>']) || t.starts_with("```") || numbered
}

/// The statement of the ID that ends at byte `from` of line `i`: a table row's other cells, or
/// the text up to the next ID or the end of the paragraph or list item, on one line.
fn statement_from(lines: &[&str], i: usize, from: usize) -> String {
    let line = lines[i];
    if line.trim_start().starts_with('|') {
        return statement(&line[from..]);
    }
    let mut text = String::new();
    let (mut l, mut start) = (line, from);
    let mut j = i;
    loop {
        match next_id(l, start) {
            Some(end) => {
                text.push(' ');
                text.push_str(&l[start..end]);
                break;
            }
            None => {
                text.push(' ');
                text.push_str(&l[start..]);
            }
        }
        j += 1;
        match lines.get(j) {
            Some(next) if !starts_block(next) => (l, start) = (next, 0),
            _ => break,
        }
    }
    statement(&text)
}

/// Bracketed text that is meant as an ID: it starts with a known prefix and a dash, whatever
/// follows (so that a typo inside is reported, not silently taken for prose).
fn looks_like_id(inner: &str) -> bool {
    Prefix::ALL.iter().any(|p| inner.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('-')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# Title

## 0. Conventions

* A requirement is written `[XFER-8.1-R3] statement`: that is an example.

## 1. Overview

### 1.7 SELECT

* [GEN-1.7-R1] SELECT of an unknown AID answers `6A82`.
* [GEN-1.7-R2] The previous applet stays selected.

```
[GEN-1.7-R9] in a code block: not a definition
```

## 8. XFER

#### Flags

| Offset | Content |
|--------|---------|
| [XFER-8-R1] 32 | flags: bit 0 update key |

### 8.1 GET CARD INFO

[XFER-8.1-R1] Card information is 34 + 4n bytes. See GEN-1.7-R1.

* [XFER-8.1-R2] Flags: **bit 0** update key,
  other bits 0. [XFER-8.1-R3] Slot IDs
  ascending.
* [XFER-8.1-R4]
  Alone on its line.
";

    #[test]
    fn definitions_are_found_with_their_section_and_text() {
        let r = Requirements::parse("spec.md", DOC).unwrap();
        let ids: Vec<&str> = r.all().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["GEN-1.7-R1", "GEN-1.7-R2", "XFER-8-R1", "XFER-8.1-R1", "XFER-8.1-R2", "XFER-8.1-R3", "XFER-8.1-R4"]
        );
        let row = r.get("XFER-8-R1").unwrap();
        assert_eq!((row.section.as_str(), row.number, row.line), ("8", 1, 24));
        assert_eq!(row.text, "32 | flags: bit 0 update key");
        assert_eq!(r.get("GEN-1.7-R1").unwrap().text, "SELECT of an unknown AID answers `6A82`.");
        assert_eq!(r.get("XFER-8.1-R1").unwrap().prefix, Prefix::Xfer);
        // A statement wrapped over lines is one line; the next ID ends it.
        assert_eq!(r.get("XFER-8.1-R2").unwrap().text, "Flags: bit 0 update key, other bits 0.");
        assert_eq!(r.get("XFER-8.1-R3").unwrap().text, "Slot IDs ascending.");
        assert_eq!(r.get("XFER-8.1-R4").unwrap().text, "Alone on its line.");
    }

    fn err(doc: &str) -> String {
        Requirements::parse("spec.md", doc).unwrap_err().to_string()
    }

    #[test]
    fn duplicates_are_refused_with_both_lines() {
        let e = err("## 6. PURSE\n[PURSE-6-R1] a\n\n[PURSE-6-R1] b\n");
        assert_eq!(e, "spec.md:4: PURSE-6-R1 is defined twice (first at line 2)");
    }

    #[test]
    fn malformed_ids_are_refused() {
        for (doc, why) in [
            ("## 6. P\n[PURSE-6-3] x\n", "'3' is not R<n>"),
            ("## 6. P\n[PURSE-6-R0] x\n", "'R0' is not R<n>"),
            ("## 6. P\n[PURSE-6-R01] x\n", "'R01' is not R<n>"),
            ("## 6. P\n[PURSE-6.1.2-R1] x\n", "section '6.1.2'"),
            ("## 6. P\n[PURSE-R1] x\n", "three parts"),
        ] {
            let e = err(doc);
            assert!(e.starts_with("spec.md:2: '") && e.contains(why), "{doc:?}: {e}");
        }
    }

    #[test]
    fn an_id_must_name_the_section_it_lives_in() {
        assert_eq!(
            err("### 8.2 Modes\n[XFER-8.1-R1] x\n"),
            "spec.md:2: XFER-8.1-R1 is defined in section 8.2: its middle part must be 8.2"
        );
        assert_eq!(
            err("### 7.4 SIGN\n[XFER-7.4-R1] x\n"),
            "spec.md:2: XFER-7.4-R1 is defined in section 7.4, whose requirements are CPAY-*"
        );
        assert!(err("## 12. Notes\n[GEN-12-R1] x\n").contains("in section 12, where no requirement belongs"));
        assert!(err("[GEN-1-R1] x\n").contains("before the first numbered section"));
    }

    #[test]
    fn brackets_that_are_no_id_are_prose() {
        let r = Requirements::parse("spec.md", "## 1. O\n`[x]_32` is [the value] [GENERAL] x [0025]\n").unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn unknown_ids_get_the_nearest_or_their_section() {
        let r = Requirements::parse("spec.md", DOC).unwrap();
        // R1 and R2 are equally near: the section's range is the hint.
        assert_eq!(
            r.unknown("GEN-1.7-R3"),
            "docs/card-spec.md defines no requirement GEN-1.7-R3 (section 1.7 has GEN-1.7-R1 to GEN-1.7-R2)"
        );
        assert_eq!(
            r.unknown("XFER-8.1-R77"),
            "docs/card-spec.md defines no requirement XFER-8.1-R77 (section 8.1 has XFER-8.1-R1 to XFER-8.1-R4)"
        );
        assert_eq!(r.unknown("GEN-1.7-R"), "'GEN-1.7-R' is not a requirement ID: 'R' is not R<n> with n = 1, 2, … (the form is PREFIX-SECTION-R<n>, e.g. XFER-8.1-R3)");
        assert_eq!(
            r.unknown("XFER-8-R2"),
            "docs/card-spec.md defines no requirement XFER-8-R2: did you mean XFER-8-R1?"
        );
        assert!(r.unknown("GEN-4-R1").contains("none in section 4"));
        assert!(r.unknown("gen-1.7-R1").contains("is not a requirement ID"));
    }

    #[test]
    fn the_embedded_spec_parses_and_names_its_sections() {
        let r = Requirements::spec().unwrap_or_else(|e| panic!("{e}"));
        for q in r.all() {
            let top: u32 = q.section.split('.').next().unwrap().parse().unwrap();
            assert_eq!(Prefix::of_section(top), Some(q.prefix), "{}", q.id);
            assert!(!q.text.is_empty(), "{} at line {} has no statement after it", q.id, q.line);
        }
    }
}
