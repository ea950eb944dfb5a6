//! Shared by the targets: the personalized reference cards of the embedded virtual lab, made
//! once (personalization signs certificates, far too slow per input) and copied per input.
#![allow(dead_code)]

use cardbench::card::image::CardImage;
use cardbench::card::{Protocol, VirtualCard};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const VIRTUAL_LAB: &str = include_str!("../../../profiles/virtual-lab.toml");

/// Cards A-D of profiles/virtual-lab.toml, as the lab personalizes them.
pub const CARD_NAMES: [&str; 4] = ["card-a", "card-b", "card-c", "card-d"];

struct Template {
    image: CardImage,
    protocol: Protocol,
    seed: [u8; 32],
}

fn templates() -> &'static [Template] {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let path = std::path::Path::new("profiles/virtual-lab.toml");
        let loaded = cardbench::profile::parse_str(path, VIRTUAL_LAB).expect("virtual-lab profile");
        let keys = cardbench::keys::Keyset::from_seed(
            loaded.profile.keyset.seed.as_deref().expect("seeded keyset"),
            loaded.profile.keyset.revoked.clone(),
        );
        CARD_NAMES
            .iter()
            .map(|name| {
                let spec = loaded.profile.cards.iter().find(|c| c.get_ref().name == *name).expect("card");
                let plan = cardbench::lab::card_plan(&loaded, spec).expect("card plan");
                let protocol = spec.get_ref().protocol;
                let card = cardbench::lab::personalize_virtual(&plan, protocol, &keys).expect("personalize");
                // The seed lab::personalize_virtual gives the card's random generator, so a
                // trace of a lab run replays with the same card challenges.
                let seed: [u8; 32] =
                    Sha256::new().chain_update(b"cardbench card rng").chain_update(plan.card_id).finalize().into();
                Template { image: card.image().clone(), protocol, seed }
            })
            .collect()
    })
}

/// A fresh copy of lab card `i` (0..4), unpowered. Personalization draws no randoms, so a
/// blank card with the lab's seed and the personalized image is the card the lab builds.
pub fn lab_card(i: usize) -> VirtualCard {
    let t = &templates()[i % CARD_NAMES.len()];
    let mut card = VirtualCard::blank(t.protocol, Some(t.seed));
    let image = t.image.clone();
    card.nvm_mut()
        .update(move |img| {
            *img = image;
            Ok(())
        })
        .expect("image copy");
    card
}
