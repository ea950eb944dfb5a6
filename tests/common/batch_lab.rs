//! The small batch lab several tests certify against: the mini plan (a counter check on the
//! DUT, a common-key update with the peer) and the cards and `[batch]` section of a virtual
//! profile whose feeder seeds `counter-not-decremented` into some cards.
#![allow(dead_code)]

pub const MINI_PLAN: &str = r#"
[plan]
id = "mini"
version = "1"
roles = ["dut", "peer"]

[[case]]
id = "PURSE-CTR-01"
title = "Counter decrements by exactly one"
ref = "000 S2"
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "before"
[[case.step]]
do = "engine"
engine = "charge"
head = "dut"
amount = 100
[[case.step]]
do = "read"
head = "dut"
state = "purse"
as = "after"
[[case.step]]
do = "assert"
that = "after.counter == before.counter - 1"

[[case]]
id = "XFER-UPD-01"
title = "Common-key update from the reference card"
ref = "002 S1001-S1104A"
[[case.step]]
do = "engine"
engine = "key_update"
heads = ["dut", "peer"]
mode = "common"
"#;

/// Virtual DUT heads named `names`, each with `service_time_us` when given.
pub fn dut_heads(names: &[&str], service_us: Option<u32>) -> String {
    let service = service_us.map_or(String::new(), |us| format!("service_time_us = {us}\n"));
    names.iter().map(|h| format!("[[head]]\nname = \"{h}\"\ndriver = \"virtual\"\nrole = \"dut\"\n{service}")).collect()
}

/// The DUT and reference cards and the `[batch]` section: `count` cards by default (none:
/// the command line says), card i seeded with `counter-not-decremented` when i % every == offset.
pub fn cards_and_batch(count: Option<u64>, every: u64, offset: u64) -> String {
    let count = count.map_or(String::new(), |c| format!("count = {c}\n"));
    format!(
        r#"
[[card]]
name = "dut"
id = "CB0000000000D000"
update_key = 1
transfer_key = 2
[[card]]
name = "reference"
id = "CB00000000000EEE"
protocol = "T=1"
update_key = 1
transfer_key = 3
[batch]
dut_card = "dut"
peer_card = "reference"
id_prefix = "CB00B000"
{count}[[batch.defect]]
every = {every}
offset = {offset}
defects = ["counter-not-decremented"]
"#
    )
}
