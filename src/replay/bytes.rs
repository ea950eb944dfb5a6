//! `--mode bytes`: send every command of the chosen streams again, in trace order, on the
//! mapped heads, with the trace's power, reset, insert and remove events, and compare each
//! answer with the captured one under its mask.
//!
//! A command is replayed through `link::Link::exec` with its GET RESPONSE and `6Cxx` re-send
//! rows folded into it: the link does the T=0 procedure-byte handling of the replay exactly as
//! it did in the capture, and the comparison is over the reassembled answer (data and final
//! SW). So a session captured on a T=0 card compares against a T=1 card (or the other way
//! round) at the level the terminal sees, and a card that answers the same application bytes
//! through different procedure bytes is not a divergence; a card that changes its data is.
//! Sending the procedure-byte rows raw instead would make the comparison depend on how the
//! capture's transport chunked the answer and would re-send a GET RESPONSE to a card that
//! never asked for one.

use super::stream::{Selection, Survey, Unit, Units};
use super::timing::Timing;
use super::{Divergence, Flagged, Outcome, ReplayError};
use crate::apdu::Command;
use crate::event::{Event, Exchange, Recorder, RowKind};
use crate::head::virtual_head::VirtualCard;
use crate::head::{Head, HeadError, HeadInfo, Wire};
use crate::lab::Defects;
use crate::lab::{InsertedCard, Lab};
use crate::link::Link;
use crate::mask::Mask;
use crate::plan::TearAt;
use crate::replay::compare::{compare, hexdiff};
use crate::trace::Rows;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// Divergences kept in memory (and in replay.json) with `--keep-going`; the count goes on.
const KEEP_DIVERGENCES: usize = 1000;

pub struct BytesOptions {
    /// Trace head → index of the lab head it is replayed on.
    pub map: HashMap<String, usize>,
    pub card: Option<String>,
    pub keep_going: bool,
    pub timing_threshold: f64,
    /// Seeded defects of the profile's `[[card]]` entries, by card ID: a card the trace
    /// inserts is rebuilt with them (how a lab replays a trace on a defective card).
    pub defects: HashMap<String, Defects>,
    pub quiet: bool,
    /// A front end watches: every judged unit is reported as `Event::ReplayChecked`.
    pub watched: bool,
    /// Looked at between units: a front end's stop.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// A head seen through a stopwatch: the wire time of the transmits of one replayed command.
struct Timed<'a> {
    inner: &'a mut dyn Head,
    wire_ns: u64,
}

impl Head for Timed<'_> {
    fn info(&self) -> &HeadInfo {
        self.inner.info()
    }
    fn card_present(&mut self) -> Result<bool, HeadError> {
        self.inner.card_present()
    }
    fn atr(&self) -> Option<Vec<u8>> {
        self.inner.atr()
    }
    fn power_on(&mut self) -> Result<Vec<u8>, HeadError> {
        self.inner.power_on()
    }
    fn power_off(&mut self) -> Result<(), HeadError> {
        self.inner.power_off()
    }
    fn warm_reset(&mut self) -> Result<Vec<u8>, HeadError> {
        self.inner.warm_reset()
    }
    fn transmit(&mut self, apdu: &[u8]) -> Result<Wire, HeadError> {
        let w = self.inner.transmit(apdu)?;
        self.wire_ns += w.duration.as_nanos() as u64;
        Ok(w)
    }
    fn wait_for_card(&mut self, present: bool, timeout: std::time::Duration) -> Result<bool, HeadError> {
        self.inner.wait_for_card(present, timeout)
    }
    fn as_virtual(&mut self) -> Option<&mut crate::head::virtual_head::VirtualHead> {
        self.inner.as_virtual()
    }
}

struct Replayer<'a> {
    lab: &'a mut Lab,
    rec: &'a Recorder,
    opts: &'a BytesOptions,
    source: &'a Path,
    /// Trace heads where the capture is making a card the replay made again (an `insert` row
    /// with a card plan): its `power-on`, `perso` command rows and `power-off` are skipped.
    making: HashMap<String, Making>,
    /// Trace heads that have had a power row: the others (traces written before power rows
    /// existed) are powered on before their first command, as the runner did.
    power_rows: HashSet<String>,
    /// Virtual heads with a power cut armed by a `tear` step row, and whether the engine step
    /// it is for has started.
    torn: HashMap<usize, bool>,
    /// Cards taken out by `remove` rows, per lab head, for the `insert` that brings them back.
    pocket: HashMap<usize, VirtualCard>,
    timing: Timing,
    out: Outcome,
}

