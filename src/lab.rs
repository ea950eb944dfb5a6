//! A lab built from a profile: the keyset and the heads, with virtual cards personalized.

/// Seeded defects of a virtual card, as profiles and batches name them.
pub use crate::card::defects::Defects;
use crate::card::VirtualCard;
use crate::head::service::ServiceModel;
use crate::head::virtual_head::VirtualHead;
use crate::head::Head;
use crate::issuance::{self, CardPlan};
use crate::keys::Keyset;
use crate::profile::{parse_day_end, parse_instant, CardSpec, ConfigError, Loaded};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

pub struct LabHead {
    pub name: String,
    pub role: String,
    pub head: Box<dyn Head>,
}

pub struct Lab {
    pub name: String,
    pub keyset: Keyset,
    pub heads: Vec<LabHead>,
    /// Lab clock (seconds, UTC) when the profile fixes one.
    pub clock: Option<u32>,
    pub logs: PathBuf,
    /// The terminal seed of the run whose trace the `replay` heads play (from its
    /// `run.json`), so the terminal sends the captured commands again.
    pub terminal_seed: Option<[u8; 32]>,
}

/// Where the terminal's randoms come from in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalRng {
    /// Every head is virtual: a stream seeded from the plan (or batch) so two runs give the
    /// same trace. The seed is recorded with the run.
    Seeded([u8; 32]),
    /// A real reader is in the lab: the OS RNG, so the terminal's randoms (S34, challenges)
    /// are fresh on every run and replay-protection tests of silicon mean something.
    Os([u8; 32]),
}

impl TerminalRng {
    /// The 32-byte seed of the terminal's ChaCha20 stream.
    pub fn seed(&self) -> [u8; 32] {
        match self {
            TerminalRng::Seeded(s) | TerminalRng::Os(s) => *s,
        }
    }

    /// How a run header records it: the seed of a reproducible run, never an OS seed.
    pub fn describe(&self) -> String {
        match self {
            TerminalRng::Seeded(s) => format!("seeded:{}", hex::encode_upper(s)),
            TerminalRng::Os(_) => "os".into(),
        }
    }
}

/// Whether a head driver talks to a card made by cardbench (an in-process virtual card, a
/// card played from a trace) rather than to a real reader.
pub fn simulated(driver: &str) -> bool {
    matches!(driver, "virtual" | "replay")
}

/// The terminal's random source for a run on `heads`: `reproducible` derives the seed when
/// every head is simulated (virtual or replay); any real head gets the OS RNG.
pub fn terminal_rng(heads: &[LabHead], reproducible: impl FnOnce() -> [u8; 32]) -> TerminalRng {
    if heads.iter().all(|h| simulated(h.head.info().driver)) {
        TerminalRng::Seeded(reproducible())
    } else {
        use rand_core::RngCore;
        let mut s = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut s);
        TerminalRng::Os(s)
    }
}

