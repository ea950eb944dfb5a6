//! The results store (docs/results-store.md): every batch, run and timing run is also written
//! to a database, from the same results the files are written from, so that a lab can ask
//! across batches. The files stay the primary artefacts.
//!
//! - SQLite by default: `<logs>/cardbench.sqlite`, embedded (rusqlite, bundled), one station.
//! - PostgreSQL with `--db postgres://…`: several stations share one batch. The database then
//!   hands out the card indices of a virtual batch (no card is certified twice) and refuses a
//!   card ID that another station certified or is certifying.
//!
//! `sql` is the one SQL surface over both, `schema` the versioned migrations, `batches` the
//! batch tables (claims, cards, loading a `BatchResult` back), `runs` plan and timing runs,
//! `feed` where a batch's workers take their next card from.

pub mod batches;
pub mod feed;
pub mod runs;
pub mod schema;
pub mod sql;

use sql::Db;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// The default store's file, under the logs folder.
pub const DEFAULT_FILE: &str = "cardbench.sqlite";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot reach the results store {location}: {msg}")]
    Unreachable { location: String, msg: String },
    #[error("results store: {0}")]
    Query(String),
    #[error(
        "results store: its schema is at version {have}, this cardbench knows up to {known}; use a newer cardbench"
    )]
    Newer { have: u64, known: u64 },
    #[error("results store {location}: {msg}")]
    Batch { location: String, msg: String },
    /// A card that another station certified or is certifying: the operator takes it out.
    #[error("card {card_id} {what} at station {station}; take it out, it is not certified here")]
    Refused { card_id: String, what: String, station: String },
}

/// Where results go, as given by `--db` (or `CARDBENCH_DB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
    /// `--db none`: files only.
    Off,
}

impl Location {
    /// `None` → `<logs>/cardbench.sqlite`; `postgres://…` or `postgresql://…`; `sqlite:PATH`
    /// or a plain path; `none`.
    pub fn parse(db: Option<&str>, logs: &Path) -> Location {
        match db {
            None | Some("") => Location::Sqlite(logs.join(DEFAULT_FILE)),
            Some("none") | Some("off") => Location::Off,
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Location::Postgres(u.into()),
            Some(u) => Location::Sqlite(PathBuf::from(u.strip_prefix("sqlite:").unwrap_or(u))),
        }
    }

    /// For messages: a PostgreSQL URL without its password.
    pub fn display(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(u) => redact(u),
            Location::Off => "none".into(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.into() };
    let (auth, tail) = match rest.find('@') {
        Some(at) if rest[..at].find('/').is_none() => (&rest[..at], &rest[at..]),
        _ => return url.into(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{tail}"),
        None => url.into(),
    }
}

/// An open, migrated store. Its connection is shared by a batch's workers (one statement or
/// transaction at a time).
pub struct Store {
    db: Mutex<Db>,
    location: String,
    /// PostgreSQL: stations share batches, the database hands out the cards.
    shared: bool,
}

/// RFC 3339 UTC with milliseconds: sorts as time does, in both databases.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// This station's name in a shared batch: the host and the batch folder. One process at a
/// time holds a batch folder (its lock), so claims left by this name belong to a run that
/// ended, and its next run takes them back.
pub fn station_name(batch_dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let dir = std::fs::canonicalize(batch_dir).unwrap_or_else(|_| batch_dir.to_path_buf());
    format!("{host}:{}", dir.display())
}

impl Store {
    /// Open (creating and migrating) the store `db` names; `None` for `--db none`. Called
    /// before a batch or run does anything, so that a database that cannot be reached is one
    /// line and exit 2, not a half-written batch.
    pub fn open(db: Option<&str>, logs: &Path) -> Result<Option<Store>, StoreError> {
        let loc = Location::parse(db, logs);
        let location = loc.display();
        let unreachable = |msg: String| StoreError::Unreachable { location: location.clone(), msg };
        let (mut conn, shared) = match &loc {
            Location::Off => return Ok(None),
            Location::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| unreachable(e.to_string()))?;
                }
                let c = rusqlite::Connection::open(path).map_err(|e| unreachable(e.to_string()))?;
                // Several cardbench processes on one logs folder (a batch and a timing run)
                // wait for each other's writes instead of failing.
                c.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| unreachable(e.to_string()))?;
                c.pragma_update(None, "journal_mode", "WAL").map_err(|e| unreachable(e.to_string()))?;
                c.pragma_update(None, "foreign_keys", "ON").map_err(|e| unreachable(e.to_string()))?;
                // The journal is the durable record; the store need not fsync every card twice.
                c.pragma_update(None, "synchronous", "NORMAL").map_err(|e| unreachable(e.to_string()))?;
                (Db::Sqlite(c), false)
            }
            Location::Postgres(url) => {
                let mut cfg: postgres::Config = url.parse().map_err(|e: postgres::Error| unreachable(e.to_string()))?;
                if cfg.get_connect_timeout().is_none() {
                    cfg.connect_timeout(std::time::Duration::from_secs(10));
                }
                cfg.application_name("cardbench");
                let c = cfg.connect(postgres::NoTls).map_err(|e| unreachable(one_line(&e)))?;
                (Db::Postgres(Box::new(c)), true)
            }
        };
        schema::migrate(&mut conn).map_err(|e| match e {
            StoreError::Query(msg) => unreachable(msg),
            e => e,
        })?;
        Ok(Some(Store { db: Mutex::new(conn), location, shared }))
    }

    /// The store as messages name it (a PostgreSQL URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether stations share batches here (PostgreSQL).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The connection, for one statement or transaction. A worker that panicked while holding
    /// it cannot have left a transaction open that matters: the next BEGIN fails loudly.
    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Any query, for the documented questions (docs/results-store.md) and tests.
    pub fn query(&self, sql: &str, params: &[sql::Value]) -> Result<Vec<sql::Row>, StoreError> {
        self.db().query(sql, params)
    }
}

