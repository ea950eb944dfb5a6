//! Tear campaigns (docs/tear.md): every fault point of every sequence on the virtual lab,
//! settled by `engine::recover`, keeps the invariants; a seeded card defect or a broken
//! settling procedure is reported as a violation; random operation sequences with a random
//! fault keep the invariants (proptest); the plan step `tear` on virtual and opaque heads.

use cardbench::engine::key_update::UpdateMode;
use cardbench::engine::{EngineError, Terminal};
use cardbench::event::Recorder;
use cardbench::head::virtual_head::{CutPoint, VirtualHead};
use cardbench::head::{Head, HeadError, HeadInfo, Wire};
use cardbench::lab::{Lab, LabHead};
use cardbench::link::Link;
use cardbench::plan::{Action, Amount};
use cardbench::report::CaseStatus;
use cardbench::tear::campaign::{templates, Campaign, PointResult};
use cardbench::tear::fault::Fault;
use cardbench::tear::invariants::Verdict;
use cardbench::tear::sequence::{self, Body, Sequence, Slot, BUILTIN};
use cardbench::tear::settle::{Recover, Rerun, Settle, Settled};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;

const LAB: &str = "profiles/virtual-lab.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(root());
    c
}

fn lab(profile: &Path) -> (cardbench::profile::Loaded, Lab) {
    let loaded = cardbench::profile::load(profile).unwrap();
    let lab = Lab::from_profile(&loaded).unwrap();
    (loaded, lab)
}

fn builtins(loaded: &cardbench::profile::Loaded, lab: &Lab, names: &[&str]) -> Vec<Sequence> {
    let slots: Vec<Slot> =
        templates(loaded).unwrap().into_iter().map(|t| Slot { head: t.head, card: t.card }).collect();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sequence::builtin(&slots, &lab.keyset, &names).unwrap()
}

fn campaign(profile: &Path, names: &[&str], settle: &dyn Settle) -> Vec<PointResult> {
    let (loaded, mut lab) = lab(profile);
    let seqs = builtins(&loaded, &lab, names);
    let now = lab.clock.unwrap();
    let tpl = templates(&loaded).unwrap();
    Campaign::new(&mut lab, tpl, now, settle).run(&seqs, |_| {}).unwrap()
}

fn violations(rows: &[PointResult]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.verdict == Verdict::Violation)
        .map(|r| format!("{} {}: {}", r.sequence, r.point, r.detail))
        .collect()
}

#[test]
fn every_fault_point_of_every_sequence_is_listed_and_recovery_leaves_no_violation() {
    let rows = campaign(&root().join(LAB), &[], &Recover);
    assert_eq!(violations(&rows), Vec::<String>::new());
    let seqs: BTreeSet<&str> = rows.iter().map(|r| r.sequence.as_str()).collect();
    assert_eq!(seqs, BUILTIN.iter().copied().collect(), "every built-in sequence is faulted");
    for r in &rows {
        assert!(r.fired, "{} {}: the fault was never reached", r.sequence, r.point);
    }
    // Per sequence and head: both cut points at exchanges 1..=n without a gap, and commits
    // 1..=k; the sequences that write NVM have commit points.
    let mut exchanges: BTreeMap<(String, String), Vec<(u64, CutPoint)>> = BTreeMap::new();
    let mut commits: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for r in &rows {
        match &r.point.fault {
            Fault::Exchange { head, n, point } => {
                exchanges.entry((r.sequence.clone(), head.clone())).or_default().push((*n, *point))
            }
            Fault::Commit { head, k } => commits.entry((r.sequence.clone(), head.clone())).or_default().push(*k),
        }
    }
    for ((s, h), v) in &exchanges {
        let n = v.len() as u64 / 2;
        let want: Vec<(u64, CutPoint)> =
            (1..=n).flat_map(|i| [(i, CutPoint::BeforeCommand), (i, CutPoint::AfterCommand)]).collect();
        assert_eq!(v, &want, "{s} on {h}: exchanges 1..={n}, each before and after the command");
    }
    for ((s, h), v) in &commits {
        assert_eq!(v, &(1..=v.len() as u64).collect::<Vec<_>>(), "{s} on {h}: commits in order");
    }
    let commits_of = |s: &str| commits.iter().filter(|((x, _), _)| x == s).map(|(_, v)| v.len()).sum::<usize>();
    // charge and pay: WRITE VALUE, WRITE SIGNATURE, WRITE CERTIFICATE; a transfer commits on
    // both cards; a card-signed payment once (DEBIT); a key update once on the older card.
    assert_eq!(commits_of("charge"), 3);
    assert_eq!(commits_of("pay"), 3);
    assert_eq!(commits_of("card-signed-payment"), 1);
    assert_eq!(commits_of("key-update-common"), 1);
    assert!(commits_of("transfer") >= 2, "transfer commits on both cards");
    // Interrupted transfers and torn purse records are settled by recovery, not left.
    let recovered = |s: &str| rows.iter().filter(|r| r.sequence == s && r.verdict == Verdict::Recovered).count();
    assert!(recovered("transfer") > 0 && recovered("charge") > 0 && recovered("recovery") > 0);
}

