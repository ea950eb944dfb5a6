//! The standard conformance suite (test-plans/certification.toml on profiles/cert-lab.toml):
//! green on every reference DUT, and every seeded card defect (`card::defects::Defect`) is
//! caught by the cases the matrix below names (docs/defects.md, column "caught by").

use cardbench::card::defects::{Defect, Defects};
use cardbench::event::Recorder;
use cardbench::lab::Lab;
use cardbench::plan::Plan;
use cardbench::report::{CaseResult, CaseStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

const PROFILE: &str = "profiles/cert-lab.toml";
const SUITE: &str = "test-plans/certification.toml";
const PLANS: &[&str] = &[
    "test-plans/general.toml",
    "test-plans/purse.toml",
    "test-plans/cpay.toml",
    "test-plans/xfer-keys.toml",
    "test-plans/xfer-transfer.toml",
    "test-plans/xfer-settle.toml",
    "test-plans/tear-cases.toml",
    "test-plans/robustness.toml",
    "test-plans/certification.toml",
];

/// Defect → the cases that must catch it (each must be among the failed cases when the DUT
/// carries only that defect). Keep in step with docs/defects.md, column "caught by".
const MATRIX: &[(&str, &[&str])] = &[
    // GEN (card-spec 1-5)
    ("cpay-xfer-aids-swapped", &["GEN-AID-01"]),
    ("read-all-in-every-applet", &["GEN-AID-01", "GEN-ORD-02"]),
    ("select-keeps-ram", &["GEN-SEL-03", "GEN-SEL-04", "GEN-SEL-05"]),
    ("select-unknown-aid-deselects", &["GEN-SEL-01"]),
    ("select-p2-unchecked", &["GEN-SEL-02"]),
    ("select-partial-aid", &["GEN-SEL-01"]),
    ("select-returns-fci", &["GEN-AID-01"]),
    ("select-inside-applet", &["GEN-AID-01", "GEN-SEL-01"]),
    ("reset-keeps-selection", &["GEN-RST-01", "GEN-ORD-01", "GEN-CLA-01"]),
    ("reset-keeps-get-response", &["GEN-RST-01", "GEN-GR-02"]),
    ("unknown-cla-6d00", &["GEN-CLA-01"]),
    ("cla-not-bound", &["GEN-ORD-02", "GEN-RAM-05"]),
    ("perso-any-cla", &["GEN-ORD-01", "GEN-ORD-02"]),
    ("perso-needs-applet", &["GEN-ORD-01", "GEN-PERSO-01"]),
    ("no-applet-6d00", &["GEN-RST-01", "GEN-ORD-01"]),
    ("unknown-ins-before-p1p2", &["GEN-ORD-02"]),
    ("unknown-ins-6a81", &["GEN-AID-01", "GEN-ORD-02"]),
    ("refusal-with-data", &["GEN-AID-01", "GEN-ORD-02"]),
    ("get-response-needs-applet", &["GEN-ORD-01"]),
    ("unparsable-clears-get-response", &["GEN-GR-02"]),
    ("lenient-apdu-parse", &["GEN-GR-02", "GEN-PARSE-01"]),
    ("get-response-not-cleared", &["GEN-GR-02", "GEN-CLA-01"]),
    ("extended-apdu-6700", &["GEN-EXT-01"]),
    ("get-response-empty-9000", &["GEN-AID-01", "GEN-GR-01"]),
    ("get-response-short-9000", &["GEN-GR-01"]),
    ("get-response-p1p2-unchecked", &["GEN-GR-01"]),
    ("get-response-drops-rest", &["GEN-GR-01"]),
    ("get-response-data-6700", &["GEN-GR-01"]),
    ("case1-data-no-61xx", &["GEN-GR-01", "GEN-GR-02"]),
    ("t0-case4-empty-6100", &["GEN-AID-01"]),
    ("t0-wrong-le-no-6c", &["GEN-DLV-01"]),
    ("t0-exact-le-61xx", &["GEN-EXT-01", "GEN-DLV-01"]),
    ("long-response-truncated", &["PURSE-CHG-01"]),
    ("pso-keeps-nonce", &["GEN-RAM-02"]),
    ("refused-command-clears-ram", &["GEN-RAM-05"]),
    ("send-log-in-ram", &["GEN-NVM-01"]),
    ("receive-permission-refusal-stores", &["GEN-NVM-01"]),
    ("lock-checks-locked-first", &["GEN-PERSO-01"]),
    ("relock-accepted", &["GEN-PERSO-01"]),
    ("perso-status-p1p2-unchecked", &["GEN-PERSO-01"]),
    ("perso-status-inverted", &["GEN-PERSO-01"]),
    ("perso-put-object-checked-first", &["GEN-PERSO-01"]),
    // PURSE
    ("counter-not-decremented", &["PURSE-CHG-01", "PURSE-CTR-01", "PURSE-ATOM-01", "PURSE-EXH-01"]),
    ("counter-decremented-twice", &["PURSE-CHG-01", "PURSE-CTR-01", "PURSE-ATOM-01"]),
    ("counter-wraps", &["PURSE-EXH-01"]),
    ("counter-settable-after-lock", &["PURSE-CTR-SET-01"]),
    ("counter-decremented-on-refused-write", &["PURSE-CTR-SET-01"]),
    ("read-all-rejects-data", &["PURSE-READ-01"]),
    ("read-all-date-before-amount", &["PURSE-CHG-01", "PURSE-ATOM-01"]),
    ("read-all-pads-empty-signature", &["PURSE-BLANK-01", "PURSE-CHG-01"]),
    ("read-all-truncated-at-256", &["PURSE-CHG-01", "PURSE-CTR-01", "PURSE-ATOM-01", "PURSE-EXH-01"]),
    ("read-field-date-before-amount", &["PURSE-READ-01", "PURSE-ATOM-01"]),
    ("read-field-p2-ignored", &["PURSE-READ-01"]),
    ("read-field-empty-area-zeros", &["PURSE-BLANK-01"]),
    ("write-value-exhaustion-checked-first", &["PURSE-EXH-01"]),
    ("write-value-answers-old-counter", &["PURSE-CHG-01", "PURSE-CTR-01", "PURSE-ATOM-01"]),
    ("write-value-clears-signature", &["PURSE-PAY-01"]),
    ("write-signature-any-length", &["RB-PURSE-WS-01", "PURSE-CHG-01"]),
    ("write-signature-into-certificate-area", &["PURSE-CHG-01"]),
    ("write-certificate-accepts-empty", &["PURSE-WRITE-01"]),
    ("write-certificate-parsed", &["PURSE-WRITE-01"]),
    // CPAY
    ("cpay-reader-signature-unchecked", &["CPAY-CERT-01"]),
    ("cpay-reader-role-unchecked", &["CPAY-ROLE-01"]),
    ("cpay-signs-zero-random", &["CPAY-PAY-01", "CPAY-REPLAY-01"]),
    ("cpay-nonce-reusable", &["CPAY-DEBIT-01", "CPAY-REPLAY-01"]),
    ("cpay-debit-signature-unchecked", &["CPAY-DEBIT-01"]),
    ("cpay-read-field-purse-value", &["CPAY-PAY-01", "CPAY-SIGN-01"]),
    ("cpay-read-field-counter", &["CPAY-SIGN-01"]),
    ("cpay-pso-clears-before-p1p2", &["CPAY-PSO-01"]),
    ("cpay-refused-pso-keeps-reader", &["CPAY-ROLE-01", "CPAY-PSO-01"]),
    ("cpay-pso-unparsable-6982", &["CPAY-CERT-01", "CPAY-PSO-01"]),
    ("cpay-reader-single-use", &["CPAY-REPLAY-01"]),
    ("cpay-reader-expiry-checked", &["CPAY-EXP-01"]),
    ("cpay-sign-reader-checked-first", &["CPAY-LEN-01"]),
    ("cpay-sign-without-reader", &["CPAY-SEQ-01", "CPAY-LEN-01"]),
    ("cpay-sign-amount-before-date", &["CPAY-PAY-01", "CPAY-SIGN-01"]),
    ("cpay-nonce-not-replaced", &["CPAY-SIGN-01"]),
    ("cpay-debit-nonce-consumed-by-bad-length", &["CPAY-LEN-01"]),
    ("cpay-debit-zero-price", &["CPAY-ZERO-01"]),
    ("cpay-debit-keeps-date", &["CPAY-PAY-01"]),
    ("cpay-nonce-kept-on-value-refusal", &["CPAY-OVER-02", "CPAY-ZERO-01"]),
    // XFER key update
    ("update-permission-reusable", &["KU-TK-EQ-01", "KU-STALE-01"]),
    ("update-random-unchecked", &["KU-STALE-01"]),
    ("tkid-range-unchecked", &["KU-TK-EQ-01", "KU-TK-LOW-01", "KU-TK-EQ-02", "KU-TK-ABOVE-01"]),
    ("tkid-accepts-current", &["KU-TK-EQ-01", "KU-TK-EQ-02"]),
    ("tkid-limit-off-by-one", &["KU-TK-ABOVE-01"]),
    ("ukid-limit-unchecked", &["KU-UK-EQ-01"]),
    ("peer-cert-unchecked", &["KU-CERT-FORGED-01"]),
    ("multi-key-unauthenticated", &["KU-MULTI-PLAIN-01"]),
    // XFER value transfer
    // The GEN cases' wrong challenges debit such a card first: the debit they leave blocks
    // XFER-CHAL-01 and XFER-KEYS-01 (state drift), so the GEN cases are the root causes.
    ("send-challenge-unchecked", &["GEN-SEL-01", "GEN-SEL-05", "GEN-RAM-04"]),
    ("debit-at-send-permission", &["XFER-TENT-01", "XFER-CHAL-01", "XFER-OVF-02"]),
    ("credit-at-receive-permission", &["KU-KEYCHECK-01"]),
    ("challenge-omits-date", &["XFER-CONS-01", "XFER-CONS-02", "XFER-TENT-01"]),
    ("overdraft-allowed", &["XFER-INSUF-01"]),
    ("balance-cap-unchecked", &["GEN-NVM-01"]),
    ("validity-ignored", &["RB-XFER-SEND-01", "RB-XFER-RECV-01"]),
    ("pending-credit-overwritten", &["XFER-PEND-01"]),
    ("receive-replay", &["XFER-CONS-02"]),
    ("cancel-proof-unchecked", &["XFER-CHAL-02", "XFER-RECOVER-03"]),
    ("cpay-overdraft", &["CPAY-OVER-02"]),
    // XFER requirement matrix (card-spec §8-§9)
    ("info-slot-ids-padded", &["KU-INFO-01"]),
    ("info-cert-is-cpay-cert", &["KU-INFO-01"]),
    ("info-card-id-serial-only", &["KU-INFO-01"]),
    ("info-limits-swapped", &["KU-INFO-01"]),
    ("info-flags-shifted", &["KU-INFO-01"]),
    ("p2-ignored-by-info-and-read-state", &["KU-INFO-01", "XFER-INFO-01"]),
    ("reads-end-send-session", &["XFER-TENT-01", "XFER-SEND-02"]),
    ("transport-aad-without-mode", &["KU-PERM-01", "KU-TK-EQ-01"]),
    ("xfer-randoms-constant", &["KU-PERM-01", "KU-GTK-01", "KU-REPLAY-01", "XFER-SEND-01"]),
    ("transport-signature-without-random", &["KU-AUTO-02", "KU-PUB-02", "KU-ROLL-02"]),
    ("permission-dropped-before-mode-check", &["KU-PERM-01", "KU-UPD-01"]),
    ("permission-kept-on-refusal", &["KU-PERM-01", "KU-CERT-FORGED-01"]),
    ("cert-parse-error-6982", &["KU-PERM-01", "KU-GTK-01"]),
    ("key-update-lengths-lenient", &["KU-PERM-01", "KU-GTK-01"]),
    ("permission-mode-not-bound", &["KU-UPD-01"]),
    ("multi-blob-carries-key", &["KU-GTK-01", "KU-MULTI-03"]),
    ("transfer-key-mode-unchecked", &["KU-GTK-01"]),
    ("transfer-key-clears-permission", &["KU-GTK-01"]),
    ("update-public-min-length-64", &["KU-UPD-01"]),
    ("update-signature-unchecked", &["KU-UPD-01"]),
    ("update-decrypt-error-6a80", &["KU-UPD-01"]),
    ("multi-moves-id-only", &["KU-MULTI-02"]),
    ("multi-key-not-loaded", &["KU-KEYCHECK-02"]),
    ("send-session-kept-on-refusal", &["XFER-SEND-01"]),
    ("transfer-lengths-lenient", &["RB-XFER-SEND-01", "RB-XFER-RECV-01", "RB-XFER-CP-01"]),
    ("zero-transfer-allowed", &["GEN-RAM-04", "GEN-NVM-01"]),
    ("send-log-drops-newest", &["XFER-SEND-01"]),
    ("send-length-checked-after-session", &["XFER-SEND-01"]),
    ("send-session-kept-on-bad-challenge", &["XFER-CHAL-01", "XFER-SEND-01"]),
    ("last-debit-not-recorded", &["XFER-CONS-01", "XFER-TENT-01"]),
    ("receive-answers-old-balance", &["XFER-CONS-02"]),
    ("no-credit-status-swapped", &["XFER-SEQ-01", "XFER-CHAL-02"]),
    ("bad-challenge-clears-credit", &["XFER-CHAL-02"]),
    ("pending-state-randoms-swapped", &["KU-KEYCHECK-01", "XFER-CONS-01"]),
    ("last-debit-state-without-challenge", &["XFER-TENT-01"]),
    ("read-state-empty-zeros", &["KU-INFO-01"]),
    ("cancel-does-not-clear-credit", &["KU-KEYCHECK-01", "XFER-CONS-01"]),
    ("cancel-proof-without-tag", &["XFER-CHAL-01", "XFER-RECOVER-02", "XFER-PROOF-01"]),
    ("cancel-proof-unknown-session", &["XFER-PROOF-01", "XFER-SEND-01"]),
    ("cancel-proof-ignores-amount", &["XFER-PROOF-01", "XFER-SEND-02"]),
    ("cancel-proof-for-debited", &["XFER-SEND-02"]),
    ("cancel-proof-keeps-session", &["XFER-PROOF-01"]),
    ("cancel-proof-once", &["XFER-PROOF-01", "XFER-SEND-01"]),
    ("send-session-kept-after-debit", &["XFER-SEND-02"]),
    ("send-permission-keeps-first-session", &["XFER-SEND-01"]),
    ("send-session-survives-select", &["XFER-SEQ-01", "XFER-SEND-01"]),
    ("pending-credit-in-ram", &["XFER-TENT-02"]),
];

/// Defects no plan can catch with the current plan language, with the reason. The matrix
/// test asserts that they are indeed not caught, so an entry must move to `MATRIX` as soon
/// as a case can catch it.
const LANGUAGE_GAPS: &[(&str, &str)] = &[];

/// Defects that make the card stop answering (docs/defects.md, "A mute card"). No case can
/// fail on them: the first case that meets the silence must be an error naming the mute card,
/// and nothing more is run on that card (every later case not run), so a batch says
/// `aborted` and goes on.
const MUTE: &[&str] = &["mute-after-select"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab() -> Lab {
    let loaded = cardbench::profile::load(&root().join(PROFILE)).expect("cert-lab profile loads");
    Lab::from_profile(&loaded).expect("cert-lab builds")
}

fn suite() -> Plan {
    cardbench::plan::load(&root().join(SUITE)).expect("certification plan loads")
}

/// Run the suite on the lab's first DUT head, after `prepare` changed the lab.
fn run_suite(plan: &Plan, prepare: impl FnOnce(&mut Lab)) -> Vec<CaseResult> {
    let mut lab = lab();
    prepare(&mut lab);
    plan.bind(|n| lab.head_index(n).is_some()).expect("plan binds to the lab");
    let clock = lab.clock.expect("cert-lab fixes the clock");
    cardbench::runner::run_plan(plan, &mut lab.heads, &Recorder::disabled(), &lab.keyset, clock, [0u8; 32])
}

fn with_defects(lab: &mut Lab, head: &str, d: Defects) {
    let i = lab.head_index(head).unwrap_or_else(|| panic!("no head {head}"));
    lab.heads[i].head.as_virtual().expect("virtual head").card_mut().expect("card in the head").set_defects(d);
}

fn not_passed(results: &[CaseResult]) -> Vec<&CaseResult> {
    results.iter().filter(|r| !matches!(r.status, CaseStatus::Passed)).collect()
}

fn describe(results: &[&CaseResult]) -> String {
    results.iter().map(|r| format!("  {} {:?}: {}", r.id, r.status, r.message)).collect::<Vec<_>>().join("\n")
}

fn failing_ids(results: &[CaseResult]) -> BTreeSet<String> {
    not_passed(results).iter().map(|r| r.id.clone()).collect()
}

#[test]
fn certification_passes_on_the_reference_dut() {
    let plan = suite();
    let results = run_suite(&plan, |_| {});
    assert_eq!(results.len(), plan.cases.len());
    let bad = not_passed(&results);
    assert!(bad.is_empty(), "reference DUT D1 must pass every case:\n{}", describe(&bad));
}

#[test]
fn certification_passes_on_every_dut_head_of_the_lab() {
    // Role "dut" resolves to the first DUT head: drop the ones before to certify D2 and D3.
    let plan = suite();
    for (dropped, head) in [(&["D1"][..], "D2"), (&["D1", "D2"][..], "D3")] {
        let results = run_suite(&plan, |lab| {
            lab.heads.retain(|h| !dropped.contains(&h.name.as_str()));
            assert_eq!(lab.heads[lab.head_index("dut").unwrap()].name, head);
        });
        let bad = not_passed(&results);
        assert!(bad.is_empty(), "reference DUT {head} must pass every case:\n{}", describe(&bad));
    }
}

#[test]
fn every_seeded_defect_is_caught_by_the_cases_of_the_matrix() {
    let plan = suite();
    let ids: BTreeSet<&str> = plan.cases.iter().map(|c| c.id.as_str()).collect();
    // The table covers every defect exactly once and names real cases.
    let mut named: Vec<&str> = MATRIX
        .iter()
        .map(|(d, _)| *d)
        .chain(LANGUAGE_GAPS.iter().map(|(d, _)| *d))
        .chain(MUTE.iter().copied())
        .collect();
    named.sort_unstable();
    let mut all: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
    all.sort_unstable();
    assert_eq!(named, all, "MATRIX + LANGUAGE_GAPS + MUTE must name every Defect once");
    for (d, cases) in MATRIX {
        assert!(!cases.is_empty(), "{d}: no catching case named");
        for c in *cases {
            assert!(ids.contains(c), "{d}: '{c}' is not a case of the suite");
        }
    }
    let expected: BTreeMap<&str, &[&str]> = MATRIX.iter().copied().collect();
    let mut problems = Vec::new();
    let mut observed = Vec::new();
    for d in Defect::ALL {
        let results = run_suite(&plan, |lab| with_defects(lab, "D1", Defects::from(*d)));
        if MUTE.contains(&d.name()) {
            problems.extend(mute_problems(&plan, d.name(), &results));
            continue;
        }
        let failed = failing_ids(&results);
        // A defective card must fail cases, never make the bench error: an error would make
        // a batch verdict "aborted" instead of "fail" (docs/batch.md).
        for r in results.iter().filter(|r| r.status == CaseStatus::Error) {
            problems.push(format!("{}: case {} is an error, not a failure: {}", d.name(), r.id, r.message));
        }
        observed.push(format!("{:<38} {}", d.name(), failed.iter().cloned().collect::<Vec<_>>().join(", ")));
        problems.extend(requirement_problems(*d, &plan, &results));
        match expected.get(d.name()) {
            Some(want) => {
                if failed.is_empty() {
                    problems.push(format!("{}: not caught by any case", d.name()));
                }
                for c in *want {
                    if !failed.contains(*c) {
                        problems.push(format!("{}: expected {c} to fail", d.name()));
                    }
                    // A catching case fails on its own: a knock-on of another case's failure
                    // is blocked by it (its `needs`), and the matrix names root causes only.
                    if let Some(r) = results.iter().find(|r| r.id == *c && r.status == CaseStatus::Blocked) {
                        problems.push(format!("{}: {c} is {}, not a failure of its own", d.name(), r.message));
                    }
                }
            }
            None => {
                if !failed.is_empty() {
                    problems.push(format!(
                        "{}: listed as a language gap but caught by {:?}: move it to MATRIX",
                        d.name(),
                        failed
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}\n\nobserved failures per defect:\n{}", problems.join("\n"), observed.join("\n"));
}

/// What is wrong with the suite's results on a mute DUT: every case passes until one errs
/// on the silent card, and every later case that talks to the DUT is not run (a case on the
/// peer alone still runs, and passes).
fn mute_problems(plan: &Plan, name: &str, results: &[CaseResult]) -> Vec<String> {
    let uses_dut = |id: &str| {
        plan.cases.iter().filter(|c| c.id == id).flat_map(|c| &c.steps).any(|s| s.kind.heads().contains(&"dut"))
    };
    let Some(first) = results.iter().position(|r| r.status != CaseStatus::Passed) else {
        return vec![format!("{name}: every case passed on a card that stops answering")];
    };
    let mut problems = Vec::new();
    let e = &results[first];
    if e.status != CaseStatus::Error || !e.message.contains("mute") {
        problems.push(format!("{name}: {} is {:?} ({}), not an error naming the mute card", e.id, e.status, e.message));
    }
    for r in &results[first + 1..] {
        let want = if uses_dut(&r.id) { CaseStatus::NotRun } else { CaseStatus::Passed };
        if r.status != want {
            problems
                .push(format!("{name}: {} after the mute card is {:?}, not not-run: {}", r.id, r.status, r.message));
        }
    }
    problems
}

#[test]
fn every_case_has_an_id_title_reference_and_tags_in_suite_order() {
    let plan = suite();
    assert_eq!(plan.roles.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), ["dut", "peer"]);
    let mut prefixes: Vec<&str> = Vec::new();
    for c in &plan.cases {
        let parts: Vec<&str> = c.id.split('-').collect();
        let well_formed = parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|x| x.is_ascii_uppercase() || x.is_ascii_digit()))
            && parts.last().is_some_and(|n| n.len() == 2 && n.chars().all(|x| x.is_ascii_digit()));
        assert!(well_formed, "case id '{}' is not PLAN-TOPIC-NN", c.id);
        assert!(!c.title.is_empty(), "{}: no title", c.id);
        assert!(
            c.reference.contains("000 ") || c.reference.contains("002 ") || c.reference.contains("card-spec"),
            "{}: ref '{}' names no seed step or card-spec section",
            c.id,
            c.reference
        );
        assert!(!c.tags.is_empty(), "{}: no tags", c.id);
        if prefixes.last() != Some(&parts[0]) {
            prefixes.push(parts[0]);
        }
    }
    assert_eq!(
        prefixes,
        ["GEN", "PURSE", "CPAY", "KU", "XFER", "TEAR", "RB", "CERT"],
        "include order: general, purse, cpay, keys, transfer, tear, robustness"
    );
}

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(root());
    c
}

#[test]
fn check_accepts_every_plan_of_the_suite() {
    let loaded = cardbench::profile::load(&root().join(PROFILE)).unwrap();
    let lab = Lab::from_profile(&loaded).unwrap();
    for p in PLANS {
        let plan = cardbench::plan::load(&root().join(p)).unwrap_or_else(|e| panic!("{e}"));
        plan.bind(|n| lab.head_index(n).is_some()).unwrap_or_else(|e| panic!("{e}"));
        let out = bin().args(["check", p, "--profile", PROFILE]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{p}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("is valid"), "{stdout}");
    }
}

/// The suite copied into a temporary directory with one line changed in `file`.
fn suite_with_typo(dir: &Path, file: &str, from: &str, to: &str) -> (PathBuf, usize) {
    let mut typo_line = 0;
    for p in PLANS {
        let name = Path::new(p).file_name().unwrap().to_str().unwrap();
        let mut text = std::fs::read_to_string(root().join(p)).unwrap();
        if name == file {
            assert!(text.contains(from), "{file} has no '{from}'");
            text = text.replacen(from, to, 1);
            typo_line = text.lines().position(|l| l.contains(to)).unwrap() + 1;
        }
        std::fs::write(dir.join(name), text).unwrap();
    }
    (dir.join("certification.toml"), typo_line)
}

#[test]
fn a_typo_anywhere_in_the_suite_is_refused_with_file_line_col_before_any_card_is_touched() {
    let cases = [
        ("xfer-keys.toml", "do = \"insert_card\"", "do = \"insert_crad\"", "unknown step kind 'insert_crad'"),
        ("general.toml", "capture = { s0 = \"sw\"", "capture = { s0 = \"sw2\"", "capture 's0'"),
        ("purse.toml", "command = \"80 B2 01 00 08\"", "command = \"80 B2 01 00 0G\"", "'G' is not a hex digit"),
        ("cpay.toml", "sw = \"6986\"", "sw = \"698\"", "sw must be 4 hex digits"),
        ("xfer-transfer.toml", "capture = { rs = \"hex\" }", "capture = { rs = \"u64@0\" }", "capture 'rs'"),
        ("xfer-settle.toml", "engine = \"settle\"", "engine = \"setle\"", "unknown engine 'setle'"),
        ("xfer-keys.toml", "that = \"a.tkid == d.tkid\"", "that = \"a.tkid == d.tkidd\"", "uses 'd.tkidd'"),
        ("purse.toml", "head = \"dut\"", "head = \"dtu\"", "no head or role 'dtu'"),
        ("certification.toml", "message = \"no transfer", "mesage = \"no transfer", "unknown field `mesage`"),
        ("xfer-transfer.toml", "expect = \"completed\"", "expect = \"complete\"", "recover expect 'complete'"),
        ("xfer-transfer.toml", "heads = [\"peer\", \"dut\"]", "heads = [\"peer\", \"peer\"]", "two different heads"),
        ("xfer-transfer.toml", "heads = [\"dut\", \"peer\"]", "heads = [\"dut\", \"peer\", \"x\"]", "one or two heads"),
    ];
    for (file, from, to, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let (plan, line) = suite_with_typo(dir.path(), file, from, to);
        let located = format!("{}:{line}:", dir.path().join(file).display());
        for cmd in ["check", "run"] {
            let mut c = bin();
            c.args([cmd, plan.to_str().unwrap(), "--profile", PROFILE]);
            if cmd == "run" {
                c.arg("--logs").arg(logs.path());
            }
            let out = c.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with '{to}': {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains(&located), "{cmd}: '{to}' should be located at {located}...: {err}");
            let col: String =
                err[err.find(&located).unwrap() + located.len()..].chars().take_while(char::is_ascii_digit).collect();
            assert!(col.parse::<usize>().is_ok_and(|c| c >= 1), "{cmd}: column after {located}: {err}");
            assert!(err.contains(needle), "{cmd}: expected '{needle}' in: {err}");
        }
        assert_eq!(std::fs::read_dir(logs.path()).unwrap().count(), 0, "'{to}': no run folder, no trace, no APDU");
    }
}

/// The batch acceptance of the plans-and-batch issue, at half size: the virtual lab's batch
/// with its seeded defects across three DUT heads; the summary CSV and the JUnit XML name
/// exactly the defective cards, each with a case that catches its defect.
#[test]
fn virtual_lab_batch_names_exactly_the_defective_cards() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "batch",
            "--profile",
            "profiles/virtual-lab.toml",
            "--plan",
            SUITE,
            "--batch-id",
            "B1",
            "--count",
            "100",
            "-q",
        ])
        .arg("--logs")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // The profile's defect rules: card i carries `defects` when i % every == offset.
    let profile: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("profiles/virtual-lab.toml")).unwrap()).unwrap();
    let rules: Vec<(i64, i64, String)> = profile["batch"]["defect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let d = r["defects"].as_array().unwrap();
            assert_eq!(d.len(), 1, "one defect per rule keeps the expectation exact");
            (r["every"].as_integer().unwrap(), r["offset"].as_integer().unwrap(), d[0].as_str().unwrap().to_string())
        })
        .collect();
    let matrix: BTreeMap<&str, &[&str]> = MATRIX.iter().copied().collect();
    let mut r = csv::Reader::from_path(dir.path().join("B1/summary.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 100);
    let heads: BTreeSet<&str> = rows.iter().map(|x| &x[3]).collect();
    assert!(heads.len() >= 3, "at least three DUT heads in parallel: {heads:?}");
    let mut defective = 0;
    for row in &rows {
        let i: i64 = row[1].parse().unwrap();
        let defect = rules.iter().find(|(every, offset, _)| i % every == *offset).map(|(_, _, d)| d.as_str());
        match defect {
            None => assert_eq!((&row[4], &row[5]), ("pass", ""), "card {i} carries no defect"),
            Some(d) => {
                defective += 1;
                assert_eq!(&row[4], "fail", "card {i} carries {d}");
                let failing: BTreeSet<&str> = row[5].split(';').collect();
                let catchers = matrix[d];
                assert!(
                    catchers.iter().any(|c| failing.contains(c)),
                    "card {i} ({d}): failing {failing:?}, catchers {catchers:?}"
                );
            }
        }
    }
    assert_eq!(defective, rules.len(), "every seeded defect appears once in 100 cards");
    let junit = std::fs::read_to_string(dir.path().join("B1/junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 100);
    let failed_suites = junit.split("<testsuite ").skip(1).filter(|s| s.contains("<failure ")).count();
    assert_eq!(failed_suites, defective, "JUnit names the same cards");
}

// ---- The requirement ↔ defect ↔ case matrix (issue 12) ----

/// A defect's `violates` proven by the suite: for each requirement it breaks, a case that
/// `verifies` that requirement fails on its own (not blocked) on the defective card. A case that
/// cites a rule it would not catch being broken is found here.
fn requirement_problems(d: Defect, plan: &Plan, results: &[CaseResult]) -> Vec<String> {
    let mut problems = Vec::new();
    for req in d.violates() {
        let citing: Vec<&str> =
            plan.cases.iter().filter(|c| c.verifies.iter().any(|v| v == req)).map(|c| c.id.as_str()).collect();
        let caught = results.iter().any(|r| r.status == CaseStatus::Failed && citing.contains(&r.id.as_str()));
        if !caught {
            let outcome: Vec<String> = citing
                .iter()
                .map(|c| {
                    let st = results
                        .iter()
                        .find(|r| r.id == *c)
                        .map_or("not run".to_string(), |r| format!("{:?}", r.status));
                    format!("{c} {st}")
                })
                .collect();
            problems.push(format!(
                "{}: violates {req}, but no case that verifies {req} fails on its own (cases citing it: {})",
                d.name(),
                if outcome.is_empty() { "none".to_string() } else { outcome.join(", ") }
            ));
        }
    }
    problems
}

/// The requirement IDs written in a cell of docs/defects.md (without brackets).
fn ids_in(cell: &str) -> BTreeSet<String> {
    cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| cardbench::spec::requirements::is_id(w))
        .map(str::to_string)
        .collect()
}

/// Defect name → the IDs of its "Violates" cell in docs/defects.md.
fn violates_column() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/defects.md")).unwrap();
    let cells = |l: &str| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect::<Vec<_>>();
    let header = doc.lines().find(|l| l.starts_with("| Name |")).expect("docs/defects.md has the defect table");
    let col = cells(header).iter().position(|c| c == "Violates").expect("a Violates column");
    doc.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let c = cells(l);
            (c[0].trim_matches('`').to_string(), ids_in(&c[col]))
        })
        .collect()
}

