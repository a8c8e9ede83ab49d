//! Dunning's storage: the diesel schema, the embedded migrations, the job queue and
//! the notifications ledger. Every SQL statement of the system lives in this crate.

pub mod billing;
pub mod db;
mod error;
pub mod holds;
pub mod hooks;
pub mod inbound;
mod named;
pub mod ops;
pub mod payments;
pub mod queue;
pub mod receipts;
pub mod rows;
pub mod scheduling;
pub mod schema;

pub use db::{PgPool, PooledConn};
pub use error::{Result, StoreError};
pub(crate) use named::named;
