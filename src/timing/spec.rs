//! Timing specs (`test-plans/timing/*.toml`, docs/timing.md): what to time, how to re-arm it
//! between iterations, where a card runs out, and the neutral command measured beside it.
//! Parsed completely, every error located as file:line:col, before anything is sent.

use crate::engine::key_update::UpdateMode;
use crate::plan::expr_check::{Env, Ty};
use crate::plan::template::{Template, Value};
use crate::plan::CaptureSpec;
use crate::plan::{Action, Amount, ChargeMode, SwExpect};
use crate::profile::ConfigError;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Symbolic heads an op talks to: the card being timed and, for two-card flows, its peer.
pub const HEAD_NAMES: &[&str] = &["dut", "peer"];
/// Per-iteration variables: the iteration index and fresh terminal randoms of 8, 16, 32 bytes.
pub const ITERATION_VARS: &[&str] = &["i", "rnd8", "rnd16", "rnd32"];
const ENGINES: &str = "charge, pay, card_signed_payment, key_update, value_transfer";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    timing: MetaRaw,
    #[serde(default)]
    heads: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default, rename = "op")]
    ops: Vec<Spanned<OpRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaRaw {
    id: String,
    version: String,
    #[serde(default)]
    title: String,
    iterations: Option<Spanned<u32>>,
    warmup: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpRaw {
    name: Spanned<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    prepare: Vec<Spanned<StepRaw>>,
    #[serde(default)]
    setup: Vec<Spanned<StepRaw>>,
    // The measured command: the fields of a step (apdu or engine).
    head: Option<Spanned<String>>,
    apdu: Option<Spanned<String>>,
    sw: Option<Spanned<toml::Value>>,
    capture: Option<Spanned<BTreeMap<String, String>>>,
    engine: Option<Spanned<String>>,
    heads: Option<Spanned<Vec<String>>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    amount: Option<Spanned<u32>>,
    mode: Option<Spanned<String>>,
    unchecked: Option<Spanned<bool>>,
    time: Option<Spanned<String>>,
    baseline: Option<Spanned<String>>,
    baseline_sw: Option<Spanned<toml::Value>>,
    restore: Option<Spanned<bool>>,
    limit: Option<Spanned<LimitRaw>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct StepRaw {
    head: Option<Spanned<String>>,
    apdu: Option<Spanned<String>>,
    sw: Option<Spanned<toml::Value>>,
    capture: Option<Spanned<BTreeMap<String, String>>>,
    select: Option<Spanned<String>>,
    engine: Option<Spanned<String>>,
    heads: Option<Spanned<Vec<String>>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    amount: Option<Spanned<u32>>,
    mode: Option<Spanned<String>>,
    unchecked: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitRaw {
    apdu: Spanned<String>,
    left: Spanned<String>,
    what: String,
    head: Option<Spanned<String>>,
}

/// An untimed or timed action of an op.
#[derive(Debug, Clone)]
pub enum Step {
    Apdu {
        head: String,
        command: Template,
        sw: SwExpect,
        capture: Vec<(String, CaptureSpec)>,
    },
    Select {
        head: String,
        applet: crate::spec::Applet,
    },
    /// An engine flow; it must end in `success`.
    Engine(Action),
}

impl Step {
    pub fn heads(&self) -> Vec<&str> {
        match self {
            Step::Apdu { head, .. } | Step::Select { head, .. } => vec![head],
            Step::Engine(a) => a.heads(),
        }
    }
}

/// What the sample of one iteration measures.
#[derive(Debug, Clone)]
pub enum Measure {
    /// One command APDU: its wire exchanges (GET RESPONSE and 6Cxx re-sends included).
    Apdu { head: String, command: Template, sw: SwExpect },
    /// An engine flow. `time`: only the wire exchanges of this command (by trace name) on
    /// `head`; `None`: the wall time of the whole engine call.
    Engine { action: Action, time: Option<(String, String)> },
}

/// A state the op consumes and the card cannot give back (a PURSE backward counter).
#[derive(Debug, Clone)]
pub struct Limit {
    pub head: String,
    /// Read before every iteration (untimed): how many iterations the card can still give.
    pub command: Template,
    pub left: CaptureSpec,
    pub what: String,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub name: String,
    pub title: String,
    /// Untimed, once before the warm-up.
    pub prepare: Vec<Step>,
    /// Untimed, before every iteration (warm-up included).
    pub setup: Vec<Step>,
    pub measure: Measure,
    /// The neutral command timed right after the op in every iteration, on the timed head.
    pub baseline: Option<(Template, SwExpect)>,
    /// Virtual heads: the cards' NVM is put back as it was after `prepare` before every
    /// iteration. Real cards cannot be restored: then `limit` says how far they go.
    pub restore: bool,
    pub limit: Option<Limit>,
}

impl Op {
    /// The symbolic head whose exchanges are timed.
    pub fn timed_head(&self) -> &str {
        match &self.measure {
            Measure::Apdu { head, .. } => head,
            Measure::Engine { time: Some((head, _)), .. } => head,
            Measure::Engine { action, time: None } => action.heads()[0],
        }
    }

    /// Every symbolic head the op talks to.
    pub fn heads(&self) -> BTreeSet<&str> {
        let mut h: BTreeSet<&str> = self.prepare.iter().chain(&self.setup).flat_map(Step::heads).collect();
        match &self.measure {
            Measure::Apdu { head, .. } => {
                h.insert(head);
            }
            Measure::Engine { action, .. } => h.extend(action.heads()),
        }
        h.extend(self.limit.as_ref().map(|l| l.head.as_str()));
        h
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub id: String,
    pub version: String,
    pub title: String,
    pub iterations: u32,
    pub warmup: u32,
    /// Default binding of the symbolic heads to profile head names or roles.
    pub heads: Vec<(String, String, Located)>,
    pub vars: Vec<(String, Value)>,
    pub ops: Vec<Op>,
}

/// A source position, for errors found when the spec meets a profile.
#[derive(Debug, Clone)]
pub struct Located {
    pub file: PathBuf,
    pub span: Range<usize>,
}

impl Located {
    pub fn err(&self, msg: impl Into<String>) -> ConfigError {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        ConfigError::at(&self.file, &text, self.span.start, msg)
    }
}

pub const DEFAULT_ITERATIONS: u32 = 100;
pub const DEFAULT_WARMUP: u32 = 5;

struct Src<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Src<'_> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, span.start, msg)
    }
}

pub fn load(path: &Path) -> Result<Spec, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    parse_str(path, &text)
}

/// Is this TOML text a timing spec (a `[timing]` table) rather than a plan?
pub fn looks_like_spec(text: &str) -> bool {
    text.parse::<toml::Table>().map(|t| t.contains_key("timing")).unwrap_or(false)
}

pub fn parse_str(path: &Path, text: &str) -> Result<Spec, ConfigError> {
    let src = Src { path, text };
    let raw: FileRaw = toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
    let positive = |v: &Option<Spanned<u32>>, dflt: u32, what: &str, zero_ok: bool| match v {
        Some(n) if *n.get_ref() == 0 && !zero_ok => Err(src.err(n.span(), format!("{what} must be at least 1"))),
        Some(n) => Ok(*n.get_ref()),
        None => Ok(dflt),
    };
    let iterations = positive(&raw.timing.iterations, DEFAULT_ITERATIONS, "iterations", false)?;
    let warmup = positive(&raw.timing.warmup, DEFAULT_WARMUP, "warmup", true)?;
    let mut heads = Vec::new();
    for (k, v) in &raw.heads {
        if !HEAD_NAMES.contains(&k.as_str()) {
            return Err(src.err(v.span(), format!("[heads] '{k}': the symbolic heads are {}", HEAD_NAMES.join(", "))));
        }
        heads.push((k.clone(), v.get_ref().clone(), Located { file: path.to_path_buf(), span: v.span() }));
    }
    let mut vars = Vec::new();
    for (name, v) in &raw.vars {
        if ITERATION_VARS.contains(&name.as_str()) || crate::plan::parse::BUILTINS.contains(&name.as_str()) {
            return Err(src.err(v.span(), format!("variable '{name}' is built in")));
        }
        let value = crate::plan::parse::var_value(name, v.get_ref()).map_err(|e| src.err(v.span(), e))?;
        vars.push((name.clone(), value));
    }
    let mut known: Env =
        crate::plan::parse::BUILTINS.iter().map(|s| (s.to_string(), crate::plan::parse::builtin_type(s))).collect();
    // `i` is the iteration index; `rnd8`, `rnd16`, `rnd32` are fresh random bytes.
    known.extend(ITERATION_VARS.iter().map(|s| (s.to_string(), if *s == "i" { Ty::Int } else { Ty::Str })));
    known.extend(vars.iter().map(|(n, v)| (n.clone(), Ty::of(v))));
    let mut ops = Vec::new();
    let mut names = BTreeSet::new();
    for o in &raw.ops {
        let op = op(&src, o, &known)?;
        if !names.insert(op.name.clone()) {
            return Err(src.err(o.get_ref().name.span(), format!("op name '{}' is used twice", op.name)));
        }
        ops.push(op);
    }
    if ops.is_empty() {
        return Err(ConfigError::whole_file(path, "timing spec has no [[op]]"));
    }
    Ok(Spec {
        path: path.to_path_buf(),
        id: raw.timing.id,
        version: raw.timing.version,
        title: raw.timing.title,
        iterations,
        warmup,
        heads,
        vars,
        ops,
    })
}

fn op(src: &Src, o: &Spanned<OpRaw>, known: &Env) -> Result<Op, ConfigError> {
    let r = o.get_ref();
    let name = r.name.get_ref().clone();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(src.err(r.name.span(), "op name must be non-empty, without spaces or commas"));
    }
    // Captures of prepare steps are known to everything after them; those of setup steps
    // to the measured command and the baseline.
    let mut known = known.clone();
    let mut prepare = Vec::new();
    for s in &r.prepare {
        prepare.push(step(src, s, &mut known)?);
    }
    let mut setup = Vec::new();
    for s in &r.setup {
        setup.push(step(src, s, &mut known)?);
    }
    let m = &StepRaw {
        head: r.head.clone(),
        apdu: r.apdu.clone(),
        sw: r.sw.clone(),
        capture: r.capture.clone(),
        select: None,
        engine: r.engine.clone(),
        heads: r.heads.clone(),
        from: r.from.clone(),
        to: r.to.clone(),
        amount: r.amount.clone(),
        mode: r.mode.clone(),
        unchecked: r.unchecked.clone(),
    };
    let measure = match (&m.apdu, &m.engine) {
        (Some(_), None) => {
            if let Some(t) = &r.time {
                return Err(src.err(
                    t.span(),
                    "`time` picks a command inside an engine flow; an `apdu` op times its own command",
                ));
            }
            if let Some(c) = &m.capture {
                return Err(src.err(c.span(), "the measured command cannot capture (put the capture in `setup`)"));
            }
            let Step::Apdu { head, command, sw, .. } = step_of(src, o.span(), m, &mut known)? else {
                unreachable!("an apdu field makes an apdu step")
            };
            Measure::Apdu { head, command, sw }
        }
        (None, Some(_)) => {
            let Step::Engine(action) = step_of(src, o.span(), m, &mut known)? else {
                unreachable!("an engine field makes an engine step")
            };
            let time = match &r.time {
                None => None,
                Some(t) => {
                    let cmd = t.get_ref().trim().to_string();
                    if !known_command(&cmd) {
                        let names: Vec<&str> = (0u8..=255)
                            .flat_map(|ins| [crate::cmds::name(0x80, ins), crate::cmds::name(0x00, ins)])
                            .filter(|n| *n != "UNKNOWN")
                            .collect();
                        let hint = crate::suggest::did_you_mean(&cmd, names, "'")
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default();
                        return Err(
                            src.err(t.span(), format!("'{cmd}' is not a command name of docs/card-spec.md §1.5{hint}"))
                        );
                    }
                    let head = match &m.head {
                        Some(h) => symbolic(src, h)?,
                        None => "dut".to_string(),
                    };
                    if !action.heads().contains(&head.as_str()) {
                        return Err(src.err(
                            t.span(),
                            format!("`time` on head '{head}', which the engine step does not talk to"),
                        ));
                    }
                    Some((head, cmd))
                }
            };
            Measure::Engine { action, time }
        }
        (Some(a), Some(_)) => return Err(src.err(a.span(), "an op measures `apdu` or `engine`, not both")),
        (None, None) => {
            return Err(src.err(o.span(), format!("op '{name}' needs the measured command: `apdu` or `engine`")))
        }
    };
    let baseline = match &r.baseline {
        None => {
            if let Some(b) = &r.baseline_sw {
                return Err(src.err(b.span(), "`baseline_sw` without `baseline`"));
            }
            None
        }
        Some(b) => {
            let t = template(src, b, &known)?;
            let sw = match &r.baseline_sw {
                None => SwExpect(vec!["9000".into()]),
                Some(v) => sw_expect(src, v)?,
            };
            Some((t, sw))
        }
    };
    let limit = match &r.limit {
        None => None,
        Some(l) => {
            let lr = l.get_ref();
            let head = lr.head.as_ref().map_or("dut".to_string(), |h| h.get_ref().clone());
            if let Some(h) = &lr.head {
                symbolic(src, h)?;
            }
            let left = match crate::plan::parse::capture_spec(lr.left.get_ref()) {
                Some(c @ CaptureSpec::Uint { .. }) => c,
                _ => {
                    return Err(src.err(
                        lr.left.span(),
                        format!("limit left '{}' is not u8@N, u16@N or u32@N", lr.left.get_ref()),
                    ))
                }
            };
            Some(Limit { head, command: template(src, &lr.apdu, &known)?, left, what: lr.what.clone() })
        }
    };
    let op = Op {
        name,
        title: r.title.clone(),
        prepare,
        setup,
        measure,
        baseline,
        restore: r.restore.as_ref().is_some_and(|b| *b.get_ref()),
        limit,
    };
    Ok(op)
}

