//! Software SAM keys: the test PKI and symmetric key sets a lab profile points to.
//!
//! A keyset is either derived in memory from a seed (the virtual lab: nothing to set up,
//! nothing secret on disk) or loaded from a `keyset.toml` written by `cardbench keys init`.
//! Secret fields never reach Debug output, traces or the screen.

use crate::crypto::cert::{CertBody, Certificate, Crl, Role};
use crate::crypto::sig;
use crate::secret::Key16;
use p256::ecdsa::{SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const CENTER_REF: [u8; 8] = *b"CBCENTER";
pub const CA_REF: [u8; 8] = *b"CBXFERCA";
/// Far enough for a lab, close enough to be a real date: 2036-01-01T00:00:00Z.
pub const MACHINE_CERT_EXPIRY: u32 = 2_082_758_400;
pub const UPDATE_KEY_COUNT: u32 = 4;
pub const TRANSFER_KEY_COUNT: u32 = 8;
/// Issue date of a seeded keyset's CRL, and of a keyset file's written before CRLs had dates
/// (2026-01-01T00:00:00Z): fixed, so that such a CRL is a function of its serials and the
/// keyset's fingerprint changes only when the list does.
pub const CRL_ISSUED: u32 = 1_767_225_600;
/// Next-update date of those CRLs: the machine certificates' expiry (2036-01-01), so that a
/// virtual lab never holds a stale list; a keyset file's CRL gets real dates from `keys crl`.
pub const CRL_NEXT_UPDATE: u32 = MACHINE_CERT_EXPIRY;
/// How long a CRL issued by `keys init` or `keys crl` stays current unless told otherwise.
pub const CRL_DEFAULT_DAYS: u32 = 90;
/// Certificate serial of the certification suite's revoked reference card (card ID
/// CB0000000003EE01, case KU-CERT-REV-01): the CRL `keys init` starts with, so that the
/// standard suite certifies good cards with a fresh keyset as it does with the lab's seed.
pub const SUITE_REVOKED_SERIAL: u32 = 0x0003_EE01;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error(
        "'{0}' is not a certificate serial: give 8 hex digits (0003EE01, 0x0003EE01) or a card ID (16 hex digits)"
    )]
    BadSerial(String),
}

/// A terminal identity: key pair plus the certificate the center issued for it.
pub struct Party {
    /// What plans call it (`machine = "P2"`): C1 and P1 are the keyset's default charge and
    /// payment machines.
    pub name: String,
    pub key: SigningKey,
    pub cert: Certificate,
}

/// Name, role and certificate serial only: the secret key never reaches Debug output.
impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party")
            .field("name", &self.name)
            .field("role", &self.role())
            .field("serial", &self.cert.body.serial)
            .finish_non_exhaustive()
    }
}

impl Party {
    pub fn role(&self) -> Role {
        self.cert.body.role
    }
}

/// Name of the default charge machine (`charge` in keyset.toml, certificate subject CHARGE01).
pub const DEFAULT_CHARGE: &str = "C1";
/// Name of the default payment machine (`payment` in keyset.toml, certificate subject PAYMNT01).
pub const DEFAULT_PAYMENT: &str = "P1";
/// Expiry of the standard expired machine (P-EXPIRED): 2025-01-01T00:00:00Z, before any lab clock.
pub const EXPIRED_MACHINE_EXPIRY: u32 = 1_735_689_600;

/// One further machine identity as seeded keysets derive it and `keys init` writes it.
struct StandardMachine {
    name: &'static str,
    role: Role,
    subject: &'static [u8; 8],
    serial: u32,
    expiry: u32,
    revoked: bool,
}

/// The machines every seeded or `keys init` keyset holds besides C1 and P1, so that a chain of
/// different writers (seed 000 [0025]) and a writer the center revoked or let expire can be
/// tested with any keyset. Serials 1 and 2 are C1 and P1.
const STANDARD_MACHINES: &[StandardMachine] = &[
    StandardMachine {
        name: "C2",
        role: Role::ChargeMachine,
        subject: b"CHARGE02",
        serial: 3,
        expiry: MACHINE_CERT_EXPIRY,
        revoked: false,
    },
    StandardMachine {
        name: "P2",
        role: Role::PaymentMachine,
        subject: b"PAYMNT02",
        serial: 4,
        expiry: MACHINE_CERT_EXPIRY,
        revoked: false,
    },
    StandardMachine {
        name: "P3",
        role: Role::PaymentMachine,
        subject: b"PAYMNT03",
        serial: 5,
        expiry: MACHINE_CERT_EXPIRY,
        revoked: false,
    },
    StandardMachine {
        name: "P-REVOKED",
        role: Role::PaymentMachine,
        subject: b"PAYMNTRV",
        serial: 6,
        expiry: MACHINE_CERT_EXPIRY,
        revoked: true,
    },
    StandardMachine {
        name: "P-EXPIRED",
        role: Role::PaymentMachine,
        subject: b"PAYMNTEX",
        serial: 7,
        expiry: EXPIRED_MACHINE_EXPIRY,
        revoked: false,
    },
];

/// Why a plan's `machine` cannot act.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MachineError {
    #[error("the keyset has no machine '{name}' (it has {have}){hint}")]
    Unknown { name: String, have: String, hint: String },
    #[error("machine '{name}' is a {is}, and a {step} step needs a {needs}")]
    WrongRole { name: String, is: &'static str, needs: &'static str, step: &'static str },
}

