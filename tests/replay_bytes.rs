//! `cardbench replay --mode bytes` on batch traces of the certification suite: a fresh card
//! answers the whole session the same way, a card with a seeded defect is stopped at the
//! first row it answers differently, a bad trace is refused before anything is sent.

mod replay_common;

use cardbench::event::RowKind;
use replay_common::*;
use std::path::Path;

fn replay(dir: &Path, trace: &Path, profile: &str, extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["replay", trace.to_str().unwrap(), "--profile", profile, "--map", "D.peer=P", "--logs", "replays"];
    args.extend_from_slice(extra);
    cardbench(dir, &args)
}

#[test]
fn a_certification_batch_trace_replays_on_fresh_virtual_cards_with_no_divergence() {
    let d = tempfile::tempdir().unwrap();
    let source = batch_trace(d.path(), "logs", "B1", None);
    std::fs::write(d.path().join("replay.toml"), replay_profile(&[])).unwrap();
    let o = replay(d.path(), &source, "replay.toml", &["--run-id", "R1"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("DIVERGED"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("replays/R1/replay.json")).unwrap()).unwrap();
    assert_eq!(json["result"], "match");
    let o = &json["outcome"];
    assert_eq!(o["divergences"], 0);
    assert!(o["commands"].as_u64().unwrap() > 1000, "the whole suite was replayed: {o}");
    assert_eq!(o["matched"], o["commands"], "{o}");
    assert!(o["timing"].as_array().unwrap().iter().any(|t| t["command"] == "VALUE SEND"), "{o}");
    assert_eq!(o["timing_threshold_pct"], 20.0);
    for t in o["timing"].as_array().unwrap() {
        assert!(t["count"].as_u64().unwrap() > 0 && t["captured_median_ns"].as_u64().unwrap() > 0, "{t}");
        assert!(t["flagged"].is_boolean() && t["change_pct"].is_number(), "{t}");
    }
    assert!(out.contains("timing, median wire time per command (captured → replayed; ! beyond 20%)"), "{out}");
    // The replay is traced like any run, naming its source.
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("replays/R1/run.json")).unwrap()).unwrap();
    assert_eq!(run["replay_of"], source.display().to_string());
    let replayed = cardbench::trace::read(&d.path().join("replays/R1/trace.csv")).unwrap();
    let captured = cardbench::trace::read(&source).unwrap();
    let wire = |rows: &[cardbench::event::Exchange]| {
        rows.iter().filter(|r| r.kind.is_wire() && r.protocol_step != "perso").count()
    };
    assert_eq!(wire(&replayed), wire(&captured), "one replayed wire row per captured one");
    assert_eq!(replayed.len(), captured.len(), "the cards' making and the events are traced as captured");
    // The replay's own trace compares with its source row for row.
    let o = cardbench(d.path(), &["trace", "diff", source.to_str().unwrap(), "replays/R1/trace.csv"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(replayed.iter().all(|r| r.head == "D" || r.head == "P" || (r.head.is_empty() && r.kind == RowKind::Step)));
    // The capture's power cuts (tear steps) were reproduced: its in-doubt rows are in doubt
    // again.
    let in_doubt = |rows: &[cardbench::event::Exchange]| rows.iter().filter(|r| r.kind == RowKind::InDoubt).count();
    assert!(in_doubt(&captured) > 0);
    assert_eq!(in_doubt(&replayed), in_doubt(&captured));

    // One card's stream alone: a peer card that a case made and used.
    let peer =
        captured.iter().find(|r| r.head == "D.peer" && r.kind == RowKind::Insert && r.test_step != "insert").unwrap();
    let o = replay(d.path(), &source, "replay.toml", &["--run-id", "R1c", "--card", &peer.card_id, "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("replays/R1c/replay.json")).unwrap()).unwrap();
    let of_card = captured
        .iter()
        .filter(|r| r.card_id == peer.card_id && r.kind == RowKind::Command && r.protocol_step != "perso")
        .count() as u64;
    assert!(of_card > 0);
    assert_eq!(json["outcome"]["commands"].as_u64().unwrap(), of_card, "{json}");
    let replayed = cardbench::trace::read(&d.path().join("replays/R1c/trace.csv")).unwrap();
    assert!(replayed.iter().all(|r| r.head == "P" || r.head.is_empty()), "only the peer head's stream");
}

#[test]
fn a_card_with_a_seeded_defect_stops_the_replay_at_the_first_diverging_row() {
    let d = tempfile::tempdir().unwrap();
    let good = batch_trace(d.path(), "good", "B1", None);
    // The same batch (same terminal randoms) on a card with the defect: where its trace first
    // differs is where a replay must stop.
    let bad = batch_trace(d.path(), "bad", "B1", Some("counter-not-decremented"));
    let (line, expected, actual) = first_difference(&good, &bad);
    std::fs::write(d.path().join("defective.toml"), replay_profile(&["counter-not-decremented"])).unwrap();
    let o = replay(d.path(), &good, "defective.toml", &["--run-id", "R2"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("DIVERGED").count(), 1, "stops at the first divergence: {out}");
    assert!(out.contains(&format!("trace.csv:{line} ")), "names line {line}: {out}");
    let spaced = |hex: &str| -> Vec<String> {
        hex.as_bytes().chunks(2).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect()
    };
    // The hex diff: `OFFSET expected …` / `OFFSET actual …` lines, 16 bytes each.
    let printed = |side: &str| {
        out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(side))
            .flat_map(|l| l.split_whitespace().skip(2).map(|b| b.trim_matches(['[', ']']).to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(printed("actual"), spaced(&actual), "{out}");
    let exp = printed("expected");
    assert_eq!(exp.len(), spaced(&expected).len());
    for (e, want) in exp.iter().zip(spaced(&expected)) {
        assert!(*e == want || e == "??", "{out}");
    }
    assert!(out.contains(&format!("stopped at line {line}")), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("replays/R2/replay.json")).unwrap()).unwrap();
    assert_eq!(json["result"], "diverged");
    assert_eq!(json["outcome"]["divergence_rows"][0]["line"], line);

    // --keep-going goes past it and reports every divergence.
    let o = replay(d.path(), &good, "defective.toml", &["--run-id", "R3", "--keep-going", "-q"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.matches("DIVERGED").count() > 1, "{out}");
}

#[test]
fn a_trace_with_a_bad_field_is_refused_with_its_line_before_anything_is_sent() {
    let d = tempfile::tempdir().unwrap();
    let source = batch_trace(d.path(), "logs", "B1", None);
    let text_in = std::fs::read_to_string(&source).unwrap();
    let mut lines: Vec<String> = text_in.lines().map(str::to_string).collect();
    // Line 40 of the file: its `sw` field made bad.
    let row = &lines[39];
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(row.as_bytes());
    let mut fields: Vec<String> = r.records().next().unwrap().unwrap().iter().map(str::to_string).collect();
    fields[11] = "90X0".into();
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&fields).unwrap();
    lines[39] = String::from_utf8(w.into_inner().unwrap()).unwrap().trim_end().to_string();
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    std::fs::write(d.path().join("replay.toml"), replay_profile(&[])).unwrap();
    let o = replay(d.path(), &bad, "replay.toml", &["--run-id", "R4"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("bad.csv:40: sw `90X0` is not 4 hex digits"), "{out}");
    assert!(!d.path().join("replays/R4").exists(), "nothing ran");

    // A trace head the profile does not have, unmapped: refused, naming it.
    let o = cardbench(d.path(), &["replay", source.to_str().unwrap(), "--profile", "replay.toml", "--logs", "replays"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("trace head 'D.peer' is not a head of the profile: map it with --map D.peer=HEAD"), "{out}");
    let o = replay(d.path(), &source, "replay.toml", &["--map", "D=nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--map D=nowhere: the profile has no head or role 'nowhere'"), "{}", text(&o));
}

/// The same batch trace in session mode (tests/replay_session.rs has the rest): the suite's
/// steps re-run through the engines, every row matches.
#[test]
fn session_mode_replays_the_batch_trace_too() {
    let d = tempfile::tempdir().unwrap();
    let source = batch_trace(d.path(), "logs", "B1", None);
    std::fs::write(d.path().join("replay.toml"), replay_profile(&[])).unwrap();
    let o = replay(d.path(), &source, "replay.toml", &["--mode", "session", "--run-id", "S1"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("(session): ") && out.contains(" 0 diverged, 0 not re-run"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("replays/S1/replay.json")).unwrap()).unwrap();
    assert_eq!((json["mode"].as_str(), json["result"].as_str()), (Some("session"), Some("match")));
}