/// Replay `source` (already surveyed) on the lab; the replay's rows go to `rec`.
pub fn replay(
    source: &Path,
    survey: &Survey,
    lab: &mut Lab,
    rec: &Recorder,
    opts: &BytesOptions,
) -> Result<Outcome, ReplayError> {
    let sel = Selection::new(Some(opts.map.keys().cloned().collect()), opts.card.clone(), survey.first_card.clone());
    let mut r = Replayer {
        lab,
        rec,
        opts,
        source,
        making: HashMap::new(),
        power_rows: HashSet::new(),
        pocket: HashMap::new(),
        torn: HashMap::new(),
        timing: Timing::default(),
        out: Outcome { source_rows: survey.rows, cut_last_row: survey.cut_last_row, ..Outcome::default() },
    };
    let units = Units::new(Rows::open(source)?, sel);
    for unit in units {
        if opts.stop.as_ref().is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            break;
        }
        let unit = unit?;
        if !r.unit(unit)? {
            break;
        }
    }
    r.out.timing = r.timing.lines(opts.timing_threshold);
    r.out.timing_threshold_pct = opts.timing_threshold;
    Ok(r.out)
}

impl Replayer<'_> {
    /// Replay one unit; false when the replay stops here (a divergence without --keep-going).
    fn unit(&mut self, unit: Unit) -> Result<bool, ReplayError> {
        let i = self.opts.map.get(unit.head()).copied();
        match (unit, i) {
            (Unit::Step { row, .. }, Some(i)) => {
                self.tear_step(&row, i);
                labelled(self.lab.heads[i].head.as_mut(), self.rec, &row).event(RowKind::Step, &row.note);
                Ok(true)
            }
            // A step on no head (an assertion, a variable): copied as it is.
            (Unit::Step { row, .. }, None) => {
                self.copy_row(&row);
                Ok(true)
            }
            (Unit::Event { line, row }, Some(i)) => self.event(line, &row, i),
            (Unit::Command { lines, rows }, Some(i)) => self.command(&lines, rows, i),
            // Rows of heads not chosen never get here (the selection drops them).
            (_, None) => Ok(true),
        }
    }

    /// The power cuts of `tear` steps, reproduced on virtual heads: armed when the capture
    /// armed them (the `tear` step row), disarmed after the engine step that follows, as the
    /// runner does. The replay sends the same transmits in the same order, so the cut falls
    /// on the same exchange (or NVM commit) and the card is left as the capture left it.
    fn tear_step(&mut self, row: &Exchange, i: usize) {
        let param = |k: &str| row.note.split(' ').find_map(|p| p.strip_prefix(k)).map(str::to_string);
        let finished: Vec<usize> = self.torn.iter().filter(|(_, engine)| **engine).map(|(j, _)| *j).collect();
        for j in finished {
            self.torn.remove(&j);
            if let Some(v) = self.lab.heads[j].head.as_virtual() {
                v.cut_power(None);
                if let Some(c) = v.card_mut() {
                    c.nvm_mut().tear_after(None);
                }
            }
        }
        if param("do=").as_deref() == Some("engine") {
            self.torn.values_mut().for_each(|engine| *engine = true);
            return;
        }
        if param("do=").as_deref() != Some("tear") {
            return;
        }
        let Some(at) = param("at=").and_then(|a| crate::replay::session::tear_at(&a).ok()) else { return };
        let Some(v) = self.lab.heads[i].head.as_virtual() else { return };
        match at {
            TearAt::Exchange { .. } | TearAt::Command { .. } => {
                let (cut, ins) = at.power_cut().unzip();
                v.cut_power_at(cut, ins.flatten())
            }
            TearAt::Commit(k) => {
                if let Some(c) = v.card_mut() {
                    c.nvm_mut().tear_after(Some(k));
                }
            }
        }
        self.torn.insert(i, false);
    }

    fn head_err(&self, line: u64, i: usize, e: impl ToString) -> ReplayError {
        ReplayError::Head { file: self.source.into(), line, head: self.lab.heads[i].name.clone(), what: e.to_string() }
    }

    fn event(&mut self, line: u64, row: &Exchange, i: usize) -> Result<bool, ReplayError> {
        let name = self.lab.heads[i].name.clone();
        if matches!(row.kind, RowKind::PowerOn | RowKind::PowerOff | RowKind::WarmReset) {
            self.power_rows.insert(row.head.clone());
        }
        // The power rows around a card's making were replayed by `lab::insert_card`.
        match (self.making.get(&row.head), row.kind) {
            (Some(Making::AwaitPowerOn), RowKind::PowerOn) => {
                self.making.insert(row.head.clone(), Making::Perso);
                return Ok(true);
            }
            (Some(Making::Perso), RowKind::PowerOff) => {
                self.making.remove(&row.head);
                return Ok(true);
            }
            (Some(_), _) => {
                self.making.remove(&row.head);
            }
            (None, _) => {}
        }
        match row.kind {
            RowKind::PowerOn | RowKind::WarmReset => {
                let mut l = labelled(self.lab.heads[i].head.as_mut(), self.rec, row);
                let atr = if row.kind == RowKind::PowerOn { l.power_on() } else { l.warm_reset() };
                let atr = atr.map_err(|e| self.head_err(line, i, e))?;
                if !row.atr.is_empty() && row.atr == atr {
                    self.checked(&[line], None);
                }
                if !row.atr.is_empty() && row.atr != atr {
                    let d = Divergence::new(
                        self.source,
                        line,
                        row,
                        &name,
                        format!("ATR {} expected, {} received", hex::encode_upper(&row.atr), hex::encode_upper(&atr)),
                        hexdiff(&row.atr, &atr, &Mask::none()),
                    );
                    self.checked(&[line], Some(&d));
                    return Ok(self.diverged(d));
                }
            }
            RowKind::PowerOff => {
                let r = labelled(self.lab.heads[i].head.as_mut(), self.rec, row).power_off();
                r.map_err(|e| self.head_err(line, i, e))?;
            }
            RowKind::Insert => {
                let bad = |what: String| {
                    ReplayError::Trace(crate::trace::TraceError::Bad { path: self.source.into(), line, what })
                };
                if row.note.trim_start().starts_with('{') {
                    // A card the capture made: made again the same way (blank card, the
                    // issuance script through the link, keys redacted in the replay's trace
                    // too), with the defects the profile gives that card ID.
                    let made: InsertedCard = serde_json::from_str(&row.note)
                        .map_err(|e| bad(format!("insert row: note is not a card plan: {e}")))?;
                    let id = hex::encode_upper(made.card_plan.card_id);
                    let defects = self.opts.defects.get(&id).cloned();
                    let keys = &self.lab.keyset;
                    let head = self.lab.heads[i].head.as_mut();
                    crate::lab::insert_card(
                        &mut labelled(head, self.rec, row),
                        &made.card_plan,
                        made.protocol,
                        keys,
                        defects,
                    )
                    .map_err(|e| ReplayError::Head {
                        file: self.source.into(),
                        line,
                        head: name.clone(),
                        what: format!("making card {id}: {e}"),
                    })?;
                    self.making.insert(row.head.clone(), Making::AwaitPowerOn);
                    return Ok(true);
                }
                let card = self.pocket.remove(&i);
                let not_virtual =
                    self.head_err(line, i, "bytes replay inserts and removes cards only in virtual heads");
                let v = self.lab.heads[i].head.as_virtual().ok_or(not_virtual)?;
                match card {
                    Some(c) => {
                        v.insert(c);
                    }
                    // The card the capture inserted is the one already in the head (put there
                    // by the profile).
                    None if v.card().is_some() => {}
                    None => {
                        let what = "insert row with no card to insert (no card plan, nothing removed before)";
                        return Err(self.head_err(line, i, what));
                    }
                }
                labelled(self.lab.heads[i].head.as_mut(), self.rec, row).event(RowKind::Insert, &row.note);
            }
            RowKind::Remove => {
                let not_virtual =
                    self.head_err(line, i, "bytes replay inserts and removes cards only in virtual heads");
                let v = self.lab.heads[i].head.as_virtual().ok_or(not_virtual)?;
                if let Some(c) = v.remove() {
                    self.pocket.insert(i, c);
                }
                labelled(self.lab.heads[i].head.as_mut(), self.rec, row).event(RowKind::Remove, &row.note);
            }
            _ => {}
        }
        Ok(true)
    }

    fn command(&mut self, lines: &[u64], rows: Vec<Exchange>, i: usize) -> Result<bool, ReplayError> {
        let first = &rows[0];
        let line = lines[0];
        if first.protocol_step == "perso" && self.making.contains_key(&first.head) {
            self.out.skipped_perso += 1;
            return Ok(true);
        }
        self.making.remove(&first.head);
        let bad =
            |what: String| ReplayError::Trace(crate::trace::TraceError::Bad { path: self.source.into(), line, what });
        if first.note.contains("data redacted") {
            return Err(bad("the command's data is redacted in the trace: bytes replay cannot send it (only the \
                            personalization rows after an `insert` row with a card_plan are rebuilt instead)"
                .into()));
        }
        // A command the terminal sent as written (a plan's `verbatim` step: a malformed
        // length, an extended form) is sent again as written; any other is re-encoded.
        let cmd =
            Command::parse(&first.command).ok().filter(|c| c.to_bytes().ok().as_deref() == Some(&first.command[..]));
        let expected = fold(&rows);
        let in_doubt = rows.last().is_some_and(|r| r.kind == RowKind::InDoubt);
        let name = self.lab.heads[i].name.clone();
        if !self.power_rows.contains(&first.head) && self.lab.heads[i].head.atr().is_none() {
            let r = labelled(self.lab.heads[i].head.as_mut(), self.rec, first).power_on();
            r.map_err(|e| self.head_err(line, i, e))?;
        }
        let mut timed = Timed { inner: self.lab.heads[i].head.as_mut(), wire_ns: 0 };
        // A terminal that stopped at procedure bytes (no GET RESPONSE or re-send row follows
        // a `61xx`/`6Cxx` answer) is replayed as it was: one exchange, not followed.
        let raw = rows.len() == 1 && first.kind == RowKind::Command && matches!(first.sw >> 8, 0x61 | 0x6C);
        let mut l = labelled(&mut timed, self.rec, first);
        let answer = match &cmd {
            Some(cmd) if raw => l.exec_raw(&first.protocol_step, cmd),
            Some(cmd) => l.exec(&first.protocol_step, cmd),
            // A plan's `raw` step with a form that does not re-encode (an extended length):
            // as written, and not followed, as it was.
            None if raw => l.exec_bytes(&first.protocol_step, &first.command),
            None => l.exec_verbatim(&first.protocol_step, &first.command),
        };
        let wire_ns = timed.wire_ns;
        self.out.commands += 1;
        let resp = match answer {
            Ok(r) => r,
            // No answer now either (a reproduced power cut): the same outcome as captured.
            Err(e) if in_doubt && e.maybe_delivered() => {
                self.out.matched += 1;
                self.checked(lines, None);
                self.out.in_doubt.push(Flagged {
                    line,
                    seq: first.seq,
                    head: name,
                    command_name: command_name(&first.command),
                    what: format!("reproduced: no answer on replay either ({e})"),
                });
                return Ok(true);
            }
            Err(e) => return Err(self.head_err(line, i, e)),
        };
        if in_doubt {
            // The captured command got no answer: what the card did then is unknown, so its
            // answer now cannot be judged. It is sent (the terminal sent it) and flagged; a
            // different card state after it shows up as a divergence on the next rows.
            let what = format!("answered {:04X} on replay; {}", resp.sw, rows.last().map_or("", |r| r.error.as_str()));
            self.flag_in_doubt(line, first, &name, what);
            return Ok(true);
        }
        let mut actual = expected.clone();
        actual.command = first.command.clone();
        actual.response = resp.data;
        actual.sw = resp.sw;
        actual.duration_ns = wire_ns;
        actual.head = name.clone();
        let (cla, ins) = (first.command.first().copied().unwrap_or(0), first.command.get(1).copied().unwrap_or(0));
        self.timing.add(crate::cmds::name(cla, ins), expected.duration_ns, wire_ns);
        let check = compare(&expected, &actual);
        if check.is_match() {
            self.out.matched += 1;
            self.checked(lines, None);
            return Ok(true);
        }
        let mut d = Divergence::new(
            self.source,
            line,
            first,
            &name,
            check.describe(),
            hexdiff(
                &[&expected.response[..], &expected.sw.to_be_bytes()].concat(),
                &[&actual.response[..], &actual.sw.to_be_bytes()].concat(),
                &expected.mask,
            ),
        );
        d.last_line = lines.last().copied().unwrap_or(line);
        self.checked(lines, Some(&d));
        Ok(self.diverged(d))
    }

    fn flag_in_doubt(&mut self, line: u64, row: &Exchange, head: &str, what: String) {
        let f = Flagged { line, seq: row.seq, head: head.into(), command_name: command_name(&row.command), what };
        if !self.opts.quiet {
            crate::print::out(format_args!(
                "in doubt  {}:{line}: {} was in doubt in the capture: sent, not compared ({})",
                self.source.display(),
                f.command_name,
                f.what
            ));
        }
        self.out.in_doubt.push(f);
    }

    /// Tell a watching front end how the unit at `lines` compared.
    fn checked(&self, lines: &[u64], d: Option<&Divergence>) {
        if self.opts.watched {
            self.rec.send(Event::ReplayChecked {
                lines: lines.to_vec(),
                matched: d.is_none(),
                detail: d.map_or(String::new(), |d| d.what.clone()),
                diff: d.map_or(String::new(), |d| d.diff.clone()),
            });
        }
    }

    fn diverged(&mut self, d: Divergence) -> bool {
        // A front end draws it; printed, it would land on its screen.
        if !self.opts.watched {
            crate::print::out(format_args!("{}", d.render()));
        }
        self.out.divergences += 1;
        if self.out.divergence_rows.len() < KEEP_DIVERGENCES {
            self.out.divergence_rows.push(d);
        }
        if self.opts.keep_going {
            true
        } else {
            self.out.stopped_at_line = self.out.divergence_rows.last().map(|d| d.line);
            false
        }
    }

    /// A row copied into the replay's trace as it is, renumbered and timed now.
    fn copy_row(&self, row: &Exchange) {
        if !self.rec.enabled() {
            return;
        }
        let mut x = row.clone();
        x.seq = self.rec.next_seq();
        x.wall = chrono::Utc::now();
        x.mono_ns = self.rec.mono_ns(Instant::now());
        x.duration_ns = 0;
        self.rec.send(Event::Exchange(Box::new(x)));
    }
}

