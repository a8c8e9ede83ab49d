//! Dunning's billing source: the ISP's billing database (MariaDB/MySQL or
//! PostgreSQL), read with two operator-written queries (`BILLING_QUERIES`).
//!
//! - [`sync::sync`] mirrors the source into Dunning's `customers` and `invoices`
//!   (`dunning-schedule sync`, and first thing in the daily run);
//! - [`Recheck::invoice_status`] and [`decide`] are the worker's live re-check of
//!   one invoice right before a send;
//! - [`doctor`] is what `dunning-schedule doctor` says about the source.
//!
//! Dunning only reads the source (the session is read-only; a user with only
//! SELECT is enough). The SQL that writes the mirror lives in `dunning-store`.

pub mod client;
pub mod config;
pub mod doctor;
pub mod error;
pub mod recheck;
pub mod rows;
pub mod sync;

pub use client::{Source, Timeouts, Which};
pub use config::{Queries, SourceConfig, VARIABLES};
pub use error::SourceError;
pub use recheck::{Decision, HoldLog, Recheck, Status, decide};
