//! Two stations on one batch in a shared PostgreSQL store, with real readers (pcscd + vpcd):
//! the card certified at station 1 is refused when the operator puts it into station 2's
//! reader, before anything is sent to it or written for it.

#[path = "common/pcscd.rs"]
mod pcscd;
#[path = "common/postgres.rs"]
mod postgres_server;

use pcscd::{bin, wait_readers_with_cards, Bridge, Pcscd, ROOT};
use std::path::{Path, PathBuf};

/// profiles/vpcd-lab.toml with one DUT head (the other's role is renamed away) and a short
/// wait for the operator, so that a station stops soon after its card stays in the reader.
fn station_profile(dir: &Path, name: &str, keep: &str, drop: &str) -> PathBuf {
    let p = std::fs::read_to_string(Path::new(ROOT).join("profiles/vpcd-lab.toml")).unwrap();
    let dropped = format!("name = \"{drop}\"\ndriver = \"pcsc\"\nrole = \"dut\"");
    assert!(p.contains(&dropped), "vpcd-lab.toml has head {drop} as a dut");
    assert!(p.contains(&format!("name = \"{keep}\"\ndriver = \"pcsc\"\nrole = \"dut\"")));
    let p = p
        .replace(&dropped, &format!("name = \"{drop}\"\ndriver = \"pcsc\"\nrole = \"spare\""))
        .replace("[batch]\n", "[batch]\npresence_timeout_s = 1\n");
    let path = dir.join(name);
    std::fs::write(&path, p).unwrap();
    path
}

fn station(profile: &Path, logs: &Path, db: &str) -> std::process::Output {
    bin()
        .args(["batch", "--profile"])
        .arg(profile)
        .args(["--plan", "test-plans/certification.toml", "--batch-id", "LAB", "--count", "2", "-q", "--db", db])
        .arg("--logs")
        .arg(logs)
        .env_remove("CARDBENCH_DB")
        .output()
        .unwrap()
}

#[test]
fn a_card_certified_at_one_station_is_refused_at_the_other() {
    if !pcscd::available() {
        return;
    }
    let pg = postgres_server::Postgres::start();
    let db = pg.database("lab");
    let d = tempfile::tempdir().unwrap();
    let one = station_profile(d.path(), "station1.toml", "E", "F");
    let two = station_profile(d.path(), "station2.toml", "F", "E");
    let _pcscd = Pcscd::start(6, &d.path().join("pcscd"));
    // Station 1 certifies card E in its reader E; the card stays in, so the station stops
    // waiting for it to be taken out (the batch is incomplete: card #2 has no verdict).
    {
        let _card = Bridge::start("dut-e", 4, 0);
        wait_readers_with_cards(1);
        let out = station(&one, &d.path().join("station1"), &db);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("1 of 2 cards have no verdict: #2") || err.contains("have no verdict"), "{err}");
    }
    wait_readers_with_cards(0);
    let s1 = csv::Reader::from_path(d.path().join("station1/LAB/summary.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>();
    assert_eq!(s1.len(), 1);
    assert_eq!((&s1[0][1], &s1[0][2], &s1[0][4]), ("1", "CB00C0000000000E", "pass"));
    // The operator puts the same card into station 2's reader F: refused, nothing certified.
    {
        let _card = Bridge::start("dut-e", 5, 0);
        wait_readers_with_cards(1);
        let out = station(&two, &d.path().join("station2"), &db);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let station1 = std::fs::canonicalize(d.path().join("station1/LAB")).unwrap();
        assert!(err.contains("card CB00C0000000000E was certified in batch LAB (as #1) at station "), "{err}");
        assert!(err.contains(&format!(":{}; take it out", station1.display())), "station 1 named: {err}");
        assert!(err.contains("take it out, it is not certified here"), "{err}");
    }
    assert!(
        !d.path().join("station2/LAB/cards").exists()
            || std::fs::read_dir(d.path().join("station2/LAB/cards")).unwrap().next().is_none(),
        "nothing was written for the refused card"
    );
    let s2 = csv::Reader::from_path(d.path().join("station2/LAB/summary.csv")).unwrap().records().count();
    assert_eq!(s2, 0, "station 2 certified nothing");
    // The store has card #1 once, from station 1; #2 is free for the next card.
    let store = cardbench::store::Store::open(Some(&db), d.path()).unwrap().unwrap();
    let b = store.load_batch("LAB").unwrap();
    assert_eq!(b.cards.len(), 1);
    assert_eq!(b.cards[0].card_id, "CB00C0000000000E");
    assert!(store.has_free("LAB").unwrap());
}