#[test]
fn the_cli_prints_the_matrix_and_totals_and_exits_0_after_recovery() {
    let out = bin().args(["tear", "all", "--profile", LAB]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("transfer             A#6 VALUE SEND after-command"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("tear: ") && last.contains("in 10 sequences (settle: recover)"), "{last}");
    assert!(last.ends_with(", 0 VIOLATION"), "{last}");
    let total = stdout.lines().find(|l| l.starts_with("total ")).unwrap();
    let n: usize = total.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(last.starts_with(&format!("tear: {n} fault points")), "{total} / {last}");
}

#[test]
fn without_recovery_interrupted_transfers_strand_value_and_exit_1() {
    let out = bin().args(["tear", "transfer", "--profile", LAB, "--settle", "read-back", "-q"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("VALUE SEND after-command"), "{stdout}");
    assert!(stdout.contains("300 stranded or lost"), "{stdout}");
    assert!(stdout.contains("blocked: a credit of 300 is left pending"), "{stdout}");
}

#[test]
fn re_running_an_interrupted_step_is_reported_as_a_double_effect() {
    let rows = campaign(&root().join(LAB), &["transfer", "card-signed-payment"], &Rerun);
    let v = violations(&rows);
    assert!(v.iter().any(|x| x.starts_with("transfer") && x.contains("neither")), "{v:#?}");
    assert!(v.iter().any(|x| x.starts_with("card-signed-payment") && x.contains("double debit")), "{v:#?}");
}

/// A deliberately broken recovery: it settles as `engine::recover` does, then sends the
/// interrupted step again "to be sure".
struct RecoverThenRetry;

impl Settle for RecoverThenRetry {
    fn name(&self) -> &'static str {
        "recover-then-retry"
    }

    fn settle(&self, seq: &Sequence, links: &mut [Link], t: &mut Terminal) -> Result<Settled, EngineError> {
        let r = Recover.settle(seq, links, t)?;
        Rerun.settle(seq, links, t)?;
        Ok(r)
    }
}

#[test]
fn a_broken_recovery_is_a_violation() {
    let rows = campaign(&root().join(LAB), &["transfer"], &RecoverThenRetry);
    let v = violations(&rows);
    assert!(!v.is_empty(), "a retry after recovery moves the value twice");
    assert!(v.iter().any(|x| x.contains("VALUE SEND after-command") && x.contains("neither")), "{v:#?}");
}

#[test]
fn a_card_that_debits_at_send_permission_loses_value_under_a_tear() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join(LAB)).unwrap();
    let defective = text.replacen(
        "id = \"CB00000000000A01\"\n",
        "id = \"CB00000000000A01\"\ndefects = [\"debit-at-send-permission\"]\n",
        1,
    );
    assert_ne!(text, defective);
    let profile = dir.path().join("lab.toml");
    std::fs::write(&profile, defective).unwrap();
    let out = bin().args(["tear", "transfer", "-q", "--profile"]).arg(&profile).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let bad: Vec<&str> = stdout.lines().filter(|l| l.contains("VIOLATION  ")).collect();
    assert!(bad.iter().any(|l| l.contains("value not conserved")), "{stdout}");
    // The reference card under the same campaign is clean (the test above), so the
    // violations are the defect's.
}

#[test]
fn a_campaign_refuses_a_head_without_fresh_cards() {
    let out = bin().args(["tear", "test-plans/smoke.toml", "--profile", "profiles/vpcd-lab.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pcsc head") && stderr.contains("plan step `tear`"), "{stderr}");
}