impl Lab {
    pub fn from_profile(l: &Loaded) -> Result<Lab, ConfigError> {
        let p = &l.profile;
        let mut keyset = match (&p.keyset.seed, &p.keyset.path) {
            (Some(seed), None) => Keyset::from_seed(seed, p.keyset.revoked.clone()),
            (None, Some(path)) => {
                let base = l.path.parent().unwrap_or_else(|| std::path::Path::new("."));
                // The profile's `revoked` adds to the keyset file's own CRL (docs/plan-language.md).
                Keyset::load(&base.join(path.get_ref()))
                    .map_err(|e| l.err(path.span(), e.to_string()))?
                    .revoke_also(&p.keyset.revoked)
            }
            _ => return Err(ConfigError::at(&l.path, &l.text, 0, "[keyset] needs exactly one of `seed` or `path`")),
        };
        keyset.accept_stale_crl = p.keyset.accept_stale_crl;
        let clock = match &p.defaults.clock {
            Some(c) => Some(
                parse_instant(c.get_ref())
                    .ok_or_else(|| l.err(c.span(), format!("clock '{}' is not an RFC 3339 time", c.get_ref())))?,
            ),
            None => None,
        };
        let mut heads = Vec::new();
        let mut terminal_seed: Option<(toml::Spanned<String>, [u8; 32])> = None;
        // Replay heads often play several cards of one trace: read each trace once.
        let mut traces = Traces::new();
        for h in &p.heads {
            let span = h.span();
            let h = h.get_ref();
            if heads.iter().any(|x: &LabHead| x.name == h.name) {
                return Err(l.err(span, format!("head '{}' is defined twice", h.name)));
            }
            if h.driver.get_ref() != "replay" {
                if let Some(key) = [&h.trace, &h.head, &h.mismatches].into_iter().flatten().next() {
                    return Err(l.err(key.span(), "`trace`, `head` and `mismatches` are for replay heads"));
                }
            }
            if h.driver.get_ref() != "virtual" && !ServiceKeys::of_head(h).is_empty() {
                let at = h.service.first().map_or(span.clone(), |s| s.span());
                return Err(l.err(
                    at,
                    "service times are for virtual heads; model a card served behind vpcd or the PN532 simulator \
                     with the same keys on its [[card]] ([[card.service]])",
                ));
            }
            let head: Box<dyn Head> = match h.driver.get_ref().as_str() {
                "virtual" => {
                    let own = ServiceKeys::of_head(h);
                    let mut vh = VirtualHead::new(&h.name).with_service(service_model(l, &own)?);
                    if let Some(card) = &h.card {
                        let spec = p
                            .cards
                            .iter()
                            .find(|c| c.get_ref().name == *card.get_ref())
                            .ok_or_else(|| l.err(card.span(), format!("no [[card]] named '{}'", card.get_ref())))?;
                        vh.insert(build_card(l, spec, &keyset)?);
                        if own.is_empty() {
                            // The card's own model goes with it, as it would behind vpcd.
                            vh = vh.with_service(card_service(l, spec)?);
                        }
                    }
                    Box::new(vh)
                }
                "pcsc" => Box::new(pcsc_head(l, h, span.clone())?),
                "pn532" => Box::new(pn532_head(l, h, span.clone())?),
                "replay" => {
                    let (head, seed) = replay_head(l, h, span.clone(), &mut traces)?;
                    if let (Some(seed), Some(trace)) = (seed, &h.trace) {
                        match &terminal_seed {
                            Some((first, s)) if *s != seed => {
                                return Err(l.err(
                                    trace.span(),
                                    format!(
                                        "the run of this trace drew other terminal randoms than the run of '{}' \
                                         (their run.json): the replay heads of a lab play one run",
                                        first.get_ref()
                                    ),
                                ))
                            }
                            Some(_) => {}
                            None => terminal_seed = Some((trace.clone(), seed)),
                        }
                    }
                    Box::new(head)
                }
                other => {
                    return Err(l.err(
                        h.driver.span(),
                        format!(
                            "unknown head driver '{other}'{}",
                            crate::suggest::did_you_mean(other, ["virtual", "pcsc", "pn532", "replay"], "'")
                                .map(|d| format!(": {d}"))
                                .unwrap_or_else(|| " (this build has: virtual, pcsc, pn532, replay)".into())
                        ),
                    ))
                }
            };
            heads.push(LabHead { name: h.name.clone(), role: h.role.clone(), head });
        }
        // A card's model is checked even when no head of this profile holds the card: the
        // bridges serve any [[card]].
        for c in &p.cards {
            card_service(l, c)?;
            card_variant(l, c)?;
            card_keys(l, c, &keyset)?;
        }
        let logs = PathBuf::from(p.defaults.logs.clone().unwrap_or_else(|| "logs".into()));
        Ok(Lab { name: p.name.clone(), keyset, heads, clock, logs, terminal_seed: terminal_seed.map(|(_, s)| s) })
    }

    pub fn head_index(&self, name: &str) -> Option<usize> {
        find_head(&self.heads, name)
    }

    /// A warning when keys derived from the profile's seed would meet real readers: those
    /// cards get personalization and session keys anyone holding the profile can compute.
    pub fn seeded_keys_on_real_heads(&self) -> Option<String> {
        let real: Vec<&str> =
            self.heads.iter().filter(|h| !simulated(h.head.info().driver)).map(|h| h.name.as_str()).collect();
        (self.keyset.from_seed && !real.is_empty()).then(|| {
            format!(
                "profile '{}' uses test keys derived from its [keyset] seed with real heads ({}); anyone with the \
                 profile has these keys: use `cardbench keys init` and [keyset] path for real cards",
                self.name,
                real.join(", ")
            )
        })
    }
}