fn known_command(name: &str) -> bool {
    (0u8..=255).any(|ins| crate::cmds::name(0x80, ins) == name || crate::cmds::name(0x00, ins) == name)
}

fn symbolic(src: &Src, h: &Spanned<String>) -> Result<String, ConfigError> {
    if HEAD_NAMES.contains(&h.get_ref().as_str()) {
        Ok(h.get_ref().clone())
    } else {
        Err(src.err(h.span(), format!("head '{}' is not one of {}", h.get_ref(), HEAD_NAMES.join(", "))))
    }
}

fn template(src: &Src, s: &Spanned<String>, known: &Env) -> Result<Template, ConfigError> {
    let t = Template::parse(s.get_ref(), false).map_err(|e| src.err(s.span(), e))?;
    for (v, width) in t.substitutions() {
        if let Some(msg) = known.get(v).and_then(|ty| crate::plan::parse::width_error(v, *ty, width)) {
            return Err(src.err(s.span(), msg));
        }
        if !known.contains_key(v) {
            return Err(src.err(
                s.span(),
                format!(
                    "'${{{v}}}' is not defined (spec vars, built-ins, {}, or a capture before it)",
                    ITERATION_VARS.join(", ")
                ),
            ));
        }
    }
    Ok(t)
}

fn sw_expect(src: &Src, v: &Spanned<toml::Value>) -> Result<SwExpect, ConfigError> {
    let list: Vec<String> = match v.get_ref() {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => vec![],
    };
    let ok =
        !list.is_empty() && list.iter().all(|p| p.len() == 4 && p.chars().all(|c| c.is_ascii_hexdigit() || c == 'X'));
    if !ok {
        return Err(src.err(v.span(), "sw must be 4 hex digits (X = any nibble) or a list of them"));
    }
    Ok(SwExpect(list.into_iter().map(|p| p.to_uppercase()).collect()))
}

