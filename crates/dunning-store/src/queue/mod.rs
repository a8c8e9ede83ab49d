//! The job queue: claim, re-check read, and the final steps (sent, failed, skipped,
//! retry later, hand back), through one [`JobQueue`] handle per worker.
//!
//! A claim reserves one ready job with `FOR UPDATE SKIP LOCKED`, so any number of
//! workers on any number of hosts never take the same job, and counts the attempt
//! at once: a job that kills its worker is not retried forever. A reservation older
//! than `retry_after` means its worker died: [`JobQueue::rescue_abandoned`] makes
//! such jobs ready again (the rescuer). The WhatsApp gate (pacing and the monthly
//! quota, shared by all workers) is in [`gate`]; channel pauses and heartbeats in
//! [`state`]; the few statements the DSL cannot express in [`sql`].

mod gate;
mod group;
mod sql;
mod state;

use std::time::Duration;

use diesel::dsl::sql as fragment;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date as SqlDate, Double, Integer, Nullable, Text, Timestamptz,
};
use time::{Date, OffsetDateTime};

use dunning_core::{Channel, Stage};

use crate::hooks::HookJob;
use crate::schema::jobs;
use crate::{Result, StoreError};

pub use gate::{Gate, Held, Slot, WhatsAppLimits, take_whatsapp_slot};
pub use state::{
    ChannelState, Paused, Resumed, channel_states, heartbeat, pause_channel, resume_channel,
    worker_stopped,
};

/// One worker's handle on one queue: the queue's name, the worker's id (stored in
/// `jobs.reserved_by`) and `--retry-after`, the age at which a reservation counts
/// as abandoned.
#[derive(Debug, Clone)]
pub struct JobQueue {
    queue: String,
    worker: String,
    retry_after: Duration,
}

/// A job this worker holds. What it is about is read right before the send
/// ([`JobQueue::recheck`]), not at claim time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub notification_id: i64,
    pub channel: Channel,
    /// Attempts including this one.
    pub attempts: i32,
    /// The sender lock the claim took for the job's invoice (every invoice of its
    /// group) on its channel.
    pub sender: SenderLock,
    /// The job leads a group of reminders sent as one message (`DUNNING_GROUP=customer`).
    pub grouped: bool,
}

/// One worker at a time sends to an invoice on a channel, across all workers:
/// another worker may hold a second reminder for the same invoice (yesterday's retry
/// next to today's stage). The claim takes a session-level advisory lock on
/// (channel, invoice) in the same statement; it is held until the outcome is
/// recorded ([`JobQueue::unlock_senders`]). A lock, not a row of `invoices`, so
/// billing never waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderLock {
    /// This worker holds it.
    Taken,
    /// Another worker is sending to this invoice (one of the group's) on this
    /// channel right now. Locks the claim did take are held until the job is handed
    /// back.
    Busy,
    /// The job has no invoice (an answer to a reply): nothing to lock.
    NoInvoice,
}

impl SenderLock {
    fn from_db(locked: Option<bool>) -> Self {
        match locked {
            Some(true) => SenderLock::Taken,
            Some(false) => SenderLock::Busy,
            None => SenderLock::NoInvoice,
        }
    }
}

/// Everything needed to decide whether a reminder goes out now, and to render it:
/// the ledger row, its invoice and the customer's current contact, read right
/// before the send.
#[derive(Debug, Clone, QueryableByName)]
pub struct Delivery {
    /// The ledger row.
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(sql_type = Text)]
    stage: String,
    /// The ledger row's status (`queued` unless a duplicate job finished it).
    #[diesel(sql_type = Text)]
    pub ledger_status: String,
    #[diesel(sql_type = BigInt)]
    pub invoice_id: i64,
    #[diesel(sql_type = Text)]
    pub invoice_number: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = SqlDate)]
    pub due_date: Date,
    /// `unpaid`, `paid` or `void`.
    #[diesel(sql_type = Text)]
    pub invoice_status: String,
    /// The invoice comes from a billing source (`dunning-schedule sync`): the worker
    /// asks the source right before the send.
    #[diesel(sql_type = Bool)]
    pub from_billing: bool,
    /// A payment link billing wrote (or the source query returned), if any.
    #[diesel(sql_type = Nullable<Text>)]
    pub payment_url: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub customer_id: i64,
    #[diesel(sql_type = Text)]
    pub customer_name: String,
    /// The customer's current contact on the job's channel (else the one recorded
    /// when the reminder was scheduled).
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    /// Another ledger row of this invoice and channel was sent today.
    #[diesel(sql_type = Bool)]
    pub sent_today: bool,
    /// Why an earlier attempt went without its payment link (`link_error`).
    #[diesel(sql_type = Nullable<Text>)]
    pub link_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    hold_kind: Option<String>,
    #[diesel(sql_type = Nullable<SqlDate>)]
    hold_until: Option<Date>,
    #[diesel(sql_type = Nullable<Text>)]
    hold_reason: Option<String>,
}

