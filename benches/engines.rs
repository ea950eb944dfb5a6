//! Each protocol engine end to end on freshly personalized virtual cards (tracing off).
//! Card personalization happens in the untimed setup of every iteration.

use cardbench::card::Protocol;
use cardbench::engine::key_update::{key_update, UpdateMode};
use cardbench::engine::{cpay, purse, transfer, Terminal};
use cardbench::event::Recorder;
use cardbench::head::virtual_head::VirtualHead;
use cardbench::head::Head;
use cardbench::issuance::CardPlan;
use cardbench::keys::Keyset;
use cardbench::lab::personalize_virtual;
use cardbench::link::Link;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u32 = 1_780_315_200;

fn head(keys: &Keyset, plan: &CardPlan) -> VirtualHead {
    let mut h = VirtualHead::new("H");
    h.insert(personalize_virtual(plan, Protocol::T0, keys).unwrap());
    h.power_on().unwrap();
    h
}

fn plan(n: u8, tk: u32, uk: u32) -> CardPlan {
    let mut p = CardPlan::new([0xCB, 0, 0, 0, 0, 0, 0xBE, n]);
    p.transfer_key = tk;
    p.update_key = uk;
    p.balance = 10_000;
    p.cpay_amount = 10_000;
    p.slots = vec![2, 3, 4];
    p
}

fn engines(c: &mut Criterion) {
    let keys = Keyset::from_seed("bench", vec![]);
    let rec = Recorder::disabled();
    let term = || Terminal::new(&keys, NOW, ChaCha20Rng::seed_from_u64(1));
    let mut g = c.benchmark_group("engine");
    g.sample_size(30);

    g.bench_function("charge", |b| {
        b.iter_batched(
            || head(&keys, &plan(1, 1, 1)),
            |mut h| purse::charge(&mut Link::new(&mut h, &rec), &mut term(), 500).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("pay", |b| {
        b.iter_batched(
            || {
                let mut h = head(&keys, &plan(1, 1, 1));
                purse::charge(&mut Link::new(&mut h, &rec), &mut term(), 500).unwrap();
                h
            },
            |mut h| purse::pay(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("card_signed_payment", |b| {
        b.iter_batched(
            || head(&keys, &plan(1, 1, 1)),
            |mut h| cpay::card_signed_payment(&mut Link::new(&mut h, &rec), &mut term(), 100).unwrap(),
            BatchSize::SmallInput,
        )
    });
    for (name, mode, uka, ukb) in [
        ("key_update/common", UpdateMode::Common, 1, 1),
        ("key_update/public", UpdateMode::Public, 1, 1),
        ("key_update/multi", UpdateMode::Multi, 1, 1),
        ("key_update/rollover_public", UpdateMode::Rollover, 1, 2),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (head(&keys, &plan(1, 1, uka)), head(&keys, &plan(2, 3, ukb))),
                |(mut a, mut bh)| {
                    let o = key_update(&mut Link::new(&mut a, &rec), &mut Link::new(&mut bh, &rec), &mut term(), mode);
                    assert_eq!(o.unwrap().verdict(), "success");
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.bench_function("value_transfer", |b| {
        b.iter_batched(
            || (head(&keys, &plan(1, 3, 1)), head(&keys, &plan(2, 3, 1))),
            |(mut a, mut bh)| {
                let o = transfer::value_transfer(
                    &mut Link::new(&mut a, &rec),
                    &mut Link::new(&mut bh, &rec),
                    &mut term(),
                    10,
                );
                assert_eq!(o.unwrap().verdict(), "success");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The P-256 primitives the engines are made of, to compare an engine's time with the sum of
/// its primitives (docs/timing.md, "Host side of the hot path").
fn primitives(c: &mut Criterion) {
    use cardbench::crypto::{ecies, sig};
    let key = sig::key_from_seed(b"bench", "primitive");
    let scalar: [u8; 32] = key.to_bytes().into();
    let public = p256::PublicKey::from(key.verifying_key());
    let secret = p256::SecretKey::from(key.clone());
    let msg = [0x5Au8; 40];
    let signature = sig::sign(&key, &msg);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ct = ecies::encrypt(&mut rng, &public, &[7u8; 20]);
    let mut g = c.benchmark_group("p256");
    g.sample_size(30);
    g.bench_function("ecdsa_sign", |b| b.iter(|| sig::sign(&key, &msg)));
    g.bench_function("ecdsa_verify", |b| b.iter(|| sig::verify(key.verifying_key(), &msg, &signature).unwrap()));
    // What the virtual card paid on every signing command before it kept its keys built.
    g.bench_function("signing_key_from_scalar", |b| b.iter(|| p256::ecdsa::SigningKey::from_slice(&scalar).unwrap()));
    g.bench_function("ecies_encrypt_20", |b| b.iter(|| ecies::encrypt(&mut rng, &public, &[7u8; 20])));
    g.bench_function("ecies_decrypt_20", |b| b.iter(|| ecies::decrypt(&secret, &ct).unwrap()));
    g.bench_function("ecies_decrypt_with_20", |b| b.iter(|| ecies::decrypt_with(&secret, &public, &ct).unwrap()));
    g.finish();
}

criterion_group!(benches, engines, primitives);
criterion_main!(benches);
