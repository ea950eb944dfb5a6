//! Shared by tests/replay_bytes.rs and tests/trace_diff.rs: batch traces of the certification
//! suite on a one-DUT virtual lab, and the profiles to replay them on.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const DUT_ID: &str = "CB00B00000000001";

const KEYS_AND_CARDS: &str = r#"
[keyset]
seed = "cardbench virtual lab"
revoked = [0x0000EE05, 0x0003EE01]

[defaults]
clock = "2026-06-01T12:00:00Z"

[[card]]
name = "dut"
id = "CB00B00000000000"
protocol = "T=0"
purse_counter = 50
cpay_amount = 5000
balance = 10000
max_balance = 100000
validity = "2030-12-31"
update_key = 1
transfer_key = 2
transfer_key_limit = 6
update_key_limit = 3
slots = [3, 4]
cert_expiry = "2035-12-31"

[[card]]
name = "reference"
id = "CB00000000000E01"
protocol = "T=1"
balance = 5000
update_key = 1
transfer_key = 1
"#;

/// A batch lab with one DUT head `D` (so card 1 always runs there; its peer head is `D.peer`);
/// `defect` seeds card 1 of the batch with that defect.
pub fn batch_profile(defect: Option<&str>) -> String {
    let mut s = String::from("name = \"replay-batch\"\n");
    s += KEYS_AND_CARDS;
    s += "\n[[head]]\nname = \"D\"\ndriver = \"virtual\"\nrole = \"dut\"\n";
    s += "\n[batch]\ndut_card = \"dut\"\npeer_card = \"reference\"\nid_prefix = \"CB00B000\"\ncount = 1\n";
    if let Some(d) = defect {
        s += &format!("\n[[batch.defect]]\nevery = 1000\noffset = 1\ndefects = [\"{d}\"]\n");
    }
    s
}

/// The lab a batch trace replays on: head `D` holds a fresh card 1 (with `defects`), head `P`
/// takes the peer cards.
pub fn replay_profile(defects: &[&str]) -> String {
    let mut s = String::from("name = \"replay-lab\"\n");
    s += &KEYS_AND_CARDS.replace("id = \"CB00B00000000000\"", &format!("id = \"{DUT_ID}\""));
    let list: Vec<String> = defects.iter().map(|d| format!("\"{d}\"")).collect();
    // The defects go on the dut card entry (the first [[card]]).
    s = s.replacen(
        "cert_expiry = \"2035-12-31\"",
        &format!("cert_expiry = \"2035-12-31\"\ndefects = [{}]", list.join(", ")),
        1,
    );
    s += "\n[[head]]\nname = \"D\"\ndriver = \"virtual\"\nrole = \"dut\"\ncard = \"dut\"\n";
    s += "\n[[head]]\nname = \"P\"\ndriver = \"virtual\"\nrole = \"peer\"\n";
    s
}

pub fn cardbench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardbench")).current_dir(dir).args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Certify card 1 of batch `id` of the certification suite into `dir/logs`; its trace.
pub fn batch_trace(dir: &Path, logs: &str, id: &str, defect: Option<&str>) -> PathBuf {
    let profile = format!("{logs}-lab.toml");
    std::fs::write(dir.join(&profile), batch_profile(defect)).unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-plans/certification.toml");
    let o = cardbench(
        dir,
        &["batch", "--profile", &profile, "--plan", plan.to_str().unwrap(), "--batch-id", id, "--logs", logs, "-q"],
    );
    assert!(o.status.code() == Some(0) || (defect.is_some() && o.status.code() == Some(1)), "batch: {}", text(&o));
    let t = dir.join(logs).join(id).join(format!("cards/00001-{DUT_ID}/trace.csv"));
    assert!(t.exists(), "{}", t.display());
    t
}

/// A wire row as compared here: kind, command, response, SW.
pub fn wire_rows(path: &Path) -> Vec<(u64, [String; 4])> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (k, c, resp, sw) = (col("kind"), col("command"), col("response"), col("sw"));
    r.records()
        .map(|x| x.unwrap())
        .map(|x| {
            let line = x.position().unwrap().line();
            (line, [x[k].to_string(), x[c].to_string(), x[resp].to_string(), x[sw].to_string()])
        })
        .collect()
}

/// The first command (line of its command row in `a`) whose answer differs between two
/// traces of the same plan, with the answer of each side as the terminal saw it: the data of
/// the command row and its GET RESPONSE rows (a `6Cxx` answer has none), then the final SW.
pub fn first_difference(a: &Path, b: &Path) -> (u64, String, String) {
    let (ra, rb) = (wire_rows(a), wire_rows(b));
    let n = ra.iter().zip(rb.iter()).position(|((_, x), (_, y))| x != y).expect("the traces do not differ");
    assert_eq!((&ra[n].1[0], &ra[n].1[1]), (&rb[n].1[0], &rb[n].1[1]), "the first difference is the card's answer");
    let follows = |k: &str| k == "get-response" || k == "resend-6c";
    let mut start = n;
    while follows(&ra[start].1[0]) {
        start -= 1;
    }
    let answer = |rows: &[(u64, [String; 4])]| {
        let mut end = start;
        while end + 1 < rows.len() && follows(&rows[end + 1].1[0]) {
            end += 1;
        }
        let mut data = String::new();
        for (i, (_, r)) in rows[start..=end].iter().enumerate() {
            if !(r[3].starts_with("6C") && start + i < end) {
                data += &r[2];
            }
        }
        data + &rows[end].1[3]
    };
    (ra[start].0, answer(&ra), answer(&rb))
}
