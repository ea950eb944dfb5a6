//! The batch header: what a batch's verdicts were made with, recorded in `batch.json` and
//! carried by every report, so that a signed verdict says which plan, profile, keyset, tool,
//! host, clock and readers produced it.
//!
//! Two parts: the batch's identity ([`Identity`]: profile, plan with its includes, keyset),
//! which a resume must match, and one [`Run`] per run of `cardbench batch` on the folder (tool,
//! host, clock, heads with their readers and the ATRs they saw, the options that run used and
//! the changes it was allowed to make).

use crate::keys::Keyset;
use crate::lab::LabHead;
use crate::plan::Plan;
use crate::profile::Loaded;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `git describe --always --dirty --tags` of the source this binary was built from (build.rs),
/// `unknown` outside a git checkout.
pub const GIT_DESCRIBE: &str = env!("CARDBENCH_GIT_DESCRIBE");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub git: String,
}

impl Tool {
    pub fn this() -> Tool {
        Tool { name: "cardbench".into(), version: env!("CARGO_PKG_VERSION").into(), git: GIT_DESCRIBE.into() }
    }

    /// `0.1.0 (v0.1-12-gabc1234)`
    pub fn describe(&self) -> String {
        format!("{} ({})", self.version, self.git)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanIdentity {
    pub id: String,
    pub version: String,
    pub path: String,
    /// SHA-256 over the plan and every file it includes (see [`plan_hash`]).
    pub sha256: String,
    /// The plan first, then its includes depth first, in the order the plan loader reads them.
    pub files: Vec<FileHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetIdentity {
    /// `seed` (derived from the profile's seed) or the keyset file's path.
    pub source: String,
    /// [`Keyset::fingerprint`]: public parts only.
    pub fingerprint: String,
    /// The terminal CRL in force: the keyset file's serials plus the profile's.
    pub revoked: Vec<String>,
}

/// What a resume must find unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub profile: FileHash,
    pub plan: PlanIdentity,
    pub keyset: KeysetIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// `profile` (the profile's `[defaults] clock`) or `wall` (the host clock at the start).
    pub source: String,
    /// RFC 3339 UTC: the date the run's transactions carry.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRecord {
    pub name: String,
    pub driver: String,
    pub reader: String,
    /// Every distinct ATR of the cards this head certified in the run, in the order seen.
    #[serde(default)]
    pub atr: Vec<String>,
}

/// One run of `cardbench batch` on the folder: the start and each resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub started: String,
    pub tool: Tool,
    pub host: String,
    pub clock: Clock,
    pub heads: Vec<HeadRecord>,
    /// `--recertify`: cards already certified in the batch were certified again.
    #[serde(default)]
    pub recertify: bool,
    /// `--force-changed`: the changes this run was allowed to make to the identity, one line
    /// each; the batch's identity is this run's from then on.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// A card certified again (`--recertify`): its index keeps its place, the new verdict stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recertified {
    pub index: u64,
    pub card_id: String,
    /// 2 for the second certification of the card, and so on.
    pub certification: u32,
}

/// What the reports carry: the batch's identity, every run, the re-certified cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHeader {
    pub header: Identity,
    pub runs: Vec<Run>,
    #[serde(default)]
    pub recertified: Vec<Recertified>,
}

impl ReportHeader {
    /// The last run, whose tool, host and clock the per-row columns of summary.csv carry.
    pub fn last_run(&self) -> Option<&Run> {
        self.runs.last()
    }

    /// Reader and ATRs of a head, from the last run that used it.
    pub fn head(&self, name: &str) -> Option<&HeadRecord> {
        self.runs.iter().rev().find_map(|r| r.heads.iter().find(|h| h.name == name))
    }

    /// The header as named values for a card certified on `head`: the summary CSV's last
    /// columns ([`CARD_FIELDS`], in that order) and the JUnit suite's properties.
    pub fn card_fields(&self, head: &str) -> [String; 8] {
        let run = self.last_run();
        let h = self.head(head);
        [
            run.map(|r| r.tool.describe()).unwrap_or_default(),
            run.map(|r| r.host.clone()).unwrap_or_default(),
            self.header.profile.sha256.clone(),
            self.header.plan.sha256.clone(),
            self.header.keyset.fingerprint.clone(),
            run.map(|r| format!("{} ({})", r.clock.at, r.clock.source)).unwrap_or_default(),
            h.map(|h| h.reader.clone()).unwrap_or_default(),
            h.map(|h| h.atr.join(";")).unwrap_or_default(),
        ]
    }
}

/// Names of [`ReportHeader::card_fields`].
pub const CARD_FIELDS: [&str; 8] =
    ["tool", "host", "profile_sha256", "plan_sha256", "keyset", "clock", "reader", "atr"];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The plan file and every file it includes, depth first, as the plan loader reads them.
