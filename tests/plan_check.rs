//! `check` catches what would fail at run time: each mistake is one line `file:line:col:
//! message` from `cardbench check`, and from `run` and `batch` before anything is created or
//! sent (exit 2, an empty logs folder).

use std::path::{Path, PathBuf};
use std::process::Command as Proc;

fn bin() -> Proc {
    let mut c = Proc::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const LAB: &str = "profiles/virtual-lab.toml";

/// Which commands must refuse the input.
#[derive(Clone, Copy)]
enum Cmds {
    /// `check`, `run` and `batch` (a plan written for a batch: roles dut and peer).
    All,
    /// `check --batch` and `batch`.
    Batch,
}

/// Run `args` and return stderr, asserting exit 2, one line, and nothing under `logs`.
fn refused(args: &[&str], logs: &Path) -> String {
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert_eq!(std::fs::read_dir(logs).unwrap().count(), 0, "{args:?}: nothing created under the logs folder");
    err
}

/// Every command of `cmds` refuses `plan` on `profile` with exactly `want` (after
/// `cardbench: error: `).
fn all_refuse(cmds: Cmds, plan: &Path, profile: &str, want: &str) {
    let logs = tempfile::tempdir().unwrap();
    let l = logs.path().to_str().unwrap();
    let p = plan.to_str().unwrap();
    let mut runs: Vec<Vec<&str>> = Vec::new();
    match cmds {
        Cmds::All => runs.push(vec!["check", p, "--profile", profile]),
        Cmds::Batch => runs.push(vec!["check", "--batch", p, "--profile", profile]),
    }
    if matches!(cmds, Cmds::All) {
        runs.push(vec!["run", p, "--profile", profile, "--logs", l]);
    }
    if matches!(cmds, Cmds::All | Cmds::Batch) {
        runs.push(vec!["batch", "--plan", p, "--profile", profile, "--batch-id", "B1", "--count", "2", "--logs", l]);
    }
    for args in runs {
        let err = refused(&args, logs.path());
        assert_eq!(err.trim_end(), format!("cardbench: error: {want}"), "{args:?}");
    }
}

/// A plan file `name` in `dir` with `text`.
fn plan(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEAD: &str = "[plan]\nid = \"p\"\nversion = \"1\"\n\n[[case]]\nid = \"C1\"\n";

#[test]
fn a_misspelled_expected_code_is_refused_with_the_nearest_code() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEAD}[[case.step]]\ndo = \"engine\"\nengine = \"pay\"\nhead = \"dut\"\namount = 100\n\
         expect = \"rejected:insuficient-value\"\n"
    );
    let p = plan(dir.path(), "code.toml", &text);
    let want = format!(
        "{}:12:10: expect 'rejected:insuficient-value' is not a verdict the engines give: did you mean \
         rejected:insufficient-value?",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);

    // A status word in lower case never matches the engines' upper-case code.
    let p = plan(dir.path(), "sw.toml", &text.replace("insuficient-value", "card-refused-6a84"));
    let want = format!(
        "{}:12:10: expect 'rejected:card-refused-6a84' is not a verdict the engines give: did you mean \
         rejected:card-refused-6A84? (the status word is written in upper case)",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);

    // Far from every code: the list, from the engines' own table.
    let p = plan(dir.path(), "far.toml", &text.replace("insuficient-value", "card-was-sad"));
    let out = bin().args(["check", p.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for code in cardbench::engine::RejectKind::NAMED_CODES {
        assert!(err.contains(code), "{code} listed: {err}");
    }
}

#[test]
fn every_code_the_engines_give_is_accepted_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let codes: Vec<String> = cardbench::engine::RejectKind::NAMED_CODES
        .iter()
        .map(|c| format!("rejected:{c}"))
        .chain(["rejected:card-refused-6984", "rejected", "success", "skipped"].map(String::from))
        .collect();
    let mut text = HEAD.to_string();
    for c in &codes {
        text.push_str(&format!(
            "[[case.step]]\ndo = \"engine\"\nengine = \"pay\"\nhead = \"dut\"\namount = 1\nexpect = \"{c}\"\n"
        ));
    }
    let p = plan(dir.path(), "codes.toml", &text);
    let out = bin().args(["check", p.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn assignment_and_malformed_operators_in_assert_are_refused_where_written() {
    let dir = tempfile::tempdir().unwrap();
    let read = "[[case.step]]\ndo = \"read\"\nhead = \"dut\"\nstate = \"purse\"\nas = \"b\"\n";
    let cases = [
        ("b.counter = 50", 19, "`=` assigns a variable: compare with `==`"),
        ("b.counter == 50 && b.amount = 0", 37, "`=` assigns a variable: compare with `==`"),
        (
            "b.counter += 1",
            19,
            "`+=` assigns a variable, which an expression cannot do: compare with `==`, or compute a new variable \
             in a `set` step",
        ),
        (
            "b.counter == 50; b.amount == 0",
            24,
            "`;` chains expressions and keeps only the last one's value: join conditions with `&&`",
        ),
        ("b.counter === 50", 19, "`===` is not an operator: compare with `==`"),
        ("b.counter => 50", 19, "`=>` is not an operator: did you mean `>=`?"),
        ("b.counter <> 50", 19, "`<>` is not an operator: did you mean `!=`?"),
        ("b.counter == 50 & b.amount == 0", 25, "`&` is not an operator: did you mean `&&` (or bitand(a, b))?"),
        ("b.counter == 50 and b.amount == 0", 25, "`and` is not an operator here: write `&&`"),
        ("b.counter - 1", 9, "is a number, not true or false: compare it (`==`, `<`, …)"),
        ("lenn(b.card_id) == 16", 9, "unknown function 'lenn': did you mean len?"),
        ("b.card_id > 3", 9, "`b.card_id > 3`: `>` orders bytes (a string) against a number"),
        ("b.counter == b.card_id", 9, "`b.counter == b.card_id`: compares a number with bytes (a string): never equal"),
    ];
    for (expr, col, msg) in cases {
        let text = format!("{HEAD}{read}[[case.step]]\ndo = \"assert\"\nthat = \"{expr}\"\n");
        let p = plan(dir.path(), "assert.toml", &text);
        let want = format!("{}:14:{col}: expression '{expr}': {msg}", p.display());
        all_refuse(Cmds::All, &p, LAB, &want);
    }
}

#[test]
fn an_unknown_defect_name_is_refused_at_the_name_with_the_nearest_one() {
    let dir = tempfile::tempdir().unwrap();
    let lab = std::fs::read_to_string(root().join(LAB)).unwrap();
    // [[batch.defect]]: check, run and batch all refuse the profile.
    let text = lab.replacen("defects = [\"counter-wraps\"]", "defects = [\"counter-wrap\"]", 1);
    let line = text.lines().position(|l| l.contains("\"counter-wrap\"")).unwrap() + 1;
    let profile = dir.path().join("lab.toml");
    std::fs::write(&profile, &text).unwrap();
    let suite = root().join("test-plans/certification.toml");
    let want = format!("{}:{line}:12: unknown defect 'counter-wrap': did you mean counter-wraps?", profile.display());
    all_refuse(Cmds::All, &suite, profile.to_str().unwrap(), &want);
    // A card's own defects likewise.
    let text = lab.replacen(
        "cert_expiry = \"2035-12-31\"\n",
        "cert_expiry = \"2035-12-31\"\ndefects = [\"cpay-overdraf\"]\n",
        1,
    );
    let line = text.lines().position(|l| l.contains("\"cpay-overdraf\"")).unwrap() + 1;
    std::fs::write(&profile, &text).unwrap();
    let want = format!("{}:{line}:12: unknown defect 'cpay-overdraf': did you mean cpay-overdraft?", profile.display());
    all_refuse(Cmds::All, &suite, profile.to_str().unwrap(), &want);
}

#[test]
fn a_batch_plan_may_use_only_roles_dut_and_peer() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[plan]\nid = \"p\"\nversion = \"1\"\nroles = [\"dut\", \"purse\"]\n\n[[case]]\nid = \"C1\"\n\
                [[case.step]]\ndo = \"read\"\nhead = \"dut\"\nstate = \"purse\"\nas = \"b\"\n";
    let p = plan(dir.path(), "roles.toml", text);
    let want = format!("{}:4:17: role 'purse': a batch plan may use only roles dut and peer", p.display());
    all_refuse(Cmds::Batch, &p, LAB, &want);
    // A head name of the profile (D is a dut head of the virtual lab) is not a batch role either.
    let p = plan(dir.path(), "head.toml", &text.replace(", \"purse\"", "").replace("head = \"dut\"", "head = \"D\""));
    let want = format!("{}:10:8: C1 #1 read: head 'D': a batch plan may use only roles dut and peer", p.display());
    all_refuse(Cmds::Batch, &p, LAB, &want);
    // The suite is a batch plan.
    let out = bin().args(["check", "--batch", "test-plans/certification.toml", "--profile", LAB]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_field_names_are_refused_with_the_nearest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    // A plan step.
    let text = format!("{HEAD}[[case.step]]\ndo = \"read\"\nhead = \"dut\"\nstat = \"purse\"\nas = \"b\"\n");
    let p = plan(dir.path(), "field.toml", &text);
    all_refuse(Cmds::All, &p, LAB, &format!("{}:10:1: unknown field `stat`: did you mean `state`?", p.display()));
    // Far from every field: the valid ones are listed.
    let p = plan(dir.path(), "far.toml", &text.replace("stat =", "colour ="));
    let out = bin().args(["check", p.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":10:1: unknown field `colour` (one of: `do`, `name`, `repeat`, `head`,"), "{err}");
    // A field of another step kind: the kind's own fields.
    let p =
        plan(dir.path(), "kind.toml", &text.replace("stat =", "state =").replace("as = \"b\"", "applet = \"xfer\""));
    let want = format!(
        "{}:11:10: field `applet` does not apply to `read` steps (they take `head`, `state`, `as`, `name`, `repeat`)",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);
    // [plan], [[case]].
    let p = plan(dir.path(), "meta.toml", &HEAD.replace("version =", "verison ="));
    let out = bin().args(["check", p.to_str().unwrap()]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("cardbench: error: {}:3:1: unknown field `verison`: did you mean `version`?", p.display())
    );
    // A profile.
    let lab = std::fs::read_to_string(root().join(LAB)).unwrap();
    let text = lab.replacen("driver = \"virtual\"", "drvier = \"virtual\"", 1);
    let line = text.lines().position(|l| l.starts_with("drvier")).unwrap() + 1;
    let profile = dir.path().join("lab.toml");
    std::fs::write(&profile, text).unwrap();
    let want = format!("{}:{line}:1: unknown field `drvier`: did you mean `driver`?", profile.display());
    all_refuse(Cmds::All, &root().join("test-plans/certification.toml"), profile.to_str().unwrap(), &want);
    // A timing spec.
    let spec = plan(
        dir.path(),
        "t.toml",
        "[timing]\nid = \"t\"\nversion = \"1\"\n\n[[op]]\nname = \"x\"\napdu = \"80B2010008\"\nbasline = \"80B2010008\"\n",
    );
    let out = bin().args(["check", spec.to_str().unwrap()]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("cardbench: error: {}:8:1: unknown field `basline`: did you mean `baseline`?", spec.display())
    );
}

#[test]
fn other_run_time_failures_are_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let read = "[[case.step]]\ndo = \"read\"\nhead = \"dut\"\nstat = \"purse\"\nas = \"b\"\n".replace("stat", "state");
    // A number rendered without a width, bytes with one.
    let p = plan(
        dir.path(),
        "width.toml",
        &format!(
            "{HEAD}{read}[[case.step]]\ndo = \"apdu\"\nhead = \"dut\"\ncommand = \"80 D0 00 00 04 ${{b.counter}}\"\n"
        ),
    );
    let want = format!(
        "{}:15:27: 'b.counter' is a number: give it a width, '${{b.counter:u8}}', ':u16' or ':u32'",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);
    // `in-doubt` without a tear before it can never be met.
    let p = plan(
        dir.path(),
        "doubt.toml",
        &format!("{HEAD}[[case.step]]\ndo = \"engine\"\nengine = \"charge\"\nhead = \"dut\"\namount = 1\nexpect = \"in-doubt\"\n"),
    );
    let want = format!(
        "{}:12:10: C1 #1 engine: expect 'in-doubt' needs a `tear` step before it in the case (only an armed power \
         cut makes an engine step in-doubt)",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);
    // A capture past what `len` lets through.
    let p = plan(
        dir.path(),
        "capture.toml",
        &format!("{HEAD}[[case.step]]\ndo = \"apdu\"\nhead = \"dut\"\ncommand = \"80 B2 01 00 00\"\nlen = 4\ncapture = {{ c = \"u32@2\" }}\n"),
    );
    let want = format!(
        "{}:12:17: capture 'c' = 'u32@2' reads up to byte 6, but `len` allows at most 4 bytes of response data",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);
    // A card the lab keyset cannot personalize.
    let p = plan(
        dir.path(),
        "card.toml",
        &format!("{HEAD}[[case.step]]\ndo = \"insert_card\"\nhead = \"peer\"\ncard = {{ id = \"CB00000000030013\", transfer_key = 9 }}\n"),
    );
    let want = format!("{}:10:8: card transfer_key 9: the lab keyset has transfer keys 1..=8", p.display());
    all_refuse(Cmds::All, &p, LAB, &want);
    // A profile card (here the batch's DUT template) naming a key the keyset does not hold: every
    // card of the batch would fail its personalization.
    let lab = std::fs::read_to_string(root().join(LAB)).unwrap();
    let at = lab.find("name = \"dut\"").unwrap();
    let key = at + lab[at..].find("update_key = 1").unwrap();
    let text = format!("{}update_key = 9{}", &lab[..key], &lab[key + "update_key = 1".len()..]);
    let line = text[..text[..at].rfind("[[card]]").unwrap()].lines().count() + 1;
    let profile = dir.path().join("lab.toml");
    std::fs::write(&profile, text).unwrap();
    let want = format!("{}:{line}:1: card 'dut': the keyset has no update key with ID 9", profile.display());
    all_refuse(Cmds::All, &root().join("test-plans/certification.toml"), profile.to_str().unwrap(), &want);
    // An `insert` with no `remove` before it has no card to put back.
    let p = plan(dir.path(), "insert.toml", &format!("{HEAD}[[case.step]]\ndo = \"insert\"\nhead = \"dut\"\n"));
    let want = format!(
        "{}:9:8: C1 #1 insert: no `remove` step before it took a card out, so `insert` has nothing to put back \
         (`insert_card` puts a new card in)",
        p.display()
    );
    all_refuse(Cmds::All, &p, LAB, &want);
    // A step only a virtual head can do, on a PC/SC head (no reader needed to check).
    let p = plan(dir.path(), "real.toml", &format!("{HEAD}[[case.step]]\ndo = \"remove\"\nhead = \"C\"\n"));
    let out = bin().args(["check", p.to_str().unwrap(), "--profile", "profiles/vpcd-lab.toml"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "cardbench: error: {}:9:8: C1 #1 remove: `remove` needs a virtual head, and 'C' is not one (on a real \
             reader the operator handles the cards)",
            p.display()
        )
    );
    // A timing spec's iteration index without a width.
    let spec = plan(
        dir.path(),
        "t.toml",
        "[timing]\nid = \"t\"\nversion = \"1\"\n\n[[op]]\nname = \"x\"\napdu = \"80B20100 ${i}\"\n",
    );
    let out = bin().args(["check", spec.to_str().unwrap()]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "cardbench: error: {}:7:8: 'i' is a number: give it a width, '${{i:u8}}', ':u16' or ':u32'",
            spec.display()
        )
    );
}
