//! Command-line edges: parse arguments, resolve them into a validated run, map results to
//! exit codes (0 all passed, 1 a test failed, 2 the bench could not run).

use crate::event::{Event, Recorder};
use crate::keys::Keyset;
use crate::lab::Lab;
use crate::report::CaseStatus;
use crate::runner::run_plan;
use crate::sinks::{self, Console, Sink};
use crate::trace::TraceCsv;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Everything this module prints goes through `crate::print`: a pipe closed early
// (`cardbench run … | head -2`) stops the printing, never the work, and never panics.
macro_rules! println {
    () => { $crate::print::out(format_args!("")) };
    ($($t:tt)*) => { $crate::print::out(format_args!($($t)*)) };
}
macro_rules! eprintln {
    () => { $crate::print::err(format_args!("")) };
    ($($t:tt)*) => { $crate::print::err(format_args!($($t)*)) };
}

#[derive(Parser, Debug)]
#[command(name = "cardbench", version, about = "Smart-card bench: conformance plans, APDU traces, timing")]
pub struct Cli {
    /// No subcommand: the TUI when stdout is a terminal.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The operator's bench in the terminal (also `cardbench` alone in a terminal).
    Tui {
        /// Lab profile to start with (default: the first in profiles/).
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Plan to start with (default: the first in test-plans/).
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Ring the terminal bell with each operator prompt (insert / remove a card).
        #[arg(long)]
        bell: bool,
    },
    /// Run a plan of protocol-engine steps on a profile's heads.
    Run {
        /// Plan file (test-plans/*.toml).
        plan: PathBuf,
        /// Lab profile (profiles/*.toml).
        #[arg(long, short)]
        profile: PathBuf,
        /// Run identifier (default: UTC time + plan id + random suffix).
        #[arg(long)]
        run_id: Option<String>,
        /// Directory for run folders (default: the profile's `logs`, else ./logs).
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Only the summary line.
        #[arg(long, short)]
        quiet: bool,
        /// Draw the terminal's randoms from the seed of the run that wrote TRACE (its
        /// run.json), also on real readers: to run a plan again against cards played from
        /// TRACE behind pcscd or a PN532 (`cardbench sim replay`, docs/replay.md).
        #[arg(long, value_name = "TRACE")]
        terminal_seed_from: Option<PathBuf>,
        /// Results store (docs/results-store.md): default `<logs>/cardbench.sqlite`;
        /// `postgres://…` for stations sharing batches; `none` for files only.
        #[arg(long, env = "CARDBENCH_DB")]
        db: Option<String>,
    },
    /// Certify a batch of cards: one worker per DUT head, per-card traces, summary CSV,
    /// JUnit XML and JSON; an interrupted batch resumes where it stopped.
    Batch {
        /// Lab profile (a resume takes it from batch.json when left out).
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Plan (a resume takes it from batch.json when left out).
        #[arg(long)]
        plan: Option<PathBuf>,
        #[arg(long)]
        batch_id: String,
        /// Cards in the batch (default: the profile's `[batch]` count; a resume keeps the
        /// batch's own).
        #[arg(long)]
        count: Option<u64>,
        /// Directory for batch folders (default: the profile's `logs`, else ./logs).
        #[arg(long)]
        logs: Option<PathBuf>,
        /// No progress output, only the summary line (operator prompts for real readers
        /// still go to stderr).
        #[arg(long, short)]
        quiet: bool,
        /// Resume even though the plan (or an include), the profile or the keyset changed
        /// since the batch started; the changes are recorded in batch.json and the reports.
        #[arg(long)]
        force_changed: bool,
        /// Certify again a card already certified in this batch (its new verdict replaces
        /// the earlier one, recorded as a re-certification); without it the card is refused.
        #[arg(long)]
        recertify: bool,
        /// Ring the terminal bell with each operator prompt (insert / remove a card).
        #[arg(long)]
        bell: bool,
        /// Results store (docs/results-store.md): default `<logs>/cardbench.sqlite`;
        /// `postgres://…` for stations sharing batches; `none` for files only.
        #[arg(long, env = "CARDBENCH_DB")]
        db: Option<String>,
    },
    /// Rebuild every report of a batch folder (summary.csv, junit.xml, results.json) from
    /// its batch.json and journal, byte for byte what the batch wrote; or, with --db and
    /// --batch, a batch's reports from the results store, every station's cards included.
    Report {
        /// The batch folder (`<logs>/<batch-id>`).
        #[arg(required_unless_present = "db", conflicts_with = "db")]
        dir: Option<PathBuf>,
        /// The results store to read the batch from (docs/results-store.md).
        #[arg(long, requires = "batch")]
        db: Option<String>,
        /// The batch ID in the store.
        #[arg(long, requires = "db")]
        batch: Option<String>,
        /// Where the reports from the store go (default: ./<batch-id>-report).
        #[arg(long, requires = "db")]
        out: Option<PathBuf>,
    },
    /// Tear campaign (docs/tear.md): cut power at every wire exchange and NVM commit of each
    /// sequence on fresh virtual cards, settle, check the invariants; exit 1 on a violation.
    Tear {
        /// A plan (every engine step is a sequence) or a built-in sequence name, or `all`.
        target: String,
        #[arg(long, short)]
        profile: PathBuf,
        /// Only these built-in sequences (or, with a plan, cases with these IDs).
        #[arg(long = "sequence")]
        sequences: Vec<String>,
        /// What the terminal does after a fault: recover (engine::recover), read-back (read
        /// the cards and leave them) or rerun (run the interrupted step again).
        #[arg(long, default_value = "recover")]
        settle: String,
        /// Only the violations and the totals.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Terminal recovery: read the cards in one or two heads and settle what an interrupted
    /// run left (complete or cancel a pending credit, re-sign a purse record this terminal
    /// wrote, tell whether a DEBIT took effect). Exit 0 settled, 1 a state was reported
    /// unrecoverable, 2 the bench could not run.
    Recover {
        #[arg(long, short)]
        profile: PathBuf,
        /// Head (name or role); give the receiving and the sending card's heads for a transfer.
        #[arg(long = "head", required = true, num_args = 1)]
        heads: Vec<String>,
        /// Trace of the interrupted run: what the terminal sent (its WRITE VALUE, DEBIT and
        /// VALUE SEND, answered or in doubt) is what recovery may complete or re-sign.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Run identifier of the recovery's own trace (default: UTC time + "recover").
        #[arg(long)]
        run_id: Option<String>,
        /// Directory for run folders (default: the profile's `logs`, else ./logs).
        #[arg(long)]
        logs: Option<PathBuf>,
    },
    /// Validate a plan without touching a card (with --profile, also its head names and the
    /// profile's [batch]).
    Check {
        plan: PathBuf,
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Check the plan as `cardbench batch` runs it (roles dut and peer only).
        #[arg(long)]
        batch: bool,
    },
    /// Requirement coverage (docs/coverage.md): which cases verify each requirement of
    /// docs/card-spec.md. Exit 0 every in-scope requirement has a case, 1 one has none, 2 the
    /// plan could not be read.
    Coverage {
        #[arg(long)]
        plan: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: crate::coverage::render::Format,
    },
    /// Timing (docs/timing.md): `time compare A B` compares two timing results.
    Time(Box<TimeArgs>),
    /// Test keys and PKI.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// List a profile's heads with card presence and ATR.
    /// List heads: a profile's heads, or (without --profile) every PC/SC reader with its
    /// card state and ATR.
    Heads {
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Keep watching PC/SC readers: one line per reader added or removed and per card
        /// inserted or removed (like pcsc_scan), until interrupted or --seconds pass.
        #[arg(long, conflicts_with = "profile")]
        watch: bool,
        /// With --watch: stop after this many seconds.
        #[arg(long, requires = "watch")]
        seconds: Option<u64>,
    },
    /// Replay a captured trace on a profile's heads (docs/replay.md): `bytes` sends every
    /// captured command again with the same power and card events and compares the answers
    /// under their masks. Exit 0 the session matched, 1 a divergence, 2 it could not run.
    Replay {
        /// The captured trace (trace.csv).
        trace: PathBuf,
        #[arg(long, short)]
        profile: PathBuf,
        /// Replay the trace's head TRACEHEAD on the profile's head (or role) HEAD; trace heads
        /// not mapped replay on the profile head of the same name.
        #[arg(long = "map", value_name = "TRACEHEAD=HEAD")]
        map: Vec<String>,
        /// Only the streams of this card (its rows, and the power/insert rows of its heads).
        #[arg(long, value_name = "ID")]
        card: Option<String>,
        #[arg(long, value_enum, default_value = "bytes")]
        mode: crate::replay::Mode,
        /// Go on after a divergence (every divergence is reported).
        #[arg(long)]
        keep_going: bool,
        /// Flag commands whose median wire time changed by more than PCT percent.
        #[arg(long, value_name = "PCT", default_value_t = 20.0)]
        timing_threshold: f64,
        /// Run identifier of the replay's own trace (default: UTC time + "replay").
        #[arg(long)]
        run_id: Option<String>,
        /// Directory for run folders (default: the profile's `logs`, else ./logs).
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Only divergences and the summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Work on trace files: compare two, import other tools' APDU logs, export for Wireshark.
    Trace {
        #[command(subcommand)]
        cmd: TraceCmd,
    },
    /// Simulated readers that put the reference card behind real reader stacks.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum SimCmd {
    /// Connect a profile's card to vsmartcard's vpcd driver, so pcscd shows it in a reader.
    Vpcd {
        /// Profile holding the `[[card]]` to serve (and the keyset to personalize it with).
        #[arg(long, short)]
        profile: PathBuf,
        /// Name of the `[[card]]` entry.
        #[arg(long)]
        card: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = crate::sim::vpcd::DEFAULT_PORT)]
        port: u16,
        /// Modelled card service time of every APDU, microseconds, instead of the card's own
        /// model in the profile (`service_time_us`, `[[card.service]]`); 0: the profile's.
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        /// Stall after answering N APDUs: the next APDU is never answered and the connection
        /// stays open (a hung card), until the bridge is stopped.
        #[arg(long, value_name = "N")]
        stall_after: Option<u64>,
        /// Stall on the first APDU that arrives once FILE exists.
        #[arg(long, value_name = "FILE")]
        stall_file: Option<PathBuf>,
    },
    /// Simulate a PN532 (HSU) with a profile's card in its field on a pseudo-terminal; prints
    /// the device path and serves until killed.
    Pn532 {
        /// Profile holding the `[[card]]` to serve (and the keyset to personalize it with).
        #[arg(long, short)]
        profile: PathBuf,
        /// Name of the `[[card]]` entry.
        #[arg(long)]
        card: String,
        /// Also make this symbolic link to the device (e.g. the `port` of a pn532 head).
        #[arg(long)]
        link: Option<PathBuf>,
        /// Take the card out of the field after this many APDUs.
        #[arg(long)]
        remove_after: Option<u64>,
        /// Inject a link fault into InDataExchange frames (repeatable): ack-delay=MS,
        /// answer-delay=MS, noise, ghost-after-ack, no-ack, bad-lcs, bad-dcs, truncate,
        /// drop-command; `@N` for the Nth frame only (docs/pn532.md).
        #[arg(long = "fault", value_name = "FAULT", value_parser = parse_fault)]
        faults: Vec<crate::sim::pn532::FaultRule>,
    },
    /// Play a card from a trace behind vpcd or a simulated PN532 (docs/replay.md): each
    /// command that matches the next captured one gets the captured answer; any other gets
    /// 6F00 and is recorded as a mismatch. Serves until killed.
    Replay {
        /// Trace CSV holding the card's session.
        #[arg(long)]
        trace: PathBuf,
        /// Card ID (16 hex digits) whose rows to play.
        #[arg(long)]
        card: String,
        /// Trace head name, when the card is on several heads of the trace.
        #[arg(long)]
        head: Option<String>,
        /// The reader to sit behind.
        #[arg(long, value_enum)]
        via: Via,
        /// vpcd: host and port of vpcd's socket.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = crate::sim::vpcd::DEFAULT_PORT)]
        port: u16,
        /// pn532: also make this symbolic link to the device (e.g. the `port` of a pn532 head).
        #[arg(long)]
        link: Option<PathBuf>,
        /// Write one JSON line per command that strayed from the capture to FILE (emptied
        /// at start).
        #[arg(long, value_name = "FILE")]
        mismatches: Option<PathBuf>,
    },
}

