//! SQL behind the operator commands of `dunning-schedule`: statistics, failed
//! deliveries and retries, CSV import upserts, the test dunning, and the health
//! reads of `doctor` (heartbeats, scheduler runs, paused channels).

pub mod audit;
pub mod failed;
pub mod health;
pub mod history;
pub mod import;
pub mod mirror;
pub mod replies;
pub mod report;
pub mod search;
pub mod stats;
pub mod test_dunning;
pub mod web;

use time::{Date, OffsetDateTime, UtcOffset};

/// The UTC instants `[start of from, start of to)` for local dates in a zone.
pub(crate) fn local_range(
    from: Date,
    to: Date,
    offset: UtcOffset,
) -> (OffsetDateTime, OffsetDateTime) {
    (
        from.midnight().assume_offset(offset),
        to.midnight().assume_offset(offset),
    )
}
