//! The dashboard's history: reminders per day, channel and status, and which
//! reminder gets paid.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Integer, Text, Timestamptz};
use time::{Date, Duration, UtcOffset};

use crate::Result;

/// Notifications created on one local day, of one channel and status.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayChannelStatus {
    #[diesel(sql_type = SqlDate)]
    pub day: Date,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// Notifications created per local day, channel and (current) status, for the
/// `days` days ending with `last`: for each day the same numbers as
/// [`super::stats::by_channel_status`] gives for that day. Days without any are absent.
pub fn by_day_channel_status(
    conn: &mut PgConnection,
    last: Date,
    days: u32,
    offset: UtcOffset,
) -> Result<Vec<DayChannelStatus>> {
    let first = last - Duration::days(i64::from(days.max(1)) - 1);
    let (from, to) = super::local_range(first, last.next_day().unwrap_or(last), offset);
    Ok(diesel::sql_query(
        "SELECT ((created_at AT TIME ZONE 'UTC') + make_interval(secs => $3))::date AS day,
                channel, status, count(*) AS total
         FROM notifications WHERE created_at >= $1 AND created_at < $2
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Integer, _>(offset.whole_seconds())
    .load(conn)?)
}

/// How many invoices reminded at one stage were paid within [`RECOVERY_DAYS`].
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Recovery {
    #[diesel(sql_type = Text)]
    pub stage: String,
    /// Invoices with a reminder of this stage sent in the period.
    #[diesel(sql_type = BigInt)]
    pub reminded: i64,
    /// Of those, paid within [`RECOVERY_DAYS`] after the stage's first sent reminder.
    #[diesel(sql_type = BigInt)]
    pub paid: i64,
    /// Their amount in rupiah.
    #[diesel(sql_type = BigInt)]
    pub paid_amount: i64,
}

/// The window after a reminder in which a payment counts for it.
pub const RECOVERY_DAYS: i64 = 7;

/// For each stage: invoices reminded (first reminder of the stage sent in the `days`
/// local days ending with `last`) and those paid within [`RECOVERY_DAYS`] of it,
/// with their amount. An invoice reminded at two stages counts for both.
pub fn recovery_by_stage(
    conn: &mut PgConnection,
    last: Date,
    days: u32,
    offset: UtcOffset,
) -> Result<Vec<Recovery>> {
    let first = last - Duration::days(i64::from(days.max(1)) - 1);
    let (from, to) = super::local_range(first, last.next_day().unwrap_or(last), offset);
    Ok(diesel::sql_query(
        "WITH s AS (
             SELECT stage, invoice_id, min(sent_at) AS sent_at FROM notifications
             WHERE status = 'sent' AND sent_at >= $1 AND sent_at < $2
             GROUP BY stage, invoice_id
         )
         SELECT s.stage, count(*) AS reminded,
                count(*) FILTER (WHERE paid) AS paid,
                COALESCE(sum(i.amount) FILTER (WHERE paid), 0)::bigint AS paid_amount
         FROM s JOIN invoices i ON i.id = s.invoice_id,
              LATERAL (SELECT i.status = 'paid' AND i.paid_at >= s.sent_at
                              AND i.paid_at < s.sent_at + make_interval(days => $3) AS paid) p
         GROUP BY s.stage ORDER BY s.stage",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Integer, _>(RECOVERY_DAYS as i32)
    .load(conn)?)
}
