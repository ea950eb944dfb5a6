//! Plan loading: TOML text as a plan file beside the shipped plans (so includes of them
//! resolve), then the `check` binding against the virtual lab's heads. Errors are fine,
//! panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

const PLAN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-plans/fuzz-input.toml");
const HEADS: [&str; 10] = ["A", "B", "C", "D", "E", "F", "purse", "signer", "peer", "dut"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(plan) = cardbench::plan::parse::parse_str(Path::new(PLAN_PATH), text) {
        let _ = plan.bind(|h| HEADS.contains(&h));
        let _ = plan.head_names();
    }
});
