//! The dashboard's history: reminders per day, channel and status, and which
//! reminder gets paid.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Integer, Text, Timestamptz};
use time::{Date, Duration, UtcOffset};

use super::stats::ChannelStatus;
use crate::Result;

/// Notifications created on one local day, of one channel and status.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayChannelStatus {
    #[diesel(sql_type = SqlDate)]
    pub day: Date,
    /// The day's count of one channel and status.
    #[diesel(embed)]
    pub count: ChannelStatus,
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
        // Rows are grouped by the start of their local day as an instant (date_bin:
        // 24-hour steps from the first day's local midnight, `$1`; the zone has a
        // fixed offset), which costs a fraction of converting each row's time to a
        // local date; only the groups' starts are converted. Read from the index
        // notifications_created_channel_status alone.
        "SELECT ((start AT TIME ZONE 'UTC') + make_interval(secs => $3))::date AS day,
                channel, status, total
         FROM (SELECT date_bin('1 day', created_at, $1) AS start, channel, status,
                      count(*) AS total
               FROM notifications WHERE created_at >= $1 AND created_at < $2
               GROUP BY 1, 2, 3) g
         ORDER BY 1, 2, 3",
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
        // Only invoices paid since the window began can count as recovered (paid at
        // or after a reminder sent in it): indexes notifications_sent_recovery and
        // invoices_paid_at keep both sides small.
        "WITH s AS (
             SELECT stage, invoice_id, min(sent_at) AS sent_at FROM notifications
             WHERE status = 'sent' AND sent_at >= $1 AND sent_at < $2
               AND invoice_id IS NOT NULL
             GROUP BY stage, invoice_id
         ), paid AS (
             SELECT id, amount, paid_at FROM invoices WHERE status = 'paid' AND paid_at >= $1
         )
         SELECT s.stage, count(*) AS reminded, count(p.id) AS paid,
                COALESCE(sum(p.amount), 0)::bigint AS paid_amount
         FROM s LEFT JOIN paid p ON p.id = s.invoice_id AND p.paid_at >= s.sent_at
                                AND p.paid_at < s.sent_at + make_interval(days => $3)
         GROUP BY s.stage ORDER BY s.stage",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Integer, _>(RECOVERY_DAYS as i32)
    .load(conn)?)
}