#[test]
fn a_plan_is_a_campaign_over_its_engine_steps() {
    let out = bin().args(["tear", "test-plans/smoke.toml", "--profile", LAB, "-q"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().last().unwrap().ends_with(", 0 VIOLATION"), "{stdout}");
}

// ------------------------------------------------------------------ property tests

#[derive(Debug, Clone)]
enum Op {
    Charge(u32),
    Pay(u32),
    Cpay(u32),
    Send { a_to_b: bool, amount: u32 },
    Update(UpdateMode),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..2000).prop_map(Op::Charge),
        (1u32..300).prop_map(Op::Pay),
        (1u32..300).prop_map(Op::Cpay),
        (any::<bool>(), 1u32..3000).prop_map(|(a_to_b, amount)| Op::Send { a_to_b, amount }),
        prop_oneof![Just(UpdateMode::Common), Just(UpdateMode::Public), Just(UpdateMode::Auto)].prop_map(Op::Update),
    ]
}

/// Heads A (card-a: purse, XFER key 1) and B (card-b: CPAY, XFER key 2) of the virtual lab.
fn action(o: &Op) -> Action {
    let (a, b) = ("A".to_string(), "B".to_string());
    match o {
        Op::Charge(v) => Action::Charge { head: a, amount: Amount::Lit(*v) },
        Op::Pay(v) => Action::Pay { head: a, price: Amount::Lit(*v) },
        Op::Cpay(v) => Action::CardSignedPayment { head: b, price: Amount::Lit(*v), unchecked: false },
        Op::Send { a_to_b: true, amount } => Action::ValueTransfer { from: a, to: b, amount: Amount::Lit(*amount) },
        Op::Send { a_to_b: false, amount } => Action::ValueTransfer { from: b, to: a, amount: Amount::Lit(*amount) },
        Op::Update(mode) => Action::KeyUpdate { a, b, mode: *mode },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random operations (after a charge and a key update, so every kind can succeed), the
    /// last one torn at a random fault point, then `engine::recover`: the invariants hold.
    #[test]
    fn random_sequences_with_a_random_fault_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..4),
        at in any::<prop::sample::Index>(),
    ) {
        let (loaded, mut lab) = lab(&root().join(LAB));
        let now = lab.clock.unwrap();
        let tpl = templates(&loaded).unwrap();
        let mut setup = vec![
            Action::Charge { head: "A".into(), amount: Amount::Lit(1000) },
            Action::KeyUpdate { a: "A".into(), b: "B".into(), mode: UpdateMode::Auto },
        ];
        setup.extend(ops[..ops.len() - 1].iter().map(action));
        let seq = Sequence { name: "random".into(), cards: vec![], setup, body: Body::Engine(action(ops.last().unwrap())) };
        let mut c = Campaign::new(&mut lab, tpl, now, &Recover);
        let rows = match c.sequence_where(&seq, |i, n| i == at.index(n)) {
            Ok(rows) => rows,
            // An earlier operation was refused (a payment above the value): not this property.
            Err(cardbench::tear::TearError::Setup { .. }) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert_eq!(rows.len(), 1);
        prop_assert!(rows[0].fired, "{}: fault not reached", rows[0].point);
        prop_assert!(rows[0].verdict != Verdict::Violation, "{:?} at {}: {}", ops, rows[0].point, rows[0].detail);
    }
}

// ------------------------------------------------------------------ plan step `tear`

fn run_plan_text(
    text: &str,
    heads: &mut [LabHead],
    lab_keys: &cardbench::keys::Keyset,
    now: u32,
) -> Vec<cardbench::report::CaseResult> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let plan = cardbench::plan::load(&path).unwrap();
    cardbench::runner::run_plan(&plan, heads, &Recorder::disabled(), lab_keys, now, [7; 32])
}

const TORN_CHARGE: &str = r#"
[plan]
id = "t"
version = "1"
[[case]]
id = "TORN"
[[case.step]]
do = "read"
head = "A"
state = "purse"
as = "b"
[[case.step]]
do = "tear"
head = "A"
POINT
[[case.step]]
do = "engine"
engine = "charge"
head = "A"
amount = 50
expect = "in-doubt"
[[case.step]]
do = "read"
head = "A"
state = "purse"
as = "a"
[[case.step]]
do = "assert"
that = "ASSERT"
"#;

#[test]
fn plan_tear_at_a_commit_of_a_virtual_card_loses_that_commit_only() {
    let (_, mut lab) = lab(&root().join(LAB));
    let now = lab.clock.unwrap();
    // Commit 1 is WRITE VALUE: torn, so neither the counter nor the value moved.
    let text =
        TORN_CHARGE.replace("POINT", "commit = 1").replace("ASSERT", "a.counter == b.counter && a.amount == b.amount");
    let r = run_plan_text(&text, &mut lab.heads, &lab.keyset, now);
    assert_eq!(r[0].status, CaseStatus::Passed, "{}", r[0].message);
    assert!(r[0].message.starts_with("in-doubt (") && r[0].message.contains("card is mute"), "{}", r[0].message);
}

