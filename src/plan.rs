//! Plans of protocol-engine steps (`test-plans/*.toml`), parsed and validated before anything
//! is sent to a card. The assertion language of later plans builds on this file format.

use crate::engine::key_update::UpdateMode;
use crate::profile::ConfigError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    plan: Meta,
    #[serde(rename = "step")]
    steps: Vec<Spanned<StepRaw>>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub title: String,
    /// Head names or roles the plan needs from the profile.
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepRaw {
    id: Spanned<String>,
    #[serde(default)]
    title: String,
    /// Seed step or card-spec section the step exercises.
    #[serde(default, rename = "ref")]
    reference: String,
    engine: Spanned<String>,
    head: Option<Spanned<String>>,
    heads: Option<Spanned<Vec<String>>>,
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    amount: Option<Spanned<u32>>,
    mode: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Charge {
        head: String,
        amount: u32,
    },
    Pay {
        head: String,
        price: u32,
    },
    CardSignedPayment {
        head: String,
        price: u32,
    },
    KeyUpdate {
        a: String,
        b: String,
        mode: UpdateMode,
    },
    ValueTransfer {
        from: String,
        to: String,
        amount: u32,
    },
}

impl Action {
    pub fn engine(&self) -> &'static str {
        match self {
            Action::Charge { .. } => "charge",
            Action::Pay { .. } => "pay",
            Action::CardSignedPayment { .. } => "card_signed_payment",
            Action::KeyUpdate { .. } => "key_update",
            Action::ValueTransfer { .. } => "value_transfer",
        }
    }

    pub fn heads(&self) -> Vec<&str> {
        match self {
            Action::Charge { head, .. }
            | Action::Pay { head, .. }
            | Action::CardSignedPayment { head, .. } => vec![head],
            Action::KeyUpdate { a, b, .. } => vec![a, b],
            Action::ValueTransfer { from, to, .. } => vec![from, to],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub reference: String,
    pub action: Action,
    /// `success`, `skipped`, `rejected` or `rejected:<code>`.
    pub expect: String,
    /// Where the step's head names are, for errors found when binding to a lab.
    head_spans: Vec<std::ops::Range<usize>>,
}

#[derive(Debug)]
pub struct Plan {
    pub path: PathBuf,
    text: String,
    pub meta: Meta,
    pub steps: Vec<Step>,
}

const ENGINES: &str = "charge, pay, card_signed_payment, key_update, value_transfer";

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
        Plan::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Plan, ConfigError> {
        let f: PlanFile =
            toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
        let at = |span: std::ops::Range<usize>, msg: String| {
            ConfigError::at(path, &text, span.start, msg)
        };
        let mut steps: Vec<Step> = Vec::new();
        for s in &f.steps {
            let span = s.span();
            let s = s.get_ref();
            if steps.iter().any(|x| x.id == *s.id.get_ref()) {
                return Err(at(
                    s.id.span(),
                    format!("step id '{}' is used twice", s.id.get_ref()),
                ));
            }
            let need_head = |what: &str| {
                s.head
                    .as_ref()
                    .map(|h| (h.get_ref().clone(), h.span()))
                    .ok_or_else(|| {
                        at(
                            span.clone(),
                            format!("step '{}': engine {what} needs `head`", s.id.get_ref()),
                        )
                    })
            };
            let need_amount = |what: &str| {
                s.amount.as_ref().map(|a| *a.get_ref()).ok_or_else(|| {
                    at(
                        span.clone(),
                        format!("step '{}': engine {what} needs `amount`", s.id.get_ref()),
                    )
                })
            };
            let (action, head_spans) = match s.engine.get_ref().as_str() {
                "charge" => {
                    let (head, hs) = need_head("charge")?;
                    (
                        Action::Charge {
                            head,
                            amount: need_amount("charge")?,
                        },
                        vec![hs],
                    )
                }
                "pay" => {
                    let (head, hs) = need_head("pay")?;
                    (
                        Action::Pay {
                            head,
                            price: need_amount("pay")?,
                        },
                        vec![hs],
                    )
                }
                "card_signed_payment" => {
                    let (head, hs) = need_head("card_signed_payment")?;
                    (
                        Action::CardSignedPayment {
                            head,
                            price: need_amount("card_signed_payment")?,
                        },
                        vec![hs],
                    )
                }
                "key_update" => {
                    let heads = s.heads.as_ref().ok_or_else(|| {
                        at(
                            span.clone(),
                            format!(
                                "step '{}': key_update needs `heads = [\"A\", \"B\"]`",
                                s.id.get_ref()
                            ),
                        )
                    })?;
                    let [a, b] =
                        <[String; 2]>::try_from(heads.get_ref().clone()).map_err(|_| {
                            at(heads.span(), "key_update needs exactly two heads".into())
                        })?;
                    let mode = match &s.mode {
                        None => UpdateMode::Auto,
                        Some(m) => parse_mode(m.get_ref()).ok_or_else(|| {
                            at(
                                m.span(),
                                format!(
                                    "unknown key_update mode '{}' (common, public, auto, multi, rollover)",
                                    m.get_ref()
                                ),
                            )
                        })?,
                    };
                    (
                        Action::KeyUpdate { a, b, mode },
                        vec![heads.span(), heads.span()],
                    )
                }
                "value_transfer" => {
                    let from = s.from.as_ref().ok_or_else(|| {
                        at(
                            span.clone(),
                            format!("step '{}': value_transfer needs `from`", s.id.get_ref()),
                        )
                    })?;
                    let to = s.to.as_ref().ok_or_else(|| {
                        at(
                            span.clone(),
                            format!("step '{}': value_transfer needs `to`", s.id.get_ref()),
                        )
                    })?;
                    (
                        Action::ValueTransfer {
                            from: from.get_ref().clone(),
                            to: to.get_ref().clone(),
                            amount: need_amount("value_transfer")?,
                        },
                        vec![from.span(), to.span()],
                    )
                }
                other => {
                    return Err(at(
                        s.engine.span(),
                        format!("unknown engine '{other}' (one of: {ENGINES})"),
                    ))
                }
            };
            let expect = match &s.expect {
                None => "success".to_string(),
                Some(e) => {
                    let v = e.get_ref();
                    let ok = matches!(v.as_str(), "success" | "skipped" | "rejected")
                        || v.strip_prefix("rejected:").is_some_and(|c| !c.is_empty());
                    if !ok {
                        return Err(at(
                            e.span(),
                            format!(
                                "expect '{v}' is not success, skipped, rejected or rejected:<code>"
                            ),
                        ));
                    }
                    v.clone()
                }
            };
            steps.push(Step {
                id: s.id.get_ref().clone(),
                title: s.title.clone(),
                reference: s.reference.clone(),
                action,
                expect,
                head_spans,
            });
        }
        if steps.is_empty() {
            return Err(ConfigError::whole_file(path, "plan has no [[step]]"));
        }
        Ok(Plan {
            path: path.to_path_buf(),
            text,
            meta: f.plan,
            steps,
        })
    }

    /// Check every head a step names exists in the lab, before anything is sent.
    pub fn bind(&self, has_head: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        for r in &self.meta.roles {
            if !has_head(r.get_ref()) {
                return Err(ConfigError::at(
                    &self.path,
                    &self.text,
                    r.span().start,
                    format!(
                        "role '{}' is not a head name or role in the profile",
                        r.get_ref()
                    ),
                ));
            }
        }
        for s in &self.steps {
            for (name, span) in s.action.heads().into_iter().zip(&s.head_spans) {
                if !has_head(name) {
                    return Err(ConfigError::at(
                        &self.path,
                        &self.text,
                        span.start,
                        format!("step '{}': no head or role '{name}' in the profile", s.id),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn parse_mode(s: &str) -> Option<UpdateMode> {
    Some(match s {
        "common" => UpdateMode::Common,
        "public" => UpdateMode::Public,
        "auto" => UpdateMode::Auto,
        "multi" => UpdateMode::Multi,
        "rollover" => UpdateMode::Rollover,
        _ => return None,
    })
}

/// Does an outcome's verdict meet a step's expectation?
pub fn meets(expect: &str, verdict: &str) -> bool {
    expect == verdict || (expect == "rejected" && verdict.starts_with("rejected:"))
}