fn step(src: &Src, s: &Spanned<StepRaw>, known: &mut Env) -> Result<Step, ConfigError> {
    step_of(src, s.span(), s.get_ref(), known)
}

fn step_of(src: &Src, span: Range<usize>, r: &StepRaw, known: &mut Env) -> Result<Step, ConfigError> {
    let kinds: Vec<(&str, Range<usize>)> = [
        ("apdu", r.apdu.as_ref().map(|x| x.span())),
        ("select", r.select.as_ref().map(|x| x.span())),
        ("engine", r.engine.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let kind = match kinds.as_slice() {
        [(k, _)] => *k,
        [] => return Err(src.err(span, "a step needs one of `apdu`, `select` or `engine`")),
        [_, (k, s), ..] => {
            return Err(
                src.err(s.clone(), format!("a step takes one of `apdu`, `select` or `engine`; `{k}` is a second"))
            )
        }
    };
    let present: Vec<(&str, Range<usize>)> = [
        ("head", r.head.as_ref().map(|x| x.span())),
        ("sw", r.sw.as_ref().map(|x| x.span())),
        ("capture", r.capture.as_ref().map(|x| x.span())),
        ("heads", r.heads.as_ref().map(|x| x.span())),
        ("from", r.from.as_ref().map(|x| x.span())),
        ("to", r.to.as_ref().map(|x| x.span())),
        ("amount", r.amount.as_ref().map(|x| x.span())),
        ("mode", r.mode.as_ref().map(|x| x.span())),
        ("unchecked", r.unchecked.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let allowed: &[&str] = match kind {
        "apdu" => &["head", "sw", "capture"],
        "select" => &["head"],
        _ => &["head", "heads", "from", "to", "amount", "mode", "unchecked"],
    };
    if let Some((f, fs)) = present.iter().find(|(f, _)| !allowed.contains(f)) {
        let takes: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        return Err(src.err(
            fs.clone(),
            format!("field `{f}` does not apply to `{kind}` steps (they take {})", takes.join(", ")),
        ));
    }
    let head = || -> Result<String, ConfigError> {
        match &r.head {
            Some(h) => symbolic(src, h),
            None => Ok("dut".into()),
        }
    };
    Ok(match kind {
        "apdu" => {
            let a = r.apdu.as_ref().expect("kind apdu");
            let command = template(src, a, known)?;
            let sw = match &r.sw {
                None => SwExpect(vec!["9000".into()]),
                Some(v) => sw_expect(src, v)?,
            };
            let mut capture = Vec::new();
            if let Some(c) = &r.capture {
                for (name, spec) in c.get_ref() {
                    let cs = crate::plan::parse::capture_spec(spec).ok_or_else(|| {
                        src.err(
                            c.span(),
                            format!("capture '{name}': '{spec}' is not u8@N, u16@N, u32@N, bytes@A..B or hex"),
                        )
                    })?;
                    if ITERATION_VARS.contains(&name.as_str()) {
                        return Err(src.err(c.span(), format!("capture '{name}' would hide a per-iteration variable")));
                    }
                    let ty = if matches!(cs, CaptureSpec::Uint { .. }) { Ty::Int } else { Ty::Str };
                    capture.push((name.clone(), cs));
                    known.insert(name.clone(), ty);
                }
            }
            Step::Apdu { head: head()?, command, sw, capture }
        }
        "select" => {
            let a = r.select.as_ref().expect("kind select");
            let applet = match a.get_ref().as_str() {
                "purse" => crate::spec::Applet::Purse,
                "cpay" => crate::spec::Applet::Cpay,
                "xfer" => crate::spec::Applet::Xfer,
                other => {
                    let hint = crate::suggest::hint(other, ["purse", "cpay", "xfer"], "'");
                    return Err(src.err(a.span(), format!("unknown applet '{other}'{hint}")));
                }
            };
            Step::Select { head: head()?, applet }
        }
        _ => {
            let e = r.engine.as_ref().expect("kind engine");
            let amount = |what: &str| -> Result<Amount, ConfigError> {
                r.amount
                    .as_ref()
                    .map(|a| Amount::Lit(*a.get_ref()))
                    .ok_or_else(|| src.err(e.span(), format!("engine {what} needs `amount`")))
            };
            let two = |a: &Option<Spanned<String>>, b: &Option<Spanned<String>>, what: &str| {
                let (Some(a), Some(b)) = (a, b) else {
                    return Err(src.err(e.span(), format!("engine {what} needs `from` and `to`")));
                };
                let (x, y) = (symbolic(src, a)?, symbolic(src, b)?);
                if x == y {
                    return Err(src.err(b.span(), format!("engine {what} needs two different heads")));
                }
                Ok((x, y))
            };
            let action = match e.get_ref().as_str() {
                "charge" => {
                    Action::Charge { head: head()?, amount: amount("charge")?, mode: ChargeMode::Add, machine: None }
                }
                "pay" => Action::Pay { head: head()?, price: amount("pay")?, machine: None },
                "card_signed_payment" => Action::CardSignedPayment {
                    head: head()?,
                    price: amount("card_signed_payment")?,
                    unchecked: r.unchecked.as_ref().is_some_and(|u| *u.get_ref()),
                    machine: None,
                },
                "key_update" => {
                    let hs = r
                        .heads
                        .as_ref()
                        .ok_or_else(|| src.err(e.span(), "engine key_update needs `heads = [\"dut\", \"peer\"]`"))?;
                    let list: Vec<String> = hs.get_ref().clone();
                    let [a, b] = <[String; 2]>::try_from(list)
                        .map_err(|_| src.err(hs.span(), "key_update needs exactly two heads"))?;
                    for h in [&a, &b] {
                        symbolic(src, &Spanned::new(hs.span(), h.clone()))?;
                    }
                    if a == b {
                        return Err(src.err(hs.span(), "key_update needs two different heads"));
                    }
                    let mode = match &r.mode {
                        None => UpdateMode::Auto,
                        Some(m) => UpdateMode::parse(m.get_ref()).ok_or_else(|| {
                            let modes = ["common", "public", "auto", "multi", "rollover"];
                            let hint = crate::suggest::hint(m.get_ref(), modes, "'");
                            src.err(m.span(), format!("unknown key_update mode '{}'{hint}", m.get_ref()))
                        })?,
                    };
                    Action::KeyUpdate { a, b, mode }
                }
                "value_transfer" => {
                    let (from, to) = two(&r.from, &r.to, "value_transfer")?;
                    Action::ValueTransfer { from, to, amount: amount("value_transfer")? }
                }
                other => {
                    let hint = crate::suggest::hint(other, ENGINES.split(", "), "'");
                    return Err(src.err(e.span(), format!("unknown engine '{other}'{hint}")));
                }
            };
            Step::Engine(action)
        }
    })
}

impl Spec {
    /// Symbolic heads the ops use, in order dut, peer.
    pub fn used_heads(&self) -> Vec<&'static str> {
        HEAD_NAMES.iter().copied().filter(|h| self.ops.iter().any(|o| o.heads().contains(h))).collect()
    }

    /// The profile head (name or role) the spec binds a symbolic head to by default.
    pub fn default_head(&self, sym: &str) -> Option<(&str, &Located)> {
        self.heads.iter().find(|(k, _, _)| k == sym).map(|(_, v, l)| (v.as_str(), l))
    }
}
