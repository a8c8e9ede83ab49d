//! Health reads for `dunning-schedule doctor`: worker heartbeats, scheduler runs and
//! paused channels.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Integer, Nullable, Text, Timestamptz};
use time::{Date, OffsetDateTime};

use crate::Result;

/// A queue whose oldest ready job has waited this long is stuck (`doctor`, dashboard).
pub const STUCK_AFTER_SECS: i64 = 10 * 60;
/// How far back missed scheduler runs are looked for (`doctor`, dashboard).
pub const MISSED_WINDOW_DAYS: u32 = 7;

/// A worker that has not said it stopped, with the seconds since its last heartbeat
/// (by the database clock).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct WorkerBeat {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub hostname: String,
    #[diesel(sql_type = Integer)]
    pub pid: i32,
    #[diesel(sql_type = Text)]
    pub queue: String,
    #[diesel(sql_type = Timestamptz)]
    pub last_seen_at: OffsetDateTime,
    #[diesel(sql_type = BigInt)]
    pub silent_secs: i64,
    #[diesel(sql_type = BigInt)]
    pub jobs_done: i64,
}

/// Workers not marked stopped, most recently seen first.
pub fn running_workers(conn: &mut PgConnection) -> Result<Vec<WorkerBeat>> {
    Ok(diesel::sql_query(
        "SELECT id, hostname, pid, queue, last_seen_at,
                floor(extract(epoch FROM now() - last_seen_at))::bigint AS silent_secs, jobs_done
         FROM workers WHERE stopped_at IS NULL ORDER BY last_seen_at DESC, id",
    )
    .load(conn)?)
}

/// The most recently seen worker, stopped or not.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LastWorker {
    #[diesel(sql_type = Text)]
    pub hostname: String,
    /// Seconds since its last heartbeat (by the database clock).
    #[diesel(sql_type = BigInt)]
    pub silent_secs: i64,
    /// Seconds since it said it stopped (a clean stop: `--once` drained, a signal, a
    /// restart), or `None` when it never said so (killed, crashed, host down).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub stopped_secs: Option<i64>,
}

/// The most recently seen worker, if any worker ever ran on this database.
pub fn last_worker(conn: &mut PgConnection) -> Result<Option<LastWorker>> {
    Ok(diesel::sql_query(
        "SELECT hostname, floor(extract(epoch FROM now() - last_seen_at))::bigint AS silent_secs,
                floor(extract(epoch FROM now() - stopped_at))::bigint AS stopped_secs
         FROM workers ORDER BY last_seen_at DESC, id LIMIT 1",
    )
    .get_result(conn)
    .optional()?)
}

/// The most recent finished scheduler run.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LastRun {
    #[diesel(sql_type = SqlDate)]
    pub run_date: Date,
    #[diesel(sql_type = Timestamptz)]
    pub finished_at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    pub host: String,
    #[diesel(sql_type = Integer)]
    pub dispatched: i32,
    #[diesel(sql_type = Integer)]
    pub skipped: i32,
}

/// The finished regular run (not a `--date` backfill) with the latest run date
/// (then the latest finish).
pub fn last_run(conn: &mut PgConnection) -> Result<Option<LastRun>> {
    Ok(diesel::sql_query(
        "SELECT run_date, finished_at, host, dispatched, skipped FROM schedule_runs
         WHERE finished_at IS NOT NULL AND NOT backfill
         ORDER BY run_date DESC, finished_at DESC LIMIT 1",
    )
    .get_result(conn)
    .optional()?)
}

/// A channel the workers have paused until an operator fixes something.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Paused {
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Timestamptz)]
    pub paused_until: OffsetDateTime,
    #[diesel(sql_type = Nullable<Text>)]
    pub pause_reason: Option<String>,
}

/// Channels paused now.
pub fn paused_channels(conn: &mut PgConnection) -> Result<Vec<Paused>> {
    Ok(diesel::sql_query(
        "SELECT channel, paused_until, pause_reason FROM channel_state
         WHERE paused_until IS NOT NULL AND paused_until > now() ORDER BY channel",
    )
    .load(conn)?)
}