/// A link on `head` labelled like the captured row (card, case, plan step, repeat), so the
/// replay's rows line up with the capture's in `trace diff`.
fn labelled<'h>(head: &'h mut dyn Head, rec: &Recorder, row: &Exchange) -> Link<'h> {
    let mut l = Link::new(head, rec);
    l.card_id = row.card_id.clone();
    l.test_step = row.test_step.clone();
    l.step = row.step.clone();
    l.repeat = row.repeat;
    l
}

/// Where the capture is in making a card (`lab::insert_card`: insert, power-on, perso rows,
/// power-off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Making {
    AwaitPowerOn,
    Perso,
}

fn command_name(command: &[u8]) -> String {
    match command {
        [cla, ins, ..] => crate::cmds::name(*cla, *ins).to_string(),
        _ => "UNKNOWN".into(),
    }
}

/// A command's rows as the one exchange the terminal saw: the data the link gathered (the
/// data of `6Cxx` answers is not part of it), the final SW, the masks moved to where their
/// bytes land, the wire time of all rows.
pub fn fold(rows: &[Exchange]) -> Exchange {
    let mut x = rows[0].clone();
    x.response.clear();
    let mut masked = Vec::new();
    x.duration_ns = 0;
    for (n, r) in rows.iter().enumerate() {
        x.duration_ns += r.duration_ns;
        let last = n + 1 == rows.len();
        if (r.sw >> 8) as u8 == 0x6C && !last {
            continue;
        }
        let at = x.response.len();
        masked.extend((0..r.response.len()).filter(|b| r.mask.covers(*b)).map(|b| at + b));
        x.response.extend_from_slice(&r.response);
    }
    let last = rows.last().expect("a group has a row");
    x.sw = last.sw;
    x.kind = if last.kind == RowKind::InDoubt { RowKind::InDoubt } else { RowKind::Command };
    x.error = last.error.clone();
    x.mask = Mask::ranges(&runs(&masked));
    x
}

/// Sorted byte offsets as inclusive ranges.
fn runs(offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &o in offsets {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == o => *end = o,
            _ => out.push((o, o)),
        }
    }
    out
}
