//! Files and pipes a user can get wrong or an attacker can plant: plans that would expand
//! past any memory, stdout closed early by `head`, keyset temp files that are stale or
//! symbolic links, keysets others can read, seed-derived keys on real readers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn for_each_plan(vars: usize, values: usize) -> String {
    let list: Vec<String> = (0..values).map(|v| v.to_string()).collect();
    let fe: Vec<String> = (0..vars).map(|k| format!("v{k} = [{}]", list.join(", "))).collect();
    format!(
        "[plan]\nid = \"huge\"\nversion = \"1\"\n\n[[case]]\nid = \"BIG\"\nfor_each = {{ {} }}\n[[case.step]]\n\
         do = \"power_on\"\nhead = \"A\"\n",
        fe.join(", ")
    )
}

#[test]
fn a_for_each_of_a_billion_cases_is_refused_with_its_size_before_expanding() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "huge.toml", &for_each_plan(9, 10));
    let out = bin().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:7:12: for_each makes 1000000000 cases of 'BIG'", p.display())),
        "file:line:col and the size: {stderr}"
    );
    assert!(stderr.contains("the plan would have 1000000000 cases; a plan may have at most 100000 cases"), "{stderr}");
    // `run` refuses it the same way, before a run folder exists.
    let logs = d.path().join("logs");
    let out = bin()
        .args(["run", p.to_str().unwrap(), "--profile", "profiles/virtual-lab.toml", "--logs"])
        .arg(&logs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("for_each makes 1000000000 cases"));
    assert!(!logs.exists(), "no run folder");
    // Within the limit it expands: 3 × 4 cases.
    let p = write(d.path(), "small.toml", &for_each_plan(2, 4).replace("[0, 1, 2, 3], v1", "[0, 1, 2], v1"));
    let out = bin().arg("check").arg(&p).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid: 12 cases"), "{out:?}");
}

#[test]
fn repeats_and_includes_that_pass_the_limits_are_refused_where_they_are_written() {
    let d = tempfile::tempdir().unwrap();
    let repeat = "[plan]\nid = \"r\"\nversion = \"1\"\n\n[[case]]\nid = \"R\"\nfor_each = { n = [1, 2, 3] }\n\
                  [[case.step]]\ndo = \"power_on\"\nhead = \"A\"\nrepeat = 4000000000\n";
    let p = write(d.path(), "repeat.toml", repeat);
    let out = bin().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:7:12: for_each makes 3 cases of 'R' (3 n) with 1 step and 4000000000 step runs each: the plan \
             would have 12000000000 step runs (with repeats); a plan may run at most 100000000 steps",
            p.display()
        )),
        "{stderr}"
    );
    // Two included plans of 60000 cases each: each is fine alone, together they are not.
    for name in ["a", "b"] {
        let mut t = format!("[plan]\nid = \"{name}\"\nversion = \"1\"\n");
        for i in 0..60_000 {
            t += &format!("[[case]]\nid = \"{name}{i}\"\n[[case.step]]\ndo = \"power_on\"\nhead = \"A\"\n");
        }
        write(d.path(), &format!("{name}.toml"), &t);
    }
    let p =
        write(d.path(), "both.toml", "[plan]\nid = \"both\"\nversion = \"1\"\ninclude = [\"a.toml\", \"b.toml\"]\n");
    let out = bin().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:4:22: with 'b.toml' the plan would have 120000 cases; a plan may have at most 100000 cases",
            p.display()
        )),
        "{stderr}"
    );
    let out = bin().arg("check").arg(d.path().join("a.toml")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid: 60000 cases"), "{out:?}");
    // Steps held in memory: 10000 instances of a case of 101 steps.
    let steps = "[[case.step]]\ndo = \"power_on\"\nhead = \"A\"\n".repeat(101);
    let list: Vec<String> = (0..100).map(|v| v.to_string()).collect();
    let wide = format!(
        "[plan]\nid = \"w\"\nversion = \"1\"\n[[case]]\nid = \"W\"\nfor_each = {{ m = [{l}], n = [{l}] }}\n{steps}",
        l = list.join(", ")
    );
    let p = write(d.path(), "wide.toml", &wide);
    let out = bin().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:6:12: for_each makes 10000 cases of 'W' (100 m × 100 n) with 101 steps and 101 step runs each: the \
             plan would have 1010000 steps; a plan may have at most 1000000 steps",
            p.display()
        )),
        "{stderr}"
    );
    // A repeat in setup is located at the repeat.
    let setup =
        "[plan]\nid = \"s\"\nversion = \"1\"\n[[setup]]\ndo = \"power_on\"\nhead = \"A\"\nrepeat = 4000000000\n\
                 [[case]]\nid = \"S\"\n[[case.step]]\ndo = \"power_on\"\nhead = \"A\"\n";
    let p = write(d.path(), "setup.toml", setup);
    let out = bin().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!("{}:7:10: with its setup and teardown the plan would have 4000000000 step runs", p.display());
    assert!(stderr.contains(&at), "{stderr}");
}

fn trace_cases(trace: &Path) -> std::collections::BTreeSet<String> {
    let mut r = csv::Reader::from_path(trace).unwrap();
    let col = r.headers().unwrap().iter().position(|h| h == "test_step").expect("test_step column");
    r.records().map(|x| x.unwrap()[col].to_string()).collect()
}

