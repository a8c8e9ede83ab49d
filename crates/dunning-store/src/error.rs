//! Storage errors.

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached (`target` is host:port/db, no credentials).
    #[error("cannot connect to the database at {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The schema is older than this program.
    #[error(
        "the database has {} pending migration(s) ({}): run `dunning-schedule migrate` first",
        .0.len(), .0.join(", ")
    )]
    PendingMigrations(Vec<String>),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// No pooled connection could be had.
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// A column holds a value this program does not know (a newer release wrote
    /// it, or a hand edit): refused rather than guessed.
    #[error(
        "{column} holds {value:?}, which this version of Dunning does not know: check the row, or upgrade Dunning"
    )]
    UnknownValue { column: &'static str, value: String },
    /// A connection was lost mid-way (what was done is said in the message).
    #[error("{0}")]
    ConnectionLost(String),
}

impl StoreError {
    /// True when retrying later may help (lost connection, server restarting),
    /// as opposed to a bug or a constraint violation.
    pub fn is_connection_problem(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Connect { .. } | StoreError::Pool(_) | StoreError::ConnectionLost(_) => {
                true
            }
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            // libpq could not even send the query ("no connection to the server").
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)) => {
                true
            }
            // diesel does not expose PostgreSQL's SQLSTATE, so these are the fixed
            // texts of the server (57P01/57P02/57P03: "terminating connection due to
            // administrator command", "the database system is shutting down") and of
            // libpq ("server closed the connection unexpectedly", "SSL connection has
            // been closed unexpectedly", "could not receive data from server").
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                const LOST: [&str; 7] = [
                    "terminating connection",
                    "server closed the connection",
                    "connection has been closed",
                    "no connection to the server",
                    "could not receive data from server",
                    "could not send data to server",
                    "the database system is",
                ];
                let m = info.message();
                LOST.iter().any(|l| m.contains(l))
            }
            StoreError::Query(Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

/// Shorthand for storage results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