impl Delivery {
    /// True for a receipt ([`crate::receipts`]), which has no reminder stage.
    pub fn is_receipt(&self) -> bool {
        self.stage == crate::receipts::RECEIPT_STAGE
    }

    /// A pause or an opt-out holding this reminder today, set after it was queued (a
    /// reply "STOP", `dunning-schedule pause …`): the rule the scheduler applies.
    pub fn hold(&self) -> Option<crate::holds::HoldReason> {
        crate::holds::hold_from(
            self.hold_kind.as_deref(),
            self.hold_until,
            self.hold_reason.clone(),
        )
    }

    /// The reminder's stage; an unknown one is an error naming the value.
    pub fn stage(&self) -> Result<Stage> {
        self.stage.parse().map_err(|_| StoreError::UnknownValue {
            column: "notifications.stage",
            value: self.stage.clone(),
        })
    }
}

/// An answer to a customer's WhatsApp reply (`STOP`, `SUDAH BAYAR`, a promise to
/// pay), queued by [`crate::inbound::fonnte_incoming`]: a ledger row with no invoice,
/// the text in `body`, sent to the number that wrote. Read right before the send.
#[derive(Debug, Clone, QueryableByName)]
pub struct Answer {
    #[diesel(sql_type = BigInt)]
    pub reply_id: i64,
    /// `reply:<kind>`.
    #[diesel(sql_type = Text)]
    pub stage: String,
    /// The ledger row's status (`queued` unless a duplicate job finished it).
    #[diesel(sql_type = Text)]
    pub ledger_status: String,
    /// The sender's number as Fonnte wrote it.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Text)]
    pub body: String,
}

/// The final state of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// Handed to the provider, at `recipient` (recorded in the ledger).
    Sent {
        recipient: String,
        provider_message_id: Option<String>,
    },
    Failed {
        error: String,
    },
    Skipped {
        reason: String,
    },
}

impl Final {
    /// The ledger's status, recipient, provider message id and error for this state.
    fn columns(&self) -> (&'static str, Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Final::Sent {
                recipient,
                provider_message_id,
            } => (
                "sent",
                Some(recipient.as_str()),
                provider_message_id.as_deref(),
                None,
            ),
            Final::Failed { error } => ("failed", None, None, Some(error.as_str())),
            Final::Skipped { reason } => ("skipped", None, None, Some(reason.as_str())),
        }
    }
}

/// The advisory lock class of [`SenderLock`] per channel (any two numbers no other
/// user of the database takes).
fn sender_lock_class(channel: Channel) -> i32 {
    match channel {
        Channel::Email => 0x4455_0001,
        Channel::WhatsApp => 0x4455_0002,
    }
}