/// The reader a played card sits behind.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// vsmartcard's vpcd (pcscd shows the card in a reader).
    Vpcd,
    /// A simulated PN532 on a pseudo-terminal.
    Pn532,
}

#[derive(Subcommand, Debug)]
pub enum TraceCmd {
    /// Compare two traces of the same plan command by command (SW, data outside the masks,
    /// timing). Exit 0 same, 1 differences, 2 a trace could not be read.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// The report as JSON on stdout (docs/replay.md gives the schema).
        #[arg(long)]
        json: bool,
        /// Flag commands whose median wire time changed by more than PCT percent.
        #[arg(long, value_name = "PCT", default_value_t = 20.0)]
        timing_threshold: f64,
    },
    // ---- `trace import` / `trace export` (interop, docs/trace-interop.md) ----
    /// Turn another tool's APDU log into a cardbench trace CSV.
    Import {
        /// Log format: pcscd-apdu (pcscd --apdu [--debug]), pcsc-spy, apdu4j (dump or
        /// verbose log), scriptor.
        #[arg(long = "from", value_name = "FORMAT", value_parser = parse_format)]
        from: crate::interop::Format,
        /// The log file.
        file: PathBuf,
        /// Trace to write (default: FILE's name with `.trace.csv`, beside it); never overwritten.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Head name for every row (default: the reader the log names, else `A`).
        #[arg(long)]
        head: Option<String>,
    },
    /// Write a trace as a pcapng capture that Wireshark/tshark dissect as ISO 7816 APDUs.
    Export {
        /// The pcapng file to write (never overwritten).
        #[arg(long, value_name = "OUT")]
        pcapng: PathBuf,
        /// The trace CSV.
        trace: PathBuf,
    },
}

// ---- `cardbench trace import` / `trace export` (interop, docs/trace-interop.md) ----

fn parse_format(s: &str) -> std::result::Result<crate::interop::Format, String> {
    s.parse()
}