#[test]
fn plan_tear_that_never_fires_fails_the_step() {
    let (_, mut lab) = lab(&root().join(LAB));
    let now = lab.clock.unwrap();
    let text = TORN_CHARGE.replace("POINT", "at = 99\npoint = \"after-command\"").replace("ASSERT", "true");
    let r = run_plan_text(&text, &mut lab.heads, &lab.keyset, now);
    assert_eq!(r[0].status, CaseStatus::Failed, "{}", r[0].message);
    assert!(r[0].message.contains("the power cut armed on A to fire"), "{}", r[0].message);
}

/// A head the runner cannot see into (like a PC/SC or PN532 head): the plan's cut goes
/// through `power_off` at the exchange boundary.
struct Opaque(VirtualHead, Vec<&'static str>);

impl Head for Opaque {
    fn info(&self) -> &HeadInfo {
        self.0.info()
    }
    fn card_present(&mut self) -> Result<bool, HeadError> {
        self.0.card_present()
    }
    fn atr(&self) -> Option<Vec<u8>> {
        self.0.atr()
    }
    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        self.1.push("power-on");
        self.0.power_on()
    }
    fn power_off(&mut self) -> Result<(), HeadError> {
        self.1.push("power-off");
        self.0.power_off()
    }
    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        self.0.transmit(apdu)
    }
}

#[test]
fn plan_tear_on_a_real_head_powers_off_after_the_answer_and_the_card_kept_the_write() {
    let (_, mut lab) = lab(&root().join(LAB));
    let now = lab.clock.unwrap();
    let a = lab.heads.iter().position(|h| h.name == "A").unwrap();
    let card = lab.heads[a].head.as_virtual().unwrap().remove().unwrap();
    let mut vh = VirtualHead::new("A");
    vh.insert(card);
    lab.heads[a].head = Box::new(Opaque(vh, Vec::new()));
    // Charge on a T=0 card: SELECT, READ ALL (+6C re-send), WRITE VALUE (+GET RESPONSE),
    // READ ALL (+re-send), WRITE SIGNATURE (8), WRITE CERTIFICATE (9). Cut after the 9th:
    // the card wrote the certificate, the terminal never saw the answer.
    let text = TORN_CHARGE
        .replace("POINT", "at = 9\npoint = \"after-command\"")
        .replace("ASSERT", "a.counter == b.counter - 1 && a.amount == b.amount + 50 && a.certificate == charge_cert");
    let r = run_plan_text(&text, &mut lab.heads, &lab.keyset, now);
    assert_eq!(r[0].status, CaseStatus::Passed, "{}", r[0].message);
    // A commit tear needs a virtual head: refused when binding the plan.
    let text = TORN_CHARGE.replace("POINT", "commit = 1").replace("ASSERT", "true");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let plan = cardbench::plan::load(&path).unwrap();
    let e = plan.bind_tears(|_| false).unwrap_err().to_string();
    assert!(e.contains("p.toml:") && e.contains("not supported by head 'A'"), "{e}");
}

#[test]
fn plan_tear_steps_are_checked_before_anything_runs() {
    let bad = [
        ("at = 2", "`tear` with `at` needs `point`"),
        ("at = 0\npoint = \"before-command\"", "at must be at least 1"),
        ("at = 2\npoint = \"during\"", "point 'during' is not before-command or after-command"),
        ("commit = 1\nat = 2", "needs `at` and `point`"),
    ];
    for (point, want) in bad {
        let text = TORN_CHARGE.replace("POINT", point).replace("ASSERT", "true");
        let e = cardbench::plan::parse_str(Path::new("p.toml"), &text).unwrap_err().to_string();
        assert!(e.starts_with("p.toml:") && e.contains(want), "{point}: {e}");
    }
    let no_engine = TORN_CHARGE.replace("POINT", "commit = 1").replace("do = \"engine\"", "do = \"select\"");
    let no_engine = no_engine
        .replace("engine = \"charge\"\n", "applet = \"purse\"\n")
        .replace("amount = 50\nexpect = \"in-doubt\"\n", "");
    let e =
        cardbench::plan::parse_str(Path::new("p.toml"), &no_engine.replace("ASSERT", "true")).unwrap_err().to_string();
    assert!(e.contains("none follows"), "{e}");
}
