//! JUnit XML report, in the shape Jenkins, GitLab and Maven Surefire read: one `<testsuite>`
//! per card, one `<testcase>` per test case. Elements are described in docs/reports.md.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use quick_xml::escape::escape;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::Writer;

use super::atomic::write_atomically;
use super::summary::CaseCounts;
use super::{BatchResult, CardResult, CaseResult, CaseStatus, Verdict};

/// Name of the extra test case that stands for the certification of an aborted card.
pub const ABORTED_CASE_NAME: &str = "certification";

/// Write the JUnit XML report of `b` to `path` atomically (via `path.tmp`, fsync, rename).
pub fn write_junit(path: &Path, b: &BatchResult) -> io::Result<()> {
    write_atomically(path, |out| {
        let mut w = Writer::new_with_indent(out, b' ', 2);
        write_document(&mut w, b)?;
        w.get_mut().write_all(b"\n")
    })
}

/// Test counts of one `<testsuite>` (or, summed, of `<testsuites>`).
#[derive(Debug, Clone, Copy, Default)]
struct SuiteCounts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time_ms: f64,
}

impl SuiteCounts {
    fn of(card: &CardResult) -> Self {
        let n = CaseCounts::of(&card.cases);
        let aborted = usize::from(matches!(card.verdict, Verdict::Aborted { .. }));
        SuiteCounts {
            tests: n.total() + aborted,
            failures: n.failed,
            errors: n.error + aborted,
            // JUnit has no other place for them: blocked and not-run cases are skipped
            // (each with its message), and the properties count them apart.
            skipped: n.skipped + n.blocked + n.not_run,
            time_ms: finite_ms(card.duration_ms),
        }
    }

    fn add(&mut self, o: &SuiteCounts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
        self.time_ms += o.time_ms;
    }

    fn attributes(&self) -> [Attribute<'static>; 5] {
        [
            attr("tests", &self.tests.to_string()),
            attr("failures", &self.failures.to_string()),
            attr("errors", &self.errors.to_string()),
            attr("skipped", &self.skipped.to_string()),
            attr("time", &seconds(self.time_ms)),
        ]
    }
}

fn write_document<W: Write>(w: &mut Writer<W>, b: &BatchResult) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;

    let suites: Vec<SuiteCounts> = b.cards.iter().map(SuiteCounts::of).collect();
    let mut total = SuiteCounts::default();
    for s in &suites {
        total.add(s);
    }

    let root =
        BytesStart::new("testsuites").with_attributes([attr("name", &b.batch_id)]).with_attributes(total.attributes());
    w.write_event(Event::Start(root))?;
    for (position, (card, counts)) in b.cards.iter().zip(&suites).enumerate() {
        write_suite(w, b, position, card, counts)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))
}

fn write_suite<W: Write>(
    w: &mut Writer<W>,
    b: &BatchResult,
    position: usize,
    card: &CardResult,
    counts: &SuiteCounts,
) -> io::Result<()> {
    let start = BytesStart::new("testsuite")
        .with_attributes([
            attr("name", &format!("card {}", card.card_id)),
            attr("id", &position.to_string()),
            attr("hostname", &card.head),
            attr("timestamp", &card.started),
        ])
        .with_attributes(counts.attributes());
    w.write_event(Event::Start(start))?;

    w.write_event(Event::Start(BytesStart::new("properties")))?;
    property(w, "plan", &b.plan_id)?;
    property(w, "plan_version", &b.plan_version)?;
    property(w, "profile", &b.profile)?;
    property(w, "card_index", &card.index.to_string())?;
    property(w, "verdict", card.verdict.word())?;
    property(w, "trace", &card.trace)?;
    if let Some(h) = &b.header {
        for (name, value) in crate::batch::header::CARD_FIELDS.iter().zip(h.card_fields(&card.head)) {
            property(w, name, &value)?;
        }
    }
    let n = CaseCounts::of(&card.cases);
    property(w, "cases_blocked", &n.blocked.to_string())?;
    property(w, "cases_not_run", &n.not_run.to_string())?;
    if let Some(f) = card.first_failure() {
        property(w, "first_failure", &f.line())?;
    }
    for c in card.cases.iter().filter(|c| !c.reference.is_empty()) {
        property(w, &format!("ref:{}", c.id), &c.reference)?;
    }
    for c in card.cases.iter().filter(|c| !c.verifies.is_empty()) {
        property(w, &format!("verifies:{}", c.id), &c.verifies.join(" "))?;
    }
    w.write_event(Event::End(BytesEnd::new("properties")))?;

    let classname = format!("{}.{}", b.plan_id, card.card_id);
    for c in &card.cases {
        write_case(w, &classname, c)?;
    }
    if let Verdict::Aborted { reason } = &card.verdict {
        let start = BytesStart::new("testcase").with_attributes([
            attr("classname", &classname),
            attr("name", ABORTED_CASE_NAME),
            attr("time", &seconds(0.0)),
        ]);
        w.write_event(Event::Start(start))?;
        detail(w, "error", &format!("aborted: {reason}"), "aborted", reason)?;
        w.write_event(Event::End(BytesEnd::new("testcase")))?;
    }

    w.write_event(Event::End(BytesEnd::new("testsuite")))
}

