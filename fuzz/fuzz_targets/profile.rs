//! Profile loading: TOML text as a profile, every card entry resolved to an issuance plan
//! and its defects, and, for all-virtual profiles with a seeded keyset, the whole lab built
//! (keyset derived, cards personalized). Errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(loaded) = cardbench::profile::parse_str(Path::new("profiles/fuzz-input.toml"), text) else { return };
    for spec in &loaded.profile.cards {
        let _ = cardbench::lab::card_plan(&loaded, spec);
        let _ = cardbench::lab::card_defects(&loaded, spec);
    }
    let p = &loaded.profile;
    // Real drivers would open devices; a keyset path would read files: not here.
    let virtual_only = p.heads.iter().all(|h| h.get_ref().driver.get_ref() == "virtual");
    if virtual_only && p.keyset.path.is_none() && p.heads.len() <= 8 {
        let _ = cardbench::lab::Lab::from_profile(&loaded);
    }
});
