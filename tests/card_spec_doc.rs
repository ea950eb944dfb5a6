//! docs/card-spec.md must keep up with the card: every constant of `src/spec/codes.rs`
//! (instruction bytes, P1 values, perso objects, modes, tags, AIDs, domain tags) must appear
//! in a table row of the spec together with its value, and every status word the card code
//! returns (`sw::NAME` in `src/card/*.rs`) must have a row in the spec's status-word table.
//!
//! The command summary (section 1.5) is checked both ways: its names are those of
//! `cmds::name`, every builder of `src/cmds.rs` (e.g. `perso_status`, "PERSO STATUS") has a
//! row with its CLA, INS, case and P1-P2, and the card answers as the summary says: `6D00` to
//! the other CLA, `6A86` to P1-P2 ≠ `00 00` for commands without parameters, `6985` to
//! applet commands before PERSO LOCK.
//!
//! Parsing is deliberately simple string scanning: table rows are lines starting with `|`,
//! tokens are runs of ASCII letters, digits and `_`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Tokens of a line, upper-cased, with a leading `0X` stripped from hex literals.
fn tokens(line: &str) -> BTreeSet<String> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .map(|t| {
            let u = t.to_ascii_uppercase();
            match u.strip_prefix("0X") {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => u,
            }
        })
        .collect()
}

fn table_rows(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.trim_start().starts_with('|')).collect()
}

/// `pub const NAME: TYPE = VALUE;` items of a Rust source (one statement may span lines).
fn pub_consts(src: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("pub const ") {
        let after = &rest[i + "pub const ".len()..];
        let Some(end) = after.find(';') else { break };
        let stmt = &after[..end];
        rest = &after[end..];
        let (Some(colon), Some(eq)) = (stmt.find(':'), stmt.find('=')) else {
            continue;
        };
        if colon > eq {
            continue;
        }
        let name = stmt[..colon].trim().to_string();
        let ty = stmt[colon + 1..eq].trim().to_string();
        let value = stmt[eq + 1..].trim().to_string();
        out.push((name, ty, value));
    }
    out
}

/// The value as the spec writes it: hex digits (upper case) for integers and byte arrays,
/// the string itself for byte-string literals.
fn spec_value(name: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        let h = h.replace('_', "").to_ascii_uppercase();
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{name}: cannot read hex literal {v:?}"));
        }
        return Ok(if h.len() % 2 == 1 { format!("0{h}") } else { h });
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let mut hex = String::new();
        for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let b = spec_value(name, item)?;
            if b.len() != 2 {
                return Err(format!("{name}: array element {item:?} is not one byte"));
            }
            hex.push_str(&b);
        }
        return Ok(hex);
    }
    if let Some(s) = v.strip_prefix("b\"").and_then(|s| s.strip_suffix('"')) {
        return Ok(s.to_ascii_uppercase());
    }
    Err(format!("{name}: unsupported constant value {v:?} (teach tests/card_spec_doc.rs to read it)"))
}

/// Lines of the section whose heading contains `title` (case-insensitive), up to the next
/// heading of the same or a higher level.
fn section<'a>(text: &'a str, title: &str) -> Option<Vec<&'a str>> {
    let lines: Vec<&str> = text.lines().collect();
    let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
    let start = lines
        .iter()
        .position(|l| l.starts_with('#') && l.to_ascii_lowercase().contains(&title.to_ascii_lowercase()))?;
    let lvl = level(lines[start]);
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with('#') && level(l) <= lvl)
        .map_or(lines.len(), |i| start + 1 + i);
    Some(lines[start + 1..end].to_vec())
}

/// Every `sw::NAME` referenced in the card sources.
fn sw_names_used(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let file = f.file_name().unwrap().to_string_lossy().to_string();
        let mut rest = src.as_str();
        while let Some(i) = rest.find("sw::") {
            let after = &rest[i + 4..];
            let name: String =
                after.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
            if !name.is_empty() {
                let files = used.entry(name).or_default();
                if !files.contains(&file) {
                    files.push(file.clone());
                }
            }
            rest = after;
        }
    }
    used
}

