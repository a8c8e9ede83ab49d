//! Grouped deliveries (`DUNNING_GROUP=customer`): one job, one message, several
//! ledger rows. The scheduler links the rows of one customer, channel and run date
//! to the group's lead row (`notifications.group_id`, the lead pointing at itself)
//! and queues one job naming the lead. The claim locks every invoice of the group
//! ([`super::SenderLock`]), the pre-send read ([`JobQueue::recheck`]) re-reads every
//! row, drops the rows that must not go out
//! (recorded as skipped, each on its own: a skip is final whatever happens next),
//! sends once and records every row the message carried in one statement with the
//! job's deletion: a crash leaves either all of them recorded or none, so a retry
//! sends the whole message again or nothing, never a part of it.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text};
use time::OffsetDateTime;

use super::{ClaimedJob, Final, JobQueue};
use crate::Result;
use crate::schema::jobs;

impl JobQueue {
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
    /// empty: none was left) and deletes the job, atomically ([`super::sql::FINISH`]).
    pub fn finish_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &[i64],
        outcome: &Final,
    ) -> Result<()> {
        let (status, recipient, provider_id, error) = outcome.columns();
        crate::named(super::sql::FINISH)
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
