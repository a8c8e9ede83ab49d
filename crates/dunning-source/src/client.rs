//! One connection to the billing database, MariaDB/MySQL or PostgreSQL, and the
//! few ways Dunning reads it: a query's columns, its rows in chunks, its row
//! count, and one invoice's status.
//!
//! Every value is read as text (MySQL's text protocol, PostgreSQL's `::text`), so
//! one validation ([`crate::rows`]) serves both. The session's time zone is
//! `DUNNING_TIMEZONE`, so a TIMESTAMP comes back as the local date and time, and
//! the session is read-only: Dunning never writes to the source.

use std::collections::HashMap;
use std::time::Duration;

use mysql::prelude::Queryable;
use time::UtcOffset;

use crate::config::{Backend, Queries, SourceConfig};
use crate::error::SourceError;

/// Which of the two queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Customers,
    Invoices,
}

impl Which {
    /// The query's key in the queries file.
    pub fn name(self) -> &'static str {
        match self {
            Which::Customers => "customers",
            Which::Invoices => "invoices",
        }
    }

    /// The columns Dunning needs.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Which::Customers => &["external_id", "name", "email", "phone"],
            Which::Invoices => &[
                "number",
                "customer_external_id",
                "amount",
                "due_date",
                "status",
            ],
        }
    }

    /// The columns Dunning uses when they are there.
    pub fn optional(self) -> &'static [&'static str] {
        match self {
            Which::Customers => &["updated_at"],
            Which::Invoices => &["updated_at", "payment_url"],
        }
    }
}

/// The columns a query returns, by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// As the server named them.
    pub names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    fn new(names: Vec<String>) -> Header {
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_lowercase(), i))
            .collect();
        Header { names, index }
    }

    /// True when the query returns this column.
    pub fn has(&self, column: &str) -> bool {
        self.index.contains_key(column)
    }

    /// The value of a column in a row (None: NULL or no such column).
    pub fn get<'r>(&self, row: &'r [Option<String>], column: &str) -> Option<&'r str> {
        self.index
            .get(column)
            .and_then(|&i| row.get(i))
            .and_then(|v| v.as_deref())
    }

    /// Required columns the query does not return.
    pub fn missing(&self, which: Which) -> Vec<&'static str> {
        which
            .required()
            .iter()
            .copied()
            .filter(|c| !self.has(c))
            .collect()
    }

    /// Columns Dunning does not use (ignored).
    pub fn extra(&self, which: Which) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| {
                let l = n.to_lowercase();
                !which.required().contains(&l.as_str()) && !which.optional().contains(&l.as_str())
            })
            .cloned()
            .collect()
    }
}

/// A header with these columns (for unit tests of row checks).
#[cfg(test)]
pub(crate) fn header_for_tests(cols: &[&str]) -> Header {
    Header::new(cols.iter().map(|c| (*c).to_owned()).collect())
}

/// A row: one text value (or NULL) per column of its [`Header`].
pub type Row = Vec<Option<String>>;

enum Conn {
    My(Box<mysql::Conn>),
    Pg(Box<postgres::Client>),
}

/// How long to wait for the source.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To connect.
    pub connect: Duration,
    /// For one statement (the live re-check) or one network read (a sync).
    pub read: Duration,
}

impl Timeouts {
    /// For a sync: a big query may take minutes before its first row.
    pub const SYNC: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        read: Duration::from_secs(600),
    };
    /// For the live re-check right before a send: short, the worker holds the job
    /// when the source does not answer.
    pub const RECHECK: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        read: Duration::from_secs(5),
    };
}

