//! One SQL surface over the two databases: statements are written once, with `$1 … $n`
//! placeholders (PostgreSQL's own; rewritten to `?1 … ?n` for SQLite), and values travel as
//! [`Value`]. Only the few statements that differ by dialect are asked for by [`Dialect`].

use super::StoreError;

/// A parameter or a column value. Integers are 64-bit on both sides (BIGINT columns in
/// PostgreSQL), reals are f64 (DOUBLE PRECISION), and NULL only ever goes into TEXT columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Value {
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn real(&self) -> Option<f64> {
        match self {
            Value::Real(r) => Some(*r),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Value::Int(i as i64)
    }
}

impl From<f64> for Value {
    fn from(r: f64) -> Self {
        Value::Real(r)
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Value::Null, Value::from)
    }
}

pub type Row = Vec<Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// An open connection to either database.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

fn pg_err(e: postgres::Error) -> StoreError {
    // The server's own message (with its detail) says more than the client's summary.
    match e.as_db_error() {
        Some(d) => StoreError::Query(format!("{}: {}", d.code().code(), d.message())),
        None => StoreError::Query(e.to_string()),
    }
}

/// `$1 … $n` → `?1 … ?n`: SQLite numbers `$NNN` parameters by first appearance, `?NNN` by
/// the number written, which is what the statements mean.
fn to_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn sqlite_value(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(r) => rusqlite::types::Value::Real(*r),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Null => Box::new(None::<String>),
                Value::Int(i) => Box::new(*i),
                Value::Real(r) => Box::new(*r),
                Value::Text(s) => Box::new(s.clone()),
            }
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, StoreError> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let bad = |e: postgres::Error| StoreError::Query(format!("column {}: {e}", col.name()));
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i).map_err(bad)?.map_or(Value::Null, Value::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i).map_err(bad)?.map_or(Value::Null, |x| Value::Int(x.into()))
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i).map_err(bad)?.map_or(Value::Null, |x| Value::Int(x.into()))
        } else if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i).map_err(bad)?.map_or(Value::Null, Value::Real)
        } else if *t == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i).map_err(bad)?.map_or(Value::Null, |x| Value::Real(x.into()))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i).map_err(bad)?.map_or(Value::Null, |x| Value::Int(x.into()))
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) {
            row.try_get::<_, Option<String>>(i).map_err(bad)?.map_or(Value::Null, Value::Text)
        } else {
            return Err(StoreError::Query(format!(
                "column {} has type {t}, which the store does not read; CAST it to BIGINT, DOUBLE PRECISION or TEXT",
                col.name()
            )));
        };
        out.push(v);
    }
    Ok(out)
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Run a statement; returns the rows it changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(sqlite_value).collect();
                let mut st = c.prepare_cached(&to_sqlite(sql)).map_err(sqlite_err)?;
                st.execute(rusqlite::params_from_iter(p)).map(|n| n as u64).map_err(sqlite_err)
            }
            Db::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
                c.execute(sql, &refs).map_err(pg_err)
            }
        }
    }

    /// `INSERT INTO … (cols) VALUES` + one `($i, …)` group per row, `CHUNK` rows a statement:
    /// one round trip for a card's cases or a run's samples instead of one per row.
    pub fn insert_rows(&mut self, head: &str, rows: &[Vec<Value>]) -> Result<(), StoreError> {
        const CHUNK: usize = 200;
        for chunk in rows.chunks(CHUNK) {
            let mut sql = String::from(head);
            let mut params = Vec::with_capacity(chunk.iter().map(Vec::len).sum());
            for (i, row) in chunk.iter().enumerate() {
                sql.push_str(if i == 0 { " (" } else { ", (" });
                for j in 0..row.len() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", params.len() + j + 1));
                }
                sql.push(')');
                params.extend(row.iter().cloned());
            }
            self.exec(&sql, &params)?;
        }
        Ok(())
    }

    /// Several statements without parameters (schema migrations, transaction control).
    pub fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql).map_err(sqlite_err),
            Db::Postgres(c) => c.batch_execute(sql).map_err(pg_err),
        }
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(c) => {
                let p: Vec<rusqlite::types::Value> = params.iter().map(sqlite_value).collect();
                let mut st = c.prepare_cached(&to_sqlite(sql)).map_err(sqlite_err)?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(p), |r| {
                        (0..n)
                            .map(|i| {
                                Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                                    rusqlite::types::Value::Null => Value::Null,
                                    rusqlite::types::Value::Integer(x) => Value::Int(x),
                                    rusqlite::types::Value::Real(x) => Value::Real(x),
                                    rusqlite::types::Value::Text(x) => Value::Text(x),
                                    rusqlite::types::Value::Blob(b) => Value::Text(hex::encode(b)),
                                })
                            })
                            .collect::<rusqlite::Result<Row>>()
                    })
                    .map_err(sqlite_err)?;
                rows.collect::<rusqlite::Result<Vec<Row>>>().map_err(sqlite_err)
            }
            Db::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
                c.query(sql, &refs).map_err(pg_err)?.iter().map(pg_row).collect()
            }
        }
    }

    /// Run `f` in a transaction that holds the database's write lock from its start, so that
    /// reading the free card indices and claiming one is one step for every station.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let begin = match self.dialect() {
            // IMMEDIATE: take the write lock now, not at the first write (no upgrade deadlock).
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        self.batch(begin)?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_keep_their_numbers_for_sqlite() {
        assert_eq!(to_sqlite("SELECT $2, $1 WHERE x = $10"), "SELECT ?2, ?1 WHERE x = ?10");
        assert_eq!(to_sqlite("SELECT '$'"), "SELECT '$'");
    }

    #[test]
    fn values_round_trip_through_sqlite() {
        let mut db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.batch("CREATE TABLE t (a BIGINT, b DOUBLE PRECISION, c TEXT)").unwrap();
        db.exec("INSERT INTO t VALUES ($1, $2, $3)", &[Value::Int(-7), Value::Real(0.1 + 0.2), Value::Null]).unwrap();
        let rows = db.query("SELECT c, b, a FROM t WHERE a = $1", &[Value::Int(-7)]).unwrap();
        assert_eq!(rows, vec![vec![Value::Null, Value::Real(0.1 + 0.2), Value::Int(-7)]]);
    }
}
