//! Lab profiles (`profiles/*.toml`): heads, the cards in virtual heads, keyset, defaults.
//! Every error names file:line:col.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;
use toml::Spanned;

#[derive(Debug, Error)]
#[error("{path}:{line}:{col}: {msg}")]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ConfigError {
    pub fn at(path: &Path, text: &str, offset: usize, msg: impl Into<String>) -> Self {
        let (line, col) = line_col(text, offset);
        ConfigError { path: path.display().to_string(), line, col, msg: msg.into() }
    }

    pub fn whole_file(path: &Path, msg: impl Into<String>) -> Self {
        ConfigError { path: path.display().to_string(), line: 1, col: 1, msg: msg.into() }
    }

    pub fn from_toml(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let off = e.span().map_or(0, |s| s.start);
        ConfigError::at(path, text, off, toml_message(e))
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = &text[..offset.min(text.len())];
    let line = upto.matches('\n').count() + 1;
    let col = upto.rfind('\n').map_or(upto.chars().count(), |i| upto[i + 1..].chars().count()) + 1;
    (line, col)
}

/// "line:col: message" for TOML errors in files that have their own path handling.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let (l, c) = line_col(text, e.span().map_or(0, |s| s.start));
    format!("{l}:{c}: {}", toml_message(e))
}

/// A TOML error on one line; serde's "unknown field `x`, expected one of `a`, `b`" (and the
/// same for enum variants) becomes "unknown field `x`: did you mean `a`?" when one valid name
/// is near, and keeps the list of valid names otherwise.
pub fn toml_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim_end().replace('\n', " ");
    for what in ["field", "variant"] {
        let Some(rest) = msg.strip_prefix(&format!("unknown {what} `")) else { continue };
        let Some((name, expected)) = rest.split_once("`, ") else { continue };
        let valid: Vec<&str> = expected
            .trim_start_matches("expected one of ")
            .trim_start_matches("expected ")
            .split(['`'])
            .filter(|s| !s.is_empty() && *s != ", " && *s != " or ")
            .collect();
        if expected.starts_with("there are no") || valid.is_empty() {
            return format!("unknown {what} `{name}`: {expected}");
        }
        return format!("unknown {what} `{name}`{}", crate::suggest::hint(name, valid, "`"));
    }
    msg
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub keyset: KeysetRef,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(rename = "head")]
    pub heads: Vec<Spanned<HeadSpec>>,
    #[serde(default, rename = "card")]
    pub cards: Vec<Spanned<CardSpec>>,
    /// How `cardbench batch` makes and certifies virtual DUT cards.
    pub batch: Option<Spanned<BatchSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// `[[card]]` template of every DUT card; its `id` is replaced per card.
    pub dut_card: Spanned<String>,
    /// `[[card]]` template of the reference card a worker's peer head gets fresh per DUT.
    pub peer_card: Spanned<String>,
    /// Card IDs: these 4 bytes (8 hex digits) followed by the card's index as 4 bytes.
    pub id_prefix: Spanned<String>,
    /// Default `--count`.
    #[serde(default = "default_count")]
    pub count: u64,
    /// Real DUT heads: how long a worker waits for the operator to insert or take out a card
    /// before it stops (default 600).
    pub presence_timeout_s: Option<Spanned<u64>>,
    /// Seeded defects: card `i` (1-based) carries `defects` when `i % every == offset`.
    #[serde(default, rename = "defect")]
    pub defects: Vec<Spanned<DefectRule>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DefectRule {
    pub every: u64,
    pub offset: u64,
    pub defects: Vec<String>,
}

