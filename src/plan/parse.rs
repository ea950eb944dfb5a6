//! TOML → `Plan`, with every error located as file:line:col. Nothing here touches a card.

use super::expr_check::{self, Env, Ty};
use super::template::{Expr, Template, Value};
use super::*;
use crate::profile::ConfigError;
use crate::spec::requirements::Requirements;
use crate::spec::Applet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaw {
    plan: MetaRaw,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    setup: Vec<Spanned<StepRaw>>,
    #[serde(default)]
    teardown: Vec<Spanned<StepRaw>>,
    #[serde(default, rename = "case")]
    cases: Vec<Spanned<CaseRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaRaw {
    id: String,
    version: String,
    #[serde(default)]
    title: String,
    /// Informational: the applet(s) the plan exercises.
    #[serde(default)]
    applet: String,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    out_of_scope: Vec<Spanned<verifies::OutOfScopeRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRaw {
    id: Spanned<String>,
    #[serde(default)]
    title: String,
    #[serde(default, rename = "ref")]
    reference: String,
    #[serde(default)]
    tags: Vec<String>,
    skip_if: Option<Spanned<String>>,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    for_each: Option<Spanned<BTreeMap<String, Vec<toml::Value>>>>,
    #[serde(default)]
    verifies: Vec<Spanned<String>>,
    #[serde(rename = "step")]
    steps: Vec<Spanned<StepRaw>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct StepRaw {
    #[serde(rename = "do")]
    kind: Spanned<String>,
    name: Option<String>,
    repeat: Option<Spanned<u32>>,
    head: Option<Spanned<String>>,
    heads: Option<Spanned<Vec<String>>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    engine: Option<Spanned<String>>,
    amount: Option<Spanned<toml::Value>>,
    mode: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    sw: Option<Spanned<toml::Value>>,
    data: Option<Spanned<String>>,
    len: Option<Spanned<toml::Value>>,
    capture: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    verbatim: Option<Spanned<bool>>,
    applet: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
    #[serde(rename = "as")]
    prefix: Option<Spanned<String>>,
    that: Option<Spanned<String>>,
    message: Option<String>,
    vars: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    card: Option<Spanned<CardRaw>>,
    unchecked: Option<Spanned<bool>>,
    raw: Option<Spanned<bool>>,
    machine: Option<Spanned<String>>,
    at: Option<Spanned<i64>>,
    point: Option<Spanned<String>>,
    commit: Option<Spanned<i64>>,
    /// `tear`: count the commands with this INS (hex) instead of wire exchanges.
    ins: Option<Spanned<String>>,
}

/// An inline reference card for `insert_card`; absent fields take `CardPlan::new` defaults.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct CardRaw {
    id: String,
    protocol: Option<crate::spec::Protocol>,
    purse_counter: Option<u32>,
    cpay_amount: Option<u32>,
    balance: Option<u32>,
    max_balance: Option<u32>,
    validity: Option<String>,
    update_key: Option<u32>,
    transfer_key: Option<u32>,
    transfer_key_limit: Option<u32>,
    update_key_limit: Option<u32>,
    slots: Option<Vec<u32>>,
    cert_expiry: Option<String>,
}

/// The roles `cardbench batch` binds: each worker's DUT head and its virtual peer.
pub const BATCH_ROLES: [&str; 2] = ["dut", "peer"];

/// Variables every plan can use without defining them.
pub const BUILTINS: &[&str] = &["now", "charge_cert", "payment_cert", "rogue_cert", "center_key", "ca_key"];

/// The type of a built-in: `now` is a number, the others are bytes.
pub(crate) fn builtin_type(name: &str) -> Ty {
    if name == "now" {
        Ty::Int
    } else {
        Ty::Str
    }
}

/// The type of a field a `read` step defines: IDs, signatures, certificates, randoms and the
/// slot ID list are strings, the rest integers.
fn state_field_type(field: &str) -> Ty {
    if crate::state_read::is_string_field(field) {
        Ty::Str
    } else {
        Ty::Int
    }
}

/// Fields a `read` step defines, per state.
pub fn state_fields(s: StateKind) -> &'static [&'static str] {
    crate::state_read::fields(s)
}

const ENGINES: &str = "charge, pay, card_signed_payment, key_update, value_transfer, settle";
const KINDS: &str =
    "apdu, select, engine, recover, read, assert, set, power_off, power_on, warm_reset, remove, insert, insert_card, tear";

/// Limits on what a plan may expand into, checked from the sizes written in the file before
/// anything is expanded: a `for_each` over 9 variables of 10 values each is a billion cases,
/// which would exhaust memory long before a card saw one.
pub const MAX_CASES: u64 = 100_000;
/// Steps held in memory once `for_each` is expanded (about 650 bytes each in a debug build).
pub const MAX_STEPS: u64 = 1_000_000;
/// Step executions of a whole run: every step of setup, cases and teardown times its
/// `repeat` (room for an endurance test of a million writes, not for a run of years).
pub const MAX_STEP_RUNS: u64 = 100_000_000;
/// Nesting of `include`.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// What a plan (or a part of one) expands into.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    cases: u64,
    steps: u64,
    runs: u64,
}

impl Size {
    fn add(self, o: Size) -> Size {
        Size {
            cases: self.cases.saturating_add(o.cases),
            steps: self.steps.saturating_add(o.steps),
            runs: self.runs.saturating_add(o.runs),
        }
    }

    /// Steps as written, one instance.
    fn of_steps(steps: &[Spanned<StepRaw>]) -> Size {
        let runs = steps
            .iter()
            .fold(0u64, |n, s| n.saturating_add(s.get_ref().repeat.as_ref().map_or(1, |r| u64::from(*r.get_ref()))));
        Size { cases: 0, steps: steps.len() as u64, runs }
    }

    fn of_plan(p: &Plan) -> Size {
        let steps = p.setup.iter().chain(p.cases.iter().flat_map(|c| c.steps.iter())).chain(p.teardown.iter());
        let (n, runs) = steps.fold((0u64, 0u64), |(n, r), s| (n + 1, r.saturating_add(u64::from(s.repeat))));
        Size { cases: p.cases.len() as u64, steps: n, runs }
    }

    /// The first limit passed, as "<what> <size>; a plan may have at most <limit>".
    fn over(&self) -> Option<String> {
        if self.cases > MAX_CASES {
            Some(format!("{} cases; a plan may have at most {MAX_CASES} cases", self.cases))
        } else if self.steps > MAX_STEPS {
            Some(format!("{} steps; a plan may have at most {MAX_STEPS} steps", self.steps))
        } else if self.runs > MAX_STEP_RUNS {
            Some(format!("{} step runs (with repeats); a plan may run at most {MAX_STEP_RUNS} steps", self.runs))
        } else {
            None
        }
    }
}

/// A `[vars]` value: an integer, or hex bytes (whitespace between them allowed). The error
/// says what is wrong with it, for the caller to locate.
pub(crate) fn var_value(name: &str, v: &toml::Value) -> Result<Value, String> {
    match v {
        toml::Value::Integer(i) => Ok(Value::Int(*i)),
        toml::Value::String(s) => {
            let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            if !clean.len().is_multiple_of(2) || hex::decode(&clean).is_err() {
                return Err(format!("variable '{name}': strings must be hex bytes"));
            }
            Ok(Value::Hex(clean.to_uppercase()))
        }
        other => Err(format!("variable '{name}': {} is not an integer or hex string", other.type_str())),
    }
}

