//! A lab for the operator tests: one PC/SC DUT head E on vpcd reader 4 and two DUT cards
//! (different IDs) that `cardbench sim vpcd` serves in that reader, one at a time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The lab's profile, written into `dir`.
pub fn one_head_lab(dir: &Path) -> PathBuf {
    let dut = |name: &str, id: &str| {
        format!(
            "[[card]]\nname = \"{name}\"\nid = \"{id}\"\nprotocol = \"T=0\"\npurse_counter = 50\ncpay_amount = 5000\n\
             balance = 10000\nmax_balance = 100000\nvalidity = \"2030-12-31\"\nupdate_key = 1\ntransfer_key = 2\n\
             transfer_key_limit = 6\nupdate_key_limit = 3\nslots = [3, 4]\ncert_expiry = \"2035-12-31\"\n\n"
        )
    };
    let text = format!(
        "name = \"one-head\"\n[keyset]\nseed = \"cardbench virtual lab\"\nrevoked = [0x0000EE05, 0x0003EE01]\n\n\
         [defaults]\nlogs = \"logs\"\nclock = \"2026-06-01T12:00:00Z\"\n\n\
         [[head]]\nname = \"E\"\ndriver = \"pcsc\"\nrole = \"dut\"\nreader = \"cardbench vpcd 4 00 00\"\n\n\
         {}{}\
         [[card]]\nname = \"reference\"\nid = \"CB00000000000E01\"\nprotocol = \"T=1\"\nbalance = 5000\n\
         update_key = 1\ntransfer_key = 1\n\n\
         [batch]\ndut_card = \"card-1\"\npeer_card = \"reference\"\nid_prefix = \"CB00C000\"\ncount = 2\n",
        dut("card-1", "CB00C00000000011"),
        dut("card-2", "CB00C00000000012"),
    );
    let p = dir.join("one-head.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `card` of `lab` inserted in vpcd reader 4 (head E) for as long as the bridge lives.
pub fn insert(lab: &Path, card: &str) -> super::pcscd::Bridge {
    let port = super::pcscd::vpcd_port(4).to_string();
    super::pcscd::Bridge::spawn(&["sim", "vpcd", "--profile", lab.to_str().unwrap(), "--card", card, "--port", &port])
}