fn property<W: Write>(w: &mut Writer<W>, name: &str, value: &str) -> io::Result<()> {
    let p = BytesStart::new("property").with_attributes([attr("name", name), attr("value", value)]);
    w.write_event(Event::Empty(p))
}

fn write_case<W: Write>(w: &mut Writer<W>, classname: &str, c: &CaseResult) -> io::Result<()> {
    let name = if c.title.is_empty() { c.id.clone() } else { format!("{}: {}", c.id, c.title) };
    let start = BytesStart::new("testcase").with_attributes([
        attr("classname", classname),
        attr("name", &name),
        attr("time", &seconds(c.duration_ms)),
    ]);
    if c.status == CaseStatus::Passed {
        return w.write_event(Event::Empty(start));
    }
    w.write_event(Event::Start(start))?;
    match c.status {
        CaseStatus::Passed => {}
        CaseStatus::Failed => match &c.failure {
            Some(f) => {
                let message = format!("expected {}, got {}", f.expected, f.actual);
                detail(w, "failure", &message, &f.step, &failure_text(c))?;
            }
            None => {
                let message = or(&c.message, "failed");
                detail(w, "failure", message, "failure", &c.message)?;
            }
        },
        CaseStatus::Error => {
            detail(w, "error", or(&c.message, "error"), "error", &failure_text(c))?;
        }
        CaseStatus::Skipped | CaseStatus::NotRun => {
            let mut s = BytesStart::new("skipped");
            if !c.message.is_empty() {
                s.push_attribute(attr("message", &c.message));
            }
            w.write_event(Event::Empty(s))?;
        }
        CaseStatus::Blocked => {
            // What the case saw goes in the text: evidence, not the card's failure.
            let s = BytesStart::new("skipped").with_attributes([attr("message", &c.message)]);
            let body = failure_text(c);
            if body.is_empty() {
                w.write_event(Event::Empty(s))?;
            } else {
                w.write_event(Event::Start(s))?;
                w.write_event(Event::Text(text(&body)))?;
                w.write_event(Event::End(BytesEnd::new("skipped")))?;
            }
        }
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

/// `<tag message=… type=…>body</tag>`, or an empty element when `body` is empty.
fn detail<W: Write>(w: &mut Writer<W>, tag: &str, message: &str, kind: &str, body: &str) -> io::Result<()> {
    let start = BytesStart::new(tag).with_attributes([attr("message", message), attr("type", kind)]);
    if body.is_empty() {
        return w.write_event(Event::Empty(start));
    }
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(text(body)))?;
    w.write_event(Event::End(BytesEnd::new(tag)))
}

/// Body of a `<failure>` or `<error>`: the case's message (if any), then the failing step,
/// what was expected and what the card did (if known), one per line.
fn failure_text(c: &CaseResult) -> String {
    let mut lines: Vec<String> = Vec::new();
    if matches!(c.status, CaseStatus::Error) && !c.message.is_empty() {
        lines.push(c.message.clone());
    }
    if let Some(f) = &c.failure {
        lines.push(format!("step: {}", f.step));
        lines.push(format!("expected: {}", f.expected));
        lines.push(format!("actual: {}", f.actual));
    }
    lines.join("\n")
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

fn finite_ms(ms: f64) -> f64 {
    if ms.is_finite() && ms > 0.0 {
        ms
    } else {
        0.0
    }
}

/// Milliseconds as JUnit's seconds, to the millisecond.
fn seconds(ms: f64) -> String {
    format!("{:.3}", finite_ms(ms) / 1000.0)
}

/// Characters XML 1.0 cannot carry at all, even as character references (C0 controls other
/// than tab, LF and CR; U+FFFE; U+FFFF), spelled `\u{…}` instead.
fn xml_chars(s: &str) -> Cow<'_, str> {
    fn allowed(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}') || c >= '\u{10000}'
    }
    if s.chars().all(allowed) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if allowed(c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    Cow::Owned(out)
}

/// An attribute, escaped by quick-xml; tab, LF and CR also become character references so an
/// XML parser's attribute-value normalization does not turn them into spaces.
fn attr<'k>(key: &'k str, value: &str) -> Attribute<'k> {
    let v = escape(xml_chars(value));
    let v = if v.contains(['\t', '\n', '\r']) {
        v.replace('\t', "&#9;").replace('\n', "&#10;").replace('\r', "&#13;")
    } else {
        v.into_owned()
    };
    Attribute { key: QName(key.as_bytes()), value: Cow::Owned(v.into_bytes()) }
}

/// Text content, escaped by quick-xml; CR becomes a character reference so it survives a
/// parser's end-of-line normalization.
fn text(s: &str) -> BytesText<'static> {
    let v = escape(xml_chars(s));
    let v = if v.contains('\r') { v.replace('\r', "&#13;") } else { v.into_owned() };
    BytesText::from_escaped(v)
}
