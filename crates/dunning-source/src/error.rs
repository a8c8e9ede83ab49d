//! What can go wrong reading the billing source. Every message says where
//! (`host:port/db`, never the password) and what to fix.

use dunning_store::StoreError;

/// A billing-source failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The server could not be reached (down, wrong host or port, firewall).
    #[error(
        "cannot reach the billing database at {target}: {reason}; check that it runs and that host and port in BILLING_DATABASE_URL are right"
    )]
    Unreachable { target: String, reason: String },
    /// The server refused the user name or password.
    #[error(
        "the billing database at {target} refused the login: {reason}; fix the user or password in BILLING_DATABASE_URL"
    )]
    Login { target: String, reason: String },
    /// The database named in the URL does not exist (or the user may not see it).
    #[error(
        "the billing database at {target} has no database {database:?} (or the user may not use it): {reason}; fix the name at the end of BILLING_DATABASE_URL"
    )]
    UnknownDatabase {
        target: String,
        database: String,
        reason: String,
    },
    /// A query of the queries file failed on the server (syntax, unknown table…).
    #[error("the {query} query in {file} failed on {target}: {reason}")]
    Query {
        query: &'static str,
        file: String,
        target: String,
        reason: String,
    },
    /// A query does not return a column Dunning needs.
    #[error(
        "the {query} query in {file} returns no column `{column}` (it returns: {found}); add it to the SELECT, e.g. `… AS {column}`"
    )]
    MissingColumn {
        query: &'static str,
        file: String,
        column: &'static str,
        found: String,
    },
    /// Dunning's own database failed during a sync.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for SourceError {
    fn from(e: diesel::result::Error) -> Self {
        SourceError::Store(StoreError::Query(e))
    }
}

impl SourceError {
    /// True when the source could not be asked (as opposed to a wrong query or a
    /// problem in Dunning's own database): the worker holds the job and retries.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. }
                | SourceError::Login { .. }
                | SourceError::UnknownDatabase { .. }
        )
    }
}