/// An open connection to the billing database.
pub struct Source {
    conn: Conn,
    target: String,
    file: String,
    queries: Queries,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// `+07:00` for MySQL's `time_zone`.
fn offset_text(offset: UtcOffset) -> String {
    let (h, m, _) = offset.as_hms();
    let sign = if h < 0 || m < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_owned()
}

impl Source {
    /// Connects and prepares the session (local time zone, read-only).
    pub fn connect(
        cfg: &SourceConfig,
        queries: Queries,
        offset: UtcOffset,
        timeouts: Timeouts,
    ) -> Result<Source, SourceError> {
        let target = cfg.target.clone();
        let tz = offset_text(offset);
        let conn = match cfg.backend {
            Backend::MySql => {
                let url = cfg.url.expose();
                let url = url
                    .strip_prefix("mariadb://")
                    .map_or(url.to_owned(), |rest| format!("mysql://{rest}"));
                let opts = mysql::Opts::from_url(&url).map_err(|_| SourceError::Unreachable {
                    target: target.clone(),
                    reason: "BILLING_DATABASE_URL is not a valid mysql:// URL".into(),
                })?;
                let opts = mysql::OptsBuilder::from_opts(opts)
                    .tcp_connect_timeout(Some(timeouts.connect))
                    .read_timeout(Some(timeouts.read))
                    .write_timeout(Some(timeouts.read))
                    .init(vec![
                        format!("SET time_zone = '{tz}'"),
                        "SET SESSION TRANSACTION READ ONLY".to_owned(),
                    ]);
                let conn = mysql::Conn::new(opts).map_err(|e| my_connect_error(&target, e))?;
                Conn::My(Box::new(conn))
            }
            Backend::Postgres => {
                let mut pg: postgres::Config =
                    cfg.url
                        .expose()
                        .parse()
                        .map_err(|_| SourceError::Unreachable {
                            target: target.clone(),
                            reason: "BILLING_DATABASE_URL is not a valid postgres:// URL".into(),
                        })?;
                pg.connect_timeout(timeouts.connect);
                let mut client = pg
                    .connect(postgres::NoTls)
                    .map_err(|e| pg_connect_error(&target, &e))?;
                client
                    .batch_execute(&format!(
                        "SET TIME ZONE INTERVAL '{tz}' HOUR TO MINUTE;
                         SET default_transaction_read_only = on;
                         SET statement_timeout = {}",
                        timeouts.read.as_millis()
                    ))
                    .map_err(|e| pg_connect_error(&target, &e))?;
                Conn::Pg(Box::new(client))
            }
        };
        Ok(Source {
            conn,
            target,
            file: cfg.queries_file.display().to_string(),
            queries,
        })
    }

    /// `host:port/db`.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn sql(&self, which: Which) -> &str {
        match which {
            Which::Customers => &self.queries.customers,
            Which::Invoices => &self.queries.invoices,
        }
    }

    fn query_error(&self, which: Which, reason: String) -> SourceError {
        SourceError::Query {
            query: which.name(),
            file: self.file.clone(),
            target: self.target.clone(),
            reason,
        }
    }

    fn my_err(&self, which: Which, e: mysql::Error) -> SourceError {
        match e {
            mysql::Error::MySqlError(e) => self.query_error(which, first_line(&e.message)),
            other => SourceError::Unreachable {
                target: self.target.clone(),
                reason: first_line(&other.to_string()),
            },
        }
    }

    fn pg_err(&self, which: Which, e: postgres::Error) -> SourceError {
        match e.as_db_error() {
            Some(db) => self.query_error(which, db.message().to_owned()),
            None if e.is_closed() || e.to_string().contains("connection") => {
                SourceError::Unreachable {
                    target: self.target.clone(),
                    reason: first_line(&e.to_string()),
                }
            }
            None => self.query_error(which, first_line(&e.to_string())),
        }
    }

    /// The columns a query returns, without running it (the server prepares it).
    pub fn header(&mut self, which: Which) -> Result<Header, SourceError> {
        let sql = format!("SELECT * FROM ({}) AS dunning_q", self.sql(which));
        let names = match &mut self.conn {
            Conn::My(c) => match c.prep(&sql) {
                Ok(stmt) => {
                    let names = stmt
                        .columns()
                        .iter()
                        .map(|c| c.name_str().into_owned())
                        .collect();
                    let _ = c.close(stmt);
                    Ok(names)
                }
                Err(e) => Err(e),
            }
            .map_err(|e| self.my_err(which, e))?,
            Conn::Pg(c) => c
                .prepare(&sql)
                .map(|stmt| stmt.columns().iter().map(|c| c.name().to_owned()).collect())
                .map_err(|e| self.pg_err(which, e))?,
        };
        Ok(Header::new(names))
    }

    /// Fails naming the first required column the query does not return.
    pub fn checked_header(&mut self, which: Which) -> Result<Header, SourceError> {
        let header = self.header(which)?;
        if let Some(column) = header.missing(which).first() {
            return Err(SourceError::MissingColumn {
                query: which.name(),
                file: self.file.clone(),
                column,
                found: header.names.join(", "),
            });
        }
        Ok(header)
    }

    /// The query's rows, `chunk` at a time, each chunk handed to `each` before the
    /// next is read: memory stays bounded whatever the query returns. With `since`
    /// (a local `YYYY-MM-DD HH:MM:SS` made by Dunning), only rows whose
    /// `updated_at` is at or after it.
    pub fn read(
        &mut self,
        which: Which,
        header: &Header,
        since: Option<&str>,
        chunk: usize,
        each: &mut dyn FnMut(&[Row]) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let base = self.sql(which).to_owned();
        self.read_from(which, &base, header, since, chunk, each)
    }

