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

use super::{ClaimedJob, JobQueue};
use crate::Result;

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
}
