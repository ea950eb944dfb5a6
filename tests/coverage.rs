//! Requirement coverage (docs/plan-language.md §9, docs/coverage.md): `cardbench coverage` on
//! plans, `verifies` IDs refused where they are written, and docs/coverage.md kept current.

use cardbench::spec::requirements::Requirements;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardbench")).current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn spec() -> &'static Requirements {
    Requirements::spec().unwrap_or_else(|e| panic!("{e}"))
}

fn plan(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// A plan of one case verifying `ids` (with `head` lines after `[plan]`).
fn one_case(head: &str, ids: &[&str]) -> String {
    let list: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "[plan]\nid = \"p\"\nversion = \"1\"\n{head}\n[[case]]\nid = \"C1\"\nverifies = [{}]\n\
         [[case.step]]\ndo = \"assert\"\nthat = \"1 == 1\"\n",
        list.join(", ")
    )
}

#[test]
fn docs_coverage_md_is_what_the_command_prints() {
    let out = bin(&["coverage", "--plan", "test-plans/certification.toml", "--format", "md"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out.stderr));
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/coverage.md")).unwrap();
    assert!(doc == text(&out.stdout), "docs/coverage.md is stale: run scripts/coverage-doc.sh and commit it");
}

#[test]
fn the_certification_plan_verifies_every_requirement_in_scope() {
    let out = bin(&["coverage", "--plan", "test-plans/certification.toml"]);
    if spec().is_empty() {
        // The spec is not tagged yet: nothing can be covered, and coverage says so.
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("defines no requirement"), "{}", text(&out.stderr));
    } else {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    }
}

#[test]
fn coverage_exits_1_on_a_gap_and_0_when_every_requirement_is_verified_or_out_of_scope() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<&str> = spec().all().iter().map(|r| r.id.as_str()).collect();
    let none = plan(dir.path(), "none.toml", &one_case("", &[]));
    let out = bin(&["coverage", "--plan", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let shown = text(&out.stdout);
    assert!(shown.contains("cases that verify no requirement (1):\n  C1\n"), "{shown}");
    let Some((first, rest)) = ids.split_first() else { return };
    assert!(shown.contains(&format!("uncovered requirements ({}):", ids.len())), "{shown}");

    // All but the first verified: the first is the one gap, in every format.
    let gap = plan(dir.path(), "gap.toml", &one_case("", rest));
    let out = bin(&["coverage", "--plan", gap.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    let csv = text(&out.stdout);
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("requirement,section,status,cases,reason,statement"));
    let uncovered: Vec<&str> = rows.filter(|l| l.contains(",uncovered,")).collect();
    assert_eq!(uncovered.len(), 1, "{csv}");
    assert!(uncovered[0].starts_with(&format!("{first},")), "{csv}");

    // The same gap declared out of scope: complete, and the reason is shown.
    let head = format!("out_of_scope = [{{ id = \"{first}\", reason = \"checked by hand\" }}]");
    let oos = plan(dir.path(), "oos.toml", &one_case(&head, rest));
    let out = bin(&["coverage", "--plan", oos.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("checked by hand [plan p]"), "{}", text(&out.stdout));

    let all = plan(dir.path(), "all.toml", &one_case("", &ids));
    assert_eq!(bin(&["coverage", "--plan", all.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn an_unknown_requirement_is_refused_at_its_line_by_check_run_batch_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let p = plan(dir.path(), "p.toml", &one_case("roles = [\"dut\"]", &["XFER-8.1-R9999"]));
    let (p, l) = (p.to_str().unwrap(), logs.path().to_str().unwrap());
    let want = format!("cardbench: error: {p}:7:13: verifies: docs/card-spec.md defines no requirement XFER-8.1-R9999");
    let lab = "profiles/virtual-lab.toml";
    for args in [
        vec!["check", p],
        vec!["run", p, "--profile", lab, "--logs", l],
        vec!["batch", "--plan", p, "--profile", lab, "--batch-id", "B1", "--count", "1", "--logs", l],
        vec!["coverage", "--plan", p],
    ] {
        let out = bin(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&want), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(logs.path()).unwrap().count(), 0, "nothing was run");

    // A malformed ID says what the form is.
    let bad = plan(dir.path(), "bad.toml", &one_case("", &["xfer-8.1-r3"]));
    let err = text(&bin(&["check", bad.to_str().unwrap()]).stderr);
    assert!(err.contains("'xfer-8.1-r3' is not a requirement ID: prefix 'xfer'"), "{err}");
}

/// A batch carries the matrix: each case's requirements in results.json and junit.xml, and
/// coverage.csv beside them; `cardbench report` rebuilds the same bytes from the folder.
#[test]
fn a_batch_reports_the_requirements_of_each_case_and_its_coverage_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let first = spec().all().first().map(|r| r.id.as_str());
    let body = "[plan]\nid = \"p\"\nversion = \"1\"\nroles = [\"dut\"]\n\n[[case]]\nid = \"C1\"\n{V}\
                [[case.step]]\ndo = \"read\"\nhead = \"dut\"\nstate = \"purse\"\nas = \"b\"\n\
                [[case.step]]\ndo = \"assert\"\nthat = \"b.counter > 0\"\n\n\
                [[case]]\nid = \"C2\"\n[[case.step]]\ndo = \"assert\"\nthat = \"1 == 1\"\n";
    let v = first.map_or(String::new(), |id| format!("verifies = [\"{id}\"]\n"));
    let p = plan(dir.path(), "p.toml", &body.replace("{V}", &v));
    let args = ["batch", "--plan", p.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml", "--batch-id", "B1"];
    let out = bin(&[&args[..], &["--count", "1", "-q", "--db", "none", "--logs", logs.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let folder = logs.join("B1");
    let read = |f: &str| std::fs::read_to_string(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let (json, junit, csv) = (read("results.json"), read("junit.xml"), read("coverage.csv"));
    assert!(csv.starts_with("requirement,section,status,cases,reason,statement\n"), "{csv}");
    assert!(csv.ends_with(",,no_requirement,C2,,\n"), "{csv}");
    let results: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cases = &results["cards"][0]["cases"];
    assert!(cases[1].get("verifies").is_none(), "a case citing nothing has no verifies: {json}");
    match first {
        Some(id) => {
            assert_eq!(cases[0]["verifies"], serde_json::json!([id]), "{json}");
            assert!(junit.contains(&format!("<property name=\"verifies:C1\" value=\"{id}\"/>")), "{junit}");
            assert!(csv.lines().any(|l| l.starts_with(&format!("{id},")) && l.contains(",covered,C1,")), "{csv}");
        }
        None => assert!(csv.contains(",,no_requirement,C1,,\n"), "{csv}"),
    }
    std::fs::remove_file(folder.join("coverage.csv")).unwrap();
    let out = bin(&["report", folder.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        (read("results.json"), read("junit.xml"), read("coverage.csv")),
        (json, junit, csv),
        "rebuilt as written"
    );
}
