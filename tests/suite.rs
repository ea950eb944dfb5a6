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
    "test-plans/purse.toml",
    "test-plans/cpay.toml",
    "test-plans/xfer-keys.toml",
    "test-plans/xfer-transfer.toml",
    "test-plans/certification.toml",
];

/// Defect → the cases that must catch it (each must be among the failed cases when the DUT
/// carries only that defect). Keep in step with docs/defects.md, column "caught by".
const MATRIX: &[(&str, &[&str])] = &[];

/// Defects no plan can catch with the current plan language, with the reason. The matrix
/// test asserts that they are indeed not caught, so the entry must go when a case can.
const LANGUAGE_GAPS: &[(&str, &str)] = &[];

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

#[test]
fn print_matrix() {
    let plan = suite();
    for d in Defect::ALL {
        let r = run_suite(&plan, |lab| with_defects(lab, "D1", Defects::from(*d)));
        let f: Vec<String> = not_passed(&r).iter().map(|r| r.id.clone()).collect();
        println!("{}: {}", d.name(), f.join(", "));
        for x in not_passed(&r).iter().take(3) {
            println!("      {} {}", x.id, x.message);
        }
    }
}