fn trace_import(
    from: crate::interop::Format,
    file: PathBuf,
    out: Option<PathBuf>,
    head: Option<String>,
) -> Result<ExitCode> {
    use crate::event::RowKind as K;
    let opts = crate::interop::ImportOptions { head };
    let rows = crate::interop::import(from, &file, &opts)?;
    let stem = file.file_stem().map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned());
    let out = out.unwrap_or_else(|| file.with_file_name(format!("{stem}.trace.csv")));
    crate::interop::write_trace(&rows, &out, &stem, &format!("import-{}", from.name()))
        .with_context(|| format!("cannot write {}", out.display()))?;
    let count = |k: K| rows.iter().filter(|r| r.kind == k).count();
    println!(
        "{}: {} rows ({} commands, {} get-response, {} resend-6c, {} in-doubt, {} card events) from {} -> {}",
        from.name(),
        rows.len(),
        count(K::Command),
        count(K::GetResponse),
        count(K::Resend6C),
        count(K::InDoubt),
        rows.iter().filter(|r| !r.kind.is_wire()).count(),
        file.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn trace_export(pcapng: PathBuf, trace: PathBuf) -> Result<ExitCode> {
    use crate::interop::pcapng::{export, ExportError};
    let rows = crate::trace::Rows::open(&trace).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sum = export(rows, &pcapng).map_err(|e| match e {
        ExportError::Row(e) => anyhow::anyhow!("{e}"),
        ExportError::Io(e) => anyhow::anyhow!("cannot write {}: {e}", pcapng.display()),
    })?;
    println!(
        "{}: {} commands, {} answers, {} ATRs on {} interfaces (one per head)",
        pcapng.display(),
        sum.commands,
        sum.answers,
        sum.atrs,
        sum.interfaces
    );
    Ok(ExitCode::SUCCESS)
}

// ---- end of trace import/export ----

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a test PKI and key set in DIR (keyset.toml mode 0600 plus public files); its
    /// CRL starts with the certification suite's revoked reference card (0003EE01).
    Init {
        dir: PathBuf,
        /// Overwrite an existing keyset.
        #[arg(long)]
        force: bool,
    },
    /// Put a certificate serial on a keyset file's CRL (keyset.toml and crl.bin).
    Revoke {
        /// 8 hex digits (0003EE01 or 0x0003EE01), or a card ID (16 hex digits: its serial
        /// is the last 4 bytes).
        serial: String,
        /// The keyset: DIR or DIR/keyset.toml.
        #[arg(long, required_unless_present = "profile", conflicts_with = "profile")]
        keyset: Option<PathBuf>,
        /// The keyset a profile names with `[keyset] path`.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
    /// Put a machine's certificate on the center's machine CRL of a keyset file
    /// (keyset.toml and machine-crl.bin): payment and charge machines then refuse its records
    /// at S12.
    RevokeMachine {
        /// The machine's name (C2, P2, …).
        name: String,
        /// The keyset: DIR or DIR/keyset.toml.
        #[arg(long, required_unless_present = "profile", conflicts_with = "profile")]
        keyset: Option<PathBuf>,
        /// The keyset a profile names with `[keyset] path`.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
    /// Issue a keyset file's CRL again (same serials, signed by its CA) with a new issue date
    /// and next-update date; a terminal refuses to run on a CRL past its next update.
    Crl {
        /// The keyset: DIR or DIR/keyset.toml.
        #[arg(long, required_unless_present = "profile", conflicts_with = "profile")]
        keyset: Option<PathBuf>,
        /// The keyset a profile names with `[keyset] path`.
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Issue date (RFC 3339); default: now.
        #[arg(long)]
        issued: Option<String>,
        /// Days from the issue date to the next update.
        #[arg(long, default_value_t = crate::keys::CRL_DEFAULT_DAYS)]
        days: u32,
    },
    /// Show a keyset's public parts and fingerprint (never a secret).
    Show {
        /// The keyset: DIR or DIR/keyset.toml.
        #[arg(required_unless_present = "profile", conflicts_with = "profile")]
        keyset: Option<PathBuf>,
        /// The keyset a profile uses (seeded or a file), with the profile's `revoked` added.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
}

/// Bad input or a bench failure: exit 2 with one line.
struct BenchError(anyhow::Error);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(BenchError(e)) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("cardbench: error: {}", chain.join(": "));
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, BenchError> {
    let Some(cmd) = cli.cmd else {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return tui(None, None, false);
        }
        let _ = <Cli as clap::CommandFactory>::command().write_long_help(&mut std::io::stderr());
        return Ok(ExitCode::from(2));
    };
    match cmd {
        Cmd::Tui { profile, plan, bell } => tui(profile, plan, bell),
        Cmd::Run { plan, profile, run_id, logs, quiet, terminal_seed_from, db } => {
            run(&plan, &profile, run_id, logs, quiet, terminal_seed_from.as_deref(), db.as_deref())
        }
        Cmd::Batch { profile, plan, batch_id, count, logs, quiet, force_changed, recertify, bell, db } => {
            let args = BatchArgs { profile, plan, batch_id, count, logs, quiet, force_changed, recertify, bell, db };
            batch(args).map_err(BenchError)
        }
        Cmd::Report { dir: Some(dir), .. } => report(&dir).map_err(BenchError),
        Cmd::Report { dir: None, db, batch, out } => {
            report_from_store(db.as_deref().unwrap_or_default(), batch.as_deref().unwrap_or_default(), out)
                .map_err(BenchError)
        }
        Cmd::Check { plan, profile, batch } => check(&plan, profile.as_deref(), batch).map_err(BenchError),
        Cmd::Coverage { plan, format } => coverage(&plan, format).map_err(BenchError),
        Cmd::Tear { target, profile, sequences, settle, quiet } => {
            tear(&target, &profile, &sequences, &settle, quiet).map_err(BenchError)
        }
        Cmd::Recover { profile, heads, trace, run_id, logs } => {
            recover(&profile, &heads, trace.as_deref(), run_id, logs).map_err(BenchError)
        }
        Cmd::Replay { trace, profile, map, card, mode, keep_going, timing_threshold, run_id, logs, quiet } => {
            let args = crate::replay::ReplayArgs {
                source: trace,
                profile,
                map,
                card,
                keep_going,
                timing_threshold,
                run_id: run_id.unwrap_or_else(|| default_run_id("replay")),
                logs,
                quiet,
                observer: None,
                stop: None,
            };
            replay(&args, mode).map_err(BenchError)
        }
        Cmd::Trace { cmd: TraceCmd::Diff { a, b, json, timing_threshold } } => {
            trace_diff(&a, &b, json, timing_threshold).map_err(BenchError)
        }
        Cmd::Time(t) => match *t {
            TimeArgs { cmd: Some(TimeCmd::Compare(args)), .. } => time_compare(&args).map_err(BenchError),
            TimeArgs { cmd: None, run: Some(r) } => {
                let TimeRunArgs {
                    spec,
                    profile,
                    heads,
                    peers,
                    iterations,
                    warmup,
                    seconds,
                    no_pm_qos,
                    run_id,
                    logs,
                    db,
                } = r;
                let opts = crate::timing::run::Options { iterations, warmup, seconds, no_pm_qos, ..Default::default() };
                time(&spec, &profile, &heads, &peers, &opts, run_id, logs, db.as_deref()).map_err(BenchError)
            }
            TimeArgs { cmd: None, run: None } => {
                Err(BenchError(anyhow::anyhow!("`cardbench time` needs a timing spec or `compare A B`")))
            }
        },
        Cmd::Keys { cmd: KeysCmd::Init { dir, force } } => keys_init(&dir, force).map_err(BenchError),
        Cmd::Keys { cmd: KeysCmd::Revoke { serial, keyset, profile } } => {
            keys_revoke(&serial, keyset.as_deref(), profile.as_deref()).map_err(BenchError)
        }
        Cmd::Keys { cmd: KeysCmd::RevokeMachine { name, keyset, profile } } => {
            keys_revoke_machine(&name, keyset.as_deref(), profile.as_deref()).map_err(BenchError)
        }
        Cmd::Keys { cmd: KeysCmd::Crl { keyset, profile, issued, days } } => {
            keys_crl(keyset.as_deref(), profile.as_deref(), issued.as_deref(), days).map_err(BenchError)
        }
        Cmd::Keys { cmd: KeysCmd::Show { keyset, profile } } => {
            keys_show(keyset.as_deref(), profile.as_deref()).map_err(BenchError)
        }
        Cmd::Trace { cmd: TraceCmd::Import { from, file, out, head } } => {
            trace_import(from, file, out, head).map_err(BenchError)
        }
        Cmd::Trace { cmd: TraceCmd::Export { pcapng, trace } } => trace_export(pcapng, trace).map_err(BenchError),
        Cmd::Heads { profile: Some(profile), .. } => heads(&profile).map_err(BenchError),
        Cmd::Heads { profile: None, watch: true, seconds } => watch_readers(seconds).map_err(BenchError),
        Cmd::Heads { profile: None, .. } => pcsc_readers().map_err(BenchError),
        Cmd::Sim { cmd: SimCmd::Vpcd { profile, card, host, port, delay_us, stall_after, stall_file } } => {
            let how = crate::sim::vpcd::Behaviour { stall_after, stall_file, ..Default::default() };
            sim_vpcd(&profile, &card, &host, port, delay_us, how).map_err(BenchError)
        }
        Cmd::Sim { cmd: SimCmd::Pn532 { profile, card, link, remove_after, faults } } => {
            sim_pn532(&profile, &card, link.as_deref(), remove_after, faults).map_err(BenchError)
        }
        Cmd::Sim { cmd: SimCmd::Replay { trace, card, head, via, host, port, link, mismatches } } => {
            let card = played_card(&trace, &card, head.as_deref(), mismatches.as_deref()).map_err(BenchError)?;
            match via {
                Via::Vpcd => serve_vpcd(card, &host, port, &Default::default()),
                Via::Pn532 => serve_pn532(crate::sim::pn532::Pn532Sim::with_card(Some(card)), link.as_deref(), &[]),
            }
            .map_err(BenchError)
        }
    }
}

fn tui(profile: Option<PathBuf>, plan: Option<PathBuf>, bell: bool) -> Result<ExitCode, BenchError> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(BenchError(anyhow::anyhow!("the TUI needs a terminal; for scripts use `cardbench batch`")));
    }
    crate::tui::run(profile, plan, bell).map_err(BenchError)?;
    Ok(ExitCode::SUCCESS)
}

struct BatchArgs {
    profile: Option<PathBuf>,
    plan: Option<PathBuf>,
    batch_id: String,
    count: Option<u64>,
    logs: Option<PathBuf>,
    quiet: bool,
    force_changed: bool,
    recertify: bool,
    bell: bool,
    db: Option<String>,
}

/// The profile and plan of a batch: as given, else (a resume) as its batch.json records them.
fn batch_inputs(a: &BatchArgs) -> Result<(PathBuf, PathBuf)> {
    if let (Some(profile), Some(plan)) = (&a.profile, &a.plan) {
        return Ok((profile.clone(), plan.clone()));
    }
    // The profile may name the logs folder; without one, --logs or ./logs.
    let logs = match (&a.logs, &a.profile) {
        (Some(l), _) => l.clone(),
        (None, Some(p)) => Lab::from_profile(&crate::profile::load(p)?)?.logs,
        (None, None) => PathBuf::from("logs"),
    };
    let dir = logs.join(&a.batch_id);
    let Some(meta) = crate::batch::journal::BatchMeta::read(&dir)? else {
        anyhow::bail!(
            "batch {} has no {}: --profile and --plan are needed to start it",
            a.batch_id,
            dir.join("batch.json").display()
        );
    };
    Ok((
        a.profile.clone().unwrap_or_else(|| meta.profile.into()),
        a.plan.clone().unwrap_or_else(|| meta.plan_path.into()),
    ))
}

