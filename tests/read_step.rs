//! `read` steps expose every field of each applet's state (docs/plan-language.md 6.4): a plan
//! on the virtual lab reads cards whose state is known from the profile and from the commands
//! the plan sent, and asserts each field.

use std::process::Command as Proc;

fn run(name: &str, cases: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("{name}.toml"));
    let text = format!(
        "[plan]\nid = \"{name}\"\nversion = \"1.0.0\"\ntitle = \"read fields\"\napplet = \"purse, cpay, xfer\"\n\n{cases}"
    );
    std::fs::write(&p, text).unwrap();
    let out = Proc::new(env!("CARGO_BIN_EXE_cardbench"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .arg(&p)
        .args(["--profile", "profiles/virtual-lab.toml", "--run-id", name, "--logs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn assert_step(that: &str) -> String {
    format!("[[case.step]]\ndo = \"assert\"\nthat = '{that}'\nmessage = \"{}\"\n", that.replace('"', "'"))
}

fn read_step(head: &str, state: &str, r#as: &str) -> String {
    format!("[[case.step]]\ndo = \"read\"\nhead = \"{head}\"\nstate = \"{state}\"\nas = \"{as}\"\n")
}

#[test]
fn xfer_read_gives_flags_slots_and_certificate() {
    // Card C: update key 1, transfer key 3, preloaded keys 3 and 4, a certificate and card key.
    let case = [
        "[[case]]\nid = \"READ-XFER\"\ntitle = \"xfer fields\"\n".to_string(),
        read_step("C", "xfer", "c"),
        assert_step("c.card_id == \"CB00000000000C03\" && c.balance == 5000 && c.ukid == 1 && c.tkid == 3"),
        assert_step("c.flags == 3 && c.update_key == 1 && c.card_key == 1 && c.pending == 0 && c.debit == 0"),
        assert_step(
            "c.slots == 2 && c.slot_ids == \"3,4\" && c.slot1 == 3 && c.slot2 == 4 && c.slot3 == 0 && c.slot8 == 0",
        ),
        assert_step("len(c.certificate) == 372 && str::substring(c.certificate, 0, 2) != \"\""),
        assert_step(
            "c.pending_paid == 0 && c.pending_rnd_send == \"\" && c.debit_paid == 0 && c.debit_challenge == \"\"",
        ),
    ]
    .concat();
    let (code, out) = run("read-xfer", &case);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn xfer_read_gives_the_pending_credit_and_the_last_debit() {
    // A pending credit from a raw VALUE RECEIVE PERMISSION on C; a last debit on A from a
    // transfer to the reference card (both on transfer key 1).
    let case = [
        "[[case]]\nid = \"READ-XFER-TRANSFER\"\ntitle = \"transfer records\"\n".to_string(),
        "[[case.step]]\ndo = \"select\"\nhead = \"C\"\napplet = \"xfer\"\n".into(),
        "[[case.step]]\ndo = \"apdu\"\nhead = \"C\"\ncommand = \"80 32 00 00 18 00000064 ${now:u32} A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5 20\"\nsw = \"9000\"\n".into(),
        read_step("C", "xfer", "c"),
        assert_step("c.pending == 1 && c.flags == 7 && c.pending_paid == 100 && c.pending_date == now"),
        assert_step("c.pending_rnd_send == \"A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5\" && len(c.pending_rnd_recv) == 32"),
        assert_step("c.balance == 5000 && c.debit == 0"),
        "[[case.step]]\ndo = \"insert_card\"\nhead = \"E\"\ncard = { id = \"CB00000000000E01\", balance = 5000, update_key = 1, transfer_key = 1 }\n".into(),
        "[[case.step]]\ndo = \"power_on\"\nhead = \"E\"\n".into(),
        "[[case.step]]\ndo = \"engine\"\nengine = \"value_transfer\"\nfrom = \"A\"\nto = \"E\"\namount = 250\n".into(),
        read_step("A", "xfer", "a"),
        read_step("E", "xfer", "e"),
        assert_step("a.debit == 1 && a.debit_paid == 250 && a.debit_date == now && a.balance == 9750"),
        assert_step("len(a.debit_rnd_send) == 32 && len(a.debit_rnd_recv) == 32 && len(a.debit_challenge) == 32"),
        assert_step("e.pending == 0 && e.balance == 5250 && e.pending_paid == 0"),
    ]
    .concat();
    let (code, out) = run("read-xfer-transfer", &case);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn cpay_read_gives_id_value_and_certificate() {
    let case = [
        "[[case]]\nid = \"READ-CPAY\"\ntitle = \"cpay fields\"\n".to_string(),
        read_step("B", "cpay", "b"),
        read_step("B", "purse", "p"),
        assert_step("b.card_id == \"CB00000000000B02\" && b.card_id == p.card_id && b.amount == 20000"),
        assert_step("len(b.certificate) == 372 && b.certificate != p.certificate"),
    ]
    .concat();
    let (code, out) = run("read-cpay", &case);
    assert_eq!(code, Some(0), "{out}");
}