/// A PC/SC head from its profile entry; nothing is opened until the head is used, so plans
/// can be checked on a machine without pcscd.
fn pcsc_head(
    l: &Loaded,
    h: &crate::profile::HeadSpec,
    span: std::ops::Range<usize>,
) -> Result<crate::head::pcsc_head::PcscHead, ConfigError> {
    use crate::head::pcsc_head::{PcscHead, Share};
    let reader = h.reader.as_ref().ok_or_else(|| l.err(span, "a pcsc head needs `reader` (a reader name pattern)"))?;
    let share = match h.share.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("shared", _)) => Share::Shared,
        Some(("exclusive", _)) => Share::Exclusive,
        Some((other, sp)) => return Err(l.err(sp, format!("share '{other}' is not shared or exclusive"))),
    };
    let protocols = match h.protocol.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
        None | Some(("any", _)) => pcsc::Protocols::ANY,
        Some(("T=0", _)) => pcsc::Protocols::T0,
        Some(("T=1", _)) => pcsc::Protocols::T1,
        Some((other, sp)) => return Err(l.err(sp, format!("protocol '{other}' is not T=0, T=1 or any"))),
    };
    let mut head = PcscHead::new(&h.name, reader.get_ref(), share, protocols);
    if let Some(t) = h.pcsc_timeout(l)? {
        head = head.with_timeout(t);
    }
    Ok(head)
}

/// A PN532 on a serial port (`port`, `baud`, `timeout_ms`); the port opens on first use.
fn pn532_head(
    l: &Loaded,
    h: &crate::profile::HeadSpec,
    span: std::ops::Range<usize>,
) -> Result<crate::head::pn532::Pn532Head, ConfigError> {
    use crate::head::pn532::{Pn532Config, Pn532Head};
    let port = h.port.as_ref().ok_or_else(|| {
        l.err(span, "a pn532 head needs `port` (a serial device, or the link made by `cardbench sim pn532 --link`)")
    })?;
    if let Some(card) = &h.card {
        return Err(l.err(card.span(), "`card` is for virtual heads: a pn532 head reads the card in its field"));
    }
    let mut cfg = Pn532Config::new(port.get_ref());
    if let Some(b) = h.pn532_baud(l)? {
        cfg.baud = b;
    }
    if let Some(t) = h.pn532_timeout(l)? {
        cfg.timeout = t;
    }
    Ok(Pn532Head::new(&h.name, cfg))
}

/// Traces read while a profile is loaded, by path.
type Traces = std::collections::HashMap<PathBuf, std::rc::Rc<Vec<crate::event::Exchange>>>;

/// A replay head (`trace`, `card`, optional `head` and `mismatches`), and the terminal seed of
/// the run that wrote the trace when its `run.json` records one.
fn replay_head(
    l: &Loaded,
    h: &crate::profile::HeadSpec,
    span: std::ops::Range<usize>,
    traces: &mut Traces,
) -> Result<(crate::head::replay_head::ReplayHead, Option<[u8; 32]>), ConfigError> {
    use crate::replay::card::{recorded_terminal_seed, MismatchLog, ReplayCardError as E, TraceCard};
    let base = l.path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let trace = h.trace.as_ref().ok_or_else(|| l.err(span.clone(), "a replay head needs `trace` (a trace CSV)"))?;
    let card = h.card.as_ref().ok_or_else(|| l.err(span, "a replay head needs `card` (the card ID to play)"))?;
    let path = base.join(trace.get_ref());
    let rows = match traces.entry(path.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let t = crate::trace::read_trace(&path).map_err(|e| l.err(trace.span(), format!("trace: {e}")))?;
            e.insert(std::rc::Rc::new(t.rows)).clone()
        }
    };
    let want_head = h.head.as_ref().map(|x| x.get_ref().as_str());
    let tc = TraceCard::from_rows(&rows, card.get_ref(), want_head).map_err(|e| {
        let at = match (&e, &h.head) {
            (E::UnknownHead { .. } | E::NotOnHead { .. }, Some(hd)) => hd.span(),
            _ => card.span(),
        };
        l.err(at, e.to_string())
    })?;
    let file = h.mismatches.as_ref().map(|m| (m, base.join(m.get_ref())));
    let log = MismatchLog::new(&format!("replay head {}", h.name), file.as_ref().map(|(_, p)| p.as_path()), true)
        .map_err(|e| l.err(file.as_ref().map_or(0..0, |(m, _)| m.span()), e.to_string()))?;
    let source = format!("{}#{}", trace.get_ref(), card.get_ref().to_ascii_uppercase());
    let head = crate::head::replay_head::ReplayHead::new(&h.name, &source, tc.with_log(log));
    Ok((head, recorded_terminal_seed(&path)))
}

