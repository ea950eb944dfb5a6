//! The terminal side speaks the protocol through `crate::spec`, never through the reference
//! card's code (issue 12 point 6): no module of the engines, plans, runner, replay, timing or
//! TUI names `crate::card`, and the spec itself does not lean on the card.

use std::path::{Path, PathBuf};

/// Terminal-side sources: directories and single files, relative to the crate root.
const TERMINAL: &[&str] = &[
    "src/engine",
    "src/plan",
    "src/runner.rs",
    "src/replay",
    "src/timing",
    "src/tui",
    "src/spec",
    "src/state_read.rs",
];

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if !p.exists() {
        return;
    }
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

fn ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Is `word` in `s` at a path start: not preceded by an identifier character or `:`, and not
/// followed by an identifier character.
fn path_start(s: &str, word: &str, before_ok: impl Fn(Option<char>) -> bool) -> bool {
    s.match_indices(word).any(|(i, _)| {
        let before = s[..i].chars().next_back();
        let after = s[i + word.len()..].chars().next();
        before_ok(before) && !after.is_some_and(ident)
    })
}

/// Whitespace dropped except a single space between two identifiers (`use crate`).
fn normalise(code: &str) -> String {
    let mut out = String::new();
    for w in code.split_whitespace() {
        if out.chars().next_back().is_some_and(ident) && w.chars().next().is_some_and(ident) {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Does this code (comment stripped, normalised) name the card module: a path
/// `crate::card…`, or `card` opening a path inside a `use crate::{…}` group?
fn names_card(compact: &str, in_group: bool) -> bool {
    if path_start(compact, "crate::card", |b| !b.is_some_and(|c| ident(c) || c == ':')) {
        return true;
    }
    let group_part = match compact.find("crate::{") {
        Some(i) => &compact[i + "crate::{".len()..],
        None if in_group => compact,
        None => return false,
    };
    path_start(group_part, "card", |b| b.is_none_or(|c| c == '{' || c == ','))
}

fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for t in TERMINAL {
        rust_files(&root.join(t), &mut files);
    }
    assert!(files.len() >= 30, "found only {} terminal-side sources: list out of date?", files.len());
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut group = false;
        for (n, line) in text.lines().enumerate() {
            let code = normalise(line.split("//").next().unwrap_or(""));
            if names_card(&code, group) {
                let rel = f.strip_prefix(root).unwrap().display();
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
            if code.contains("use crate::{") {
                group = true;
            }
            if code.contains("};") {
                group = false;
            }
        }
    }
    found
}

#[test]
fn terminal_side_never_imports_the_card() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for t in TERMINAL {
        assert!(root.join(t).exists(), "{t} does not exist: update TERMINAL");
    }
    let v = violations(&root);
    assert!(
        v.is_empty(),
        "terminal-side code names crate::card (use crate::spec, or the lab's head API for the simulated card):\n  {}",
        v.join("\n  ")
    );
}

#[test]
fn the_scanner_finds_each_form_of_import() {
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("src/engine");
    std::fs::create_dir_all(&engine).unwrap();
    for n in 0..30 {
        std::fs::write(engine.join(format!("clean{n:02}.rs")), "use crate::spec::codes::*;\n").unwrap();
    }
    std::fs::write(
        engine.join("dirty.rs"),
        "use crate::spec::codes;\n\
         use crate::card::ins::*;\n\
         // use crate::card::ins::*; (a comment)\n\
         use crate::{\n    apdu,\n    card,\n};\n\
         fn f() { let _ = crate::card :: Protocol::T0; }\n\
         use crate::replay::card::TraceCard;\n\
         use crate::{link::Link, card::VirtualCard};\n",
    )
    .unwrap();
    let v = violations(dir.path());
    let lines: Vec<&str> = v.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        ["src/engine/dirty.rs:2", "src/engine/dirty.rs:6", "src/engine/dirty.rs:8", "src/engine/dirty.rs:10"],
        "{v:#?}"
    );
}
