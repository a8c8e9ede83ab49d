//! Reads for `dunning-schedule stats`: the seed's "statistik notifikasi hari ini"
//! query, queue health and a per-day history.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Integer, Nullable, Text, Timestamptz};
use time::{Date, Duration, OffsetDateTime, UtcOffset};

use crate::Result;

/// Notifications of one channel and status.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ChannelStatus {
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// Notifications created on local day `day`, by channel and status (the seed's
/// `WHERE DATE(created_at) = CURDATE() GROUP BY channel, status`).
pub fn by_channel_status(
    conn: &mut PgConnection,
    day: Date,
    offset: UtcOffset,
) -> Result<Vec<ChannelStatus>> {
    let (from, to) = super::local_range(day, day.next_day().unwrap_or(day), offset);
    Ok(diesel::sql_query(
        "SELECT channel, status, count(*) AS total FROM notifications
         WHERE created_at >= $1 AND created_at < $2
         GROUP BY channel, status ORDER BY channel, status",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)?)
}

/// The state of the job queue (all queues).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct QueueHealth {
    /// Jobs not taken by a worker (ready now or waiting for a retry time).
    #[diesel(sql_type = BigInt)]
    pub waiting: i64,
    /// Waiting jobs whose time has come.
    #[diesel(sql_type = BigInt)]
    pub ready: i64,
    /// Jobs a worker is working on.
    #[diesel(sql_type = BigInt)]
    pub reserved: i64,
    /// Seconds the oldest ready job has been ready (0 when none).
    #[diesel(sql_type = BigInt)]
    pub oldest_ready_secs: i64,
}

/// Queue depth and the age of the oldest job that could run but has not.
pub fn queue_health(conn: &mut PgConnection) -> Result<QueueHealth> {
    Ok(diesel::sql_query(
        "SELECT count(*) FILTER (WHERE reserved_at IS NULL) AS waiting,
                count(*) FILTER (WHERE reserved_at IS NULL AND available_at <= now()) AS ready,
                count(*) FILTER (WHERE reserved_at IS NOT NULL) AS reserved,
                COALESCE(floor(extract(epoch FROM now() - min(available_at)
                    FILTER (WHERE reserved_at IS NULL AND available_at <= now()))), 0)::bigint
                    AS oldest_ready_secs
         FROM jobs",
    )
    .get_result(conn)?)
}

/// Failed deliveries in the ledger (all days): what `failed` lists and `retry` re-sends.
pub fn failed_total(conn: &mut PgConnection) -> Result<i64> {
    use crate::schema::notifications::dsl as n;
    Ok(n::notifications
        .filter(n::status.eq("failed"))
        .count()
        .get_result(conn)?)
}

/// Deliveries that ended on one local day.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = SqlDate)]
    pub day: Date,
    #[diesel(sql_type = BigInt)]
    pub sent: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
}

/// Sent (by `sent_at`) and failed (by the time they failed) deliveries per local day,
/// for the `days` days ending with `last`, oldest first, days without any included.
pub fn per_day(
    conn: &mut PgConnection,
    last: Date,
    days: u32,
    offset: UtcOffset,
) -> Result<Vec<DayCount>> {
    let days = days.max(1);
    let first = last - Duration::days(i64::from(days) - 1);
    let (from, to) = super::local_range(first, last.next_day().unwrap_or(last), offset);
    Ok(diesel::sql_query(
        "WITH d AS (
             SELECT generate_series($1::date, $2::date, interval '1 day')::date AS day
         ), ended AS (
             SELECT status,
                    ((CASE WHEN status = 'sent' THEN sent_at ELSE updated_at END) AT TIME ZONE 'UTC'
                        + make_interval(secs => $5))::date AS day
             FROM notifications
             WHERE (status = 'sent' AND sent_at >= $3 AND sent_at < $4)
                OR (status = 'failed' AND updated_at >= $3 AND updated_at < $4)
         )
         SELECT d.day,
                count(e.status) FILTER (WHERE e.status = 'sent') AS sent,
                count(e.status) FILTER (WHERE e.status = 'failed') AS failed
         FROM d LEFT JOIN ended e ON e.day = d.day
         GROUP BY d.day ORDER BY d.day",
    )
    .bind::<SqlDate, _>(first)
    .bind::<SqlDate, _>(last)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Integer, _>(offset.whole_seconds())
    .load(conn)?)
}

#[derive(QueryableByName)]
struct Instant {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<OffsetDateTime>,
}

/// The database's clock (workers' heartbeats are compared with it, not with ours).
pub fn db_now(conn: &mut PgConnection) -> Result<OffsetDateTime> {
    let row: Instant = diesel::sql_query("SELECT now() AS at").get_result(conn)?;
    Ok(row.at.unwrap_or_else(OffsetDateTime::now_utc))
}
