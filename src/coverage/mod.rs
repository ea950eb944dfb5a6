//! The requirement matrix of a plan: which cases verify each requirement of docs/card-spec.md,
//! which requirements no case verifies, which cases verify none (`cardbench coverage`,
//! docs/coverage.md, the batch reports).

pub mod render;

use crate::plan::verifies::OutOfScope;
use crate::plan::Plan;
use crate::spec::requirements::{Requirement, Requirements};

/// Where a requirement stands in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// At least one case verifies it.
    Covered,
    /// The plan declares it out of scope (whether or not a case also cites it).
    OutOfScope,
    /// In scope and no case verifies it: the plan does not pass coverage.
    Uncovered,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Covered => "covered",
            Status::OutOfScope => "out_of_scope",
            Status::Uncovered => "uncovered",
        }
    }
}

/// One requirement and the cases that verify it.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub req: &'a Requirement,
    /// Case IDs in plan order; the instances of a `for_each` case count as that case.
    pub cases: Vec<String>,
    pub out_of_scope: Option<&'a OutOfScope>,
}

impl Row<'_> {
    pub fn status(&self) -> Status {
        match (&self.out_of_scope, self.cases.is_empty()) {
            (Some(_), _) => Status::OutOfScope,
            (None, false) => Status::Covered,
            (None, true) => Status::Uncovered,
        }
    }
}

/// The matrix of a plan against a spec.
#[derive(Debug, Clone)]
pub struct Coverage<'a> {
    pub plan_id: String,
    pub plan_version: String,
    /// Every requirement of the spec, in document order.
    pub rows: Vec<Row<'a>>,
    /// Cases (as written, `for_each` instances folded) in plan order.
    pub cases: Vec<String>,
    /// Cases that cite no requirement.
    pub without_requirement: Vec<String>,
}

/// The case a `for_each` instance (`ID[k=v]`) was written as.
pub fn written_id(id: &str) -> &str {
    id.split_once('[').map_or(id, |(base, _)| base)
}

fn push_once(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

impl<'a> Coverage<'a> {
    pub fn of(plan: &'a Plan, reqs: &'a Requirements) -> Coverage<'a> {
        let mut rows: Vec<Row<'a>> = reqs
            .all()
            .iter()
            .map(|req| Row { req, cases: Vec::new(), out_of_scope: plan.out_of_scope.iter().find(|o| o.id == req.id) })
            .collect();
        let mut cases = Vec::new();
        let mut without_requirement = Vec::new();
        for case in &plan.cases {
            let id = written_id(&case.id);
            push_once(&mut cases, id);
            if case.verifies.is_empty() {
                push_once(&mut without_requirement, id);
            }
            for v in &case.verifies {
                // The plan parser refused IDs the spec does not define.
                if let Some(row) = rows.iter_mut().find(|r| r.req.id == *v) {
                    push_once(&mut row.cases, id);
                }
            }
        }
        Coverage { plan_id: plan.id.clone(), plan_version: plan.version.clone(), rows, cases, without_requirement }
    }

    pub fn with_status(&self, s: Status) -> impl Iterator<Item = &Row<'a>> {
        self.rows.iter().filter(move |r| r.status() == s)
    }

    pub fn count(&self, s: Status) -> usize {
        self.with_status(s).count()
    }

    /// Every in-scope requirement has a case.
    pub fn complete(&self) -> bool {
        self.count(Status::Uncovered) == 0
    }

    /// Requirements declared out of scope that a case cites all the same.
    pub fn out_of_scope_but_cited(&self) -> impl Iterator<Item = &Row<'a>> {
        self.with_status(Status::OutOfScope).filter(|r| !r.cases.is_empty())
    }

    /// One line: requirements, how many covered / out of scope / uncovered, cases.
    pub fn summary(&self) -> String {
        format!(
            "{} requirements: {} covered, {} out of scope, {} uncovered; {} cases, {} verify no requirement",
            self.rows.len(),
            self.count(Status::Covered),
            self.count(Status::OutOfScope),
            self.count(Status::Uncovered),
            self.cases.len(),
            self.without_requirement.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SPEC: &str = "## 1. O\n### 1.7 SELECT\n* [GEN-1.7-R1] unknown AID: 6A82\n* [GEN-1.7-R2] keeps the applet\n\
                        ## 2. T\n### 2.1 ATR\n* [GEN-2.1-R1] the ATR bytes\n";

    const PLAN: &str = r#"
[plan]
id = "p"
version = "1"
out_of_scope = [{ id = "GEN-2.1-R1", reason = "silicon varies" }]

[[case]]
id = "A"
verifies = ["GEN-1.7-R1"]
for_each = { n = [1, 2] }
[[case.step]]
do = "assert"
that = "n > 0"

[[case]]
id = "B"
[[case.step]]
do = "assert"
that = "1 == 1"
"#;

    #[test]
    fn the_matrix_folds_instances_and_finds_the_gaps() {
        let reqs = Requirements::parse("spec.md", SPEC).unwrap();
        let plan = crate::plan::parse::parse_str_with(Path::new("p.toml"), PLAN, &reqs).unwrap();
        let c = Coverage::of(&plan, &reqs);
        let st: Vec<(&str, Status, Vec<String>)> =
            c.rows.iter().map(|r| (r.req.id.as_str(), r.status(), r.cases.clone())).collect();
        assert_eq!(
            st,
            [
                ("GEN-1.7-R1", Status::Covered, vec!["A".to_string()]),
                ("GEN-1.7-R2", Status::Uncovered, vec![]),
                ("GEN-2.1-R1", Status::OutOfScope, vec![]),
            ]
        );
        assert_eq!(c.cases, ["A", "B"]);
        assert_eq!(c.without_requirement, ["B"]);
        assert!(!c.complete());
        assert_eq!(
            c.summary(),
            "3 requirements: 1 covered, 1 out of scope, 1 uncovered; 2 cases, 1 verify no requirement"
        );
    }
}