/// One source file being parsed: errors are located in it.
pub(crate) struct Src<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Src<'_> {
    pub(crate) fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, span.start, msg)
    }

    fn loc(&self, span: Range<usize>) -> Located {
        Located { file: self.path.to_path_buf(), span }
    }
}

pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    load_with(path, verifies::spec()?)
}

/// `load`, judging `verifies` and `out_of_scope` against `reqs` instead of the embedded spec.
pub fn load_with(path: &Path, reqs: &Requirements) -> Result<Plan, ConfigError> {
    let mut seen = Vec::new();
    let plan = load_inner(path, &mut seen, reqs)?;
    plan.check_inserts()?;
    Ok(plan)
}

fn load_inner(path: &Path, seen: &mut Vec<PathBuf>, reqs: &Requirements) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&canon) {
        return Err(ConfigError::whole_file(path, "plan includes itself (include cycle)"));
    }
    seen.push(canon);
    let r = parse_with(path, &text, seen, reqs);
    seen.pop();
    r
}

/// Parse plan text that includes nothing from disk relative to `path` except its includes.
pub fn parse_str(path: &Path, text: &str) -> Result<Plan, ConfigError> {
    parse_str_with(path, text, verifies::spec()?)
}

/// `parse_str`, judging `verifies` and `out_of_scope` against `reqs`.
pub fn parse_str_with(path: &Path, text: &str, reqs: &Requirements) -> Result<Plan, ConfigError> {
    let plan = parse_with(path, text, &mut Vec::new(), reqs)?;
    plan.check_inserts()?;
    Ok(plan)
}

fn parse_with(path: &Path, text: &str, seen: &mut Vec<PathBuf>, reqs: &Requirements) -> Result<Plan, ConfigError> {
    let src = Src { path, text };
    let raw: FileRaw = toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
    let mut plan = Plan {
        path: path.to_path_buf(),
        id: raw.plan.id.clone(),
        version: raw.plan.version.clone(),
        title: raw.plan.title.clone(),
        roles: raw.plan.roles.iter().map(|r| (r.get_ref().clone(), src.loc(r.span()))).collect(),
        vars: Vec::new(),
        setup: Vec::new(),
        cases: Vec::new(),
        teardown: Vec::new(),
        out_of_scope: Vec::new(),
    };
    let _ = &raw.plan.applet;
    // Included plans first: their variables, setup and cases come before ours.
    let mut ids: HashSet<String> = HashSet::new();
    let mut size = Size::default();
    for inc in &raw.plan.include {
        let p = path.parent().unwrap_or(Path::new(".")).join(inc.get_ref());
        if !p.exists() {
            return Err(src.err(inc.span(), format!("included plan '{}' not found", inc.get_ref())));
        }
        if seen.len() >= MAX_INCLUDE_DEPTH {
            return Err(src.err(inc.span(), format!("includes nest deeper than {MAX_INCLUDE_DEPTH} plans")));
        }
        let sub = load_inner(&p, seen, reqs)?;
        size = size.add(Size::of_plan(&sub));
        if let Some(over) = size.over() {
            return Err(src.err(inc.span(), format!("with '{}' the plan would have {over}", inc.get_ref())));
        }
        merge(&mut plan, sub, &src, inc.span(), &mut ids)?;
    }
    verifies::out_of_scope(&src, &raw.plan.out_of_scope, reqs, &mut plan.out_of_scope, &raw.plan.id)?;
    for (name, v) in &raw.vars {
        check_name(&src, v.span(), name)?;
        let value = crate::plan::parse::var_value(name, v.get_ref()).map_err(|e| src.err(v.span(), e))?;
        if plan.vars.iter().any(|(n, _)| n == name) {
            return Err(src.err(v.span(), format!("variable '{name}' is already defined by an included plan")));
        }
        plan.vars.push((name.clone(), value));
    }
    let mut known: Env = BUILTINS.iter().map(|s| (s.to_string(), builtin_type(s))).collect();
    known.extend(plan.vars.iter().map(|(n, v)| (n.clone(), Ty::of(v))));
    for s in &plan.setup {
        define(&s.kind, &mut known);
    }
    for (i, s) in raw.setup.iter().enumerate() {
        refuse_tear(&src, s)?;
        let step = step(&src, s, &format!("setup #{}", i + 1), &BTreeMap::new(), &mut known)?;
        plan.setup.push(step);
    }
    check_in_doubt(&src, &raw.setup, &plan.setup[plan.setup.len() - raw.setup.len()..])?;
    size = size.add(Size::of_steps(&raw.setup)).add(Size::of_steps(&raw.teardown));
    if let Some(over) = size.over() {
        // Only a repeat can do that in setup or teardown: point at the largest.
        let steps = raw.setup.iter().chain(raw.teardown.iter());
        let worst = steps.max_by_key(|s| s.get_ref().repeat.as_ref().map_or(1, |r| *r.get_ref()));
        let at = worst.map_or(0..0, |s| s.get_ref().repeat.as_ref().map_or(s.span(), |r| r.span()));
        return Err(src.err(at, format!("with its setup and teardown the plan would have {over}")));
    }
    for (i, c) in raw.cases.iter().enumerate() {
        size = size.add(check_expansion(&src, c, size)?);
        check_needs(&src, c, &raw.cases[i + 1..])?;
        let cited = verifies::case_ids(&src, &c.get_ref().verifies, reqs)?;
        for mut case in cases(&src, c, &known)? {
            case.verifies = cited.clone();
            if !ids.insert(case.id.clone()) {
                return Err(src.err(c.get_ref().id.span(), format!("case id '{}' is used twice", case.id)));
            }
            plan.cases.push(case);
        }
    }
    for (i, s) in raw.teardown.iter().enumerate() {
        refuse_tear(&src, s)?;
        let mut k = known.clone();
        plan.teardown.push(step(&src, s, &format!("teardown #{}", i + 1), &BTreeMap::new(), &mut k)?);
    }
    check_in_doubt(&src, &raw.teardown, &plan.teardown[plan.teardown.len() - raw.teardown.len()..])?;
    if plan.cases.is_empty() {
        return Err(ConfigError::whole_file(path, "plan has no [[case]]"));
    }
    Ok(plan)
}

/// `needs` names cases that run before this one: a case of this file after it (or itself)
/// is refused. A name that is no case of this file may be a case of a plan run before it in
/// a suite that includes both (xfer-transfer.toml needs the key state xfer-keys.toml
/// leaves); on its own, such a plan simply has no such case, and the need holds nothing.
fn check_needs(src: &Src, c: &Spanned<CaseRaw>, later: &[Spanned<CaseRaw>]) -> Result<(), ConfigError> {
    let id = c.get_ref().id.get_ref();
    for n in &c.get_ref().needs {
        let name = n.get_ref();
        if name == id {
            return Err(src.err(n.span(), format!("case '{name}' cannot need itself")));
        }
        if later.iter().any(|l| l.get_ref().id.get_ref() == name) {
            return Err(src.err(
                n.span(),
                format!("needs '{name}', which runs after '{id}': a case can only need the cases before it"),
            ));
        }
    }
    Ok(())
}