/// The service-time keys of a head or a card entry (the same three on both).
struct ServiceKeys<'a> {
    time_us: u64,
    per_ins: &'a [toml::Spanned<crate::profile::ServiceSpec>],
    seed: Option<u64>,
}

impl<'a> ServiceKeys<'a> {
    fn of_head(h: &'a crate::profile::HeadSpec) -> Self {
        ServiceKeys { time_us: h.service_time_us, per_ins: &h.service, seed: h.service_seed }
    }

    fn of_card(c: &'a CardSpec) -> Self {
        ServiceKeys { time_us: c.service_time_us, per_ins: &c.service, seed: c.service_seed }
    }

    fn is_empty(&self) -> bool {
        self.time_us == 0 && self.per_ins.is_empty()
    }
}

/// The service-time model of a profile card entry (`service_time_us`, `[[card.service]]`,
/// `service_seed`): what `cardbench sim vpcd` and `sim pn532` apply to the card they serve.
pub fn card_service(l: &Loaded, spec: &toml::Spanned<CardSpec>) -> Result<ServiceModel, ConfigError> {
    service_model(l, &ServiceKeys::of_card(spec.get_ref()))
}

/// A service-time model: `service_time_us` for every command, and the per-INS entries.
fn service_model(l: &Loaded, k: &ServiceKeys) -> Result<ServiceModel, ConfigError> {
    use crate::head::service::Dist;
    let us = Duration::from_micros;
    let mut default = (k.time_us > 0).then(|| Dist::Fixed(us(k.time_us)));
    let mut per_ins: Vec<(u8, Dist)> = Vec::new();
    for s in k.per_ins {
        let r = s.get_ref();
        let dist = match (r.us, r.mean_us, r.sd_us, r.min_us, r.max_us) {
            (Some(t), None, None, None, None) => Dist::Fixed(us(t)),
            (None, Some(m), Some(sd), None, None) => Dist::Normal { mean: us(m), sd: us(sd) },
            (None, None, None, Some(lo), Some(hi)) if lo <= hi => Dist::Uniform(us(lo), us(hi)),
            (None, None, None, Some(_), Some(_)) => return Err(l.err(s.span(), "service time: min_us is above max_us")),
            _ => return Err(l.err(
                s.span(),
                "service time needs `us` (fixed), `mean_us` and `sd_us` (normal), or `min_us` and `max_us` (uniform)",
            )),
        };
        if r.ins == "default" {
            default = Some(dist);
            continue;
        }
        let ins = u8::from_str_radix(&r.ins, 16).ok().filter(|_| r.ins.len() == 2).ok_or_else(|| {
            l.err(s.span(), format!("service ins '{}' is not one hex byte (e.g. \"88\") or \"default\"", r.ins))
        })?;
        if per_ins.iter().any(|(i, _)| *i == ins) {
            return Err(l.err(s.span(), format!("service time for INS {ins:02X} is given twice")));
        }
        per_ins.push((ins, dist));
    }
    Ok(ServiceModel::new(default, per_ins, k.seed.unwrap_or(0)))
}

/// A head by name, or by role when no head has that name.
pub fn find_head(heads: &[LabHead], name: &str) -> Option<usize> {
    heads
        .iter()
        .position(|h| h.name == name)
        .or_else(|| heads.iter().position(|h| !h.role.is_empty() && h.role == name))
}

/// Resolve a profile card entry into an issuance plan.
pub fn card_plan(l: &Loaded, spec: &toml::Spanned<CardSpec>) -> Result<CardPlan, ConfigError> {
    let c = spec.get_ref();
    let id_hex = c.id.get_ref();
    let card_id: [u8; 8] = hex::decode(id_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| l.err(c.id.span(), format!("card id '{id_hex}' is not 16 hex digits")))?;
    let day = |s: &toml::Spanned<String>| {
        parse_day_end(s.get_ref()).ok_or_else(|| l.err(s.span(), format!("'{}' is not a YYYY-MM-DD date", s.get_ref())))
    };
    Ok(CardPlan {
        card_id,
        purse_counter: c.purse_counter,
        cpay_amount: c.cpay_amount,
        balance: c.balance,
        max_balance: c.max_balance,
        validity: day(&c.validity)?,
        update_key: c.update_key,
        transfer_key: c.transfer_key,
        transfer_key_limit: c.transfer_key_limit,
        update_key_limit: c.update_key_limit,
        slots: c.slots.clone(),
        cert_expiry: day(&c.cert_expiry)?,
    })
}