#[test]
fn every_requirement_in_scope_is_violated_by_a_seeded_defect_and_every_named_id_exists() {
    let spec = cardbench::spec::requirements::Requirements::spec().unwrap_or_else(|e| panic!("{e}"));
    let plan = suite();
    let column = violates_column();
    let mut problems = Vec::new();
    for d in Defect::ALL {
        for id in d.violates() {
            if spec.get(id).is_none() {
                problems.push(format!("{}: violates: {}", d.name(), spec.unknown(id)));
            }
        }
        // Until the spec defines IDs no defect can name one; from then on each must, but for a
        // card that stops answering: no rule says "answer", the bench's deadline is what it
        // tests (docs/defects.md, "A mute card"; MUTE above).
        if d.violates().is_empty() && !spec.is_empty() && *d != Defect::MuteAfterSelect {
            problems.push(format!(
                "{}: names no requirement it violates (`violates [...]` in src/card/defects.rs)",
                d.name()
            ));
        }
        let listed: BTreeSet<String> = d.violates().iter().map(|s| s.to_string()).collect();
        match column.get(d.name()) {
            None => problems.push(format!("{}: no row in docs/defects.md", d.name())),
            Some(doc) if *doc != listed => problems.push(format!(
                "{}: docs/defects.md's Violates column names {doc:?}, src/card/defects.rs {listed:?}",
                d.name()
            )),
            Some(_) => {}
        }
    }
    let out_of_scope: BTreeSet<&str> = plan.out_of_scope.iter().map(|o| o.id.as_str()).collect();
    let violated: BTreeSet<&str> = Defect::ALL.iter().flat_map(|d| d.violates().iter().copied()).collect();
    let unviolated: Vec<&str> = spec
        .all()
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !out_of_scope.contains(id) && !violated.contains(id))
        .collect();
    if !unviolated.is_empty() {
        problems.push(format!(
            "{} requirements in scope are violated by no seeded defect: {}",
            unviolated.len(),
            unviolated.join(", ")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