/// A `tear` at the `at`-th (default 1st) command with INS `ins` (one hex byte).
fn tear_command(
    src: &Src,
    ins: Option<&Spanned<String>>,
    at: Option<&Spanned<i64>>,
    point: crate::head::virtual_head::CutPoint,
) -> Result<TearAt, ConfigError> {
    let ins = ins.expect("called with an ins");
    let byte = u8::from_str_radix(ins.get_ref().trim(), 16)
        .ok()
        .filter(|_| ins.get_ref().trim().len() == 2)
        .ok_or_else(|| src.err(ins.span(), format!("ins '{}' is not one hex byte (e.g. \"D6\")", ins.get_ref())))?;
    let n = match at {
        Some(n) => positive(src, n, "at")?,
        None => 1,
    };
    Ok(TearAt::Command { ins: byte, n, point })
}

fn refuse_tear(src: &Src, s: &Spanned<StepRaw>) -> Result<(), ConfigError> {
    if s.get_ref().kind.get_ref() == "tear" {
        return Err(src.err(s.get_ref().kind.span(), "`tear` steps belong in cases, before the engine step they cut"));
    }
    Ok(())
}

/// Refuse a case whose expansion would take the plan past a limit, from the sizes in the
/// file alone (value counts, step counts, repeats); returns the size it adds.
fn check_expansion(src: &Src, c: &Spanned<CaseRaw>, so_far: Size) -> Result<Size, ConfigError> {
    let raw = c.get_ref();
    let counts: Vec<(String, u64)> = raw
        .for_each
        .as_ref()
        .map(|fe| fe.get_ref().iter().map(|(n, v)| (n.clone(), v.len() as u64)).collect())
        .unwrap_or_default();
    let instances = counts.iter().fold(1u64, |n, (_, k)| n.saturating_mul(*k));
    let one = Size::of_steps(&raw.steps);
    let size =
        Size { cases: instances, steps: instances.saturating_mul(one.steps), runs: instances.saturating_mul(one.runs) };
    let Some(over) = so_far.add(size).over() else { return Ok(size) };
    let at = raw.for_each.as_ref().map_or(raw.id.span(), |fe| fe.span());
    let steps = |n: u64, what: &str| if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") };
    let each = format!("{} and {}", steps(one.steps, "step"), steps(one.runs, "step run"));
    let how = if counts.is_empty() {
        format!("case '{}' with {each}", raw.id.get_ref())
    } else {
        let product: Vec<String> = counts.iter().map(|(n, k)| format!("{k} {n}")).collect();
        format!("for_each makes {instances} cases of '{}' ({}) with {each} each", raw.id.get_ref(), product.join(" × "))
    };
    let before = if so_far.cases > 0 { " with the cases before it" } else { "" };
    Err(src.err(at, format!("{how}: the plan{before} would have {over}")))
}

fn merge(
    plan: &mut Plan,
    sub: Plan,
    src: &Src,
    span: Range<usize>,
    ids: &mut HashSet<String>,
) -> Result<(), ConfigError> {
    for (n, v) in sub.vars {
        match plan.vars.iter().find(|(x, _)| *x == n) {
            Some((_, old)) if *old != v => {
                return Err(src.err(span, format!("included plan '{}' redefines variable '{n}'", sub.id)))
            }
            Some(_) => {}
            None => plan.vars.push((n, v)),
        }
    }
    for c in sub.cases {
        if !ids.insert(c.id.clone()) {
            return Err(src.err(span.clone(), format!("included plan '{}' repeats case id '{}'", sub.id, c.id)));
        }
        plan.cases.push(c);
    }
    for r in sub.roles {
        if !plan.roles.iter().any(|(x, _)| *x == r.0) {
            plan.roles.push(r);
        }
    }
    plan.setup.extend(sub.setup);
    plan.teardown.extend(sub.teardown);
    verifies::merge_out_of_scope(&mut plan.out_of_scope, sub.out_of_scope);
    Ok(())
}

fn check_name(src: &Src, span: Range<usize>, name: &str) -> Result<(), ConfigError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(src.err(span, format!("'{name}' is not a valid variable name")))
    }
}

/// Variables a step defines for the steps after it, with their types.
fn define(k: &StepKind, known: &mut Env) {
    match k {
        StepKind::Apdu { capture, .. } => known.extend(capture.iter().map(|(n, c)| {
            let ty = if matches!(c, CaptureSpec::Uint { .. } | CaptureSpec::Sw) { Ty::Int } else { Ty::Str };
            (n.clone(), ty)
        })),
        StepKind::Read { state, prefix, .. } => {
            known.extend(state_fields(*state).iter().map(|f| (format!("{prefix}.{f}"), state_field_type(f))));
        }
        StepKind::Set { vars } => {
            // Checked when the step was parsed; booleans are stored as 1 / 0.
            let types: Vec<(String, Ty)> = vars
                .iter()
                .map(|(n, e)| {
                    let t = expr_check::infer(e.tree(), known).unwrap_or(Ty::Unknown);
                    (n.clone(), if t == Ty::Bool { Ty::Int } else { t })
                })
                .collect();
            known.extend(types);
        }
        _ => {}
    }
}

fn toml_scalar(v: &toml::Value) -> Option<Value> {
    match v {
        toml::Value::Integer(i) => Some(Value::Int(*i)),
        toml::Value::String(s) => Some(Value::Hex(s.clone())),
        _ => None,
    }
}

fn cases(src: &Src, c: &Spanned<CaseRaw>, known: &Env) -> Result<Vec<Case>, ConfigError> {
    let raw = c.get_ref();
    let id = raw.id.get_ref().clone();
    if id.is_empty() || id.contains(char::is_whitespace) {
        return Err(src.err(raw.id.span(), "case id must be non-empty and without spaces"));
    }
    // for_each: the cartesian product of the listed values, in name order.
    let mut instances: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
    if let Some(fe) = &raw.for_each {
        for (name, values) in fe.get_ref() {
            check_name(src, fe.span(), name)?;
            if values.is_empty() {
                return Err(src.err(fe.span(), format!("for_each '{name}' has no values")));
            }
            let mut next = Vec::new();
            for inst in &instances {
                for v in values {
                    let v = toml_scalar(v).ok_or_else(|| {
                        src.err(fe.span(), format!("for_each '{name}': values must be integers or strings"))
                    })?;
                    let mut i = inst.clone();
                    i.insert(name.clone(), v);
                    next.push(i);
                }
            }
            instances = next;
        }
    }
    let mut out = Vec::new();
    for b in instances {
        let case_id = if b.is_empty() {
            id.clone()
        } else {
            let tag: Vec<String> = b.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{id}[{}]", tag.join(","))
        };
        let mut k = known.clone();
        k.extend(b.iter().map(|(n, v)| (n.clone(), Ty::of(v))));
        let skip_if = match &raw.skip_if {
            Some(s) => Some(expr(src, s, &k, Want::Condition)?),
            None => None,
        };
        let mut steps = Vec::new();
        for (i, s) in raw.steps.iter().enumerate() {
            steps.push(step(src, s, &format!("{case_id} #{}", i + 1), &b, &mut k)?);
        }
        if steps.is_empty() {
            return Err(src.err(c.span(), format!("case '{id}' has no [[case.step]]")));
        }
        check_in_doubt(src, &raw.steps, &steps)?;
        // A tear arms a cut for the next engine step: one must follow.
        for (i, s) in steps.iter().enumerate() {
            if matches!(s.kind, StepKind::Tear { .. })
                && !steps[i + 1..].iter().any(|n| matches!(n.kind, StepKind::Engine { .. }))
            {
                return Err(src.err(
                    raw.steps[i].span(),
                    format!("{}: a tear arms a power cut for the next engine step, and none follows", s.label),
                ));
            }
        }
        out.push(Case {
            id: case_id,
            title: raw.title.clone(),
            reference: raw.reference.clone(),
            tags: raw.tags.clone(),
            skip_if,
            needs: raw.needs.iter().map(|n| n.get_ref().clone()).collect(),
            bindings: b.into_iter().collect(),
            steps,
            verifies: Vec::new(),
        });
    }
    Ok(out)
}

