//! Grouped deliveries (`DUNNING_GROUP=customer`): one job, one message, several
//! ledger rows. The scheduler links the rows of one customer, channel and run date
//! to the group's lead row (`notifications.group_id`, the lead pointing at itself)
//! and queues one job naming the lead. The worker locks every invoice of the group,
//! re-reads every row right before the send, drops the rows that must not go out
//! (recorded as skipped, each on its own: a skip is final whatever happens next),
//! sends once and records every row the message carried in one statement with the
//! job's deletion: a crash leaves either all of them recorded or none, so a retry
//! sends the whole message again or nothing, never a part of it.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use time::OffsetDateTime;

use super::{ClaimedJob, Delivery, Final, JobQueue, sender_lock_class};
use crate::Result;
use crate::schema::jobs;

/// One ledger row of a group, read right before the send.
#[derive(Debug, Clone, QueryableByName)]
pub struct Member {
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(embed)]
    pub delivery: Delivery,
}

/// Locks every invoice of the group `$1` leads on its channel (`$2` the lock class):
/// NULL when `$1` leads no group.
const LOCK_GROUP: &str =
    "SELECT bool_and(pg_try_advisory_lock($2, (invoice_id & 2147483647)::integer)) AS locked
     FROM notifications WHERE group_id = $1 AND invoice_id IS NOT NULL";

/// [`super::sql::RECHECK`] for every row of the group `$1` leads, in the order the
/// message lists them (due date, number).
const GROUP_RECHECK: &str = "SELECT n.id AS notification_id, n.stage, n.status AS ledger_status,
            i.id AS invoice_id, i.number AS invoice_number, i.amount, i.due_date,
            i.status AS invoice_status, i.from_billing, i.payment_url,
            cu.id AS customer_id, cu.name AS customer_name,
            COALESCE(NULLIF(btrim(CASE n.channel WHEN 'email' THEN cu.email ELSE cu.phone END), ''),
                     n.recipient) AS recipient,
            COALESCE((SELECT bool_or(o.status = 'sent' AND o.sent_at >= $2 AND o.sent_at < $3)
                      FROM notifications o
                      WHERE o.invoice_id = n.invoice_id AND o.channel = n.channel AND o.id <> n.id),
                     false) AS sent_today
     FROM notifications n
     JOIN invoices i ON i.id = n.invoice_id
     JOIN customers cu ON cu.id = i.customer_id
     WHERE n.group_id = $1
     ORDER BY i.due_date, i.number, n.id";

/// The final state of every row one message carried (`$2`) and the job's deletion,
/// in one statement: all recorded, or (crash) none. Parameters as in
/// [`super::sql::FINISH`].
const FINISH_GROUP: &str = "WITH noted AS (
         UPDATE notifications
            SET status = $3, recipient = COALESCE($4, recipient), provider_message_id = $5,
                error = $6, attempts = $7, updated_at = now(),
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END
          WHERE id = ANY($2)
     )
     DELETE FROM jobs WHERE id = $1";

impl JobQueue {
    /// When `job` names the lead of a group: tries to lock every invoice of the
    /// group on the job's channel (as [`JobQueue::lock_sender`] does for one) and
    /// says whether all were taken. `None`: a message of its own.
    pub fn lock_group(&self, conn: &mut PgConnection, job: &ClaimedJob) -> Result<Option<bool>> {
        #[derive(QueryableByName)]
        struct L {
            #[diesel(sql_type = Nullable<Bool>)]
            locked: Option<bool>,
        }
        let l: L = diesel::sql_query(LOCK_GROUP)
            .bind::<BigInt, _>(job.notification_id)
            .bind::<Integer, _>(sender_lock_class(job.channel))
            .get_result(conn)?;
        Ok(l.locked)
    }

    /// Reads every row of `job`'s group right before the send (after
    /// [`JobQueue::lock_group`]); `today` is the local day's bounds.
    pub fn group_recheck(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        today: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Vec<Member>> {
        Ok(diesel::sql_query(GROUP_RECHECK)
            .bind::<BigInt, _>(job.notification_id)
            .bind::<Timestamptz, _>(today.0)
            .bind::<Timestamptz, _>(today.1)
            .load(conn)?)
    }

    /// Drops one row from its group before the send: skipped, for good, with `reason`.
    pub fn skip_member(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        notification_id: i64,
        reason: &str,
    ) -> Result<()> {
        use crate::schema::notifications as n;
        diesel::update(n::table.find(notification_id))
            .filter(n::status.eq("queued"))
            .set((
                n::status.eq("skipped"),
                n::error.eq(reason),
                n::attempts.eq(job.attempts),
                n::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Records `outcome` on every row in `carried` (the rows one message carried;
    /// empty: none was left) and deletes the job, atomically.
    pub fn finish_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &[i64],
        outcome: &Final,
    ) -> Result<()> {
        let (status, recipient, provider_id, error) = outcome.columns();
        diesel::sql_query(FINISH_GROUP)
            .bind::<BigInt, _>(job.id)
            .bind::<Array<BigInt>, _>(carried)
            .bind::<Text, _>(status)
            .bind::<Nullable<Text>, _>(recipient)
            .bind::<Nullable<Text>, _>(provider_id)
            .bind::<Nullable<Text>, _>(error)
            .bind::<Integer, _>(job.attempts)
            .execute(conn)?;
        Ok(())
    }

    /// [`JobQueue::retry_later`] for a group: the error goes on every row it carries.
    pub fn retry_group_later(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &[i64],
        at: OffsetDateTime,
        error: &str,
    ) -> Result<()> {
        use crate::schema::notifications as n;
        conn.transaction(|conn| {
            diesel::update(n::table.filter(n::id.eq_any(carried)))
                .set((
                    n::attempts.eq(job.attempts),
                    n::error.eq(error),
                    n::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
            diesel::update(jobs::table.find(job.id))
                .set((
                    jobs::reserved_at.eq(None::<OffsetDateTime>),
                    jobs::reserved_by.eq(None::<String>),
                    jobs::available_at.eq(at),
                    jobs::last_error.eq(error),
                ))
                .execute(conn)?;
            Ok(())
        })
    }
}