/// A profile card entry made: personalized, with its seeded defects and its allowed-variant
/// options (`card_variant`).
pub fn build_card(l: &Loaded, spec: &toml::Spanned<CardSpec>, keys: &Keyset) -> Result<VirtualCard, ConfigError> {
    let plan = card_plan(l, spec)?;
    let defects = card_defects(l, spec)?;
    let variant = card_variant(l, spec)?;
    let mut card = personalize_virtual(&plan, spec.get_ref().protocol, keys).map_err(|e| l.err(spec.span(), e))?;
    card.set_defects(defects);
    variant.apply(&mut card);
    Ok(card)
}

/// The options of a `[[card]]` that change only what card-spec.md lets a card choose
/// (docs/card-variants.md): its ATR and where its randoms come from. Protocol (`protocol`)
/// and latency (`service_time_us`, `[[card.service]]`) are variants too, with their own keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardVariant {
    pub atr: Option<Vec<u8>>,
    pub os_rng: bool,
}

impl CardVariant {
    /// Give a made card (personalized, in a head or not) these options.
    pub fn apply(&self, card: &mut VirtualCard) {
        card.set_atr(self.atr.clone());
        if self.os_rng {
            card.use_os_rng();
        }
    }
}

/// The variant options of a profile card entry; an ATR that is not hex, not well formed or
/// announcing another protocol than the card's is an error located at the value.
pub fn card_variant(l: &Loaded, spec: &toml::Spanned<CardSpec>) -> Result<CardVariant, ConfigError> {
    let c = spec.get_ref();
    let atr = match &c.atr {
        None => None,
        Some(a) => {
            let bytes = hex::decode(a.get_ref().replace(' ', ""))
                .map_err(|_| l.err(a.span(), format!("atr '{}' is not hex", a.get_ref())))?;
            crate::card::atr::check(&bytes, c.protocol).map_err(|e| l.err(a.span(), format!("atr: {e}")))?;
            Some(bytes)
        }
    };
    let os_rng = match c.card_rng.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
        None | Some(("seeded", _)) => false,
        Some(("os", _)) => true,
        Some((other, at)) => return Err(l.err(at, format!("card_rng '{other}' is not seeded or os"))),
    };
    Ok(CardVariant { atr, os_rng })
}

/// A `[[card]]` names only keys the keyset holds, so personalizing it (in a virtual head, a
/// simulator, or as a batch's DUT or peer template) cannot fail later.
fn card_keys(l: &Loaded, spec: &toml::Spanned<CardSpec>, keys: &Keyset) -> Result<(), ConfigError> {
    let c = spec.get_ref();
    let missing = if keys.update_key(c.update_key).is_none() {
        Some(("update", c.update_key))
    } else {
        std::iter::once(&c.transfer_key)
            .chain(&c.slots)
            .find(|k| keys.transfer_key(**k).is_none())
            .map(|k| ("transfer", *k))
    };
    match missing {
        Some((kind, id)) => {
            Err(l.err(spec.span(), format!("card '{}': the keyset has no {kind} key with ID {id}", c.name)))
        }
        None => Ok(()),
    }
}

/// The seeded defects of a profile card entry; an unknown name is an error located at the
/// name in the profile text.
pub fn card_defects(l: &Loaded, spec: &toml::Spanned<CardSpec>) -> Result<Defects, ConfigError> {
    defects_in(l, spec.span(), &spec.get_ref().defects)
}

/// Defect names written in the profile table at `span` (a `[[card]]` or a `[[batch.defect]]`);
/// an unknown one is an error located at its quoted name, searched from the table's `defects`
/// key on (its other strings come first in most profiles), else at the table.
pub fn defects_in(l: &Loaded, span: std::ops::Range<usize>, names: &[String]) -> Result<Defects, ConfigError> {
    Defects::parse(names).map_err(|e| {
        let within = l.text.get(span.clone()).unwrap_or("");
        let from = within.find("defects").unwrap_or(0);
        let at = ['"', '\'']
            .iter()
            .find_map(|q| within[from..].find(&format!("{q}{}{q}", e.name)))
            .map_or(span.start, |i| span.start + from + i);
        l.err(at..at, e.to_string())
    })
}

