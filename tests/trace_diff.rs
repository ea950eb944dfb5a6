//! `cardbench trace diff`: two batch traces of the certification suite compared command by
//! command.

mod replay_common;

use replay_common::*;

#[test]
fn two_runs_with_different_terminal_randoms_differ_only_under_masks_and_in_timing() {
    let d = tempfile::tempdir().unwrap();
    // Batch IDs seed the terminal's randoms: B1 and B2 sign different S34 randoms.
    let a = batch_trace(d.path(), "logs", "B1", None);
    let b = batch_trace(d.path(), "logs", "B2", None);
    assert_ne!(wire_rows(&a), wire_rows(&b), "the two sessions differ on the wire");
    let o = cardbench(d.path(), &["trace", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains(", 0 differences"), "{out}");
    assert!(!out.contains("DIFF "), "{out}");
    let o = cardbench(d.path(), &["trace", "diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["differences"].as_array().unwrap().len(), 0);
    assert!(j["masked_only"].as_u64().unwrap() > 0, "the randoms' bytes differ under masks: {j}");
    assert_eq!(j["aligned"], j["commands_a"]);
    assert!(j["timing"].as_array().unwrap().iter().all(|t| t["captured_median_ns"].as_u64().unwrap() > 0));
}

#[test]
fn a_defective_card_against_a_good_one_names_the_first_differing_row() {
    let d = tempfile::tempdir().unwrap();
    let good = batch_trace(d.path(), "good", "B1", None);
    let bad = batch_trace(d.path(), "bad", "B1", Some("counter-not-decremented"));
    let (line, _, _) = first_difference(&good, &bad);
    let o = cardbench(d.path(), &["trace", "diff", good.to_str().unwrap(), bad.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let first = out.lines().find(|l| l.starts_with("DIFF ")).unwrap();
    assert!(first.contains(&format!("(A line {line}, B line {line})")), "{first}");
    let o = cardbench(d.path(), &["trace", "diff", good.to_str().unwrap(), bad.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["differences"][0]["line_a"], line, "{j}");

    // A trace that cannot be read: exit 2 with its line.
    std::fs::write(d.path().join("bad.csv"), "run_id,seq\nR,x\n").unwrap();
    let o = cardbench(d.path(), &["trace", "diff", "bad.csv", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.csv:1: no column `wall_time` in the header"), "{}", text(&o));
}