fn default_count() -> u64 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysetRef {
    /// Derive test keys in memory from this seed (no files, no set-up).
    pub seed: Option<String>,
    /// Or load a keyset written by `cardbench keys init`, relative to the profile.
    pub path: Option<Spanned<String>>,
    /// Certificate serials on the terminal's CRL; with `path`, added to the keyset file's own.
    #[serde(default)]
    pub revoked: Vec<u32>,
    /// Run on a CRL past its next-update date (a lab that knowingly keeps an old list);
    /// without it a stale CRL stops every key update and transfer as a bench error.
    #[serde(default)]
    pub accept_stale_crl: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Where runs write `<run-id>/trace.csv`, relative to the working directory.
    pub logs: Option<String>,
    /// Lab clock for transaction dates (RFC 3339). Absent: the wall clock.
    pub clock: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    pub name: String,
    pub driver: Spanned<String>,
    #[serde(default)]
    pub role: String,
    /// Virtual heads: the `[[card]]` in the slot at start. Replay heads: the card ID (16 hex
    /// digits) whose rows of `trace` the head plays.
    pub card: Option<Spanned<String>>,
    /// Replay heads: the trace to play, relative to the profile.
    pub trace: Option<Spanned<String>>,
    /// Replay heads: the trace's head name, when the card is on several heads of the trace.
    pub head: Option<Spanned<String>>,
    /// Replay heads: a file (relative to the profile, emptied at start) receiving one JSON line
    /// per command that strayed from the capture.
    pub mismatches: Option<Spanned<String>>,
    /// Virtual heads: modelled card service time per command, microseconds.
    #[serde(default)]
    pub service_time_us: u64,
    /// Virtual heads: service time per INS (`[[head.service]]`), over `service_time_us`.
    #[serde(default)]
    pub service: Vec<Spanned<ServiceSpec>>,
    /// Virtual heads: seed of the service-time draws (default 0).
    pub service_seed: Option<u64>,
    /// PC/SC heads: reader name pattern (a substring of the reader name, as pcsc_scan shows it).
    pub reader: Option<Spanned<String>>,
    /// PC/SC heads: "shared" (default) or "exclusive".
    pub share: Option<Spanned<String>>,
    /// PC/SC heads: "T=0", "T=1" or "any" (default).
    pub protocol: Option<Spanned<String>>,
    /// Serial heads: port path (e.g. /dev/ttyUSB0, or the pseudo-terminal of `cardbench sim pn532`).
    pub port: Option<Spanned<String>>,
    /// Serial heads: baud rate (default 115200; one of `PN532_BAUD_RATES`).
    pub baud: Option<Spanned<u32>>,
    /// Real heads: per-exchange timeout in milliseconds (default 5000; pn532 heads:
    /// `PN532_TIMEOUT_MS`).
    pub timeout_ms: Option<Spanned<u64>>,
}

/// One `[[head.service]]` entry: the modelled service time of one INS (hex, e.g. `"88"`) or
/// of every other one (`"default"`): `us` fixed, `mean_us` + `sd_us` normal, or `min_us` +
/// `max_us` uniform.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub ins: String,
    pub us: Option<u64>,
    pub mean_us: Option<u64>,
    pub sd_us: Option<u64>,
    pub min_us: Option<u64>,
    pub max_us: Option<u64>,
}

/// Baud rates a PN532 HSU runs at (SetSerialBaudRate, UM0701-02 §7.2.5).
pub const PN532_BAUD_RATES: [u32; 9] = crate::head::pn532::driver::BAUD_RATES;

/// Exchange timeouts a pn532 head accepts, in milliseconds: below 50 ms not even a short
/// frame and its ACK cross a 9600-baud line; above 10 minutes a stuck reader blocks a run
/// for longer than anyone waits for a card.
pub const PN532_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 50..=600_000;

/// Deadlines a pcsc head accepts, in milliseconds: pcscd answers in microseconds, so only a
/// zero is meaningless below; above 10 minutes a hung card blocks a run for longer than anyone
/// waits for it.
pub const PCSC_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1..=600_000;

impl HeadSpec {
    /// The `baud` of a pn532 head, checked against the PN532's rates.
    pub fn pn532_baud(&self, l: &Loaded) -> Result<Option<u32>, ConfigError> {
        let Some(b) = &self.baud else { return Ok(None) };
        if PN532_BAUD_RATES.contains(b.get_ref()) {
            return Ok(Some(*b.get_ref()));
        }
        let list: Vec<String> = PN532_BAUD_RATES.iter().map(u32::to_string).collect();
        Err(l.err(b.span(), format!("baud {} is not a PN532 serial rate (one of {})", b.get_ref(), list.join(", "))))
    }

    /// The `timeout_ms` of a pn532 head, checked against `PN532_TIMEOUT_MS`.
    pub fn pn532_timeout(&self, l: &Loaded) -> Result<Option<std::time::Duration>, ConfigError> {
        self.timeout_in(l, PN532_TIMEOUT_MS)
    }

    /// The `timeout_ms` of a pcsc head, checked against `PCSC_TIMEOUT_MS`.
    pub fn pcsc_timeout(&self, l: &Loaded) -> Result<Option<std::time::Duration>, ConfigError> {
        self.timeout_in(l, PCSC_TIMEOUT_MS)
    }