impl JobQueue {
    /// The handle of worker `worker` on `queue`.
    pub fn new(queue: &str, worker: &str, retry_after: Duration) -> Self {
        JobQueue {
            queue: queue.to_owned(),
            worker: worker.to_owned(),
            retry_after,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// Reserves the oldest ready job of `channel` for this worker, counting the
    /// attempt, and tries its invoice's [`SenderLock`], in one statement (`FOR
    /// UPDATE SKIP LOCKED`: workers never take the same job, and never wait for each
    /// other). WhatsApp under pacing or a quota goes through
    /// [`JobQueue::claim_whatsapp`] instead.
    pub fn claim(&self, conn: &mut PgConnection, channel: Channel) -> Result<Option<ClaimedJob>> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = BigInt)]
            notification_id: i64,
            #[diesel(sql_type = Text)]
            channel: String,
            #[diesel(sql_type = Integer)]
            attempts: i32,
            #[diesel(sql_type = Nullable<Bool>)]
            sender_lock: Option<bool>,
            #[diesel(sql_type = Bool)]
            grouped: bool,
        }
        let row: Option<Row> = crate::named(sql::CLAIM)
            .bind::<Text, _>(&self.queue)
            .bind::<Text, _>(channel.as_str())
            .bind::<Text, _>(&self.worker)
            .bind::<Integer, _>(sender_lock_class(channel))
            .get_result(conn)
            .optional()?;
        row.map(|r| {
            Ok(ClaimedJob {
                id: r.id,
                notification_id: r.notification_id,
                channel: r.channel.parse().map_err(|_| StoreError::UnknownValue {
                    column: "jobs.channel",
                    value: r.channel,
                })?,
                attempts: r.attempts,
                sender: SenderLock::from_db(r.sender_lock),
                grouped: r.grouped,
            })
        })
        .transpose()
    }

    /// Reserves the oldest ready hook run of this queue ([`crate::hooks`]) for this
    /// worker, counting the attempt, like [`JobQueue::claim`] without the sender lock.
    pub fn claim_hook(&self, conn: &mut PgConnection) -> Result<Option<HookJob>> {
        Ok(crate::named(sql::CLAIM_HOOK)
            .bind::<Text, _>(&self.queue)
            .bind::<Text, _>(crate::hooks::HOOK_CHANNEL)
            .bind::<Text, _>(&self.worker)
            .get_result(conn)
            .optional()?)
    }

    /// Ends the [`SenderLock`] this connection holds.
    pub fn unlock_senders(&self, conn: &mut PgConnection) -> Result<()> {
        // Named (prepared once per connection): it runs after every job.
        crate::named(sql::UNLOCK_ALL).execute(conn)?;
        Ok(())
    }

    /// Reads `job`'s ledger rows (its own, or its group's), their invoices, the
    /// customer's current contact and any hold right before the send
    /// ([`sql::RECHECK`]); `today` is the local day and `bounds` its UTC bounds. No
    /// row is locked. Empty: the ledger row is gone.
    pub fn recheck(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        today: Date,
        bounds: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Vec<Delivery>> {
        Ok(crate::named(sql::RECHECK)
            .bind::<BigInt, _>(job.notification_id)
            .bind::<Timestamptz, _>(bounds.0)
            .bind::<Timestamptz, _>(bounds.1)
            .bind::<SqlDate, _>(today)
            .load(conn)?)
    }

    /// `job`'s answer to a customer's reply, when it is one (`None`: a reminder, or
    /// the ledger row is gone; [`JobQueue::recheck`] tells which).
    pub fn answer(&self, conn: &mut PgConnection, job: &ClaimedJob) -> Result<Option<Answer>> {
        Ok(crate::named(sql::ANSWER)
            .bind::<BigInt, _>(job.notification_id)
            .get_result(conn)
            .optional()?)
    }

    /// Records `outcome` on every row in `carried` (the job's own row, or the rows
    /// one grouped message carried; empty: none was left) and deletes the job,
    /// atomically ([`sql::FINISH`]).
    pub fn finish(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &[i64],
        outcome: &Final,
    ) -> Result<()> {
        let (status, recipient, provider_id, error) = outcome.columns();
        let end = End {
            status,
            recipient,
            provider_id,
            error,
            body: None,
        };
        record_end(conn, job.id, carried, job.attempts, &end)
    }

    /// Puts `job` back for another attempt at `at`, keeping the error in the job and
    /// on every row it carries.
    pub fn retry_later(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &[i64],
        at: OffsetDateTime,
        error: &str,
    ) -> Result<()> {
        put_back(conn, job.id, carried, job.attempts, at, error)
    }

    /// Hands `job` back, ready at `at`, without counting its attempt (its channel
    /// is paused, the send slot is taken, another worker is sending to its invoice).
    pub fn release(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        at: OffsetDateTime,
    ) -> Result<()> {
        diesel::update(jobs::table.find(job.id))
            .set((
                jobs::reserved_at.eq(None::<OffsetDateTime>),
                jobs::reserved_by.eq(None::<String>),
                jobs::available_at.eq(at),
                jobs::attempts.eq(fragment::<Integer>("GREATEST(attempts - 1, 0)")),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// The rescuer's step: jobs whose reservation is older than `retry_after` (their
    /// worker died) become ready again, keeping their place in line and their
    /// counted attempt. Returns how many.
    ///
    /// A reservation is never older than its job's availability (a claim needs
    /// `available_at <= now()`; whatever moves `available_at` also clears the
    /// reservation), so only jobs available for longer than `retry_after` are read:
    /// an index range that stays empty while a fresh queue drains.
    pub fn rescue_abandoned(&self, conn: &mut PgConnection) -> Result<usize> {
        let secs = self.retry_after.as_secs_f64();
        Ok(diesel::update(jobs::table)
            .filter(jobs::queue.eq(&self.queue))
            // Hook runs ([`crate::hooks`]) are rescued like messages.
            .filter(jobs::channel.eq_any(["email", "whatsapp", crate::hooks::HOOK_CHANNEL]))
            .filter(
                fragment::<Bool>("available_at < now() - make_interval(secs => ")
                    .bind::<Double, _>(secs)
                    .sql(") AND reserved_at < now() - make_interval(secs => ")
                    .bind::<Double, _>(secs)
                    .sql(")"),
            )
            .set((
                jobs::reserved_at.eq(None::<OffsetDateTime>),
                jobs::reserved_by.eq(None::<String>),
            ))
            .execute(conn)?)
    }

    /// Jobs waiting in this queue (not reserved), per channel, with the earliest
    /// time one of them is ready: what an idle worker tells the operator.
    pub fn waiting(&self, conn: &mut PgConnection) -> Result<Vec<Waiting>> {
        use diesel::dsl::{count_star, min};
        let rows: Vec<(String, i64, Option<OffsetDateTime>)> = jobs::table
            .filter(jobs::queue.eq(&self.queue))
            .filter(jobs::reserved_at.is_null())
            .filter(jobs::channel.eq_any(Channel::ALL.map(Channel::as_str)))
            .group_by(jobs::channel)
            .select((jobs::channel, count_star(), min(jobs::available_at)))
            .load(conn)?;
        rows.into_iter()
            .map(|(channel, jobs, first)| {
                Ok(Waiting {
                    channel: channel.parse().map_err(|_| StoreError::UnknownValue {
                        column: "jobs.channel",
                        value: channel,
                    })?,
                    jobs,
                    first_ready_at: first.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                })
            })
            .collect()
    }
}

/// Jobs of one channel waiting in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub channel: Channel,
    pub jobs: i64,
    /// When the first of them is (or was) ready.
    pub first_ready_at: OffsetDateTime,
}

/// The ledger columns of a final state ([`sql::FINISH`]); `None` keeps the
/// recipient and the body, and clears the provider message id and the error.
pub(crate) struct End<'a> {
    pub status: &'a str,
    pub recipient: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub body: Option<&'a str>,
}

/// Records `end` (and `attempts`) on the ledger rows `carried` and deletes job
/// `job_id`, in one statement: a message's final state and a hook run's.
pub(crate) fn record_end(
    conn: &mut PgConnection,
    job_id: i64,
    carried: &[i64],
    attempts: i32,
    end: &End<'_>,
) -> Result<()> {
    // One row, as every job but a grouped message carries: `id = $2`, whose plan
    // PostgreSQL keeps per connection. It plans `id = ANY($2)` on every call (its
    // generic plan is priced for ten rows): a third of the statement's cost.
    let statement = match carried {
        [row] => crate::named(sql::FINISH_ONE)
            .bind::<BigInt, _>(job_id)
            .bind::<BigInt, _>(*row),
        rows => crate::named(sql::FINISH)
            .bind::<BigInt, _>(job_id)
            .bind::<Array<BigInt>, _>(rows),
    };
    statement
        .bind::<Text, _>(end.status)
        .bind::<Nullable<Text>, _>(end.recipient)
        .bind::<Nullable<Text>, _>(end.provider_id)
        .bind::<Nullable<Text>, _>(end.error)
        .bind::<Integer, _>(attempts)
        .bind::<Nullable<Text>, _>(end.body)
        .execute(conn)?;
    Ok(())
}

/// Makes job `job_id` ready again at `at` with `attempts` counted, keeping `error`
/// in the job and on the ledger rows `carried`: a message's retry and a hook run's
/// retry or hold.
pub(crate) fn put_back(
    conn: &mut PgConnection,
    job_id: i64,
    carried: &[i64],
    attempts: i32,
    at: OffsetDateTime,
    error: &str,
) -> Result<()> {
    use crate::schema::notifications as n;
    conn.transaction(|conn| {
        diesel::update(n::table.filter(n::id.eq_any(carried)))
            .set((
                n::attempts.eq(attempts),
                n::error.eq(error),
                n::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        diesel::update(jobs::table.find(job_id))
            .set((
                jobs::reserved_at.eq(None::<OffsetDateTime>),
                jobs::reserved_by.eq(None::<String>),
                jobs::available_at.eq(at),
                jobs::last_error.eq(error),
                jobs::attempts.eq(attempts),
            ))
            .execute(conn)?;
        Ok(())
    })
}