    fn read_from(
        &mut self,
        which: Which,
        base: &str,
        header: &Header,
        since: Option<&str>,
        chunk: usize,
        each: &mut dyn FnMut(&[Row]) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        // `since` comes from a parsed date-time (digits, '-', ':', ' '), never from input.
        debug_assert!(
            since.is_none_or(|s| s.bytes().all(|b| b.is_ascii_digit() || b" -:".contains(&b)))
        );
        match &mut self.conn {
            Conn::My(c) => {
                let filter = since.map_or(String::new(), |s| {
                    format!(" WHERE dunning_q.updated_at >= '{s}'")
                });
                let sql = format!("SELECT * FROM ({base}) AS dunning_q{filter}");
                let mut buf: Vec<Row> = Vec::with_capacity(chunk);
                let result: Result<(), mysql::Error> = (|| {
                    let rows = c.query_iter(&sql)?;
                    for row in rows {
                        let row = row?;
                        buf.push(row.unwrap().into_iter().map(my_text).collect());
                        if buf.len() == chunk {
                            each(&buf).map_err(Stop)?;
                            buf.clear();
                        }
                    }
                    Ok(())
                })();
                match result {
                    Ok(()) => {}
                    Err(mysql::Error::IoError(e))
                        if e.get_ref().is_some_and(|i| i.is::<Stop>()) =>
                    {
                        return Err(take_stop(e));
                    }
                    Err(e) => return Err(self.my_err(which, e)),
                }
                if !buf.is_empty() {
                    each(&buf)?;
                }
                Ok(())
            }
            Conn::Pg(c) => {
                let cols: Vec<String> = header
                    .names
                    .iter()
                    .map(|n| format!("dunning_q.\"{}\"::text", n.replace('"', "\"\"")))
                    .collect();
                let filter = since.map_or(String::new(), |s| {
                    format!(" WHERE dunning_q.updated_at >= CAST('{s}' AS timestamptz)")
                });
                let sql = format!(
                    "SELECT {} FROM ({base}) AS dunning_q{filter}",
                    cols.join(", ")
                );
                let fetched: Result<(), Result<SourceError, postgres::Error>> = (|| {
                    let mut tx = c.transaction().map_err(Err)?;
                    tx.batch_execute("SET LOCAL statement_timeout = 0")
                        .map_err(Err)?;
                    let portal = tx.bind(sql.as_str(), &[]).map_err(Err)?;
                    let n = i32::try_from(chunk).unwrap_or(i32::MAX);
                    loop {
                        let rows = tx.query_portal(&portal, n).map_err(Err)?;
                        if rows.is_empty() {
                            break;
                        }
                        let mut buf: Vec<Row> = Vec::with_capacity(rows.len());
                        for r in &rows {
                            let mut out = Vec::with_capacity(r.len());
                            for i in 0..r.len() {
                                out.push(r.try_get::<_, Option<String>>(i).map_err(Err)?);
                            }
                            buf.push(out);
                        }
                        drop(rows);
                        each(&buf).map_err(Ok)?;
                    }
                    tx.commit().map_err(Err)
                })(
                );
                match fetched {
                    Ok(()) => Ok(()),
                    Err(Ok(stop)) => Err(stop),
                    Err(Err(e)) => Err(self.pg_err(which, e)),
                }
            }
        }
    }

    /// How many rows the query returns (for `doctor`).
    pub fn count(&mut self, which: Which) -> Result<u64, SourceError> {
        let sql = format!("SELECT COUNT(*) FROM ({}) AS dunning_q", self.sql(which));
        match &mut self.conn {
            Conn::My(c) => c
                .query_first::<u64, _>(&sql)
                .map(Option::unwrap_or_default)
                .map_err(|e| self.my_err(which, e)),
            Conn::Pg(c) => c
                .query_one(sql.as_str(), &[])
                .map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
                .map_err(|e| self.pg_err(which, e)),
        }
    }

    /// The first row of the query (`LIMIT 1`, for `doctor`).
    pub fn first(&mut self, which: Which, header: &Header) -> Result<Option<Row>, SourceError> {
        let mut first = None;
        let base = format!("SELECT * FROM ({}) AS dunning_l LIMIT 1", self.sql(which));
        self.read_from(which, &base, header, None, 1, &mut |rows| {
            if first.is_none() {
                first = rows.first().cloned();
            }
            Ok(())
        })?;
        Ok(first)
    }