fn batch(a: BatchArgs) -> Result<ExitCode> {
    let (profile, plan) = batch_inputs(&a)?;
    let loaded = crate::profile::load(&profile)?;
    let lab = Lab::from_profile(&loaded)?;
    let p = crate::plan::load(&plan)?;
    crate::batch::validate(&loaded, &lab, Some(&p))?;
    if let Some(w) = lab.seeded_keys_on_real_heads() {
        eprintln!("cardbench: warning: {w}");
    }
    let quiet = a.quiet;
    let logs = a.logs.unwrap_or_else(|| lab.logs.clone());
    let control = std::sync::Arc::new(crate::batch::Control::default());
    let dir = logs.join(&a.batch_id);
    // PostgreSQL is reached now; the default SQLite file is made with the batch folder.
    let store = crate::store::Pending::new(a.db.as_deref(), &logs)?;
    let interrupt = batch_signals(&control, &dir)?;
    let opts = crate::batch::BatchOptions {
        store,
        batch_id: a.batch_id,
        count: a.count,
        logs,
        quiet,
        observer: None,
        control,
        force_changed: a.force_changed,
        recertify: a.recertify,
        bell: a.bell,
    };
    let out = crate::batch::run_batch(&loaded, lab, &p, &opts)?;
    let signal = interrupt.finish();
    let r = &out.result;
    if !quiet {
        for l in &out.per_head {
            println!("{l}");
        }
    }
    println!(
        "batch {}: {} cards ({} certified now), {} pass, {} fail, {} aborted; {}",
        r.batch_id,
        r.cards.len(),
        out.certified_now,
        r.count("pass"),
        r.count("fail"),
        r.count("aborted"),
        out.dir.join("summary.csv").display()
    );
    if let Some(sig) = signal {
        return Ok(stopped_by_signal(sig, r, &out.missing));
    }
    // An incomplete batch is not a pass: exit 1, like a failing card, and say what is missing.
    if !out.missing.is_empty() {
        let why = if out.stalled.is_empty() { String::new() } else { format!(" ({})", out.stalled.join("; ")) };
        eprintln!(
            "cardbench: batch {} is incomplete: {} of {} cards have no verdict: {}{why}; run the same command again to resume",
            r.batch_id,
            out.missing.len(),
            r.cards.len() + out.missing.len(),
            crate::batch::list_indices(&out.missing)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if r.cards.iter().all(|c| c.verdict.word() == "pass") { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// SIGINT / SIGTERM stop the batch like the TUI's stop; a second one aborts at once.
fn batch_signals(
    control: &std::sync::Arc<crate::batch::Control>,
    dir: &Path,
) -> Result<crate::batch::interrupt::Interrupt> {
    let note = format!(
        "the journal is whole; the cards in progress are certified again on resume; \
         `cardbench report {}` rebuilds the reports",
        dir.display()
    );
    crate::batch::interrupt::Interrupt::install(control.clone(), note).context("installing the SIGINT/SIGTERM handler")
}

/// A batch stopped by the operator's signal: its reports are written; exit 128 + signal.
fn stopped_by_signal(sig: i32, r: &crate::report::BatchResult, missing: &[u64]) -> ExitCode {
    let name = crate::batch::interrupt::name(sig);
    if missing.is_empty() {
        eprintln!("cardbench: batch {} stopped by {name} after its last card; every card has a verdict", r.batch_id);
    } else {
        eprintln!(
            "cardbench: batch {} stopped by {name}: {} of {} cards have no verdict: {}; run the same command again to resume",
            r.batch_id,
            missing.len(),
            r.cards.len() + missing.len(),
            crate::batch::list_indices(missing)
        );
    }
    ExitCode::from(crate::batch::interrupt::exit_code(sig))
}

/// `cardbench report DIR`: rebuild the batch's reports from batch.json and the journal.
fn report(dir: &Path) -> Result<ExitCode> {
    let rebuilt = crate::batch::reports::rebuild(dir)?;
    for n in &rebuilt.notes {
        eprintln!("cardbench: {n}");
    }
    let r = &rebuilt.result;
    let files: Vec<String> =
        crate::report::files::REPORT_FILES.iter().map(|f| dir.join(f).display().to_string()).collect();
    println!(
        "batch {}: {} of {} cards, {} pass, {} fail, {} aborted; rebuilt {}",
        r.batch_id,
        r.cards.len(),
        rebuilt.count,
        r.count("pass"),
        r.count("fail"),
        r.count("aborted"),
        files.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `cardbench report --db URL --batch ID`: the batch's reports from the results store, every
/// station's cards in one report.
fn report_from_store(db: &str, batch_id: &str, out: Option<PathBuf>) -> Result<ExitCode> {
    // Reading never makes a store: a mistyped SQLite path is an error, not an empty database.
    if let crate::store::Location::Sqlite(p) = crate::store::Location::parse(Some(db), Path::new(".")) {
        anyhow::ensure!(p.is_file(), "{}: no results store there", p.display());
    }
    let Some(store) = crate::store::Store::open(Some(db), Path::new("."))? else {
        anyhow::bail!("--db none has no batches to report");
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{batch_id}-report")));
    let r = crate::store::batches::write_reports(&store, batch_id, &out)?;
    let files: Vec<String> =
        crate::report::files::REPORT_FILES.iter().map(|f| out.join(f).display().to_string()).collect();
    println!(
        "batch {}: {} cards, {} pass, {} fail, {} aborted; from {}: {}",
        r.batch_id,
        r.cards.len(),
        r.count("pass"),
        r.count("fail"),
        r.count("aborted"),
        store.location(),
        files.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn check(plan: &Path, profile: Option<&Path>, batch: bool) -> Result<ExitCode> {
    // A file that cannot be read is reported by the plan loader, located like every input error.
    let text = std::fs::read_to_string(plan).unwrap_or_default();
    if crate::timing::spec::looks_like_spec(&text) {
        anyhow::ensure!(!batch, "{}: --batch checks a plan, and this is a timing spec", plan.display());
        return check_timing(plan, profile);
    }
    let p = crate::plan::load(plan)?;
    if let Some(profile) = profile {
        let loaded = crate::profile::load(profile)?;
        let lab = Lab::from_profile(&loaded)?;
        if batch {
            crate::batch::validate(&loaded, &lab, Some(&p))?;
        } else {
            p.bind_to(&lab.heads)?;
            p.bind_virtual(|n| lab.head_index(n).is_some_and(|i| lab.heads[i].head.info().driver == "virtual"))?;
            p.bind_machines(&lab.keyset)?;
            // The profile's batch set-up is checked too: a typo in it fails only when a batch starts.
            if loaded.profile.batch.is_some() {
                crate::batch::validate(&loaded, &lab, None)?;
            }
        }
    } else if batch {
        anyhow::bail!("check --batch needs --profile (the lab whose [batch] certifies the cards)");
    }
    let steps: usize = p.cases.iter().map(|c| c.steps.len()).sum::<usize>() + p.setup.len() + p.teardown.len();
    println!("{}: plan {} {} is valid: {} cases, {} steps", plan.display(), p.id, p.version, p.cases.len(), steps);
    Ok(ExitCode::SUCCESS)
}

fn coverage(plan: &Path, format: crate::coverage::render::Format) -> Result<ExitCode> {
    let p = crate::plan::load(plan)?;
    let reqs = crate::plan::verifies::spec()?;
    let c = crate::coverage::Coverage::of(&p, reqs);
    let shown = crate::coverage::render::render(&c, &plan.display().to_string(), format);
    // `out` ends the text with its own newline.
    println!("{}", shown.strip_suffix('\n').unwrap_or(&shown));
    if reqs.is_empty() {
        eprintln!(
            "cardbench: {} defines no requirement: there is nothing to cover",
            crate::spec::requirements::SPEC_PATH
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if c.complete() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn tear(target: &str, profile: &Path, only: &[String], settle: &str, quiet: bool) -> Result<ExitCode> {
    use crate::tear::{campaign, matrix, sequence, settle as st, TearError};
    let settle = st::by_name(settle).with_context(|| format!("--settle {settle}: one of {}", st::NAMES))?;
    let loaded = crate::profile::load(profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    let templates = campaign::templates(&loaded)?;
    let plan_mode = target.ends_with(".toml") || Path::new(target).is_file();
    let (seqs, mut skipped) = if plan_mode {
        let plan = crate::plan::load(Path::new(target))?;
        plan.bind_to(&lab.heads)?;
        plan.bind_machines(&lab.keyset)?;
        let names: Vec<String> = lab.heads.iter().map(|h| h.name.clone()).collect();
        let resolve = |n: &str| lab.head_index(n).map(|i| names[i].clone());
        let (all, skipped) = sequence::from_plan(&plan, resolve)?;
        let keep =
            |s: &sequence::Sequence| only.is_empty() || only.iter().any(|c| s.name.starts_with(&format!("{c} ")));
        (all.into_iter().filter(keep).collect(), skipped)
    } else {
        let now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
        let mut slots: Vec<sequence::Slot> =
            templates.iter().map(|t| sequence::Slot { head: t.head.clone(), card: t.card.clone() }).collect();
        slots.extend(campaign::live_slots(&loaded, &mut lab, now));
        let mut names: Vec<String> = only.to_vec();
        if target != "all" {
            names.insert(0, target.to_string());
        }
        (sequence::builtin(&slots, &lab.keyset, &names)?, Vec::new())
    };
    anyhow::ensure!(!seqs.is_empty(), "no sequence left to fault (--sequence {})", only.join(" "));
    let now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    let mut c = campaign::Campaign::new(&mut lab, templates, now, settle.as_ref());
    let mut rows = Vec::new();
    let mut ran = 0;
    for s in &seqs {
        match c.sequence(s) {
            Ok(r) => {
                // On real heads a sequence may have no point run (its `not run:` line says why).
                ran += usize::from(!r.is_empty());
                rows.extend(r);
            }
            // A plan's case may depend on state earlier cases left on the card: its steps
            // then cannot run from fresh cards, which the report says.
            Err(e @ (TearError::Setup { .. } | TearError::Baseline { .. })) if plan_mode => skipped.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = std::io::stdout().lock();
    let printed = (|| -> std::io::Result<matrix::Totals> {
        use std::io::Write;
        matrix::write_rows(&mut out, &rows, quiet)?;
        writeln!(out)?;
        let t = matrix::write_totals(&mut out, &rows)?;
        for s in &skipped {
            writeln!(out, "skipped: {s}")?;
        }
        for n in c.notes() {
            writeln!(out, "not run: {n}")?;
        }
        let mut line = matrix::summary(&t, ran, settle.name());
        if !skipped.is_empty() {
            line.push_str(&format!(" ({} engine steps skipped)", skipped.len()));
        }
        writeln!(out, "{line}")?;
        Ok(t)
    })();
    let totals = match printed {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => matrix::Totals::of(&rows),
        Err(e) => return Err(e).context("writing the report"),
    };
    Ok(if totals.violations() > 0 {
        ExitCode::from(1)
    } else if rows.is_empty() {
        // Nothing was faulted (e.g. real cards left unsettled): the campaign did not run.
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn recover(
    profile: &Path,
    heads: &[String],
    trace: Option<&Path>,
    run_id: Option<String>,
    logs: Option<PathBuf>,
) -> Result<ExitCode> {
    use crate::engine::{journal::Journal, recover::recover, Terminal};
    use crate::link::Link;
    use rand_core::SeedableRng;
    let loaded = crate::profile::load(profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    if heads.len() > 2 {
        anyhow::bail!("recover takes one or two --head");
    }
    let mut idx = Vec::new();
    for h in heads {
        let i = lab.head_index(h).with_context(|| format!("{}: no head or role '{h}'", profile.display()))?;
        if idx.contains(&i) {
            anyhow::bail!("--head {h} names the same head twice");
        }
        idx.push(i);
    }
    crate::head::usable::open(&mut lab.heads, idx.iter().copied())?;
    // What the terminal knows of the interrupted run, read before any card is touched.
    let journal = match trace {
        Some(t) => Journal::from_trace(&crate::trace::read(t).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => Journal::new(),
    };
    let run_id = run_id.unwrap_or_else(|| default_run_id("recover"));
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
        anyhow::bail!("run id '{run_id}' must be a plain folder name");
    }
    let dir = logs.unwrap_or_else(|| lab.logs.clone()).join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let trace_path = dir.join("trace.csv");
    let sink = TraceCsv::create(&trace_path, &run_id, "recover")
        .with_context(|| format!("cannot create {}", trace_path.display()))?;
    let (rec, rx) = Recorder::new("recover");
    let sinks = sinks::spawn(rx, vec![Box::new(sink)]);
    let now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    let seed: [u8; 32] =
        Sha256::new().chain_update(b"cardbench recover").chain_update(run_id.as_bytes()).finalize().into();
    let mut t = Terminal::new(&lab.keyset, now, rand_chacha::ChaCha20Rng::from_seed(seed));
    t.journal = journal;
    let result = (|| -> Result<_> {
        let mut open: Vec<&mut crate::lab::LabHead> = Vec::new();
        for (n, h) in lab.heads.iter_mut().enumerate() {
            if idx.contains(&n) {
                open.push(h);
            }
        }
        // Keep the order the operator gave (receiver and sender are told apart by the cards).
        open.sort_by_key(|h| heads.iter().position(|x| *x == h.name || *x == h.role));
        for h in open.iter_mut() {
            if h.head.atr().is_none() {
                h.head.power_on().with_context(|| format!("head {}", h.name))?;
            }
        }
        let mut links: Vec<Link> = open.into_iter().map(|h| Link::new(h.head.as_mut(), &rec)).collect();
        let mut refs: Vec<&mut Link> = links.iter_mut().collect();
        Ok(recover(&mut refs, &mut t)?)
    })();
    drop(rec);
    let sink_errors = sinks.join().unwrap_or_else(|_| vec!["sink thread panicked".into()]);
    let r = result?;
    if let Some(e) = sink_errors.first() {
        anyhow::bail!("writing {}: {e}", trace_path.display());
    }
    for f in &r.findings {
        println!("{f}");
    }
    println!("recover: {}; trace {}", r.verdict(), trace_path.display());
    Ok(if r.settled() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn replay(a: &crate::replay::ReplayArgs, mode: crate::replay::Mode) -> Result<ExitCode> {
    if a.run_id.is_empty() || a.run_id.contains(['/', '\\']) || a.run_id.starts_with('.') {
        anyhow::bail!("run id '{}' must be a plain folder name", a.run_id);
    }
    if mode == crate::replay::Mode::Session {
        return replay_session(a);
    }
    anyhow::ensure!(
        a.timing_threshold.is_finite() && a.timing_threshold >= 0.0,
        "--timing-threshold {}: a percentage >= 0",
        a.timing_threshold
    );
    let w = crate::replay::run_bytes(a)?;
    let o = &w.outcome;
    if !o.timing.is_empty() && !a.quiet {
        println!("timing, median wire time per command (captured → replayed; ! beyond {}%):", a.timing_threshold);
        for t in &o.timing {
            println!("{}", t.render());
        }
    }
    if let Some(line) = o.cut_last_row {
        eprintln!(
            "cardbench: warning: {}:{line}: last row cut short (a killed run); replayed up to it",
            a.source.display()
        );
    }
    let flagged = o.timing.iter().filter(|t| t.flagged).count();
    let stopped = o.stopped_at_line.map_or(String::new(), |l| format!(", stopped at line {l}"));
    println!(
        "replay {}: {} commands, {} matched, {} diverged{stopped}, {} in doubt in the capture, {} perso rows made again, {} timing flags; {}",
        a.source.display(),
        o.commands,
        o.matched,
        o.divergences,
        o.in_doubt.len(),
        o.skipped_perso,
        flagged,
        w.dir.join("replay.json").display()
    );
    Ok(if o.matched_all() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `cardbench replay --mode session`: the traced steps re-run through the engines.
fn replay_session(a: &crate::replay::ReplayArgs) -> Result<ExitCode> {
    let (dir, o) = crate::replay::session::run_cli(a)?;
    for d in &o.divergences {
        crate::print::out(format_args!("{}", d.render(&a.source)));
    }
    if !a.quiet {
        for n in &o.not_rerun {
            crate::print::out(format_args!(
                "not re-run  {}:{} ({} rows): {}",
                a.source.display(),
                n.line,
                n.rows,
                n.what
            ));
        }
        for n in &o.notes {
            crate::print::out(format_args!("note  {}:{}: {}", a.source.display(), n.line, n.what));
        }
    }
    let stopped = o.stopped_at_line.map_or(String::new(), |l| format!(", stopped at line {l}"));
    crate::print::out(format_args!(
        "replay {} (session): {} steps re-run, {} rows compared, {} matched, {} diverged{stopped}, {} not re-run; {}",
        a.source.display(),
        o.units,
        o.rows_compared,
        o.rows_matched,
        o.divergences.len(),
        o.not_rerun.len(),
        dir.join("replay.json").display()
    ));
    Ok(if o.matched_all() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn trace_diff(a: &Path, b: &Path, json: bool, threshold: f64) -> Result<ExitCode> {
    anyhow::ensure!(threshold.is_finite() && threshold >= 0.0, "--timing-threshold {threshold}: a percentage >= 0");
    let r = crate::replay::diff::diff(a, b, threshold)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for l in r.render().lines() {
            println!("{l}");
        }
    }
    Ok(if r.same() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn keys_init(dir: &Path, force: bool) -> Result<ExitCode> {
    let ks = Keyset::generate(wall_clock()?);
    let files = ks.save(dir, force)?;
    println!("test keyset written (TEST KEYS ONLY):");
    for f in files {
        println!("  {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The keyset file a profile names with `[keyset] path`, or why there is none.
fn profile_keyset_file(profile: &Path) -> Result<PathBuf> {
    let l = crate::profile::load(profile)?;
    match &l.profile.keyset.path {
        Some(p) => Ok(l.path.parent().unwrap_or(Path::new(".")).join(p.get_ref())),
        None => anyhow::bail!(
            "{}: the keyset is derived from its [keyset] seed; its CRL is the profile's [keyset] revoked list",
            profile.display()
        ),
    }
}

fn keys_revoke(serial: &str, keyset: Option<&Path>, profile: Option<&Path>) -> Result<ExitCode> {
    let serial = crate::keys::parse_serial(serial)?;
    let file = match (keyset, profile) {
        (Some(k), _) => crate::keys::keyset_file(k),
        (None, Some(p)) => profile_keyset_file(p)?,
        (None, None) => anyhow::bail!("give --keyset DIR or --profile PROFILE"),
    };
    if crate::keys::revoke(&file, serial)? {
        println!("{}: serial {serial:08X} revoked (crl.bin rewritten)", file.display());
    } else {
        println!("{}: serial {serial:08X} was already revoked", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn keys_revoke_machine(name: &str, keyset: Option<&Path>, profile: Option<&Path>) -> Result<ExitCode> {
    let file = match (keyset, profile) {
        (Some(k), _) => crate::keys::keyset_file(k),
        (None, Some(p)) => profile_keyset_file(p)?,
        (None, None) => anyhow::bail!("give --keyset DIR or --profile PROFILE"),
    };
    let (serial, added) = crate::keys::revoke_machine(&file, name)?;
    let what = if added { "revoked (machine-crl.bin rewritten)" } else { "was already revoked" };
    println!("{}: machine {name} (serial {serial:08X}) {what}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Seconds since the epoch as the keyset and the CRL store dates.
fn wall_clock() -> Result<u32> {
    let t = chrono::Utc::now().timestamp();
    u32::try_from(t).map_err(|_| anyhow::anyhow!("the system clock ({t}) is outside the u32 dates cards store"))
}

fn keys_crl(keyset: Option<&Path>, profile: Option<&Path>, issued: Option<&str>, days: u32) -> Result<ExitCode> {
    let file = match (keyset, profile) {
        (Some(k), _) => crate::keys::keyset_file(k),
        (None, Some(p)) => profile_keyset_file(p)?,
        (None, None) => anyhow::bail!("give --keyset DIR or --profile PROFILE"),
    };
    let issued = match issued {
        Some(s) => crate::profile::parse_instant(s)
            .ok_or_else(|| anyhow::anyhow!("--issued '{s}' is not an RFC 3339 time between 1970 and 2106"))?,
        None => wall_clock()?,
    };
    anyhow::ensure!(days > 0, "--days 0: a CRL must stay current for at least a day");
    let crl = crate::keys::issue_crl(&file, issued, crate::keys::crl_next_update(issued, days))?;
    println!(
        "{}: CRL issued {}, next update {}, {} revoked serial(s) (crl.bin rewritten)",
        file.display(),
        crate::keys::rfc3339(crl.issued),
        crate::keys::rfc3339(crl.next_update),
        crl.revoked.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn keys_show(keyset: Option<&Path>, profile: Option<&Path>) -> Result<ExitCode> {
    let (what, ks) = match (keyset, profile) {
        (Some(k), _) => {
            let file = crate::keys::keyset_file(k);
            (file.display().to_string(), Keyset::load(&file)?)
        }
        (None, Some(p)) => {
            let l = crate::profile::load(p)?;
            let source = match &l.profile.keyset.path {
                Some(k) => format!(
                    "{} (its keyset file {k}, plus the profile's revoked serials)",
                    p.display(),
                    k = k.get_ref()
                ),
                None => format!("{} (derived from its [keyset] seed)", p.display()),
            };
            (source, Lab::from_profile(&l)?.keyset)
        }
        (None, None) => anyhow::bail!("give a keyset DIR or --profile PROFILE"),
    };
    println!("keyset {what}: TEST KEYS ONLY");
    println!("  {:<12} {}", "fingerprint", ks.fingerprint());
    for part in ks.public_parts() {
        let fp = hex::encode(Sha256::digest(&part.bytes));
        println!("  {:<12} {} [sha256 {}]", part.name, part.what, &fp[..16]);
    }
    let ids = |m: &std::collections::BTreeMap<u32, crate::secret::Key16>| {
        m.keys().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    };
    println!("  {:<12} ids {} (secret: not shown)", "update keys", ids(&ks.update_keys));
    println!("  {:<12} ids {} (secret: not shown)", "transfer", ids(&ks.transfer_keys));
    Ok(ExitCode::SUCCESS)
}

fn watch_readers(seconds: Option<u64>) -> Result<ExitCode> {
    use crate::head::pcsc_head::{watch, PresenceEvent};
    use std::io::Write;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::unbounded();
    let s2 = stop.clone();
    let watcher = std::thread::spawn(move || watch(tx, &s2, std::time::Duration::from_millis(200)));
    let deadline = seconds.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut out = std::io::stdout();
    loop {
        let wait = deadline.map_or(std::time::Duration::from_millis(500), |d| {
            d.saturating_duration_since(std::time::Instant::now()).min(std::time::Duration::from_millis(500))
        });
        match rx.recv_timeout(wait) {
            Ok(e) => {
                let line = match e {
                    PresenceEvent::ReaderAdded(r) => format!("reader added    {r}"),
                    PresenceEvent::ReaderRemoved(r) => format!("reader removed  {r}"),
                    PresenceEvent::CardInserted { reader, atr } => {
                        format!("card inserted   {reader}  {}", hex::encode_upper(atr))
                    }
                    PresenceEvent::CardRemoved(r) => format!("card removed    {r}"),
                };
                let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                if writeln!(out, "{stamp} {line}").and_then(|_| out.flush()).is_err() {
                    break; // stdout closed (a pipe): nothing more to tell anyone
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    match watcher.join() {
        Ok(r) => r.map_err(pcsc_down)?,
        Err(_) => anyhow::bail!("reader watcher panicked"),
    }
    Ok(ExitCode::SUCCESS)
}

/// pcscd could not be asked: the error with what to try.
fn pcsc_down(e: crate::head::HeadError) -> anyhow::Error {
    anyhow::anyhow!("PC/SC: {e}; {}", crate::head::usable::hint("pcsc", &e))
}

fn pcsc_readers() -> Result<ExitCode> {
    let readers = crate::head::pcsc_head::list_readers().map_err(pcsc_down)?;
    if readers.is_empty() {
        println!("no PC/SC readers");
    }
    for r in readers {
        let state = if r.present { "card" } else { "empty" };
        println!("{:<40} {state:<6} {}", r.name, hex::encode_upper(&r.atr));
    }
    Ok(ExitCode::SUCCESS)
}

/// A personalized virtual card from a profile's `[[card]]` entry, with its modelled service time.
pub fn profile_card(
    profile: &Path,
    card: &str,
) -> Result<(crate::card::VirtualCard, crate::head::service::ServiceModel)> {
    let loaded = crate::profile::load(profile)?;
    let lab = Lab::from_profile(&loaded)?;
    let spec = loaded
        .profile
        .cards
        .iter()
        .find(|c| c.get_ref().name == card)
        .with_context(|| format!("{}: no [[card]] named '{card}'", profile.display()))?;
    // Made as a virtual head's card is: defects and allowed-variant options included.
    let vc = crate::lab::build_card(&loaded, spec, &lab.keyset)?;
    Ok((vc, crate::lab::card_service(&loaded, spec)?))
}

/// The card `card` of `trace` for `sim replay`, logging its mismatches on stderr and to
/// `mismatches`.
fn played_card(
    trace: &Path,
    card: &str,
    head: Option<&str>,
    mismatches: Option<&Path>,
) -> Result<crate::replay::card::TraceCard> {
    use crate::replay::card::{MismatchLog, TraceCard};
    // One line: a trace error names its file already, the others get it here.
    let tc = TraceCard::open(trace, card, head).map_err(|e| match e {
        crate::replay::card::ReplayCardError::Trace(t) => anyhow::anyhow!("{t}"),
        e => anyhow::anyhow!("{}: {e}", trace.display()),
    })?;
    let log = MismatchLog::new("sim replay", mismatches, true)?;
    eprintln!(
        "playing card {} of {} (trace head {}, {} commands); commands off the capture get {:04X}",
        card.to_ascii_uppercase(),
        trace.display(),
        tc.trace_head(),
        tc.commands(),
        crate::replay::card::MISMATCH_SW
    );
    Ok(tc.with_log(log))
}

fn sim_vpcd(
    profile: &Path,
    card: &str,
    host: &str,
    port: u16,
    delay_us: u64,
    mut how: crate::sim::vpcd::Behaviour,
) -> Result<ExitCode> {
    let (card, model) = profile_card(profile, card)?;
    how.service = match delay_us {
        0 => model,
        us => crate::head::service::ServiceModel::fixed(std::time::Duration::from_micros(us)),
    };
    if !how.service.is_zero() {
        eprintln!("modelled service time: {}", how.service.describe());
    }
    serve_vpcd(card, host, port, &how)
}

fn serve_vpcd<C: crate::sim::card::SimCard>(
    card: C,
    host: &str,
    port: u16,
    how: &crate::sim::vpcd::Behaviour,
) -> Result<ExitCode> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    eprintln!("serving card {} to vpcd at {host}:{port}", hex::encode_upper(card.card_id()));
    crate::sim::vpcd::serve(host, port, card, how, stop).with_context(|| format!("vpcd bridge {host}:{port}"))?;
    Ok(ExitCode::SUCCESS)
}

fn parse_fault(s: &str) -> std::result::Result<crate::sim::pn532::FaultRule, String> {
    s.parse()
}

fn sim_pn532(
    profile: &Path,
    card: &str,
    link: Option<&Path>,
    remove_after: Option<u64>,
    faults: Vec<crate::sim::pn532::FaultRule>,
) -> Result<ExitCode> {
    let (card, model) = profile_card(profile, card)?;
    if !model.is_zero() {
        eprintln!("modelled service time: {}", model.describe());
    }
    let mut sim = crate::sim::pn532::Pn532Sim::new(Some(card));
    sim.set_service(model);
    sim.remove_after(remove_after);
    let shown_faults: Vec<String> = faults.iter().map(ToString::to_string).collect();
    sim.set_faults(faults);
    serve_pn532(sim, link, &shown_faults)
}

/// Serve `sim` on a new pseudo-terminal (printing its path on stdout) until killed.
fn serve_pn532<C: crate::sim::card::SimCard + 'static>(
    sim: crate::sim::pn532::Pn532Sim<C>,
    link: Option<&Path>,
    shown_faults: &[String],
) -> Result<ExitCode> {
    use crate::sim::pn532::PtySim;
    use std::io::Write as _;
    let card_id = sim.card().map_or([0; 8], |c| c.card_id());
    let id = hex::encode_upper(card_id);
    let uid = hex::encode_upper(crate::sim::pn532::uid_of(card_id));
    let mut pty = PtySim::spawn(sim).context("cannot create a pseudo-terminal")?;
    if let Some(l) = link {
        pty.symlink(l).with_context(|| format!("cannot link {}", l.display()))?;
    }
    println!("{}", pty.path().display());
    std::io::stdout().flush()?;
    let shown = link.map_or_else(|| pty.path().display().to_string(), |l| l.display().to_string());
    eprintln!("PN532 simulator on {shown}: card {id} (UID {uid}) in the field; serving until killed");
    if !shown_faults.is_empty() {
        eprintln!("injecting link faults: {}", shown_faults.join(", "));
    }
    pty.wait().context("PN532 simulator")?;
    Ok(ExitCode::SUCCESS)
}

fn heads(profile: &Path) -> Result<ExitCode> {
    let loaded = crate::profile::load(profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    // Each head opened on its own: every unusable one is listed (and named on stderr).
    let unusable = crate::head::usable::open_each(&mut lab.heads);
    println!("{:<8} {:<8} {:<24} {:<8} {:<6} ATR", "HEAD", "DRIVER", "READER", "ROLE", "CARD");
    for (i, h) in lab.heads.iter_mut().enumerate() {
        if let Some((_, u)) = unusable.iter().find(|(j, _)| *j == i) {
            let info = h.head.info();
            println!("{:<8} {:<8} {:<24} {:<8} {:<6} ({})", info.name, info.driver, info.reader, h.role, "?", u.error);
            continue;
        }
        let present = h.head.card_present();
        let atr = match present {
            Ok(true) => h.head.power_on().map(hex::encode_upper).unwrap_or_else(|e| format!("({e})")),
            Ok(false) => String::new(),
            Err(ref e) => format!("({e})"),
        };
        let info = h.head.info().clone();
        let card = match present {
            Ok(true) => "yes",
            Ok(false) => "no",
            Err(_) => "?",
        };
        println!("{:<8} {:<8} {:<24} {:<8} {:<6} {atr}", info.name, info.driver, info.reader, h.role, card);
    }
    for (_, u) in &unusable {
        eprintln!("cardbench: error: {u}");
    }
    // A listed head that cannot be used is the bench's failure: exit 2, like every command.
    Ok(if unusable.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn default_run_id(plan_id: &str) -> String {
    let suffix: u16 = rand_core::RngCore::next_u32(&mut rand_core::OsRng) as u16;
    format!("{}-{plan_id}-{suffix:04x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))
}

fn run(
    plan: &Path,
    profile: &Path,
    run_id: Option<String>,
    logs: Option<PathBuf>,
    quiet: bool,
    terminal_seed_from: Option<&Path>,
    db: Option<&str>,
) -> Result<ExitCode, BenchError> {
    // Everything is validated before a directory is made or a byte is sent.
    let prepared = (|| -> Result<_> {
        let loaded = crate::profile::load(profile)?;
        let lab = Lab::from_profile(&loaded)?;
        // The profile is checked whole: its batch set-up too, as `check` does.
        if loaded.profile.batch.is_some() {
            crate::batch::validate(&loaded, &lab, None)?;
        }
        let plan = crate::plan::load(plan)?;
        plan.bind_to(&lab.heads)?;
        plan.bind_virtual(|n| lab.head_index(n).is_some_and(|i| lab.heads[i].head.info().driver == "virtual"))?;
        plan.bind_machines(&lab.keyset)?;
        let seed = match terminal_seed_from {
            Some(t) => Some(crate::replay::card::recorded_terminal_seed(t).with_context(|| {
                format!(
                    "--terminal-seed-from {}: no `terminal_rng = \"seeded:…\"` in the run.json beside it \
                     (a run on real readers draws its randoms from the OS and records none)",
                    t.display()
                )
            })?),
            None => None,
        };
        Ok((lab, plan, seed))
    })();
    let (mut lab, plan, fixed_seed) = prepared.map_err(BenchError)?;
    // The heads the plan talks to must be usable before a folder is made.
    let used = plan_heads(&lab, &plan);
    crate::head::usable::open(&mut lab.heads, used.iter().copied()).map_err(|e| BenchError(e.into()))?;
    if let Some(w) = lab.seeded_keys_on_real_heads() {
        eprintln!("cardbench: warning: {w}");
    }
    if fixed_seed.is_some() && lab.heads.iter().any(|h| !crate::lab::simulated(h.head.info().driver)) {
        eprintln!(
            "cardbench: warning: the terminal's randoms repeat a captured run (--terminal-seed-from): \
             for cards played from that capture, never for proving a real card's replay protection"
        );
    }
    let run_id = run_id.unwrap_or_else(|| default_run_id(&plan.id));
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
        return Err(BenchError(anyhow::anyhow!("run id '{run_id}' must be a plain folder name")));
    }
    let logs = logs.unwrap_or_else(|| lab.logs.clone());
    let store = crate::store::open_arc(db, &logs).map_err(|e| BenchError(e.into()))?;
    let started = crate::store::now();
    let dir = logs.join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display())).map_err(BenchError)?;
    let trace_path = dir.join("trace.csv");
    let trace = TraceCsv::create(&trace_path, &run_id, &plan.id)
        .with_context(|| format!("cannot create {}", trace_path.display()))
        .map_err(BenchError)?;
    let (rec, rx) = Recorder::new(&plan.id);
    let sink_list: Vec<Box<dyn Sink>> = vec![Box::new(trace), Box::new(Console::new(crate::print::Stdout, quiet))];
    let sinks = sinks::spawn(rx, sink_list);
    rec.send(Event::RunStarted {
        run_id: run_id.clone(),
        plan: plan.path.display().to_string(),
        profile: profile.display().to_string(),
    });
    let now = lab.clock.unwrap_or_else(|| chrono::Utc::now().timestamp() as u32);
    // Replay heads play a captured run: the terminal draws that run's randoms again.
    let rng = match fixed_seed {
        Some(seed) => crate::lab::TerminalRng::Seeded(seed),
        None => crate::lab::terminal_rng(&lab.heads, || {
            lab.terminal_seed.unwrap_or_else(|| {
                Sha256::new().chain_update(b"cardbench terminal").chain_update(&plan.id).finalize().into()
            })
        }),
    };
    crate::trace::write_run_header(&dir, &run_id, &plan, &profile.display().to_string(), &rng)
        .with_context(|| format!("cannot write {}", dir.join("run.json").display()))
        .map_err(BenchError)?;
    let results = run_plan(&plan, &mut lab.heads, &rec, &lab.keyset, now, rng.seed());
    drop(rec);
    let sink_errors = sinks.join().unwrap_or_else(|_| vec!["sink thread panicked".into()]);
    let count = |s: CaseStatus| results.iter().filter(|r| r.status == s).count();
    let (passed, failed, skipped, errors) =
        (count(CaseStatus::Passed), count(CaseStatus::Failed), count(CaseStatus::Skipped), count(CaseStatus::Error));
    let (blocked, not_run) = (count(CaseStatus::Blocked), count(CaseStatus::NotRun));
    // Blocked and not-run cases are counted apart, and only when there are any.
    let mut apart = String::new();
    if blocked > 0 {
        apart += &format!(", {blocked} blocked");
    }
    if not_run > 0 {
        apart += &format!(", {not_run} not run");
    }
    println!(
        "{}: {} cases, {passed} passed, {failed} failed, {skipped} skipped, {errors} errors{apart}; trace {}",
        plan.id,
        results.len(),
        trace_path.display()
    );
    if let Some(e) = sink_errors.first() {
        return Err(BenchError(anyhow::anyhow!("writing run output: {e}")));
    }
    if let Some(s) = &store {
        let trace = trace_path.display().to_string();
        let r = crate::store::runs::RunRecord {
            run_id: &run_id,
            plan_id: &plan.id,
            plan_version: &plan.version,
            profile: &profile.display().to_string(),
            started: &started,
            finished: &crate::store::now(),
            trace: &trace,
            cases: &results,
        };
        s.record_run(&r, &crate::store::station_name(&dir)).map_err(|e| BenchError(e.into()))?;
    }
    // Errors because pcscd stopped or a reader went away during the run are the bench's, not
    // the cards': exit 2 naming the head (the trace above is complete).
    if errors > 0 {
        if let Some(u) = crate::head::usable::lost(&mut lab.heads, used) {
            return Err(BenchError(anyhow::Error::from(u).context(format!("run {run_id} could not finish"))));
        }
    }
    // A blocked or not-run case always has a root cause; count them all the same.
    Ok(if failed + errors + blocked + not_run == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Lab indices of the heads a plan talks to (names or roles).
fn plan_heads(lab: &Lab, plan: &crate::plan::Plan) -> Vec<usize> {
    let mut v: Vec<usize> = plan.head_names().iter().filter_map(|n| lab.head_index(n)).collect();
    v.extend(plan.roles.iter().filter_map(|(r, _)| lab.head_index(r)));
    v.sort_unstable();
    v.dedup();
    v
}

// ---- cardbench time compare (issue 8): two timing results, op by op ----------------------------

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TimeArgs {
    #[command(subcommand)]
    pub cmd: Option<TimeCmd>,
    #[command(flatten)]
    pub run: Option<TimeRunArgs>,
}

/// `cardbench time <spec>`: time the card's own work (docs/timing.md): warm-up, then N
/// iterations of each op of a timing spec interleaved with its baseline, per head in
/// parallel; samples.csv, trace.csv, run.json and the statistics under logs/<run-id>/.
#[derive(clap::Args, Debug)]
pub struct TimeRunArgs {
    /// Timing spec (test-plans/timing/*.toml).
    pub spec: PathBuf,
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Head (name or role) whose card is timed; repeat for several heads in parallel
    /// (default: the spec's `[heads] dut`).
    #[arg(long = "head")]
    pub heads: Vec<String>,
    /// Peer head for the two-card ops, one per --head in the same order (default: the
    /// spec's `[heads] peer`).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// Measured iterations per op (default: the spec's `iterations`).
    #[arg(short = 'n')]
    pub iterations: Option<u32>,
    /// Untimed warm-up iterations per op (default: the spec's `warmup`).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Stop each op's measured iterations after this many seconds, even before N.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Let CPUs enter deep idle states during the run (by default the run holds
    /// /dev/cpu_dma_latency at 0 µs where it may, see docs/timing.md).
    #[arg(long)]
    pub no_pm_qos: bool,
    #[arg(long)]
    pub run_id: Option<String>,
    /// Directory for run folders (default: the profile's `logs`, else ./logs).
    #[arg(long)]
    pub logs: Option<PathBuf>,
    /// Results store (docs/results-store.md): default `<logs>/cardbench.sqlite`;
    /// `postgres://…` for a lab's shared database; `none` for files only.
    #[arg(long, env = "CARDBENCH_DB")]
    pub db: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TimeCmd {
    /// Compare two timing results op by op: Hodges-Lehmann shift of B against A with its 95%
    /// CI, Mann-Whitney p-value, verdict faster / slower / no significant difference.
    /// Exit 0 no significant regression beyond the threshold, 1 one, 2 bad input.
    Compare(CompareArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Reference: a run folder (logs/<run-id>/ with samples.csv), its timing.json or
    /// samples.csv, or a lot folder whose run folders are all pooled.
    pub a: PathBuf,
    /// Candidate, in the same forms as A.
    pub b: PathBuf,
    /// More runs pooled into A (repeat).
    #[arg(long = "also-a", value_name = "PATH")]
    pub also_a: Vec<PathBuf>,
    /// More runs pooled into B (repeat).
    #[arg(long = "also-b", value_name = "PATH")]
    pub also_b: Vec<PathBuf>,
    /// Smallest relative shift of the median that counts (a percentage of A's median).
    #[arg(long, default_value = "2%")]
    pub threshold: String,
    /// What is compared: card (op − baseline of the same iteration), op (the op's own
    /// duration), or auto (card when every run of both sides measured a baseline).
    #[arg(long, default_value = "auto", value_parser = ["auto", "card", "op"])]
    pub measure: String,
    /// One observation per sample (every sample of every card pooled) or per card (each
    /// card's median; the question "do the lots' cards differ", N = cards).
    #[arg(long, default_value = "sample", value_parser = ["sample", "card"])]
    pub unit: String,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

fn time_compare(args: &CompareArgs) -> Result<ExitCode> {
    use crate::timing::compare::{compare, parse_threshold, render, render_histograms, MeasureChoice, Side, Unit};
    let threshold = parse_threshold(&args.threshold)?;
    let choice = match args.measure.as_str() {
        "card" => MeasureChoice::Card,
        "op" => MeasureChoice::Op,
        _ => MeasureChoice::Auto,
    };
    let side = |first: &PathBuf, more: &[PathBuf]| {
        let paths: Vec<PathBuf> = std::iter::once(first.clone()).chain(more.iter().cloned()).collect();
        Side::load(&paths)
    };
    let a = side(&args.a, &args.also_a)?;
    let b = side(&args.b, &args.also_b)?;
    let unit = if args.unit == "card" { Unit::Card } else { Unit::Sample };
    let c = compare(&a, &b, threshold, choice, unit);
    if c.ops.is_empty() {
        anyhow::bail!("{} and {}: no op measured on both sides", c.a, c.b);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        println!("{}", render(&c).trim_end());
        println!();
        println!("{}", render_histograms(&a, &b, &c).trim_end());
    }
    Ok(if c.regressed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

// ---- cardbench time (issue 8): timing specs, checked and run -------------------------------

fn check_timing(path: &Path, profile: Option<&Path>) -> Result<ExitCode> {
    let spec = crate::timing::spec::load(path)?;
    if let Some(profile) = profile {
        let loaded = crate::profile::load(profile)?;
        let lab = Lab::from_profile(&loaded)?;
        crate::timing::run::bind(&spec, &lab.heads, &[], &[])?;
    }
    println!(
        "{}: timing spec {} {} is valid: {} ops, {} iterations after {} warm-up",
        path.display(),
        spec.id,
        spec.version,
        spec.ops.len(),
        spec.iterations,
        spec.warmup
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn time(
    spec_path: &Path,
    profile: &Path,
    heads: &[String],
    peers: &[String],
    opts: &crate::timing::run::Options,
    run_id: Option<String>,
    logs: Option<PathBuf>,
    db: Option<&str>,
) -> Result<ExitCode> {
    use crate::timing::run;
    if opts.iterations == Some(0) {
        anyhow::bail!("-n must be at least 1");
    }
    if opts.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        anyhow::bail!("--seconds must be a positive number");
    }
    // Everything is validated before a directory is made or a byte is sent.
    let loaded = crate::profile::load(profile)?;
    let mut lab = Lab::from_profile(&loaded)?;
    let spec = crate::timing::spec::load(spec_path)?;
    let groups = run::bind(&spec, &lab.heads, heads, peers)?;
    crate::head::usable::open(&mut lab.heads, groups.iter().flat_map(|g| std::iter::once(g.dut).chain(g.peer)))?;
    if let Some(w) = lab.seeded_keys_on_real_heads() {
        eprintln!("cardbench: warning: {w}");
    }
    let run_id = run_id.unwrap_or_else(|| default_run_id(&spec.id));
    if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
        anyhow::bail!("run id '{run_id}' must be a plain folder name");
    }
    let logs = logs.unwrap_or_else(|| lab.logs.clone());
    let store = crate::store::open_arc(db, &logs)?;
    let started = crate::store::now();
    let dir = logs.join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names: Vec<String> = groups.iter().map(|g| lab.heads[g.dut].name.clone()).collect();
    println!("timing {} on head {}: {}", spec.id, names.join(", "), dir.display());
    let r = run::execute(&spec, &mut lab, &groups, opts, &dir, &run_id, profile)?;
    for g in &r.groups {
        let lock = if g.exclusive { "transaction held" } else { "no other application can reach it" };
        println!("head {} ({} {}): card {} ATR {} ({lock})", g.head, g.driver, g.reader, g.card_id, g.atr);
    }
    println!("host timer before: {}", r.jitter_before);
    println!("host timer after:  {}", r.jitter_after);
    println!("CPU idle states: {}", r.pm_qos);
    let out = run::outputs(&dir, &run_id, &r, &mut |l| println!("{l}"))?;
    println!("plot: {}", out.svg.display());
    for n in r.groups.iter().flat_map(|g| &g.notes) {
        println!("note: {n}");
    }
    for f in r.groups.iter().flat_map(|g| &g.failures) {
        eprintln!("cardbench: {f}");
    }
    if let Some(e) = r.sink_errors.first() {
        anyhow::bail!("writing {}: {e}", dir.join("trace.csv").display());
    }
    println!("{} samples: {}", r.samples.len(), dir.join("samples.csv").display());
    if let Some(s) = &store {
        crate::store::runs::record_timing(s, &spec, profile, &dir, &run_id, &started, &r.samples)?;
    }
    Ok(if r.groups.iter().any(|g| !g.failures.is_empty()) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