/// A blank virtual card run through the issuance script, in process (no trace rows: the
/// script carries secrets and is the issuer's business, not the bench run's).
pub fn personalize_virtual(
    plan: &CardPlan,
    protocol: crate::spec::Protocol,
    keys: &Keyset,
) -> Result<VirtualCard, String> {
    personalize_virtual_seeded(plan, protocol, keys, Some(card_rng_seed(plan)))
}

/// `personalize_virtual` with the card's random generator seeded by `rng_seed` (`None`: the
/// OS), for a card that must draw other randoms than the lab's card with the same ID (a
/// session replay on "another card of the same lot").
pub fn personalize_virtual_seeded(
    plan: &CardPlan,
    protocol: crate::spec::Protocol,
    keys: &Keyset,
    rng_seed: Option<[u8; 32]>,
) -> Result<VirtualCard, String> {
    let mut card = VirtualCard::blank(protocol, rng_seed);
    card.power_on();
    for (cmd, _) in issuance::script(plan, keys).map_err(|e| e.to_string())? {
        let bytes = cmd.to_bytes().map_err(|e| e.to_string())?;
        let resp = card.process(&bytes).ok_or("card went mute during personalization")?;
        if resp[resp.len() - 2..] != [0x90, 0x00] {
            return Err(format!("personalization command {:02X} {:02X} refused", cmd.ins, cmd.p1));
        }
    }
    card.power_off();
    Ok(card)
}

/// The seed of a reference card's RNG: from its ID, so the same card answers the same way in
/// every run and a replay on a rebuilt card sees the same randoms.
fn card_rng_seed(plan: &CardPlan) -> [u8; 32] {
    Sha256::new().chain_update(b"cardbench card rng").chain_update(plan.card_id).finalize().into()
}

/// What an `insert` trace row says about a card the bench made (docs/trace-format.md):
/// enough to make the same card again from the keyset, and nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InsertedCard {
    pub card_plan: CardPlan,
    pub protocol: crate::spec::Protocol,
    /// Seeded defects of the card, by name (informational: a replay chooses its own cards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<String>,
}

/// The ATR of a blank reference card on `protocol` (card-spec 2.1), for a replay that has to
/// answer a power-on the way the recorded card did.
pub fn reference_atr(protocol: crate::spec::Protocol) -> Vec<u8> {
    VirtualCard::blank(protocol, None).atr()
}

/// Put a blank reference card into the virtual head under `l` and personalize it through the
/// link, so the trace holds the card's making: an `insert` row whose note is the
/// `InsertedCard` JSON, a `power-on`, the PERSO commands (keys redacted, protocol step
/// `perso`) and a `power-off`. The card is the one `personalize_virtual` makes.
pub fn insert_card(
    l: &mut crate::link::Link,
    plan: &CardPlan,
    protocol: crate::spec::Protocol,
    keys: &Keyset,
    defects: Option<Defects>,
) -> Result<(), String> {
    let v = l.head.as_virtual().ok_or("inserting a made card needs a virtual head")?;
    v.insert(VirtualCard::blank(protocol, Some(card_rng_seed(plan))));
    let made = InsertedCard {
        card_plan: plan.clone(),
        protocol,
        defects: defects.map(|d| d.iter().map(|x| x.name().to_string()).collect()).unwrap_or_default(),
    };
    l.card_id = hex::encode_upper(plan.card_id);
    l.event(crate::event::RowKind::Insert, &serde_json::to_string(&made).map_err(|e| e.to_string())?);
    l.power_on().map_err(|e| format!("personalization: power-on: {e}"))?;
    for (cmd, secret) in issuance::script(plan, keys).map_err(|e| e.to_string())? {
        let r = if secret { l.exec_secret("perso", &cmd) } else { l.exec("perso", &cmd) };
        let r = r.map_err(|e| format!("personalization: {e}"))?;
        if !r.is_ok() {
            return Err(format!("personalization command {:02X} {:02X} refused: SW {:04X}", cmd.ins, cmd.p1, r.sw));
        }
    }
    l.power_off().map_err(|e| format!("personalization: power-off: {e}"))?;
    if let (Some(d), Some(v)) = (defects, l.head.as_virtual()) {
        if let Some(card) = v.card_mut() {
            card.set_defects(d);
        }
    }
    Ok(())
}