#[test]
fn every_ins_constant_is_in_a_spec_table() {
    let spec = read("docs/card-spec.md");
    let ins = read("src/spec/codes.rs");
    let rows: Vec<BTreeSet<String>> = table_rows(&spec).into_iter().map(tokens).collect();
    let consts = pub_consts(&ins);
    assert!(consts.len() >= 40, "found only {} pub consts in src/spec/codes.rs: parser out of date?", consts.len());
    let mut missing = Vec::new();
    for (name, _ty, value) in &consts {
        let want = match spec_value(name, value) {
            Ok(v) => v,
            Err(e) => {
                missing.push(e);
                continue;
            }
        };
        let found = rows.iter().any(|r| r.contains(&name.to_ascii_uppercase()) && r.contains(&want));
        if !found {
            missing.push(format!(
                "codes.rs constant {name} = {value}: no table row in docs/card-spec.md names it with `{want}`"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/card-spec.md is missing {} constant(s):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn every_status_word_the_card_returns_is_in_the_sw_table() {
    let spec = read("docs/card-spec.md");
    let sw_src = read("src/spec/sw.rs");
    let values: BTreeMap<String, String> = pub_consts(&sw_src)
        .into_iter()
        .filter(|(_, ty, _)| ty == "u16")
        .filter_map(|(n, _, v)| spec_value(&n, &v).ok().map(|v| (n, v)))
        .collect();
    assert!(values.contains_key("OK"), "src/spec/sw.rs: no `pub const OK: u16`");

    let table = section(&spec, "status words")
        .expect("docs/card-spec.md has no section whose heading contains \"Status words\"");
    // The SW is the first cell of its row.
    let first_cells: Vec<BTreeSet<String>> = table
        .iter()
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|l| l.split('|').nth(1).map(tokens))
        .collect();
    let has = |tok: &str| first_cells.iter().any(|c| c.contains(tok));

    let used = sw_names_used(&root().join("src/card"));
    assert!(used.len() >= 5, "found only {} sw:: names in src/card: scanner out of date?", used.len());
    let mut missing = Vec::new();
    for (name, files) in &used {
        match values.get(name) {
            None => missing.push(format!(
                "sw::{name} (used in src/card/{}) is not a u16 constant of src/spec/sw.rs",
                files.join(", src/card/")
            )),
            Some(v) if v.len() != 4 => missing.push(format!("sw::{name} = {v} is not 4 hex digits")),
            Some(v) if !has(v) => missing.push(format!(
                "sw::{name} = {v} (used in src/card/{}) has no row in the status-word table",
                files.join(", src/card/")
            )),
            Some(_) => {}
        }
    }
    // Status words built from literals by the response-delivery rules.
    let card_src: String = ["mod.rs", "purse.rs", "cpay.rs", "xfer.rs", "perso.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join("src/card").join(f)).unwrap_or_default())
        .collect();
    for (literal, row) in [("0x6100", "61XX"), ("0x6C00", "6CXX")] {
        if card_src.contains(literal) && !has(row) {
            missing.push(format!(
                "the card builds {row} ({literal} in src/card) but the status-word table has no `{row}` row"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/card-spec.md status-word table is missing {} entr(y/ies):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn spec_quotes_the_atr_of_both_protocols() {
    use cardbench::card::{Protocol, VirtualCard};
    let spec = read("docs/card-spec.md");
    let compact: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let mut missing = Vec::new();
    for p in [Protocol::T0, Protocol::T1] {
        let atr = hex::encode_upper(VirtualCard::blank(p, Some([0; 32])).atr());
        if !compact.contains(&atr) {
            missing.push(format!("{} ATR {atr}", p.name()));
        }
    }
    assert!(missing.is_empty(), "docs/card-spec.md does not quote: {}", missing.join(", "));
}

#[test]
fn spec_names_every_command() {
    // Names come from `cmds::name`, the one the trace uses, so the spec and the trace agree.
    let spec = read("docs/card-spec.md");
    let ins = read("src/spec/codes.rs");
    let not_ins = ["CLA_", "FIELD_", "MODE_", "TAG_", "PO_", "AID_", "DOM_"];
    let mut missing = Vec::new();
    for (name, ty, value) in pub_consts(&ins) {
        if ty != "u8" || not_ins.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let Ok(hex) = spec_value(&name, &value) else {
            continue;
        };
        let Ok(byte) = u8::from_str_radix(&hex, 16) else {
            continue;
        };
        let label = [0x80u8, 0x00].iter().map(|cla| cardbench::cmds::name(*cla, byte)).find(|n| *n != "UNKNOWN");
        if let Some(label) = label {
            if !spec.contains(label) {
                missing.push(format!("{name} ({hex}): command name \"{label}\""));
            }
        }
    }
    assert!(missing.is_empty(), "docs/card-spec.md never mentions:\n  {}", missing.join("\n  "));
}

/// One row of the spec's command summary (section "Command summary").
struct SummaryRow {
    cla: u8,
    ins: u8,
    name: String,
    applets: Vec<String>,
    case: String,
    p1p2: String,
}

/// Strip the backticks and spaces of a cell like "`80 B0`" or "`00 00`".
fn cell_hex(cell: &str) -> Option<Vec<u8>> {
    let h: String = cell.trim().trim_matches('`').chars().filter(|c| *c != ' ').collect();
    if h.is_empty() || !h.len().is_multiple_of(2) || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    hex::decode(h).ok()
}

fn command_summary(spec: &str) -> Vec<SummaryRow> {
    let lines = section(spec, "command summary")
        .expect("docs/card-spec.md has no section whose heading contains \"Command summary\"");
    let header = lines
        .iter()
        .find(|l| l.trim_start().starts_with("| CLA INS"))
        .expect("command summary: no header row starting with `| CLA INS`");
    let cols: Vec<String> = header.split('|').map(|c| c.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("command summary: no `{name}` column in {header:?}"))
    };
    let (c_name, c_applet, c_case, c_p1p2) = (col("name"), col("applet"), col("case"), col("p1-p2"));
    let mut rows = Vec::new();
    for l in lines.iter().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = l.split('|').collect();
        let Some(head) = cells.get(1).and_then(|c| cell_hex(c)) else {
            continue;
        };
        assert_eq!(head.len(), 2, "command summary row {l:?}: first cell is not `CLA INS`");
        let cell = |i: usize| cells.get(i).map_or("", |c| c.trim()).to_string();
        rows.push(SummaryRow {
            cla: head[0],
            ins: head[1],
            name: cell(c_name),
            applets: cell(c_applet).split(',').map(|a| a.trim().to_string()).collect(),
            case: cell(c_case),
            p1p2: cell(c_p1p2),
        });
    }
    assert!(rows.len() >= 20, "found only {} rows in the command summary: parser out of date?", rows.len());
    rows
}

/// Every builder of `src/cmds.rs`, by name, with one command it builds.
fn builders() -> Vec<(&'static str, cardbench::apdu::Command)> {
    use cardbench::card::ins::*;
    use cardbench::cmds::*;
    vec![
        ("select", select(&AID_PURSE)),
        ("perso_put", perso_put(PO_CARD_ID, &[0; 8])),
        ("perso_status", perso_status()),
        ("perso_lock", perso_lock()),
        ("read_field", read_field(FIELD_ID, 8)),
        ("purse_read_all", purse_read_all()),
        ("purse_write_value", purse_write_value(1, 2)),
        ("purse_write_signature", purse_write_signature(&[0; 64])),
        ("purse_write_certificate", purse_write_certificate(&[0; 10])),
        ("cpay_verify_reader", cpay_verify_reader(&[0; 10])),
        ("cpay_sign", cpay_sign(&[0; 16])),
        ("cpay_debit", cpay_debit(1, 2, &[0; 64])),
        ("xfer_info", xfer_info()),
        ("xfer_certificate", xfer_certificate()),
        ("xfer_update_permission", xfer_update_permission(MODE_COMMON, &[])),
        ("xfer_get_transfer_key", xfer_get_transfer_key(MODE_COMMON, &[0; 16], &[])),
        ("xfer_update_transfer_key", xfer_update_transfer_key(MODE_COMMON, &[0; 68])),
        ("xfer_send_permission", xfer_send_permission(1, 2)),
        ("xfer_receive_permission", xfer_receive_permission(1, 2, &[0; 16])),
        ("xfer_send", xfer_send(&[0; 16], &[0; 16])),
        ("xfer_receive", xfer_receive(&[0; 16])),
        ("xfer_read_state", xfer_read_state(1)),
        ("xfer_cancel_pending", xfer_cancel_pending(&[0; 16])),
        ("xfer_cancel_proof", xfer_cancel_proof(&[0; 40])),
    ]
}

#[test]
fn command_summary_agrees_with_cmds() {
    let spec = read("docs/card-spec.md");
    let rows = command_summary(&spec);
    let mut bad = Vec::new();
    for r in &rows {
        let want = cardbench::cmds::name(r.cla, r.ins);
        if r.name != want {
            bad.push(format!("row `{:02X} {:02X}` says {:?}, cmds::name says {want:?}", r.cla, r.ins, r.name));
        }
    }
    // Every builder is listed here, so a new builder cannot slip past this check.
    let cmds_src = read("src/cmds.rs");
    let declared: BTreeSet<String> = cmds_src
        .match_indices("pub fn ")
        .map(|(i, _)| cmds_src[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .filter(|n: &String| n != "name")
        .collect();
    let built = builders();
    let listed: BTreeSet<String> = built.iter().map(|(n, _)| n.to_string()).collect();
    for n in declared.difference(&listed) {
        bad.push(format!("src/cmds.rs builder `{n}` is not in tests/card_spec_doc.rs `builders()`"));
    }
    for n in listed.difference(&declared) {
        bad.push(format!("`builders()` names `{n}`, which src/cmds.rs does not declare"));
    }
    for (n, c) in &built {
        let Some(r) = rows.iter().find(|r| (r.cla, r.ins) == (c.cla, c.ins)) else {
            bad.push(format!("cmds::{n} builds CLA {:02X} INS {:02X}: no row in the command summary", c.cla, c.ins));
            continue;
        };
        if r.p1p2 == "`00 00`" && (c.p1, c.p2) != (0, 0) {
            bad.push(format!("cmds::{n} builds P1-P2 {:02X} {:02X}, the summary says `00 00`", c.p1, c.p2));
        }
        let case = match (c.data.is_empty(), c.le.is_some()) {
            (true, false) => "1",
            (true, true) => "2",
            (false, false) => "3",
            (false, true) => "4",
        };
        if !r.case.split(" or ").any(|k| k.trim() == case) {
            bad.push(format!("cmds::{n} builds a case-{case} command, the summary says case {}", r.case));
        }
    }
    assert!(bad.is_empty(), "docs/card-spec.md command summary disagrees with src/cmds.rs:\n  {}", bad.join("\n  "));
}

#[test]
fn card_enforces_the_command_summary_cla_p1p2_and_lock() {
    use cardbench::card::ins::{AID_CPAY, AID_PURSE, AID_XFER};
    use cardbench::card::{Protocol, VirtualCard};
    let spec = read("docs/card-spec.md");
    let rows = command_summary(&spec);
    let sw = |card: &mut VirtualCard, apdu: &[u8]| -> u16 {
        let r = card.process(apdu).expect("powered card answers");
        u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
    };
    let fresh = |applet: &str, locked: bool| {
        let mut c = VirtualCard::blank(Protocol::T1, Some([7; 32]));
        c.power_on();
        if locked {
            assert_eq!(sw(&mut c, &[0x80, 0xEE, 0, 0]), 0x9000, "PERSO LOCK");
        }
        let aid = match applet {
            "PURSE" | "all" => AID_PURSE,
            "CPAY" => AID_CPAY,
            "XFER" => AID_XFER,
            other => panic!("command summary: unknown applet {other:?}"),
        };
        let select = [&[0x00, 0xA4, 0x04, 0x00, 0x07][..], &aid].concat();
        assert_eq!(sw(&mut c, &select), 0x9000, "SELECT {applet}");
        c
    };
    let mut bad = Vec::new();
    for r in &rows {
        for applet in &r.applets {
            let tag = format!("`{:02X} {:02X}` {} in {applet}", r.cla, r.ins, r.name);
            // The other CLA of the two this card knows: always 6D00 (section 1.2).
            let other = if r.cla == 0x00 { 0x80 } else { 0x00 };
            let got = sw(&mut fresh(applet, true), &[other, r.ins, 0, 0]);
            if got != 0x6D00 {
                bad.push(format!("{tag}: with CLA {other:02X} answers {got:04X}, not 6D00"));
            }
            // No parameters: anything but 00 00 is 6A86 (section 1.6).
            if r.p1p2 == "`00 00`" {
                for (p1, p2) in [(0x01, 0x00), (0x00, 0x01)] {
                    let got = sw(&mut fresh(applet, true), &[r.cla, r.ins, p1, p2]);
                    if got != 0x6A86 {
                        bad.push(format!("{tag}: P1-P2 {p1:02X} {p2:02X} answers {got:04X}, not 6A86"));
                    }
                }
            }
            // Applet commands wait for LOCK (section 1.6).
            if applet != "all" {
                let got = sw(&mut fresh(applet, false), &[r.cla, r.ins, 0, 0]);
                if got != 0x6985 {
                    bad.push(format!("{tag}: on an unlocked card answers {got:04X}, not 6985"));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "the card does not behave as the command summary of docs/card-spec.md says:\n  {}",
        bad.join("\n  ")
    );
}