/// What an expression's value is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// `assert` and `skip_if`: true or false.
    Condition,
    /// `set`: a number, a boolean (stored as 1 / 0) or bytes.
    Value,
}

/// Byte offset in the file of byte `i` of a string value at `span`: exact for one-line
/// strings without escapes (what expressions are), else the string's start.
fn inner_offset(src: &Src, span: &Range<usize>, i: usize) -> usize {
    let raw = src.text.get(span.clone()).unwrap_or("");
    let multi_line = raw.starts_with("\"\"\"") || raw.starts_with("'''");
    let plain = raw.starts_with('\'') || !raw.contains('\\');
    if !multi_line && plain && i + 2 <= raw.len() {
        span.start + 1 + i
    } else {
        span.start
    }
}

fn expr(src: &Src, s: &Spanned<String>, known: &Env, want: Want) -> Result<Expr, ConfigError> {
    let text = s.get_ref();
    let located = |e: expr_check::ExprError| {
        src.err(inner_offset(src, &s.span(), e.at)..0, format!("expression '{text}': {}", e.msg))
    };
    expr_check::lint_operators(text, known).map_err(located)?;
    let e = Expr::parse(text).map_err(|e| src.err(s.span(), format!("expression '{text}': {e}")))?;
    for v in e.variables() {
        if !known.contains_key(&v) {
            let hint = crate::suggest::did_you_mean(&v, known.keys().map(String::as_str), "'")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(src.err(s.span(), format!("expression uses '{v}', which no earlier step defines{hint}")));
        }
    }
    let ty = expr_check::infer(e.tree(), known).map_err(located)?;
    let whole = |msg: String| located(expr_check::ExprError { at: 0, msg });
    match (want, ty) {
        (_, Ty::Unknown) | (Want::Condition, Ty::Bool) | (Want::Value, Ty::Int | Ty::Str | Ty::Bool) => Ok(e),
        (Want::Condition, Ty::Int | Ty::Float) => {
            Err(whole("is a number, not true or false: compare it (`==`, `<`, …)".into()))
        }
        (Want::Condition, t) => Err(whole(format!("is {}, not true or false", ty_name(t)))),
        (Want::Value, t) => Err(whole(format!("gives {}; a variable holds a number or bytes", ty_name(t)))),
    }
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Float => "a float (`/` of integers stays an integer; `^` gives a float)",
        Ty::Str => "bytes (a string)",
        Ty::Tuple => "a tuple (a `,` outside a function's arguments)",
        Ty::Empty => "nothing",
        _ => "a value",
    }
}

/// Why a substitution of a variable of type `ty` cannot render (a number needs a width, bytes
/// must not have one), if it cannot.
pub(crate) fn width_error(v: &str, ty: Ty, width: bool) -> Option<String> {
    match (ty, width) {
        (Ty::Str, true) => Some(format!("'{v}' is bytes, not a number: write '${{{v}}}' without a width")),
        (Ty::Int, false) => Some(format!("'{v}' is a number: give it a width, '${{{v}:u8}}', ':u16' or ':u32'")),
        _ => None,
    }
}

/// A template whose variables are defined, numbers with a width and bytes without; `b` are
/// the case's `for_each` values, which must be hex where they render as bytes.
fn template(
    src: &Src,
    s: &Spanned<String>,
    mask: bool,
    known: &Env,
    b: &BTreeMap<String, Value>,
) -> Result<Template, ConfigError> {
    let t = Template::parse(s.get_ref(), mask).map_err(|e| src.err(s.span(), e))?;
    for (v, width) in t.substitutions() {
        let Some(ty) = known.get(v) else {
            let hint = crate::suggest::did_you_mean(v, known.keys().map(String::as_str), "'")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(src.err(s.span(), format!("'${{{v}}}' is not defined before this step{hint}")));
        };
        let at = s.get_ref().find(&format!("${{{v}")).map_or(s.span().start, |i| inner_offset(src, &s.span(), i));
        if let Some(msg) = width_error(v, *ty, width) {
            return Err(src.err(at..0, msg));
        }
        if let (Some(Value::Hex(h)), false) = (b.get(v), width) {
            if !h.len().is_multiple_of(2) || hex::decode(h).is_err() {
                return Err(src.err(at..0, format!("'{v}' = \"{h}\" (for_each) is not hex bytes")));
            }
        }
    }
    Ok(t)
}

/// Replace `${name}` of for_each bindings in a scalar field (mode, expect, head names).
/// The `machine` of a charge, pay or card_signed_payment step (`${var}` of for_each bindings
/// substituted): a well-formed name here; `Plan::bind_machines` checks it against a keyset.
fn machine(src: &Src, r: &StepRaw, b: &BTreeMap<String, Value>) -> Result<Option<String>, ConfigError> {
    let Some(m) = &r.machine else { return Ok(None) };
    let name = subst(m.get_ref(), b);
    if !crate::keys::valid_machine_name(&name) {
        return Err(src.err(
            m.span(),
            format!("machine '{name}' is not a machine name (1 to 16 of A-Z a-z 0-9 - _, such as P2)"),
        ));
    }
    Ok(Some(name))
}

fn subst(s: &str, b: &BTreeMap<String, Value>) -> String {
    let mut out = s.to_string();
    for (k, v) in b {
        out = out.replace(&format!("${{{k}}}"), &v.to_string());
    }
    out
}