    fn timeout_in(
        &self,
        l: &Loaded,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<std::time::Duration>, ConfigError> {
        let Some(t) = &self.timeout_ms else { return Ok(None) };
        if range.contains(t.get_ref()) {
            return Ok(Some(std::time::Duration::from_millis(*t.get_ref())));
        }
        Err(l.err(
            t.span(),
            format!("timeout_ms {} is out of range ({} to {} milliseconds)", t.get_ref(), range.start(), range.end()),
        ))
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    pub name: String,
    /// Card ID, 8 bytes as 16 hex digits.
    pub id: Spanned<String>,
    #[serde(default = "default_protocol")]
    pub protocol: crate::spec::Protocol,
    #[serde(default = "default_counter")]
    pub purse_counter: u32,
    #[serde(default)]
    pub cpay_amount: u32,
    #[serde(default)]
    pub balance: u32,
    #[serde(default)]
    pub max_balance: u32,
    /// Term of validity (YYYY-MM-DD, end of that day UTC).
    #[serde(default = "default_validity")]
    pub validity: Spanned<String>,
    #[serde(default = "one")]
    pub update_key: u32,
    #[serde(default = "one")]
    pub transfer_key: u32,
    #[serde(default = "default_tk_limit")]
    pub transfer_key_limit: u32,
    #[serde(default = "default_uk_limit")]
    pub update_key_limit: u32,
    /// Preloaded transfer-key IDs (4th embodiment).
    #[serde(default)]
    pub slots: Vec<u32>,
    /// Card certificate expiry (YYYY-MM-DD).
    #[serde(default = "default_cert_expiry")]
    pub cert_expiry: Spanned<String>,
    /// Seeded implementation defects of a virtual card (`card::defects::Defect` names).
    #[serde(default)]
    pub defects: Vec<String>,
    /// Modelled service time of this card per command, microseconds (as a virtual head's):
    /// the card's own model wherever it is served (`cardbench sim vpcd`, `cardbench sim
    /// pn532`, a virtual head that has no model of its own).
    #[serde(default)]
    pub service_time_us: u64,
    /// Service time per INS (`[[card.service]]`), over `service_time_us`.
    #[serde(default)]
    pub service: Vec<Spanned<ServiceSpec>>,
    /// Seed of the service-time draws (default 0).
    pub service_seed: Option<u64>,
    /// Allowed variant (docs/card-variants.md): the ATR the card answers with, hex, instead
    /// of the reference one; well formed and announcing `protocol` only.
    pub atr: Option<Spanned<String>>,
    /// Allowed variant: where the card's own randoms come from, `seeded` (default: from the
    /// card ID, the same in every run) or `os` (fresh ones, as silicon draws them).
    pub card_rng: Option<Spanned<String>>,
}

fn default_protocol() -> crate::spec::Protocol {
    crate::spec::Protocol::T0
}
fn default_counter() -> u32 {
    1000
}
fn default_validity() -> Spanned<String> {
    Spanned::new(0..0, "2030-12-31".into())
}
fn default_cert_expiry() -> Spanned<String> {
    Spanned::new(0..0, "2035-12-31".into())
}
fn one() -> u32 {
    1
}
fn default_tk_limit() -> u32 {
    crate::keys::TRANSFER_KEY_COUNT
}
fn default_uk_limit() -> u32 {
    crate::keys::UPDATE_KEY_COUNT
}

/// A profile together with the text it came from, for located errors.
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub profile: Profile,
}

impl Loaded {
    pub fn err(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.path, &self.text, span.start, msg)
    }
}

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    parse_str(path, text)
}

/// Parse profile text as if read from `path` (errors and relative keyset paths use it).
pub fn parse_str(path: &Path, text: impl Into<String>) -> Result<Loaded, ConfigError> {
    let text = text.into();
    let profile: Profile = toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
    Ok(Loaded { path: path.to_path_buf(), text, profile })
}

/// End of the given day (YYYY-MM-DD) in seconds since the epoch, UTC.
pub fn parse_day_end(s: &str) -> Option<u32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = d.and_hms_opt(23, 59, 59)?.and_utc().timestamp();
    u32::try_from(t).ok()
}

pub fn parse_instant(s: &str) -> Option<u32> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp();
    u32::try_from(t).ok()
}
