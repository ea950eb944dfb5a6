//! What a plan says about the spec's requirements: the IDs each case `verifies` and the
//! `[plan] out_of_scope` declarations, both checked against `docs/card-spec.md` when the plan is
//! parsed, so that a typo fails `check` and `run` at its line instead of leaving a requirement
//! silently uncovered.

use super::parse::Src;
use crate::profile::ConfigError;
use crate::spec::requirements::{RequirementError, Requirements};
use serde::Deserialize;
use toml::Spanned;

/// A requirement a plan leaves out, and why (docs/plan-language.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfScope {
    pub id: String,
    pub reason: String,
    /// The `[plan] id` of the plan that declared it.
    pub plan: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutOfScopeRaw {
    id: Spanned<String>,
    reason: Spanned<String>,
}

/// The requirements of the embedded spec, or the reason they cannot be used (a build whose
/// card-spec.md has a broken ID), located in the spec.
pub fn spec() -> Result<&'static Requirements, ConfigError> {
    Requirements::spec().map_err(spec_error)
}

fn spec_error(e: RequirementError) -> ConfigError {
    let line = match &e {
        RequirementError::Malformed { line, .. }
        | RequirementError::Duplicate { line, .. }
        | RequirementError::WrongSection { line, .. }
        | RequirementError::WrongPrefix { line, .. }
        | RequirementError::OutsideSections { line, .. } => *line,
    };
    let msg = e.to_string();
    // The message already starts with path:line: keep only what follows.
    let msg = msg.splitn(3, ':').nth(2).map_or(msg.clone(), |m| m.trim_start().to_string());
    ConfigError {
        path: crate::spec::requirements::SPEC_PATH.into(),
        line,
        col: 1,
        msg: format!("{msg} (the spec built into this cardbench)"),
    }
}

/// A case's `verifies` list: every ID defined by the spec, none twice.
pub(crate) fn case_ids(src: &Src, ids: &[Spanned<String>], reqs: &Requirements) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let name = id.get_ref();
        if reqs.get(name).is_none() {
            return Err(src.err(id.span(), format!("verifies: {}", reqs.unknown(name))));
        }
        if out.contains(name) {
            return Err(src.err(id.span(), format!("verifies: {name} is listed twice")));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// The `[plan] out_of_scope` entries of one file, appended to those of its includes.
pub(crate) fn out_of_scope(
    src: &Src,
    raw: &[Spanned<OutOfScopeRaw>],
    reqs: &Requirements,
    into: &mut Vec<OutOfScope>,
    plan_id: &str,
) -> Result<(), ConfigError> {
    let mut ours: Vec<&str> = Vec::new();
    for entry in raw {
        let (id, reason) = (&entry.get_ref().id, &entry.get_ref().reason);
        let name = id.get_ref();
        if reqs.get(name).is_none() {
            return Err(src.err(id.span(), format!("out_of_scope: {}", reqs.unknown(name))));
        }
        if ours.contains(&name.as_str()) {
            return Err(src.err(id.span(), format!("out_of_scope: {name} is declared twice")));
        }
        if reason.get_ref().trim().is_empty() {
            return Err(src.err(reason.span(), format!("out_of_scope: {name} needs a reason")));
        }
        ours.push(name);
        merge_out_of_scope(
            into,
            vec![OutOfScope {
                id: name.clone(),
                reason: reason.get_ref().trim().to_string(),
                plan: plan_id.to_string(),
            }],
        );
    }
    Ok(())
}

/// Add an included plan's declarations; the first plan to declare an ID keeps its reason.
pub(crate) fn merge_out_of_scope(into: &mut Vec<OutOfScope>, from: Vec<OutOfScope>) {
    for o in from {
        if !into.iter().any(|x| x.id == o.id) {
            into.push(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::requirements::Requirements;
    use std::path::Path;

    fn reqs() -> Requirements {
        Requirements::parse(
            "spec.md",
            "## 8. X\n### 8.1 INFO\n* [XFER-8.1-R1] a\n* [XFER-8.1-R2] b\n* [XFER-8.1-R10] c\n",
        )
        .unwrap()
    }

    fn parse(text: &str) -> Result<crate::plan::Plan, String> {
        crate::plan::parse::parse_str_with(Path::new("p.toml"), text, &reqs()).map_err(|e| e.to_string())
    }

    fn case(verifies: &str) -> String {
        format!("[plan]\nid = \"p\"\nversion = \"1\"\n\n[[case]]\nid = \"C\"\nverifies = {verifies}\n[[case.step]]\ndo = \"assert\"\nthat = \"1 == 1\"\n")
    }

    #[test]
    fn cited_ids_reach_every_instance_of_the_case() {
        let p = parse(&case("[\"XFER-8.1-R2\", \"XFER-8.1-R1\"]")).unwrap();
        assert_eq!(p.cases[0].verifies, ["XFER-8.1-R2", "XFER-8.1-R1"]);
    }

    #[test]
    fn unknown_and_repeated_ids_are_refused_where_written() {
        assert_eq!(
            parse(&case("[\"XFER-8.1-R11\"]")).unwrap_err(),
            "p.toml:7:13: verifies: docs/card-spec.md defines no requirement XFER-8.1-R11 (section 8.1 has XFER-8.1-R1 to XFER-8.1-R10)"
        );
        assert_eq!(
            parse(&case("[\"GEN-4-R1\"]")).unwrap_err(),
            "p.toml:7:13: verifies: docs/card-spec.md defines no requirement GEN-4-R1 (and none in section 4)"
        );
        assert!(parse(&case("[\"xfer-8.1-r1\"]")).unwrap_err().contains("'xfer-8.1-r1' is not a requirement ID"));
        assert_eq!(
            parse(&case("[\"XFER-8.1-R1\", \"XFER-8.1-R1\"]")).unwrap_err(),
            "p.toml:7:28: verifies: XFER-8.1-R1 is listed twice"
        );
    }

    #[test]
    fn out_of_scope_needs_a_known_id_and_a_reason() {
        let with =
            |oos: &str| case("[]").replace("version = \"1\"\n", &format!("version = \"1\"\nout_of_scope = {oos}\n"));
        let p = parse(&with("[{ id = \"XFER-8.1-R1\", reason = \"terminal side\" }]")).unwrap();
        assert_eq!(p.out_of_scope[0].id, "XFER-8.1-R1");
        assert_eq!(p.out_of_scope[0].reason, "terminal side");
        assert_eq!(p.out_of_scope[0].plan, "p");
        assert_eq!(
            parse(&with("[{ id = \"XFER-8.1-R1\", reason = \" \" }]")).unwrap_err(),
            "p.toml:4:48: out_of_scope: XFER-8.1-R1 needs a reason"
        );
        assert!(parse(&with("[{ id = \"XFER-8.1-R9\", reason = \"x\" }]"))
            .unwrap_err()
            .starts_with("p.toml:4:24: out_of_scope: docs/card-spec.md defines no requirement XFER-8.1-R9"));
        assert!(parse(&with("[{ id = \"XFER-8.1-R1\" }]")).unwrap_err().contains("missing field `reason`"));
    }
}