fn step(
    src: &Src,
    s: &Spanned<StepRaw>,
    label: &str,
    b: &BTreeMap<String, Value>,
    known: &mut Env,
) -> Result<Step, ConfigError> {
    let r = s.get_ref();
    let kind_name = r.kind.get_ref().as_str();
    let span = s.span();
    // Which optional fields are present, to refuse ones that do not apply to this kind.
    let present: Vec<(&str, Range<usize>)> = [
        ("head", r.head.as_ref().map(|x| x.span())),
        ("heads", r.heads.as_ref().map(|x| x.span())),
        ("from", r.from.as_ref().map(|x| x.span())),
        ("to", r.to.as_ref().map(|x| x.span())),
        ("engine", r.engine.as_ref().map(|x| x.span())),
        ("amount", r.amount.as_ref().map(|x| x.span())),
        ("mode", r.mode.as_ref().map(|x| x.span())),
        ("expect", r.expect.as_ref().map(|x| x.span())),
        ("command", r.command.as_ref().map(|x| x.span())),
        ("sw", r.sw.as_ref().map(|x| x.span())),
        ("data", r.data.as_ref().map(|x| x.span())),
        ("len", r.len.as_ref().map(|x| x.span())),
        ("capture", r.capture.as_ref().map(|x| x.span())),
        ("verbatim", r.verbatim.as_ref().map(|x| x.span())),
        ("applet", r.applet.as_ref().map(|x| x.span())),
        ("state", r.state.as_ref().map(|x| x.span())),
        ("as", r.prefix.as_ref().map(|x| x.span())),
        ("that", r.that.as_ref().map(|x| x.span())),
        ("vars", r.vars.as_ref().map(|x| x.span())),
        ("card", r.card.as_ref().map(|x| x.span())),
        ("unchecked", r.unchecked.as_ref().map(|x| x.span())),
        ("raw", r.raw.as_ref().map(|x| x.span())),
        ("machine", r.machine.as_ref().map(|x| x.span())),
        ("at", r.at.as_ref().map(|x| x.span())),
        ("point", r.point.as_ref().map(|x| x.span())),
        ("commit", r.commit.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let allowed: &[&str] = match kind_name {
        "apdu" => &["head", "command", "sw", "data", "len", "capture", "verbatim", "raw"],
        "select" => &["head", "applet"],
        "engine" => &["engine", "head", "heads", "from", "to", "amount", "mode", "expect", "unchecked", "machine"],
        "read" => &["head", "state", "as"],
        "assert" => &["that"],
        "set" => &["vars"],
        "power_off" | "power_on" | "warm_reset" | "remove" | "insert" => &["head"],
        "insert_card" => &["head", "card"],
        "tear" => &["head", "at", "point", "commit", "ins"],
        "recover" => &["head", "heads", "expect"],
        other => {
            let hint = crate::suggest::hint(other, KINDS.split(", "), "'");
            return Err(src.err(r.kind.span(), format!("unknown step kind '{other}'{hint}")));
        }
    };
    if let Some((f, fs)) = present.iter().find(|(f, _)| !allowed.contains(f)) {
        let takes: Vec<String> = allowed.iter().chain(["name", "repeat"].iter()).map(|a| format!("`{a}`")).collect();
        return Err(src.err(
            fs.clone(),
            format!("field `{f}` does not apply to `{kind_name}` steps (they take {})", takes.join(", ")),
        ));
    }
    let need_head = || -> Result<(String, Range<usize>), ConfigError> {
        r.head
            .as_ref()
            .map(|h| (subst(h.get_ref(), b), h.span()))
            .ok_or_else(|| src.err(span.clone(), format!("{label}: `{kind_name}` needs `head`")))
    };
    let amount = |what: &str| -> Result<Amount, ConfigError> {
        let a =
            r.amount.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: engine {what} needs `amount`")))?;
        match a.get_ref() {
            toml::Value::Integer(i) => u32::try_from(*i)
                .map(Amount::Lit)
                .map_err(|_| src.err(a.span(), format!("amount {i} is not a 32-bit unsigned value"))),
            toml::Value::String(s) => {
                let name = s.trim_start_matches("${").trim_end_matches('}');
                match known.get(name) {
                    None => return Err(src.err(a.span(), format!("amount '{s}': variable '{name}' is not defined"))),
                    Some(Ty::Str) => {
                        return Err(src.err(a.span(), format!("amount '{s}': '{name}' is bytes, not a number")))
                    }
                    _ => {}
                }
                Ok(Amount::Var(name.to_string()))
            }
            other => Err(src.err(a.span(), format!("amount: {} is not an integer or a variable", other.type_str()))),
        }
    };
    let mut head_span = span.clone();
    let kind = match kind_name {
        "apdu" => {
            let (head, hs) = need_head()?;
            head_span = hs;
            let c =
                r.command.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `apdu` needs `command`")))?;
            let command = template(src, c, false, known, b)?;
            let sw = match &r.sw {
                None => SwExpect(vec!["9000".into()]),
                Some(v) => {
                    let list: Vec<String> = match v.get_ref() {
                        toml::Value::String(s) => vec![s.clone()],
                        toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                        _ => vec![],
                    };
                    let ok = !list.is_empty()
                        && list.iter().all(|p| p.len() == 4 && p.chars().all(|c| c.is_ascii_hexdigit() || c == 'X'));
                    if !ok {
                        return Err(src.err(v.span(), "sw must be 4 hex digits (X = any nibble) or a list of them"));
                    }
                    SwExpect(list.into_iter().map(|p| p.to_uppercase().replace('x', "X")).collect())
                }
            };
            let mut data = Vec::new();
            if let Some(d) = &r.data {
                data.push(DataExpect::Mask(template(src, d, true, known, b)?));
            }
            if let Some(l) = &r.len {
                let bad = || src.err(l.span(), "len must be a number or \"min..max\"");
                let (lo, hi) = match l.get_ref() {
                    toml::Value::Integer(n) => {
                        (usize::try_from(*n).map_err(|_| bad())?, usize::try_from(*n).map_err(|_| bad())?)
                    }
                    toml::Value::String(s) => {
                        let (a, z) = s.split_once("..").ok_or_else(bad)?;
                        (a.trim().parse().map_err(|_| bad())?, z.trim().parse().map_err(|_| bad())?)
                    }
                    _ => return Err(bad()),
                };
                if lo > hi {
                    return Err(bad());
                }
                if let Some(n) =
                    data.iter().find_map(|d| if let DataExpect::Mask(m) = d { m.fixed_len() } else { None })
                {
                    if n < lo || n > hi {
                        return Err(src.err(
                            l.span(),
                            format!("the data mask is {n} bytes, outside len {lo}..{hi}: no response can match both"),
                        ));
                    }
                }
                data.push(DataExpect::Len(lo, hi));
            }
            let mut capture = Vec::new();
            if let Some(c) = &r.capture {
                for (name, spec) in c.get_ref() {
                    check_name(src, c.span(), name)?;
                    let spec_span = spec.span();
                    let cs = capture_spec(spec.get_ref()).ok_or_else(|| {
                        let spec = spec.get_ref();
                        src.err(
                            spec_span.clone(),
                            format!("capture '{name}': '{spec}' is not u8@N, u16@N, u32@N, bytes@A..B, hex or sw"),
                        )
                    })?;
                    if let Some((most, why)) = longest(&data) {
                        let end = cs.end();
                        if end > most {
                            return Err(src.err(
                                spec_span,
                                format!(
                                    "capture '{name}' = '{}' reads up to byte {end}, but {why} allows at most {most} \
                                     bytes of response data",
                                    spec.get_ref()
                                ),
                            ));
                        }
                    }
                    capture.push((name.clone(), cs));
                }
            }
            let verbatim = r.verbatim.as_ref().is_some_and(|v| *v.get_ref());
            let raw = r.raw.as_ref().is_some_and(|x| *x.get_ref());
            StepKind::Apdu { head, command, sw, data, capture, verbatim, raw }
        }
        "select" => {
            let (head, hs) = need_head()?;
            head_span = hs;
            let a =
                r.applet.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `select` needs `applet`")))?;
            let applet = match subst(a.get_ref(), b).as_str() {
                "purse" => Applet::Purse,
                "cpay" => Applet::Cpay,
                "xfer" => Applet::Xfer,
                other => {
                    let hint = crate::suggest::hint(other, ["purse", "cpay", "xfer"], "'");
                    return Err(src.err(a.span(), format!("unknown applet '{other}'{hint}")));
                }
            };
            StepKind::Select { head, applet }
        }
        "read" => {
            let (head, hs) = need_head()?;
            head_span = hs;
            let st = r.state.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `read` needs `state`")))?;
            let state = match st.get_ref().as_str() {
                "purse" => StateKind::Purse,
                "cpay" => StateKind::Cpay,
                "xfer" => StateKind::Xfer,
                other => {
                    let hint = crate::suggest::hint(other, ["purse", "cpay", "xfer"], "'");
                    return Err(src.err(st.span(), format!("unknown state '{other}'{hint}")));
                }
            };
            let p = r.prefix.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `read` needs `as`")))?;
            check_name(src, p.span(), p.get_ref())?;
            StepKind::Read { head, state, prefix: p.get_ref().clone() }
        }
        "assert" => {
            let t = r.that.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `assert` needs `that`")))?;
            StepKind::Assert {
                that: expr(src, t, known, Want::Condition)?,
                message: r.message.clone().unwrap_or_default(),
            }
        }
        "set" => {
            let v = r.vars.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `set` needs `vars`")))?;
            let mut vars = Vec::new();
            for (name, e) in v.get_ref() {
                check_name(src, v.span(), name)?;
                vars.push((name.clone(), expr(src, e, known, Want::Value)?));
            }
            StepKind::Set { vars }
        }
        "engine" => {
            let e = r
                .engine
                .as_ref()
                .ok_or_else(|| src.err(span.clone(), format!("{label}: `engine` step needs `engine`")))?;
            // Key-update mode of `key_update` and `settle` (default: auto, the 3rd embodiment).
            let update_mode = |engine: &str| -> Result<UpdateMode, ConfigError> {
                match &r.mode {
                    None => Ok(UpdateMode::Auto),
                    Some(m) => UpdateMode::parse(&subst(m.get_ref(), b)).ok_or_else(|| {
                        let v = subst(m.get_ref(), b);
                        let modes = ["common", "public", "auto", "multi", "rollover"];
                        src.err(
                            m.span(),
                            format!("unknown {engine} mode '{v}'{}", crate::suggest::hint(&v, modes, "'")),
                        )
                    }),
                }
            };
            // `from` and `to` of `value_transfer` and `settle`: two different heads.
            let from_to = |engine: &str| -> Result<(String, String, std::ops::Range<usize>), ConfigError> {
                let from =
                    r.from.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: {engine} needs `from`")))?;
                let to = r.to.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: {engine} needs `to`")))?;
                let (f, t) = (subst(from.get_ref(), b), subst(to.get_ref(), b));
                if f == t {
                    return Err(src.err(to.span(), format!("{engine} needs two different heads")));
                }
                Ok((f, t, from.span()))
            };
            let action = match e.get_ref().as_str() {
                "charge" => {
                    let (head, hs) = need_head()?;
                    head_span = hs;
                    let mode = match &r.mode {
                        None => ChargeMode::Add,
                        Some(m) => {
                            let v = subst(m.get_ref(), b);
                            ChargeMode::parse(&v).ok_or_else(|| {
                                let hint = crate::suggest::hint(&v, ["add", "write"], "'");
                                src.err(m.span(), format!("unknown charge mode '{v}'{hint}"))
                            })?
                        }
                    };
                    Action::Charge { head, amount: amount("charge")?, mode, machine: machine(src, r, b)? }
                }
                "pay" => {
                    let (head, hs) = need_head()?;
                    head_span = hs;
                    Action::Pay { head, price: amount("pay")?, machine: machine(src, r, b)? }
                }
                "card_signed_payment" => {
                    let (head, hs) = need_head()?;
                    head_span = hs;
                    let unchecked = r.unchecked.as_ref().is_some_and(|u| *u.get_ref());
                    let machine = machine(src, r, b)?;
                    Action::CardSignedPayment { head, price: amount("card_signed_payment")?, unchecked, machine }
                }
                "key_update" => {
                    let heads = r.heads.as_ref().ok_or_else(|| {
                        src.err(span.clone(), format!("{label}: key_update needs `heads = [\"A\", \"B\"]`"))
                    })?;
                    head_span = heads.span();
                    let list: Vec<String> = heads.get_ref().iter().map(|h| subst(h, b)).collect();
                    let [a, bb] = <[String; 2]>::try_from(list)
                        .map_err(|_| src.err(heads.span(), "key_update needs exactly two heads"))?;
                    if a == bb {
                        return Err(src.err(heads.span(), "key_update needs two different heads"));
                    }
                    Action::KeyUpdate { a, b: bb, mode: update_mode("key_update")? }
                }
                "value_transfer" => {
                    let (f, t, hs) = from_to("value_transfer")?;
                    head_span = hs;
                    Action::ValueTransfer { from: f, to: t, amount: amount("value_transfer")? }
                }
                "settle" => {
                    let (f, t, hs) = from_to("settle")?;
                    head_span = hs;
                    Action::Settle { from: f, to: t, amount: amount("settle")?, mode: update_mode("settle")? }
                }
                other => {
                    let hint = crate::suggest::hint(other, ENGINES.split(", "), "'");
                    return Err(src.err(e.span(), format!("unknown engine '{other}'{hint}")));
                }
            };
            if let (Some(m), None) = (&r.machine, action.machine()) {
                return Err(src.err(
                    m.span(),
                    format!(
                        "field `machine` does not apply to engine {}: only charge, pay and card_signed_payment act \
                         as a named machine",
                        action.engine()
                    ),
                ));
            }
            let expect = match &r.expect {
                None => "success".to_string(),
                Some(e) => {
                    let v = subst(e.get_ref(), b);
                    engine_expect(&v).map_err(|m| src.err(e.span(), m))?;
                    v
                }
            };
            StepKind::Engine { action, expect }
        }
        "tear" => {
            let (head, hs) = need_head()?;
            head_span = hs;
            let cut_point = |p: &Spanned<String>| {
                crate::tear::fault::parse_point(p.get_ref()).ok_or_else(|| {
                    let hint = crate::suggest::did_you_mean(p.get_ref(), ["before-command", "after-command"], "'")
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    src.err(p.span(), format!("point '{}' is not before-command or after-command{hint}", p.get_ref()))
                })
            };
            let at = match (&r.at, &r.point, &r.commit) {
                (n, Some(p), None) if r.ins.is_some() => tear_command(src, r.ins.as_ref(), n.as_ref(), cut_point(p)?)?,
                (Some(n), Some(p), None) => TearAt::Exchange { n: positive(src, n, "at")?, point: cut_point(p)? },
                (None, None, Some(k)) if r.ins.is_none() => TearAt::Commit(positive(src, k, "commit")?),
                (Some(_), None, None) => {
                    return Err(src.err(
                        span.clone(),
                        format!("{label}: `tear` with `at` needs `point` (before-command or after-command)"),
                    ))
                }
                _ => {
                    return Err(src.err(
                        span.clone(),
                        format!(
                            "{label}: `tear` needs `at` and `point` (a wire exchange), `ins` and `point` (a command) \
                             or `commit` (an NVM commit)"
                        ),
                    ))
                }
            };
            StepKind::Tear { head, at }
        }
        "recover" => {
            let (heads, hs) = match (&r.head, &r.heads) {
                (Some(h), None) => (vec![subst(h.get_ref(), b)], h.span()),
                (None, Some(hs)) => (hs.get_ref().iter().map(|h| subst(h, b)).collect::<Vec<_>>(), hs.span()),
                (Some(_), Some(hs)) => return Err(src.err(hs.span(), "`recover` takes `head` or `heads`, not both")),
                (None, None) => {
                    return Err(
                        src.err(span.clone(), format!("{label}: `recover` needs `head` or `heads = [\"A\", \"B\"]`"))
                    )
                }
            };
            if heads.is_empty() || heads.len() > 2 {
                return Err(src.err(hs, "recover takes one or two heads"));
            }
            if heads.len() == 2 && heads[0] == heads[1] {
                return Err(src.err(hs, "recover needs two different heads"));
            }
            head_span = hs;
            let expect = match &r.expect {
                None => crate::engine::recover::SETTLED.to_string(),
                Some(e) => {
                    let v = subst(e.get_ref(), b);
                    let words = crate::plan::recover_expect_words();
                    if !words.contains(&v.as_str()) {
                        let hint = crate::suggest::hint(&v, words.iter().copied(), "'");
                        return Err(src.err(e.span(), format!("recover expect '{v}' is not a recovery verdict{hint}")));
                    }
                    v
                }
            };
            StepKind::Recover { heads, expect }
        }
        "insert_card" => {
            let (head, hs) = need_head()?;
            head_span = hs;
            let c =
                r.card.as_ref().ok_or_else(|| src.err(span.clone(), format!("{label}: `insert_card` needs `card`")))?;
            let (card, protocol) = card_plan(src, c)?;
            StepKind::InsertCard { head, card: Box::new(card), protocol }
        }
        _ => {
            let (head, hs) = need_head()?;
            head_span = hs;
            match kind_name {
                "power_off" => StepKind::PowerOff { head },
                "power_on" => StepKind::PowerOn { head },
                "warm_reset" => StepKind::WarmReset { head },
                "remove" => StepKind::Remove { head },
                _ => StepKind::Insert { head },
            }
        }
    };
    define(&kind, known);
    let repeat = match &r.repeat {
        Some(n) if *n.get_ref() == 0 => return Err(src.err(n.span(), "repeat must be at least 1")),
        Some(n) => *n.get_ref(),
        None => 1,
    };
    let name = r.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
    let machine_span = r.machine.as_ref().map(|m| src.loc(m.span()));
    Ok(Step { label: format!("{label} {kind_name}{name}"), kind, repeat, head_span: src.loc(head_span), machine_span })
}

/// Check an engine step's `expect` against what the engines and the runner can report
/// (`engine::VERDICT_WORDS`, `rejected:` with `engine::RejectKind`'s codes): anything else
/// would fail every card at run time.
fn engine_expect(v: &str) -> Result<(), String> {
    use crate::engine::{RejectKind, CARD_REFUSED, VERDICT_WORDS};
    if VERDICT_WORDS.contains(&v) || v.strip_prefix("rejected:").is_some_and(RejectKind::is_code) {
        return Ok(());
    }
    if let Some(sw) = v.strip_prefix("rejected:").and_then(|c| c.strip_prefix(CARD_REFUSED)) {
        let msg = if sw.len() == 4 && sw.chars().all(|c| c.is_ascii_hexdigit()) {
            format!(
                "did you mean rejected:{CARD_REFUSED}{}? (the status word is written in upper case)",
                sw.to_uppercase()
            )
        } else {
            format!("the status word after '{CARD_REFUSED}' is 4 hex digits (e.g. rejected:{CARD_REFUSED}6984)")
        };
        return Err(format!("expect '{v}' is not a verdict the engines give: {msg}"));
    }
    let codes: Vec<String> = RejectKind::NAMED_CODES.iter().map(|c| format!("rejected:{c}")).collect();
    let all = VERDICT_WORDS.iter().copied().chain(codes.iter().map(String::as_str));
    let hint = match crate::suggest::did_you_mean(v, all, "") {
        Some(d) => format!(": {d}"),
        None => format!(
            " (one of {}, or rejected:<code> with a code of: {}, {CARD_REFUSED}XXXX)",
            VERDICT_WORDS.join(", "),
            RejectKind::NAMED_CODES.join(", ")
        ),
    };
    Err(format!("expect '{v}' is not a verdict the engines give{hint}"))
}

/// An `expect = "in-doubt"` needs the power cut of a `tear` step armed for that engine step
/// (the first engine step after the tear): without one the verdict cannot be in-doubt.
fn check_in_doubt(src: &Src, raw: &[Spanned<StepRaw>], steps: &[Step]) -> Result<(), ConfigError> {
    let mut armed = false;
    for (r, s) in raw.iter().zip(steps) {
        match &s.kind {
            StepKind::Tear { .. } => armed = true,
            StepKind::Engine { expect, .. } => {
                if expect == crate::engine::IN_DOUBT && !armed {
                    let at = r.get_ref().expect.as_ref().map_or(r.span(), |e| e.span());
                    return Err(src.err(
                        at,
                        format!(
                            "{}: expect 'in-doubt' needs a `tear` step before it in the case (only an armed power \
                             cut makes an engine step in-doubt)",
                            s.label
                        ),
                    ));
                }
                armed = false;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The most response data an `apdu` step's expectations let through, and which one says so.
fn longest(data: &[DataExpect]) -> Option<(usize, &'static str)> {
    data.iter()
        .filter_map(|d| match d {
            DataExpect::Len(_, hi) => Some((*hi, "`len`")),
            DataExpect::Mask(m) => m.fixed_len().map(|n| (n, "the `data` mask")),
        })
        .min_by_key(|(n, _)| *n)
}

/// A 1-based count (`at`, `commit`).
fn positive(src: &Src, v: &Spanned<i64>, what: &str) -> Result<u64, ConfigError> {
    u64::try_from(*v.get_ref())
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| src.err(v.span(), format!("{what} must be at least 1 (it counts from 1)")))
}

fn card_plan(
    src: &Src,
    c: &Spanned<CardRaw>,
) -> Result<(crate::issuance::CardPlan, crate::spec::Protocol), ConfigError> {
    let r = c.get_ref();
    let id: [u8; 8] = hex::decode(&r.id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| src.err(c.span(), format!("card id '{}' is not 16 hex digits", r.id)))?;
    let day = |s: &Option<String>, dflt: u32| match s {
        None => Ok(dflt),
        Some(d) => {
            crate::profile::parse_day_end(d).ok_or_else(|| src.err(c.span(), format!("'{d}' is not a YYYY-MM-DD date")))
        }
    };
    let mut p = crate::issuance::CardPlan::new(id);
    p.validity = day(&r.validity, p.validity)?;
    p.cert_expiry = day(&r.cert_expiry, p.cert_expiry)?;
    p.purse_counter = r.purse_counter.unwrap_or(p.purse_counter);
    p.cpay_amount = r.cpay_amount.unwrap_or(p.cpay_amount);
    p.balance = r.balance.unwrap_or(p.balance);
    p.max_balance = r.max_balance.unwrap_or(p.max_balance);
    p.update_key = r.update_key.unwrap_or(p.update_key);
    p.transfer_key = r.transfer_key.unwrap_or(p.transfer_key);
    p.transfer_key_limit = r.transfer_key_limit.unwrap_or(p.transfer_key_limit);
    p.update_key_limit = r.update_key_limit.unwrap_or(p.update_key_limit);
    p.slots = r.slots.clone().unwrap_or_default();
    // Personalization takes the keys from the lab keyset, which holds update keys
    // 1..=UPDATE_KEY_COUNT and transfer keys 1..=TRANSFER_KEY_COUNT: another ID fails the
    // issuance at run time.
    use crate::keys::{TRANSFER_KEY_COUNT, UPDATE_KEY_COUNT};
    if !(1..=UPDATE_KEY_COUNT).contains(&p.update_key) {
        return Err(src.err(
            c.span(),
            format!("card update_key {}: the lab keyset has update keys 1..={UPDATE_KEY_COUNT}", p.update_key),
        ));
    }
    for (what, id) in std::iter::once(("transfer_key", p.transfer_key)).chain(p.slots.iter().map(|s| ("slots", *s))) {
        if !(1..=TRANSFER_KEY_COUNT).contains(&id) {
            return Err(src.err(
                c.span(),
                format!("card {what} {id}: the lab keyset has transfer keys 1..={TRANSFER_KEY_COUNT}"),
            ));
        }
    }
    Ok((p, r.protocol.unwrap_or(crate::spec::Protocol::T1)))
}

pub(crate) fn capture_spec(s: &str) -> Option<CaptureSpec> {
    if s == "hex" {
        return Some(CaptureSpec::All);
    }
    if s == "sw" {
        return Some(CaptureSpec::Sw);
    }
    let (kind, at) = s.split_once('@')?;
    match kind {
        "u8" | "u16" | "u32" => {
            let bytes = match kind {
                "u8" => 1,
                "u16" => 2,
                _ => 4,
            };
            Some(CaptureSpec::Uint { bytes, at: at.parse().ok()? })
        }
        "bytes" => {
            let (a, z) = at.split_once("..")?;
            let (from, to) = (a.parse().ok()?, z.parse().ok()?);
            (from <= to).then_some(CaptureSpec::Bytes { from, to })
        }
        _ => None,
    }
}

impl Plan {
    /// Check every head or role a step names against the lab, before anything is sent.
    pub fn bind(&self, has_head: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        self.bind_with(has_head, &[])
    }

    /// `bind` to a lab's heads, with the nearest head name or role in the error.
    pub fn bind_to(&self, heads: &[crate::lab::LabHead]) -> Result<(), ConfigError> {
        let names: Vec<&str> =
            heads.iter().flat_map(|h| [h.name.as_str(), h.role.as_str()]).filter(|n| !n.is_empty()).collect();
        self.bind_with(|n| crate::lab::find_head(heads, n).is_some(), &names)
    }

    fn bind_with(&self, has_head: impl Fn(&str) -> bool, names: &[&str]) -> Result<(), ConfigError> {
        let hint = |h: &str| {
            crate::suggest::did_you_mean(h, names.iter().copied(), "'").map(|d| format!(" ({d})")).unwrap_or_default()
        };
        for (r, l) in &self.roles {
            if !has_head(r) {
                return Err(l.error(format!("role '{r}' is not a head name or role in the profile{}", hint(r))));
            }
        }
        for s in self.all_steps() {
            for h in s.kind.heads() {
                if !has_head(h) {
                    return Err(s.head_span.error(format!(
                        "{}: no head or role '{h}' in the profile{}",
                        s.label,
                        hint(h)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Check every `machine` a step names against the keyset the plan will run with: the
    /// keyset holds it, and it has the role of the step (a charge machine for `charge`, a
    /// payment machine for `pay` and `card_signed_payment`), before anything is sent.
    pub fn bind_machines(&self, keys: &crate::keys::Keyset) -> Result<(), ConfigError> {
        for s in self.all_steps() {
            let StepKind::Engine { action, .. } = &s.kind else { continue };
            let Some((name, role)) = action.machine() else { continue };
            if let Err(e) = keys.machine_for(role, Some(name), action.engine()) {
                let at = s.machine_span.as_ref().unwrap_or(&s.head_span);
                return Err(at.error(format!("{}: {e}", s.label)));
            }
        }
        Ok(())
    }

    /// Check that every step only a virtual head can do names one (`is_virtual` of a head name
    /// or role): `insert_card`, `remove`, `insert`, and a tear at an NVM commit (a real reader
    /// can only cut power at exchange boundaries), before anything is sent.
    pub fn bind_virtual(&self, is_virtual: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        for s in self.all_steps() {
            let (head, why) = match &s.kind {
                StepKind::Tear { head, at: TearAt::Commit(_) } => (
                    head,
                    "a tear at an NVM commit is not supported by head '{h}' (not virtual): real heads cut power at \
                     exchange boundaries only (`at` and `point`)",
                ),
                StepKind::InsertCard { head, .. } | StepKind::Remove { head } | StepKind::Insert { head } => (
                    head,
                    "`{kind}` needs a virtual head, and '{h}' is not one (on a real reader the operator handles the \
                     cards)",
                ),
                _ => continue,
            };
            if !is_virtual(head) {
                let msg = why.replace("{h}", head).replace("{kind}", s.kind.name());
                return Err(s.head_span.error(format!("{}: {msg}", s.label)));
            }
        }
        Ok(())
    }

    /// Check a plan for `cardbench batch`, which gives each card's run two heads: the DUT
    /// (`dut`) and a fresh virtual reference card (`peer`). Every role and head the plan names
    /// must be one of them; on real DUT heads (`dut_virtual` false) the steps only a virtual
    /// head can do must name the peer.
    pub fn bind_batch(&self, dut_virtual: bool) -> Result<(), ConfigError> {
        const ONLY: &str = "a batch plan may use only roles dut and peer";
        for (r, l) in &self.roles {
            if !BATCH_ROLES.contains(&r.as_str()) {
                return Err(l.error(format!("role '{r}': {ONLY}")));
            }
        }
        for s in self.all_steps() {
            if let Some(h) = s.kind.heads().into_iter().find(|h| !BATCH_ROLES.contains(h)) {
                return Err(s.head_span.error(format!("{}: head '{h}': {ONLY}", s.label)));
            }
        }
        self.bind_virtual(|h| h == "peer" || dut_virtual)
    }

    /// An `insert` puts back the card a `remove` took out: one with no `remove` before it in
    /// the whole plan (setup, cases, teardown, in run order) has nothing to insert. Checked on
    /// the plan with its includes, whose setup runs before any case.
    fn check_inserts(&self) -> Result<(), ConfigError> {
        let mut removed = false;
        for s in self.all_steps() {
            match &s.kind {
                StepKind::Remove { .. } => removed = true,
                StepKind::Insert { .. } if !removed => {
                    return Err(s.head_span.error(format!(
                        "{}: no `remove` step before it took a card out, so `insert` has nothing to put back \
                         (`insert_card` puts a new card in)",
                        s.label
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.setup.iter().chain(self.cases.iter().flat_map(|c| c.steps.iter())).chain(self.teardown.iter())
    }

    /// Heads or roles the plan talks to, in first-use order.
    pub fn head_names(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let all = self.setup.iter().chain(self.cases.iter().flat_map(|c| c.steps.iter())).chain(self.teardown.iter());
        for s in all {
            for h in s.kind.heads() {
                if !v.iter().any(|x| x == h) {
                    v.push(h.to_string());
                }
            }
        }
        v
    }
}