    /// The `status` the invoices query gives for one invoice number: the query
    /// wrapped as a subquery filtered by `number`. `Ok(None)`: the source has no
    /// such invoice.
    pub fn status_of(&mut self, number: &str) -> Result<Option<String>, SourceError> {
        let base = self.sql(Which::Invoices).to_owned();
        match &mut self.conn {
            Conn::My(c) => {
                let sql = format!(
                    "SELECT dunning_q.status FROM ({base}) AS dunning_q WHERE dunning_q.number = ? LIMIT 1"
                );
                let row: Option<mysql::Row> = c
                    .exec_first(&sql, (number,))
                    .map_err(|e| self.my_err(Which::Invoices, e))?;
                Ok(row.and_then(|r| r.unwrap().into_iter().next().and_then(my_text)))
            }
            Conn::Pg(c) => {
                let sql = format!(
                    "SELECT dunning_q.status::text FROM ({base}) AS dunning_q WHERE dunning_q.number::text = $1 LIMIT 1"
                );
                let rows = c
                    .query(sql.as_str(), &[&number])
                    .map_err(|e| self.pg_err(Which::Invoices, e))?;
                Ok(rows
                    .first()
                    .and_then(|r| r.try_get::<_, Option<String>>(0).ok().flatten()))
            }
        }
    }
}

/// Carries a caller's error out of the mysql row loop (which speaks mysql::Error).
#[derive(Debug)]
struct Stop(SourceError);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Stop {}

impl From<Stop> for mysql::Error {
    fn from(s: Stop) -> Self {
        mysql::Error::IoError(std::io::Error::other(s))
    }
}

fn take_stop(e: std::io::Error) -> SourceError {
    match e.into_inner().map(|i| i.downcast::<Stop>()) {
        Some(Ok(stop)) => stop.0,
        _ => unreachable!("checked by the caller"),
    }
}

/// A MySQL value as text (the text protocol sends bytes; the binary one, used by
/// the re-check, may send typed values).
fn my_text(v: mysql::Value) -> Option<String> {
    use mysql::Value;
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8(b).unwrap_or_else(|e| {
            // Not UTF-8: keep it visible (validation rejects it by its replacement chars).
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Date(y, mo, d, h, mi, s, _) => {
            Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
        }
        Value::Time(neg, d, h, mi, s, _) => Some(format!(
            "{}{}:{mi:02}:{s:02}",
            if neg { "-" } else { "" },
            u32::from(h) + d * 24
        )),
    }
}

fn my_connect_error(target: &str, e: mysql::Error) -> SourceError {
    match e {
        mysql::Error::MySqlError(m) => match m.code {
            // ER_ACCESS_DENIED_ERROR
            1045 => SourceError::Login {
                target: target.to_owned(),
                reason: first_line(&m.message),
            },
            // ER_BAD_DB_ERROR, ER_DBACCESS_DENIED_ERROR
            1049 | 1044 => SourceError::UnknownDatabase {
                target: target.to_owned(),
                database: target.rsplit('/').next().unwrap_or("").to_owned(),
                reason: first_line(&m.message),
            },
            _ => SourceError::Unreachable {
                target: target.to_owned(),
                reason: first_line(&m.message),
            },
        },
        other => SourceError::Unreachable {
            target: target.to_owned(),
            reason: first_line(&other.to_string()),
        },
    }
}

fn pg_connect_error(target: &str, e: &postgres::Error) -> SourceError {
    use postgres::error::SqlState;
    let reason = e
        .as_db_error()
        .map_or_else(|| first_line(&e.to_string()), |d| d.message().to_owned());
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            SourceError::Login {
                target: target.to_owned(),
                reason,
            }
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => SourceError::UnknownDatabase {
            target: target.to_owned(),
            database: target.rsplit('/').next().unwrap_or("").to_owned(),
            reason,
        },
        _ => SourceError::Unreachable {
            target: target.to_owned(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_for_mysql() {
        assert_eq!(offset_text(UtcOffset::from_hms(7, 0, 0).unwrap()), "+07:00");
        assert_eq!(
            offset_text(UtcOffset::from_hms(-3, -30, 0).unwrap()),
            "-03:30"
        );
        assert_eq!(offset_text(UtcOffset::UTC), "+00:00");
    }

    #[test]
    fn header_reports_missing_and_extra_columns() {
        let h = Header::new(vec![
            "Number".into(),
            "customer_external_id".into(),
            "amount".into(),
            "status".into(),
            "notes".into(),
            "updated_at".into(),
        ]);
        assert_eq!(h.missing(Which::Invoices), vec!["due_date"]);
        assert_eq!(h.extra(Which::Invoices), vec!["notes".to_owned()]);
        let row: Row = vec![Some("INV-1".into()), None, None, None, None, None];
        assert_eq!(h.get(&row, "number"), Some("INV-1"));
        assert_eq!(h.get(&row, "amount"), None);
    }
}