/// A store named for a batch and not yet opened: a PostgreSQL store is reached at once (one
/// that cannot be is an error before anything runs), while the default SQLite file is made
/// only with the batch folder, once the heads are known usable, so a batch that cannot start
/// leaves nothing under `logs/`.
#[derive(Clone, Default)]
pub enum Pending {
    /// `--db none`.
    #[default]
    Off,
    Ready(std::sync::Arc<Store>),
    Sqlite(PathBuf),
}

impl Pending {
    pub fn new(db: Option<&str>, logs: &Path) -> Result<Pending, StoreError> {
        Ok(match Location::parse(db, logs) {
            Location::Off => Pending::Off,
            Location::Sqlite(p) => Pending::Sqlite(p),
            Location::Postgres(_) => open_arc(db, logs)?.map_or(Pending::Off, Pending::Ready),
        })
    }

    pub fn open(&self) -> Result<Option<std::sync::Arc<Store>>, StoreError> {
        match self {
            Pending::Off => Ok(None),
            Pending::Ready(s) => Ok(Some(s.clone())),
            Pending::Sqlite(p) => open_arc(Some(&format!("sqlite:{}", p.display())), Path::new(".")),
        }
    }
}

/// `Store::open` for a command: shared by its threads.
pub fn open_arc(db: Option<&str>, logs: &Path) -> Result<Option<std::sync::Arc<Store>>, StoreError> {
    Ok(Store::open(db, logs)?.map(std::sync::Arc::new))
}

/// An error and its causes on one line (the postgres client nests the OS error).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let logs = Path::new("logs");
        assert_eq!(Location::parse(None, logs), Location::Sqlite(PathBuf::from("logs/cardbench.sqlite")));
        assert_eq!(Location::parse(Some("none"), logs), Location::Off);
        assert_eq!(Location::parse(Some("sqlite:/tmp/x.db"), logs), Location::Sqlite(PathBuf::from("/tmp/x.db")));
        assert_eq!(Location::parse(Some("postgres://a@b/c"), logs), Location::Postgres("postgres://a@b/c".into()));
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(redact("postgres://lab:s3cret@db.lab/cb"), "postgres://lab:***@db.lab/cb");
        assert_eq!(redact("postgres://lab@db.lab/cb"), "postgres://lab@db.lab/cb");
        assert_eq!(redact("postgres:///cb?host=/tmp"), "postgres:///cb?host=/tmp");
    }
}