/// The plan was loaded already, so every include exists and parses; what cannot be read
/// here (a file changed under us) is an error naming it.
pub fn plan_files(path: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    collect(path, &mut out, 0)?;
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>, depth: usize) -> std::io::Result<()> {
    let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {msg}", path.display()));
    // The loader caps nesting (and refuses cycles); this only guards against a file edited
    // into a cycle between loading and hashing.
    if depth > 32 {
        return Err(bad("includes nest too deep".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    out.push((path.to_path_buf(), bytes));
    let v: toml::Value = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let includes = v.get("plan").and_then(|p| p.get("include")).and_then(|i| i.as_array()).cloned().unwrap_or_default();
    for inc in includes {
        let Some(name) = inc.as_str() else { continue };
        collect(&path.parent().unwrap_or(Path::new(".")).join(name), out, depth + 1)?;
    }
    Ok(())
}

/// SHA-256 over the contents of the plan and its includes in load order, each preceded by
/// its length: moving the folder keeps the hash, editing any file changes it.
pub fn plan_hash(files: &[(PathBuf, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    h.update(b"cardbench plan v1");
    for (_, bytes) in files {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    hex::encode(h.finalize())
}

impl Identity {
    pub fn of(l: &Loaded, plan: &Plan, keyset: &Keyset) -> std::io::Result<Identity> {
        let files = plan_files(&plan.path)?;
        let keyset_source = match &l.profile.keyset.path {
            Some(p) => l.path.parent().unwrap_or(Path::new(".")).join(p.get_ref()).display().to_string(),
            None => "seed".into(),
        };
        Ok(Identity {
            profile: FileHash { path: l.path.display().to_string(), sha256: sha256_hex(l.text.as_bytes()) },
            plan: PlanIdentity {
                id: plan.id.clone(),
                version: plan.version.clone(),
                path: plan.path.display().to_string(),
                sha256: plan_hash(&files),
                files: files
                    .iter()
                    .map(|(p, b)| FileHash { path: p.display().to_string(), sha256: sha256_hex(b) })
                    .collect(),
            },
            keyset: KeysetIdentity {
                source: keyset_source,
                fingerprint: keyset.fingerprint(),
                revoked: keyset.crl.revoked.iter().map(|s| format!("{s:08X}")).collect(),
            },
        })
    }

    /// What differs from `earlier`, one line each (empty: a resume may go on).
    pub fn changes_since(&self, earlier: &Identity) -> Vec<String> {
        let short = |h: &str| h.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        let mut out = Vec::new();
        if self.plan.sha256 != earlier.plan.sha256 {
            let edited: Vec<&str> = self
                .plan
                .files
                .iter()
                .filter(|f| !earlier.plan.files.iter().any(|e| e.sha256 == f.sha256))
                .map(|f| f.path.as_str())
                .collect();
            let which = if edited.is_empty() { String::new() } else { format!(" ({} edited)", edited.join(", ")) };
            out.push(format!(
                "plan {} {} changed{which}: sha256 {} → {}",
                self.plan.id,
                self.plan.version,
                short(&earlier.plan.sha256),
                short(&self.plan.sha256)
            ));
        }
        if self.profile.sha256 != earlier.profile.sha256 {
            out.push(format!(
                "profile {} changed: sha256 {} → {}",
                self.profile.path,
                short(&earlier.profile.sha256),
                short(&self.profile.sha256)
            ));
        }
        if self.keyset.fingerprint != earlier.keyset.fingerprint {
            out.push(format!(
                "keyset {} changed: fingerprint {} → {}",
                self.keyset.source,
                short(&earlier.keyset.fingerprint),
                short(&self.keyset.fingerprint)
            ));
        }
        out
    }
}

/// The host's name (Linux), else `$HOSTNAME`, else `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

impl Run {
    /// This run, before any card: the ATRs are filled in as cards arrive ([`Run::saw_atr`]).
    pub fn start(started: String, now: u32, clock_fixed: bool, heads: &[LabHead], recertify: bool) -> Run {
        let at = chrono::DateTime::from_timestamp(now as i64, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| now.to_string());
        Run {
            started,
            tool: Tool::this(),
            host: host_name(),
            clock: Clock { source: if clock_fixed { "profile" } else { "wall" }.into(), at },
            heads: heads
                .iter()
                .map(|h| {
                    let info = h.head.info();
                    HeadRecord {
                        name: h.name.clone(),
                        driver: info.driver.into(),
                        reader: info.reader.clone(),
                        atr: vec![],
                    }
                })
                .collect(),
            recertify,
            changes: Vec::new(),
        }
    }

    /// Note the ATR a head's card answered with; true when it is new for this run (then
    /// batch.json is written again).
    pub fn saw_atr(&mut self, head: &str, atr: &[u8]) -> bool {
        let hex = hex::encode_upper(atr);
        match self.heads.iter_mut().find(|h| h.name == head) {
            Some(h) if !atr.is_empty() && !h.atr.contains(&hex) => {
                h.atr.push(hex);
                true
            }
            _ => false,
        }
    }
}