pub struct Keyset {
    pub test_keys: bool,
    /// Derived from a seed in a profile: anyone with the profile has every key.
    pub from_seed: bool,
    /// Seed 000 center (KC): certifies charge and payment machines and CPAY cards.
    pub center: SigningKey,
    /// Seed 002 certification authority: certifies XFER cards, signs the CRL.
    pub ca: SigningKey,
    /// Default charge machine (C1) and payment machine (P1).
    pub charge: Party,
    pub payment: Party,
    /// Further named charge and payment machines, in keyset order.
    pub machines: Vec<Party>,
    /// The center's list of revoked machine certificate serials, checked at S12.
    pub machine_crl: Crl,
    pub crl: Crl,
    /// The profile's `[keyset] accept_stale_crl`: a lab may knowingly run on a CRL past its
    /// next update (engine::revocation); by default that is a bench error.
    pub accept_stale_crl: bool,
    pub update_keys: BTreeMap<u32, Key16>,
    pub transfer_keys: BTreeMap<u32, Key16>,
    card_seed: [u8; 32],
}

impl std::fmt::Debug for Keyset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyset")
            .field("test_keys", &self.test_keys)
            .field("update_key_ids", &self.update_keys.keys().collect::<Vec<_>>())
            .field("transfer_key_ids", &self.transfer_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The secret material a keyset is built from; everything public is derived from it.
struct Material {
    center: [u8; 32],
    ca: [u8; 32],
    charge: [u8; 32],
    payment: [u8; 32],
    card_seed: [u8; 32],
    revoked: Vec<u32>,
    machines: Vec<MachineMaterial>,
    revoked_machines: Vec<u32>,
    /// CRL issue and next-update dates.
    crl_dates: (u32, u32),
    update_keys: BTreeMap<u32, [u8; 16]>,
    transfer_keys: BTreeMap<u32, [u8; 16]>,
}

/// A further machine's secret and the fields of the certificate the center issues for it.
struct MachineMaterial {
    name: String,
    role: Role,
    subject: [u8; 8],
    serial: u32,
    expiry: u32,
    key: [u8; 32],
}

impl MachineMaterial {
    fn standard(m: &StandardMachine, key: [u8; 32]) -> MachineMaterial {
        MachineMaterial {
            name: m.name.into(),
            role: m.role,
            subject: *m.subject,
            serial: m.serial,
            expiry: m.expiry,
            key,
        }
    }
}

fn machine_cert(
    issuer: &SigningKey,
    subject: &[u8; 8],
    role: Role,
    key: &SigningKey,
    serial: u32,
    expiry: u32,
) -> Certificate {
    Certificate::issue(
        CertBody {
            issuer: CENTER_REF,
            subject: *subject,
            role,
            public_key: sig::encode_point(key.verifying_key()),
            expiry,
            serial,
        },
        issuer,
    )
}

/// The center's machine revocation list (seed 000 names none; cardbench adds it so that a
/// payment machine can refuse a revoked writer at S12, card-spec 9.7).
fn machine_crl(center: &SigningKey, serials: Vec<u32>) -> Crl {
    Crl::issue(CENTER_REF, CRL_ISSUED, CRL_NEXT_UPDATE, serials, center)
}

/// A machine name as plans and keyset.toml write it: 1 to 16 of A-Z a-z 0-9 - _.
pub fn valid_machine_name(name: &str) -> bool {
    (1..=16).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyset {
    fn build(m: Material) -> Keyset {
        let sk = |b: &[u8; 32]| SigningKey::from_slice(b).expect("scalar validated when material was made");
        let center = sk(&m.center);
        let ca = sk(&m.ca);
        let charge_key = sk(&m.charge);
        let payment_key = sk(&m.payment);
        let charge = Party {
            name: DEFAULT_CHARGE.into(),
            cert: machine_cert(&center, b"CHARGE01", Role::ChargeMachine, &charge_key, 1, MACHINE_CERT_EXPIRY),
            key: charge_key,
        };
        let payment = Party {
            name: DEFAULT_PAYMENT.into(),
            cert: machine_cert(&center, b"PAYMNT01", Role::PaymentMachine, &payment_key, 2, MACHINE_CERT_EXPIRY),
            key: payment_key,
        };
        let machines = m
            .machines
            .iter()
            .map(|x| {
                let key = sk(&x.key);
                Party {
                    name: x.name.clone(),
                    cert: machine_cert(&center, &x.subject, x.role, &key, x.serial, x.expiry),
                    key,
                }
            })
            .collect();
        let machine_crl = machine_crl(&center, m.revoked_machines.clone());
        let crl = Crl::issue(CA_REF, m.crl_dates.0, m.crl_dates.1, m.revoked.clone(), &ca);
        Keyset {
            test_keys: true,
            from_seed: false,
            center,
            ca,
            charge,
            payment,
            machines,
            machine_crl,
            crl,
            accept_stale_crl: false,
            update_keys: m.update_keys.into_iter().map(|(i, k)| (i, Key16::new(k))).collect(),
            transfer_keys: m.transfer_keys.into_iter().map(|(i, k)| (i, Key16::new(k))).collect(),
            card_seed: m.card_seed,
        }
    }

    /// Deterministic test keys from a seed: the same seed gives the same PKI every run.
    pub fn from_seed(seed: &str, revoked: Vec<u32>) -> Keyset {
        let s = seed.as_bytes();
        let scalar = |label: &str| sig::key_from_seed(s, label).to_bytes().into();
        let mut card_seed = [0u8; 32];
        card_seed[..16].copy_from_slice(&sig::key128_from_seed(s, "card-seed-1"));
        card_seed[16..].copy_from_slice(&sig::key128_from_seed(s, "card-seed-2"));
        let mut ks = Keyset::build(Material {
            center: scalar("center"),
            ca: scalar("ca"),
            charge: scalar("charge"),
            payment: scalar("payment"),
            card_seed,
            revoked,
            machines: STANDARD_MACHINES
                .iter()
                .map(|m| MachineMaterial::standard(m, scalar(&format!("machine-{}", m.name))))
                .collect(),
            revoked_machines: standard_revoked_machines(),
            crl_dates: (CRL_ISSUED, CRL_NEXT_UPDATE),
            update_keys: (1..=UPDATE_KEY_COUNT)
                .map(|i| (i, sig::key128_from_seed(s, &format!("update-{i}"))))
                .collect(),
            transfer_keys: (1..=TRANSFER_KEY_COUNT)
                .map(|i| (i, sig::key128_from_seed(s, &format!("transfer-{i}"))))
                .collect(),
        });
        ks.from_seed = true;
        ks
    }

    /// Fresh random test keys (for `keys init`); the CRL is issued `now` and current for
    /// [`CRL_DEFAULT_DAYS`].
    pub fn generate(now: u32) -> Keyset {
        let scalar = || SigningKey::random(&mut OsRng).to_bytes().into();
        let k16 = || {
            let mut k = [0u8; 16];
            OsRng.fill_bytes(&mut k);
            k
        };
        let mut card_seed = [0u8; 32];
        OsRng.fill_bytes(&mut card_seed);
        Keyset::build(Material {
            center: scalar(),
            ca: scalar(),
            charge: scalar(),
            payment: scalar(),
            card_seed,
            revoked: vec![SUITE_REVOKED_SERIAL],
            machines: STANDARD_MACHINES.iter().map(|m| MachineMaterial::standard(m, scalar())).collect(),
            revoked_machines: standard_revoked_machines(),
            crl_dates: (now, crl_next_update(now, CRL_DEFAULT_DAYS)),
            update_keys: (1..=UPDATE_KEY_COUNT).map(|i| (i, k16())).collect(),
            transfer_keys: (1..=TRANSFER_KEY_COUNT).map(|i| (i, k16())).collect(),
        })
    }

    /// Every machine identity: C1, P1, then the further ones in keyset order.
    pub fn all_machines(&self) -> impl Iterator<Item = &Party> {
        [&self.charge, &self.payment].into_iter().chain(self.machines.iter())
    }

    /// The machine plans call `name`.
    pub fn machine(&self, name: &str) -> Option<&Party> {
        self.all_machines().find(|p| p.name == name)
    }

    /// The machine a `step` (charge, pay, card_signed_payment) acts as: `name`, or the default
    /// of `role` when the step names none. A revoked or expired machine is returned too: the
    /// bench acts as it so that a lab can make the records such a machine leaves.
    pub fn machine_for(&self, role: Role, name: Option<&str>, step: &'static str) -> Result<&Party, MachineError> {
        let Some(name) = name else {
            return Ok(if role == Role::ChargeMachine { &self.charge } else { &self.payment });
        };
        let Some(p) = self.machine(name) else {
            let names: Vec<&str> = self.all_machines().map(|p| p.name.as_str()).collect();
            let mut hint = crate::suggest::hint(name, names.iter().copied(), "'");
            if self.machines.is_empty() {
                // A keyset file from before named machines: say how to get the standard ones.
                hint.push_str(
                    "; this keyset predates named machines: make one with `cardbench keys init` or add \
                     [[machine]] tables (card-spec 9.7)",
                );
            }
            return Err(MachineError::Unknown { name: name.into(), have: names.join(", "), hint });
        };
        if p.role() != role {
            return Err(MachineError::WrongRole { name: name.into(), is: p.role().name(), needs: role.name(), step });
        }
        Ok(p)
    }

    /// The terminal CRL with `serials` added (those not on it yet, in the given order), signed
    /// again by the CA. A profile's `[keyset] revoked` applies this way to every keyset.
    pub fn revoke_also(mut self, serials: &[u32]) -> Keyset {
        let mut list = self.crl.revoked.clone();
        for s in serials {
            if !list.contains(s) {
                list.push(*s);
            }
        }
        if list.len() != self.crl.revoked.len() {
            self.crl = Crl::issue(CA_REF, self.crl.issued, self.crl.next_update, list, &self.ca);
        }
        self
    }

    /// The same CRL issued again by the CA with new dates (what `keys crl` writes).
    pub fn reissue_crl(mut self, issued: u32, next_update: u32) -> Keyset {
        self.crl = Crl::issue(CA_REF, issued, next_update, self.crl.revoked.clone(), &self.ca);
        self
    }

    /// The keyset's identity: SHA-256 over its public parts only (center and CA public keys,
    /// the machine certificates, the CRL), as `sha256:<64 hex>`. Two keysets with the same
    /// fingerprint verify and are verified alike; it reveals nothing about a secret.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"cardbench keyset public parts v1");
        for part in self.public_parts() {
            h.update((part.bytes.len() as u32).to_be_bytes());
            h.update(&part.bytes);
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// The public parts of the keyset, in fingerprint order, each with its encoding.
    pub fn public_parts(&self) -> Vec<PublicPart> {
        let cert = |name: String, c: &Certificate| PublicPart {
            name,
            what: format!(
                "certificate {} serial {:08X} expires {} key {}",
                String::from_utf8_lossy(&c.body.subject),
                c.body.serial,
                chrono::DateTime::from_timestamp(c.body.expiry as i64, 0)
                    .map_or_else(|| c.body.expiry.to_string(), |d| d.format("%Y-%m-%d").to_string()),
                hex::encode_upper(c.body.public_key)
            ),
            bytes: c.encode().to_vec(),
        };
        let revoked: Vec<String> = self.crl.revoked.iter().map(|s| format!("{s:08X}")).collect();
        let day = |t: u32| {
            chrono::DateTime::from_timestamp(t as i64, 0)
                .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        };
        let mut parts = vec![
            PublicPart {
                name: "center".into(),
                what: format!(
                    "public key {} ({})",
                    hex::encode_upper(sig::encode_point(self.center.verifying_key())),
                    String::from_utf8_lossy(&CENTER_REF)
                ),
                bytes: sig::encode_point(self.center.verifying_key()).to_vec(),
            },
            PublicPart {
                name: "ca".into(),
                what: format!(
                    "public key {} ({})",
                    hex::encode_upper(sig::encode_point(self.ca.verifying_key())),
                    String::from_utf8_lossy(&CA_REF)
                ),
                bytes: sig::encode_point(self.ca.verifying_key()).to_vec(),
            },
            cert("charge".into(), &self.charge.cert),
            cert("payment".into(), &self.payment.cert),
            PublicPart {
                name: "crl".into(),
                what: format!(
                    "issued by {} on {}, next update {}, revoked serials: {}",
                    String::from_utf8_lossy(&self.crl.issuer),
                    day(self.crl.issued),
                    day(self.crl.next_update),
                    if revoked.is_empty() { "none".into() } else { revoked.join(", ") }
                ),
                bytes: self.crl.encode().to_vec(),
            },
        ];
        parts.extend(self.machine_parts(cert));
        parts
    }

    /// The further machines' certificates and the center's machine CRL. A keyset without
    /// either (one written before they existed) has none, so its fingerprint stays as it was.
    fn machine_parts(&self, cert: impl Fn(String, &Certificate) -> PublicPart) -> Vec<PublicPart> {
        if self.machines.is_empty() && self.machine_crl.revoked.is_empty() {
            return Vec::new();
        }
        let mut parts: Vec<PublicPart> = self
            .machines
            .iter()
            .map(|m| {
                let mut part = cert(format!("machine {}", m.name), &m.cert);
                part.what = format!("{} {}", m.role().name(), part.what);
                part
            })
            .collect();
        let revoked: Vec<String> = self.machine_crl.revoked.iter().map(|s| format!("{s:08X}")).collect();
        parts.push(PublicPart {
            name: "machine crl".into(),
            what: format!(
                "issued by {}, revoked machine serials: {}",
                String::from_utf8_lossy(&self.machine_crl.issuer),
                if revoked.is_empty() { "none".into() } else { revoked.join(", ") }
            ),
            bytes: self.machine_crl.encode().to_vec(),
        });
        parts
    }

    pub fn center_public(&self) -> VerifyingKey {
        *self.center.verifying_key()
    }

    pub fn ca_public(&self) -> VerifyingKey {
        *self.ca.verifying_key()
    }

    /// A card's own key pair, derived from the keyset's card seed and the card ID, so an
    /// issuer can re-create any card's certificate without storing per-card secrets.
    pub fn card_key(&self, card_id: &[u8; 8], applet: &str) -> SigningKey {
        let mut seed = self.card_seed.to_vec();
        seed.extend_from_slice(card_id);
        sig::key_from_seed(&seed, applet)
    }

    /// Certificate for a card key: CPAY cards by the center, XFER cards by the CA.
    pub fn card_cert(&self, card_id: &[u8; 8], role: Role, expiry: u32) -> Certificate {
        let (issuer, issuer_ref, applet) = match role {
            Role::SigningCard => (&self.center, CENTER_REF, "cpay"),
            _ => (&self.ca, CA_REF, "xfer"),
        };
        let key = self.card_key(card_id, applet);
        Certificate::issue(
            CertBody {
                issuer: issuer_ref,
                subject: *card_id,
                role,
                public_key: sig::encode_point(key.verifying_key()),
                expiry,
                serial: card_serial(card_id),
            },
            issuer,
        )
    }

    pub fn update_key(&self, id: u32) -> Option<&Key16> {
        self.update_keys.get(&id)
    }

    pub fn transfer_key(&self, id: u32) -> Option<&Key16> {
        self.transfer_keys.get(&id)
    }

    /// Load a keyset written by `keys init`.
    pub fn load(path: &Path) -> Result<Keyset, KeyError> {
        let err = |msg: String| KeyError::File { path: path.to_path_buf(), msg };
        let text = read_private(path).map_err(err)?;
        let f: KeysetFile = toml::from_str(&text).map_err(|e| err(crate::profile::toml_error(&text, &e)))?;
        if !f.test_keys {
            return Err(err("test_keys must be true: cardbench only handles test keys".into()));
        }
        let h32 = |name: &str, v: &str| -> Result<[u8; 32], KeyError> {
            let b = hex::decode(v).map_err(|e| err(format!("{name}: {e}")))?;
            let a: [u8; 32] = b.try_into().map_err(|_| err(format!("{name}: expected 32 bytes")))?;
            SigningKey::from_slice(&a).map_err(|_| err(format!("{name}: not a valid P-256 scalar")))?;
            Ok(a)
        };
        let h16 = |name: String, v: &str| -> Result<[u8; 16], KeyError> {
            let b = hex::decode(v).map_err(|e| err(format!("{name}: {e}")))?;
            b.try_into().map_err(|_| err(format!("{name}: expected 16 bytes")))
        };
        let card_seed = hex::decode(&f.card_seed)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| err("card_seed: expected 32 bytes of hex".into()))?;
        let mut update_keys = BTreeMap::new();
        for k in &f.update_key {
            update_keys.insert(k.id, h16(format!("update_key {}", k.id), &k.key)?);
        }
        let mut transfer_keys = BTreeMap::new();
        for k in &f.transfer_key {
            transfer_keys.insert(k.id, h16(format!("transfer_key {}", k.id), &k.key)?);
        }
        let most = crate::crypto::cert::MAX_REVOKED;
        if f.revoked_machines.len() > most {
            return Err(err(format!("revoked_machines: a CRL lists at most {most} serials")));
        }
        let mut machines = Vec::new();
        for m in &f.machine {
            machines.push(machine_material(m, &machines, h32).map_err(|e| match e {
                MachineFileError::Key(k) => k,
                MachineFileError::Msg(msg) => err(format!("[[machine]] '{}': {msg}", m.name)),
            })?);
        }
        let crl_dates = f.crl_dates().map_err(err)?;
        Ok(Keyset::build(Material {
            center: h32("center", &f.center)?,
            ca: h32("ca", &f.ca)?,
            charge: h32("charge", &f.charge)?,
            payment: h32("payment", &f.payment)?,
            card_seed,
            revoked: f.revoked,
            machines,
            revoked_machines: f.revoked_machines,
            crl_dates,
            update_keys,
            transfer_keys,
        }))
    }

    /// Write `keyset.toml` (mode 0600) and the public parts beside it.
    pub fn save(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, KeyError> {
        let err = |p: &Path, e: std::io::Error| KeyError::File { path: p.to_path_buf(), msg: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        let main = dir.join("keyset.toml");
        if main.exists() && !force {
            return Err(KeyError::Exists(main));
        }
        let hx = |k: &SigningKey| hex::encode(k.to_bytes());
        let mut file = KeysetFile {
            test_keys: true,
            created: chrono::Utc::now().to_rfc3339(),
            center: hx(&self.center),
            ca: hx(&self.ca),
            charge: hx(&self.charge.key),
            payment: hx(&self.payment.key),
            card_seed: hex::encode(self.card_seed),
            revoked: self.crl.revoked.clone(),
            revoked_machines: self.machine_crl.revoked.clone(),
            machine: self
                .machines
                .iter()
                .map(|m| MachineEntry {
                    name: m.name.clone(),
                    role: role_word(m.role()).into(),
                    subject: String::from_utf8_lossy(&m.cert.body.subject).into_owned(),
                    serial: m.cert.body.serial,
                    expiry: chrono::DateTime::from_timestamp(m.cert.body.expiry as i64, 0)
                        .map_or_else(String::new, |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    key: hx(&m.key),
                })
                .collect(),
            crl_issued: Some(rfc3339(self.crl.issued)),
            crl_next_update: Some(rfc3339(self.crl.next_update)),
            update_key: self.update_keys.iter().map(|(i, k)| IdKey { id: *i, key: hex::encode(k.expose()) }).collect(),
            transfer_key: self
                .transfer_keys
                .iter()
                .map(|(i, k)| IdKey { id: *i, key: hex::encode(k.expose()) })
                .collect(),
        };
        file.revoked.dedup();
        let mut written = vec![main.clone()];
        write_private(&main, render(&file).as_bytes()).map_err(|e| err(&main, e))?;
        written.extend(self.write_public(dir)?);
        Ok(written)
    }

    /// The public files beside `keyset.toml`: what a verifier needs, nothing secret.
    fn write_public(&self, dir: &Path) -> Result<Vec<PathBuf>, KeyError> {
        let err = |p: &Path, e: std::io::Error| KeyError::File { path: p.to_path_buf(), msg: e.to_string() };
        let mut public: Vec<(String, Vec<u8>)> = vec![
            ("center.pub".into(), sig::encode_point(self.center.verifying_key()).to_vec()),
            ("ca.pub".into(), sig::encode_point(self.ca.verifying_key()).to_vec()),
            ("charge.cvc".into(), self.charge.cert.encode().to_vec()),
            ("payment.cvc".into(), self.payment.cert.encode().to_vec()),
            ("crl.bin".into(), self.crl.encode().to_vec()),
        ];
        for m in &self.machines {
            public.push((format!("machine-{}.cvc", m.name), m.cert.encode().to_vec()));
        }
        if !self.machines.is_empty() || !self.machine_crl.revoked.is_empty() {
            public.push(("machine-crl.bin".into(), self.machine_crl.encode().to_vec()));
        }
        let mut written = Vec::new();
        for (name, bytes) in public {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| err(&p, e))?;
            written.push(p);
        }
        Ok(written)
    }
}

fn standard_revoked_machines() -> Vec<u32> {
    STANDARD_MACHINES.iter().filter(|m| m.revoked).map(|m| m.serial).collect()
}

/// One public part of a keyset: its name, a line for `keys show`, and its encoding.
pub struct PublicPart {
    pub name: String,
    pub what: String,
    pub bytes: Vec<u8>,
}

/// Where a keyset file is: `DIR` (holding `keyset.toml`) or the file itself.
pub fn keyset_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("keyset.toml")
    } else {
        path.to_path_buf()
    }
}

/// A certificate serial as an operator types it: 8 hex digits (optionally `0x`), or a card
/// ID of 16 hex digits, whose serial is its last four bytes. Plain decimal is refused: an
/// 8-digit number would read both ways.
pub fn parse_serial(s: &str) -> Result<u32, KeyError> {
    let t = s.trim();
    let hexpart = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let bad = || KeyError::BadSerial(s.to_string());
    if !hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    match hexpart.len() {
        16 => {
            let id: [u8; 8] = hex::decode(hexpart).map_err(|_| bad())?.try_into().map_err(|_| bad())?;
            Ok(card_serial(&id))
        }
        1..=8 if hexpart.len() == 8 || t.len() != hexpart.len() => u32::from_str_radix(hexpart, 16).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Put `serial` on the CRL of the keyset file at `path` (DIR or keyset.toml) and rewrite
/// `crl.bin` beside it. Returns false when it was already revoked (nothing written).
pub fn revoke(path: &Path, serial: u32) -> Result<bool, KeyError> {
    let path = keyset_file(path);
    let err = |msg: String| KeyError::File { path: path.clone(), msg };
    let text = read_private(&path).map_err(err)?;
    let mut f: KeysetFile = toml::from_str(&text).map_err(|e| err(crate::profile::toml_error(&text, &e)))?;
    if f.revoked.contains(&serial) {
        return Ok(false);
    }
    // Loaded first: a keyset that would not load is not rewritten.
    let ks = Keyset::load(&path)?.revoke_also(&[serial]);
    f.revoked.push(serial);
    write_private(&path, render(&f).as_bytes()).map_err(|e| err(e.to_string()))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    ks.write_public(dir)?;
    Ok(true)
}

/// Put the certificate of machine `name` on the center's machine CRL of the keyset file at
/// `path` and rewrite the public files beside it. Returns its serial, and false when it was
/// already revoked (nothing written). C1 and P1 may be revoked too.
pub fn revoke_machine(path: &Path, name: &str) -> Result<(u32, bool), KeyError> {
    let path = keyset_file(path);
    let err = |msg: String| KeyError::File { path: path.clone(), msg };
    let text = read_private(&path).map_err(err)?;
    let mut f: KeysetFile = toml::from_str(&text).map_err(|e| err(crate::profile::toml_error(&text, &e)))?;
    // Loaded first: a keyset that would not load is not rewritten.
    let ks = Keyset::load(&path)?;
    let Some(m) = ks.machine(name) else {
        let names: Vec<&str> = ks.all_machines().map(|p| p.name.as_str()).collect();
        return Err(err(format!(
            "no machine '{name}' (it has {}){}",
            names.join(", "),
            crate::suggest::hint(name, names.iter().copied(), "'")
        )));
    };
    let serial = m.cert.body.serial;
    if f.revoked_machines.contains(&serial) {
        return Ok((serial, false));
    }
    f.revoked_machines.push(serial);
    write_private(&path, render(&f).as_bytes()).map_err(|e| err(e.to_string()))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    Keyset::load(&path)?.write_public(dir)?;
    Ok((serial, true))
}

/// Issue the CRL of the keyset file at `path` (DIR or keyset.toml) again, signed by its CA,
/// dated `issued` and current until `next_update`; rewrites keyset.toml and `crl.bin`.
/// Returns the new CRL's dates as the keyset holds them.
pub fn issue_crl(path: &Path, issued: u32, next_update: u32) -> Result<Crl, KeyError> {
    let path = keyset_file(path);
    let err = |msg: String| KeyError::File { path: path.clone(), msg };
    if next_update <= issued {
        return Err(err(format!(
            "a CRL's next update ({}) must come after its issue date ({})",
            rfc3339(next_update),
            rfc3339(issued)
        )));
    }
    let text = read_private(&path).map_err(err)?;
    let mut f: KeysetFile = toml::from_str(&text).map_err(|e| err(crate::profile::toml_error(&text, &e)))?;
    // Loaded first: a keyset that would not load is not rewritten.
    let ks = Keyset::load(&path)?.reissue_crl(issued, next_update);
    f.crl_issued = Some(rfc3339(issued));
    f.crl_next_update = Some(rfc3339(next_update));
    write_private(&path, render(&f).as_bytes()).map_err(|e| err(e.to_string()))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    ks.write_public(dir)?;
    Ok(ks.crl)
}

/// `issued` plus `days`, saturating at the end of the u32 clock.
pub fn crl_next_update(issued: u32, days: u32) -> u32 {
    issued.saturating_add(days.saturating_mul(86_400))
}

/// A date as keyset.toml and `keys show` write it.
pub fn rfc3339(t: u32) -> String {
    chrono::DateTime::from_timestamp(t as i64, 0)
        .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// `keyset.toml` as text: the CRL's serials in hex, as certificates and `keys show` print them.
fn render(f: &KeysetFile) -> String {
    let body = toml::to_string(f).expect("keyset serializes");
    let serials: Vec<String> = f.revoked.iter().map(|s| format!("0x{s:08X}")).collect();
    let machine_serials: Vec<String> = f.revoked_machines.iter().map(|s| format!("0x{s:08X}")).collect();
    let crl = format!(
        "# Terminal CRL: certificate serials (a card's is the last 4 bytes of its ID); `cardbench keys revoke` adds one.\n\
         # 0x0003EE01 is the certification suite's revoked reference card (KU-CERT-REV-01).\n\
         revoked = [{}]\n\
         # The center's machine CRL: serials of [[machine]] certificates a payment machine refuses at S12.\n\
         revoked_machines = [{}]\n",
        serials.join(", "),
        machine_serials.join(", ")
    );
    // Top-level keys must come before the first table.
    let body = match body.find("\n[[") {
        Some(i) => format!("{}{crl}\n{}", &body[..=i], &body[i + 1..]),
        None => format!("{body}{crl}"),
    };
    format!("# cardbench keyset: TEST KEYS ONLY. Never load production secrets here.\n{body}")
}

/// Serial number of a card certificate: the last four bytes of the card ID.
pub fn card_serial(card_id: &[u8; 8]) -> u32 {
    u32::from_be_bytes([card_id[4], card_id[5], card_id[6], card_id[7]])
}

/// Read a keyset only if no one but its owner can read or change it: secret keys that
/// others can read are no longer the lab's, and keys others can write are not the ones
/// the lab made. The mode is checked on the open file, so a swap after the check is no help.
fn read_private(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mode = f.metadata().map_err(|e| e.to_string())?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others read or write this keyset; run `chmod 600 {}`",
            path.display()
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Write through a temp file renamed into place, so a failure leaves no half-written keyset.
/// The temp file is made new, exclusively and with mode 0600 from its first byte: a stale
/// temp file left by an interrupted run (whatever its mode) or a symbolic link planted in its
/// place is removed, never written through. `create_new` is O_CREAT|O_EXCL, which fails on
/// any existing name, a symbolic link included (open(2) does not follow it), so a link made
/// between the removal and the creation is refused too.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("toml.tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("cannot remove stale {}: {e}", tmp.display()))),
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysetFile {
    test_keys: bool,
    #[serde(default)]
    created: String,
    center: String,
    ca: String,
    charge: String,
    payment: String,
    card_seed: String,
    /// Written by `render` in hex.
    #[serde(default, skip_serializing)]
    revoked: Vec<u32>,
    /// Written by `render` in hex.
    #[serde(default, skip_serializing)]
    revoked_machines: Vec<u32>,
    /// CRL dates (RFC 3339); absent in files written before CRLs had dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crl_issued: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crl_next_update: Option<String>,
    #[serde(default)]
    update_key: Vec<IdKey>,
    #[serde(default)]
    transfer_key: Vec<IdKey>,
    /// Machines besides C1 (`charge`) and P1 (`payment`); absent in keysets written before.
    #[serde(default)]
    machine: Vec<MachineEntry>,
}

/// A `[[machine]]` of keyset.toml: a further charge or payment machine identity.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineEntry {
    name: String,
    /// `charge` or `payment`.
    role: String,
    /// Certificate subject: 8 ASCII characters.
    subject: String,
    serial: u32,
    /// Certificate expiry, RFC 3339.
    expiry: String,
    key: String,
}

fn role_word(r: Role) -> &'static str {
    if r == Role::ChargeMachine {
        "charge"
    } else {
        "payment"
    }
}

enum MachineFileError {
    Key(KeyError),
    Msg(String),
}

/// A `[[machine]]` checked: a valid name no other machine has, a machine role, an 8-character
/// subject, a serial no other machine certificate has, an RFC 3339 expiry and a P-256 key.
fn machine_material(
    m: &MachineEntry,
    before: &[MachineMaterial],
    h32: impl Fn(&str, &str) -> Result<[u8; 32], KeyError>,
) -> Result<MachineMaterial, MachineFileError> {
    let bad = |msg: String| Err(MachineFileError::Msg(msg));
    if !valid_machine_name(&m.name) {
        return bad("a name is 1 to 16 of A-Z a-z 0-9 - _".into());
    }
    if m.name == DEFAULT_CHARGE || m.name == DEFAULT_PAYMENT || before.iter().any(|b| b.name == m.name) {
        return bad("this name is taken (C1 and P1 are the `charge` and `payment` keys)".into());
    }
    let role = match m.role.as_str() {
        "charge" => Role::ChargeMachine,
        "payment" => Role::PaymentMachine,
        other => return bad(format!("role '{other}': charge or payment")),
    };
    let Ok(subject) = <[u8; 8]>::try_from(m.subject.as_bytes()) else {
        return bad(format!("subject '{}': exactly 8 ASCII characters", m.subject));
    };
    if m.serial <= 2 || before.iter().any(|b| b.serial == m.serial) {
        return bad(format!("serial {}: taken (1 and 2 are C1 and P1)", m.serial));
    }
    let Some(expiry) = crate::profile::parse_instant(&m.expiry) else {
        return bad(format!("expiry '{}': an RFC 3339 time such as 2036-01-01T00:00:00Z", m.expiry));
    };
    let key = h32(&format!("[[machine]] '{}' key", m.name), &m.key).map_err(MachineFileError::Key)?;
    Ok(MachineMaterial { name: m.name.clone(), role, subject, serial: m.serial, expiry, key })
}

impl KeysetFile {
    /// The CRL's issue and next-update dates. A file written before CRLs had dates keeps
    /// the fixed issue date its CRL was signed with and gets the seeded keysets' next update,
    /// so it loads and runs as before until `keys crl` dates it.
    fn crl_dates(&self) -> Result<(u32, u32), String> {
        let date = |name: &str, v: &Option<String>, default: u32| match v {
            None => Ok(default),
            Some(s) => crate::profile::parse_instant(s)
                .ok_or_else(|| format!("{name}: '{s}' is not an RFC 3339 time between 1970 and 2106")),
        };
        let issued = date("crl_issued", &self.crl_issued, CRL_ISSUED)?;
        let next = date("crl_next_update", &self.crl_next_update, CRL_NEXT_UPDATE)?;
        if next <= issued {
            return Err(format!("crl_next_update {} is not after crl_issued {}", rfc3339(next), rfc3339(issued)));
        }
        Ok((issued, next))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdKey {
    id: u32,
    key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_read_as_hex_or_from_a_card_id_and_nothing_else() {
        assert_eq!(parse_serial("0003EE01").unwrap(), 0x0003_EE01);
        assert_eq!(parse_serial("0x3ee01").unwrap(), 0x0003_EE01);
        assert_eq!(parse_serial("CB0000000003EE01").unwrap(), 0x0003_EE01);
        for bad in ["12345", "", "0x", "0x123456789", "3EE01", "CB0000000003EE0", "zz000000", "-1"] {
            assert!(parse_serial(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crl_dates_round_trip_and_a_keyset_written_before_them_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_780_315_200;
        let ks = Keyset::generate(now);
        assert_eq!((ks.crl.issued, ks.crl.next_update), (now, now + CRL_DEFAULT_DAYS * 86_400));
        ks.save(dir.path(), false).unwrap();
        let file = dir.path().join("keyset.toml");
        let loaded = Keyset::load(&file).unwrap();
        assert_eq!(loaded.crl, ks.crl);
        assert_eq!(loaded.fingerprint(), ks.fingerprint());
        // `keys crl` issues it again with other dates, same serials, and `keys revoke` keeps them.
        let crl = issue_crl(dir.path(), now + 10, now + 20).unwrap();
        assert_eq!((crl.issued, crl.next_update, crl.revoked.clone()), (now + 10, now + 20, ks.crl.revoked.clone()));
        assert!(revoke(dir.path(), 7).unwrap());
        let again = Keyset::load(&file).unwrap();
        assert_eq!((again.crl.issued, again.crl.next_update), (now + 10, now + 20));
        assert_eq!(again.crl.revoked, [SUITE_REVOKED_SERIAL, 7]);
        let bytes = std::fs::read(dir.path().join("crl.bin")).unwrap();
        assert_eq!(Crl::parse(&bytes).unwrap(), again.crl);
        assert!(issue_crl(dir.path(), now, now).is_err(), "next update must follow the issue date");
        // A file without the dates (written before CRLs had them) gets the seeded ones.
        let text = std::fs::read_to_string(&file).unwrap();
        let old: String = text.lines().filter(|l| !l.starts_with("crl_")).map(|l| format!("{l}\n")).collect();
        assert_ne!(old, text);
        write_private(&file, old.as_bytes()).unwrap();
        let old = Keyset::load(&file).unwrap();
        assert_eq!((old.crl.issued, old.crl.next_update), (CRL_ISSUED, CRL_NEXT_UPDATE));
        // Dates that do not parse or run backwards are refused, naming the file and the field.
        let bad = text.replace("crl_next_update = \"", "crl_next_update = \"x");
        write_private(&file, bad.as_bytes()).unwrap();
        let e = Keyset::load(&file).unwrap_err().to_string();
        assert!(e.contains("keyset.toml") && e.contains("crl_next_update"), "{e}");
    }

    #[test]
    fn the_fingerprint_follows_the_public_parts_and_the_crl() {
        let a = Keyset::from_seed("fp", vec![1]);
        assert_eq!(a.fingerprint(), Keyset::from_seed("fp", vec![1]).fingerprint());
        assert_ne!(a.fingerprint(), Keyset::from_seed("fp2", vec![1]).fingerprint());
        let more = Keyset::from_seed("fp", vec![1]).revoke_also(&[2, 1]);
        assert_eq!(more.crl.revoked, [1, 2]);
        assert_ne!(more.fingerprint(), a.fingerprint());
        // Adding what is already on it changes nothing.
        assert_eq!(Keyset::from_seed("fp", vec![1]).revoke_also(&[1]).fingerprint(), a.fingerprint());
        assert!(a.fingerprint().starts_with("sha256:") && a.fingerprint().len() == 7 + 64);
    }
}
