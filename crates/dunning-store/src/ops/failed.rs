//! Failed deliveries: the list `dunning-schedule failed` shows and the `retry` that
//! puts them back on the queue.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date as SqlDate, Integer, Nullable, Text, Timestamptz,
};
use time::{Date, OffsetDateTime};

use crate::Result;

/// One failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Failed {
    /// The notification id (what `retry` takes).
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub invoice_number: String,
    #[diesel(sql_type = Text)]
    pub customer_name: String,
    #[diesel(sql_type = Text)]
    pub stage: String,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = SqlDate)]
    pub run_date: Date,
    /// Unmasked: callers mask it before showing it.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// When it failed (the row's last change).
    #[diesel(sql_type = Timestamptz)]
    pub failed_at: OffsetDateTime,
}

/// Failed deliveries created at or after `since` (all when `None`), newest first.
pub fn list(conn: &mut PgConnection, since: Option<OffsetDateTime>) -> Result<Vec<Failed>> {
    list_matching(
        conn,
        &Filter {
            since,
            ..Filter::default()
        },
        None,
    )
}

/// Which failed deliveries: every field narrows the list (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Created at or after.
    pub since: Option<OffsetDateTime>,
    pub channel: Option<&'a str>,
    pub stage: Option<&'a str>,
    /// The run date (the local day the reminder was for).
    pub run_date: Option<Date>,
    /// Text the last error contains (any case).
    pub reason: Option<&'a str>,
}

/// Failed deliveries that match `filter`, newest first, at most `limit` (all when `None`).
pub fn list_matching(
    conn: &mut PgConnection,
    filter: &Filter<'_>,
    limit: Option<i64>,
) -> Result<Vec<Failed>> {
    Ok(diesel::sql_query(
        "SELECT n.id, COALESCE(i.number, 'reply #' || n.reply_id, n.stage) AS invoice_number,
                c.name AS customer_name, n.stage, n.channel,
                n.run_date, n.recipient, n.attempts, n.error, n.updated_at AS failed_at
         FROM notifications n
         -- an answer to a customer's WhatsApp reply, an opt-out hook have no invoice
         LEFT JOIN invoices i ON i.id = n.invoice_id
         JOIN customers c ON c.id = n.customer_id
         WHERE n.status = 'failed' AND ($1::timestamptz IS NULL OR n.created_at >= $1)
           AND ($2::text IS NULL OR n.channel = $2) AND ($3::text IS NULL OR n.stage = $3)
           AND ($4::date IS NULL OR n.run_date = $4)
           AND ($5::text IS NULL OR strpos(lower(n.error), lower($5)) > 0)
         ORDER BY n.created_at DESC, n.id DESC LIMIT $6",
    )
    .bind::<Nullable<Timestamptz>, _>(filter.since)
    .bind::<Nullable<Text>, _>(filter.channel)
    .bind::<Nullable<Text>, _>(filter.stage)
    .bind::<Nullable<SqlDate>, _>(filter.run_date)
    .bind::<Nullable<Text>, _>(filter.reason)
    .bind::<Nullable<BigInt>, _>(limit)
    .load(conn)?)
}

/// The ids of the failed deliveries that match `filter` (what "retry all matching" retries).
pub fn ids_matching(conn: &mut PgConnection, filter: &Filter<'_>) -> Result<Vec<i64>> {
    Ok(list_matching(conn, filter, None)?
        .into_iter()
        .map(|f| f.id)
        .collect())
}

/// What to retry.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// These notification ids (those not failed are left alone).
    Ids(&'a [i64]),
    /// Every failed delivery.
    All,
}

/// The outcome of a retry for one notification id.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Retried {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub channel: String,
}

/// Puts failed deliveries back on the queue `queue`: the ledger row goes back to
/// `queued` (its error cleared, its attempts kept as history) and gets a fresh job.
/// Only rows still `failed` change, so a retry racing another retry or a worker
/// queues each delivery once. The worker's checks at send time still apply: an
/// invoice paid meanwhile, or one already reminded on that channel today, is skipped.
pub fn retry(
    conn: &mut PgConnection,
    selection: Selection<'_>,
    channel: Option<&str>,
    queue: &str,
) -> Result<Vec<Retried>> {
    let (all, ids): (bool, &[i64]) = match selection {
        Selection::Ids(ids) => (false, ids),
        Selection::All => (true, &[]),
    };
    Ok(diesel::sql_query(
        "WITH up AS (
             UPDATE notifications SET status = 'queued', error = NULL, updated_at = now()
             WHERE status = 'failed' AND ($1 OR id = ANY($2)) AND ($3::text IS NULL OR channel = $3)
             RETURNING id, channel
         ), queued AS (
             INSERT INTO jobs (queue, notification_id, channel)
             SELECT $4, id, channel FROM up
             ON CONFLICT (notification_id) DO UPDATE
                 SET available_at = now(), reserved_at = NULL, reserved_by = NULL, attempts = 0
             RETURNING notification_id
         )
         SELECT up.id, up.channel FROM up JOIN queued q ON q.notification_id = up.id ORDER BY up.id",
    )
    .bind::<Bool, _>(all)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Nullable<Text>, _>(channel)
    .bind::<Text, _>(queue)
    .load(conn)?)
}

/// The status of each given notification id that exists.
pub fn statuses(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    use crate::schema::notifications::dsl as n;
    Ok(n::notifications
        .filter(n::id.eq_any(ids))
        .select((n::id, n::status))
        .load(conn)?)
}