#[test]
fn a_stdout_pipe_closed_before_the_run_writes_ends_nothing_early_and_panics_nowhere() {
    let d = tempfile::tempdir().unwrap();
    // A real pipe whose only reader is gone before the child writes: every write to stdout
    // fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "--run-id", "P"])
        .arg("--logs")
        .arg(d.path())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the run's own exit code: {stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
    // The run went to its end: every case of the plan is in the trace.
    let cases = trace_cases(&d.path().join("P/trace.csv"));
    assert!(cases.iter().any(|c| c.starts_with("xfer")) && cases.len() >= 13, "{cases:?}");
}

#[test]
fn run_and_batch_piped_into_head_exit_quietly() {
    let d = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cardbench");
    let logs = d.path().display().to_string();
    for cmd in [
        format!("'{bin}' run test-plans/smoke.toml --profile profiles/virtual-lab.toml --logs '{logs}' | head -2"),
        format!(
            "'{bin}' batch --plan test-plans/certification.toml --profile profiles/virtual-lab.toml \
             --batch-id H --count 6 --logs '{logs}' | head -1"
        ),
    ] {
        let out = Command::new("bash")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["-c", &format!("set -o pipefail; {cmd}; echo \"status ${{PIPESTATUS[0]}}\" >&2")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{cmd}: {stderr}");
        let status: i32 = stderr.trim().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(status == 0 || status == 1, "{cmd}: the work's own exit code, not 101: {stderr}");
        assert!(stdout.lines().count() <= 2, "{stdout}");
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_init_never_writes_through_a_stale_or_planted_temp_file() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    // A stale temp file from an interrupted run, readable by all.
    let kd = d.path().join("stale");
    std::fs::create_dir(&kd).unwrap();
    let tmp = write(&kd, "keyset.toml.tmp", "half a keyset");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin().args(["keys", "init"]).arg(&kd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&kd.join("keyset.toml")), 0o600);
    assert!(!tmp.exists());
    // A symbolic link planted where the temp file goes: its target is not touched.
    let kd = d.path().join("link");
    std::fs::create_dir(&kd).unwrap();
    let target = write(d.path(), "victim.txt", "not for keys\n");
    std::os::unix::fs::symlink(&target, kd.join("keyset.toml.tmp")).unwrap();
    let out = bin().args(["keys", "init"]).arg(&kd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not for keys\n", "the link's target is untouched");
    let meta = std::fs::symlink_metadata(kd.join("keyset.toml")).unwrap();
    assert!(meta.file_type().is_file(), "keyset.toml is a regular file, not the link");
    assert_eq!(mode(&kd.join("keyset.toml")), 0o600);
    assert!(std::fs::read_to_string(kd.join("keyset.toml")).unwrap().contains("test_keys = true"));
}

fn profile_with(dir: &Path, keyset: &str, extra_head: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = std::fs::read_to_string(repo.join("profiles/virtual-lab.toml")).unwrap();
    let lab = lab.replacen("seed = \"cardbench virtual lab\"", keyset, 1);
    write(dir, "lab.toml", &format!("{lab}\n{extra_head}"))
}

#[test]
fn a_keyset_others_can_read_is_refused_with_the_chmod_that_fixes_it() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let kd = d.path().join("keys");
    assert!(bin().args(["keys", "init"]).arg(&kd).status().unwrap().success());
    let ks = kd.join("keyset.toml");
    let p = profile_with(d.path(), "path = \"keys/keyset.toml\"", "");
    let logs = d.path().join("logs");
    let run = || {
        bin()
            .args(["run", "test-plans/smoke.toml", "--profile", p.to_str().unwrap(), "-q", "--logs"])
            .arg(&logs)
            .output()
            .unwrap()
    };
    for bad in [0o644, 0o640, 0o620, 0o602] {
        std::fs::set_permissions(&ks, std::fs::Permissions::from_mode(bad)).unwrap();
        let out = run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:o}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("mode {bad:04o} lets group or others read or write this keyset"))
                && stderr.contains(&format!("chmod 600 {}", ks.display())),
            "{stderr}"
        );
        assert!(!logs.exists(), "nothing ran");
    }
    std::fs::set_permissions(&ks, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "a file keyset on virtual heads: no warning");
}

#[test]
fn seed_derived_keys_with_a_real_reader_get_one_warning_line() {
    let d = tempfile::tempdir().unwrap();
    // A PC/SC head the smoke plan does not use: it is never opened, but it is in the lab.
    let pcsc = "[[head]]\nname = \"R9\"\ndriver = \"pcsc\"\nrole = \"spare\"\nreader = \"no such reader\"\n";
    let p = profile_with(d.path(), "seed = \"cardbench virtual lab\"", pcsc);
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", p.to_str().unwrap(), "-q", "--logs"])
        .arg(d.path().join("logs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("derived from its [keyset] seed with real heads (R9)"), "{stderr}");
    // The virtual lab alone: silent.
    let out = bin()
        .args(["run", "test-plans/smoke.toml", "--profile", "profiles/virtual-lab.toml", "-q", "--logs"])
        .arg(d.path().join("logs2"))
        .output()
        .unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
