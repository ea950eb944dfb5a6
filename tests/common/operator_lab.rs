//! A lab for the operator tests: PC/SC DUT heads (E on vpcd reader 4, F on reader 5) and two
//! DUT cards (different IDs) that `cardbench sim vpcd` serves in a reader, one at a time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The lab with head E only, written into `dir`.
pub fn one_head_lab(dir: &Path) -> PathBuf {
    lab_with_heads(dir, "one-head", &[("E", 4)])
}

/// The lab with heads E and F (two DUT heads, for the batch worker race).
pub fn two_head_lab(dir: &Path) -> PathBuf {
    lab_with_heads(dir, "two-heads", &[("E", 4), ("F", 5)])
}

/// The lab's profile with DUT heads `(name, vpcd reader)`, written into `dir/<name>.toml`.
fn lab_with_heads(dir: &Path, name: &str, heads: &[(&str, u32)]) -> PathBuf {
    let dut = |name: &str, id: &str| {
        format!(
            "[[card]]\nname = \"{name}\"\nid = \"{id}\"\nprotocol = \"T=0\"\npurse_counter = 50\ncpay_amount = 5000\n\
             balance = 10000\nmax_balance = 100000\nvalidity = \"2030-12-31\"\nupdate_key = 1\ntransfer_key = 2\n\
             transfer_key_limit = 6\nupdate_key_limit = 3\nslots = [3, 4]\ncert_expiry = \"2035-12-31\"\n\n"
        )
    };
    let heads: String = heads
        .iter()
        .map(|(h, r)| format!("[[head]]\nname = \"{h}\"\ndriver = \"pcsc\"\nrole = \"dut\"\nreader = \"cardbench vpcd {r} 00 00\"\n\n"))
        .collect();
    let text = format!(
        "name = \"{name}\"\n[keyset]\nseed = \"cardbench virtual lab\"\nrevoked = [0x0000EE05, 0x0003EE01]\n\n\
         [defaults]\nlogs = \"logs\"\nclock = \"2026-06-01T12:00:00Z\"\n\n\
         {heads}{}{}\
         [[card]]\nname = \"reference\"\nid = \"CB00000000000E01\"\nprotocol = \"T=1\"\nbalance = 5000\n\
         update_key = 1\ntransfer_key = 1\n\n\
         [batch]\ndut_card = \"card-1\"\npeer_card = \"reference\"\nid_prefix = \"CB00C000\"\ncount = 2\n",
        dut("card-1", "CB00C00000000011"),
        dut("card-2", "CB00C00000000012"),
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// `card` of `lab` inserted in vpcd reader 4 (head E) for as long as the bridge lives.
pub fn insert(lab: &Path, card: &str) -> super::pcscd::Bridge {
    insert_in(lab, card, 4)
}

/// `card` of `lab` inserted in vpcd reader `reader` for as long as the bridge lives.
pub fn insert_in(lab: &Path, card: &str, reader: u32) -> super::pcscd::Bridge {
    let port = super::pcscd::vpcd_port(reader).to_string();
    super::pcscd::Bridge::spawn(&["sim", "vpcd", "--profile", lab.to_str().unwrap(), "--card", card, "--port", &port])
}
