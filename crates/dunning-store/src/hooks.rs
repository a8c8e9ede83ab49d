//! Escalation hooks in the ledger and the queue (migration 000019): each run of an
//! action is a `notifications` row of channel [`HOOK_CHANNEL`] (stage = the event,
//! recipient = the action's name) with a job, so it is exactly once per invoice (or
//! customer) and event — the unique index `notifications_one_hook` — retried,
//! listed by `failed`, put back by `retry` and counted by `stats` like a message.
//!
//! Stage hooks are queued by the scheduler ([`queue_stage_hooks`]); `paid`,
//! `optout` and the restore after a payment by the worker from `hook_events`, which
//! triggers fill ([`sweep`]).

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date as SqlDate, Integer, Nullable, Text, Timestamptz};
use time::{Date, OffsetDateTime};

use crate::Result;
use crate::rows::CustomerContact;

/// The ledger's and the queue's channel of a hook run.
pub const HOOK_CHANNEL: &str = "hook";

/// One stage with a hook, for [`queue_stage_hooks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The stage's label (`T+7`): the ledger's stage.
    pub stage: String,
    pub offset_days: i32,
    /// The action's name.
    pub action: String,
}

/// Hook runs queued for one stage.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Queued {
    #[diesel(sql_type = Text)]
    pub stage: String,
    #[diesel(sql_type = BigInt)]
    pub runs: i64,
}

/// Queues one run of each stage's action for every unpaid invoice whose stage day
/// falls in `[first_day, run_date]` (the run date and the days it catches up), once
/// per invoice and stage ever (`ON CONFLICT DO NOTHING` on `notifications_one_hook`).
/// A stage before the due date does not fire once the due date has passed; a pause
/// covering the run date holds the run (it is queued after the pause, while the
/// stage day is still in the window); opt-outs do not (they are about messages).
/// With `dry_run` nothing is written and the counts say what would be queued.
pub fn queue_stage_hooks(
    conn: &mut PgConnection,
    plan: &[StagePlan],
    first_day: Date,
    run_date: Date,
    queue: &str,
    dry_run: bool,
) -> Result<Vec<Queued>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let done = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        out = diesel::sql_query(
            "WITH plan AS (
                 SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS p(stage, off, action)
             ), cand AS (
                 SELECT i.id AS invoice_id, i.customer_id, i.due_date, p.stage, p.action
                 FROM plan p
                 JOIN invoices i ON i.status = 'unpaid' AND NOT i.is_test
                      AND i.due_date BETWEEN $4 - p.off AND $5 - p.off
                 WHERE NOT (p.off <= 0 AND i.due_date < $5)
                   AND NOT EXISTS (SELECT 1 FROM pauses ps
                                   WHERE ps.starts_on <= $5 AND ps.until >= $5
                                     AND (ps.customer_id = i.customer_id OR ps.invoice_id = i.id))
             ), ins AS (
                 INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date,
                                            due_date, recipient, status)
                 SELECT invoice_id, customer_id, stage, 'hook', $5, due_date, action, 'queued' FROM cand
                 ON CONFLICT DO NOTHING
                 RETURNING id, stage
             ), queued AS (
                 INSERT INTO jobs (queue, notification_id, channel) SELECT $6, id, 'hook' FROM ins
             )
             SELECT stage, count(*) AS runs FROM ins GROUP BY stage ORDER BY stage",
        )
        .bind::<Array<Text>, _>(plan.iter().map(|p| p.stage.clone()).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(plan.iter().map(|p| p.offset_days).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(plan.iter().map(|p| p.action.clone()).collect::<Vec<_>>())
        .bind::<SqlDate, _>(first_day)
        .bind::<SqlDate, _>(run_date)
        .bind::<Text, _>(queue)
        .load(conn)?;
        if dry_run {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(())
    });
    match done {
        Ok(()) | Err(diesel::result::Error::RollbackTransaction) => Ok(out),
        Err(e) => Err(e.into()),
    }
}

/// What the worker queues from `hook_events` ([`sweep`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPlan {
    /// The action run when an invoice turns paid.
    pub paid: Option<String>,
    /// The action run when a customer opts out of a channel.
    pub optout: Option<String>,
    /// (stage, restore action): when the last of a customer's unpaid invoices that
    /// had this stage's action run (or tried) is paid, the restore runs once.
    pub restores: Vec<(String, String)>,
}

/// Takes every pending hook event and queues the runs `plan` asks for on `queue`,
/// dated `today`: `paid` for an invoice still paid, `optout` for an opt-out (once
/// per customer and channel), and each due restore. Events nothing is configured
/// for are dropped. Safe from many workers at once: each event is taken by one.
/// Returns how many runs were queued.
///
/// A customer is isolated by stage S while one of their unpaid invoices has a run
/// of S's action that was not skipped. The restore of S is queued by the payment
/// of such an invoice only when no other one is left unpaid: paying one of two
/// isolated invoices restores nothing, paying the second restores once. One
/// restore per isolation episode: its row is keyed (`notifications_one_hook`) on
/// the invoice of the customer's newest (not skipped) run of S, which a new
/// episode always changes (a stage action runs once per invoice ever), so two
/// payments ending one episode — in one sweep or in two workers' at once — queue
/// one restore, and the next episode gets its own.
pub fn sweep(conn: &mut PgConnection, plan: &EventPlan, queue: &str, today: Date) -> Result<usize> {
    Ok(diesel::sql_query(
        "WITH ev AS (
             DELETE FROM hook_events RETURNING event, customer_id, invoice_id, channel
         ), cand AS (
             SELECT ev.invoice_id, ev.customer_id, i.due_date, 'paid' AS stage, $1 AS action
             FROM ev JOIN invoices i ON i.id = ev.invoice_id AND i.status = 'paid'
             WHERE ev.event = 'paid' AND $1 IS NOT NULL
             UNION ALL
             SELECT NULL, ev.customer_id, NULL, 'optout:' || ev.channel, $2
             FROM ev WHERE ev.event = 'optout' AND $2 IS NOT NULL
             UNION ALL
             SELECT last.invoice_id, ev.customer_id, last.due_date, 'restore:' || r.stage, r.action
             FROM ev
             JOIN invoices i ON i.id = ev.invoice_id AND i.status = 'paid'
             CROSS JOIN unnest($3::text[], $4::text[]) AS r(stage, action)
             -- the episode's key: the invoice of the customer's newest run of the stage
             CROSS JOIN LATERAL (
                 SELECT n.invoice_id, n.due_date FROM notifications n
                 WHERE n.channel = 'hook' AND n.customer_id = ev.customer_id
                   AND n.stage = r.stage AND n.status <> 'skipped' AND n.invoice_id IS NOT NULL
                 ORDER BY n.id DESC LIMIT 1
             ) last
             WHERE ev.event = 'paid'
               AND EXISTS (SELECT 1 FROM notifications n
                           WHERE n.channel = 'hook' AND n.invoice_id = ev.invoice_id
                             AND n.stage = r.stage AND n.status <> 'skipped')
               -- no other invoice keeps the customer isolated
               AND NOT EXISTS (SELECT 1 FROM notifications o
                               JOIN invoices oi ON oi.id = o.invoice_id AND oi.status = 'unpaid'
                               WHERE o.channel = 'hook' AND o.customer_id = ev.customer_id
                                 AND o.stage = r.stage AND o.status <> 'skipped')
         ), ins AS (
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date,
                                        recipient, status)
             SELECT invoice_id, customer_id, stage, 'hook', $5, due_date, action, 'queued' FROM cand
             ON CONFLICT DO NOTHING
             RETURNING id
         )
         INSERT INTO jobs (queue, notification_id, channel) SELECT $6, id, 'hook' FROM ins",
    )
    .bind::<Nullable<Text>, _>(plan.paid.as_deref())
    .bind::<Nullable<Text>, _>(plan.optout.as_deref())
    .bind::<Array<Text>, _>(
        plan.restores
            .iter()
            .map(|r| r.0.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        plan.restores
            .iter()
            .map(|r| r.1.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<SqlDate, _>(today)
    .bind::<Text, _>(queue)
    .execute(conn)?)
}

/// A hook job this worker holds ([`crate::queue::JobQueue::claim_hook`]).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct HookJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    /// Attempts including this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

/// Everything a hook run needs, read right before it runs.
#[derive(Debug, Clone, QueryableByName)]
pub struct HookFacts {
    /// The event: `T+7`, `paid`, `optout:whatsapp`, `restore:T+7`.
    #[diesel(sql_type = Text)]
    pub stage: String,
    #[diesel(sql_type = Text)]
    pub ledger_status: String,
    /// The action's name.
    #[diesel(sql_type = Nullable<Text>)]
    pub action: Option<String>,
    #[diesel(sql_type = SqlDate)]
    pub run_date: Date,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub invoice_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub invoice_number: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub amount: Option<i64>,
    #[diesel(sql_type = Nullable<SqlDate>)]
    pub due_date: Option<Date>,
    #[diesel(sql_type = Nullable<Text>)]
    pub invoice_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub paid_at: Option<OffsetDateTime>,
    /// The customer, email and phone trimmed (`None` when blank).
    #[diesel(embed)]
    pub customer: CustomerContact,
    /// For a restore: the state of the runs it undoes, the customer's runs of the
    /// stage since their previous restore (not skipped): `queued` while one has not
    /// ended, `sent` once one ran or was tried, `None` when none did.
    #[diesel(sql_type = Nullable<Text>)]
    pub undone_status: Option<String>,
    /// For a restore: an unpaid invoice of the customer whose run of the stage was
    /// not skipped (the customer is still isolated by it), `None` when there is none.
    #[diesel(sql_type = Nullable<Text>)]
    pub still_isolated: Option<String>,
}

/// Reads a hook job's ledger row, invoice and customer. `None`: the row is gone.
pub fn facts(conn: &mut PgConnection, job: &HookJob) -> Result<Option<HookFacts>> {
    Ok(diesel::sql_query(
        "SELECT n.stage, n.status AS ledger_status, n.recipient AS action, n.run_date,
                i.id AS invoice_id, i.number AS invoice_number, i.amount, i.due_date,
                i.status AS invoice_status, i.paid_at,
                cu.id AS customer_id, cu.name AS customer_name,
                NULLIF(btrim(cu.email), '') AS email, NULLIF(btrim(cu.phone), '') AS phone,
                (SELECT CASE WHEN bool_or(o.status = 'queued') THEN 'queued'
                             WHEN bool_or(o.status <> 'skipped') THEN 'sent' END
                   FROM notifications o
                  WHERE n.stage LIKE 'restore:%' AND o.channel = 'hook'
                    AND o.customer_id = n.customer_id AND o.stage = substr(n.stage, 9)
                    AND o.id > COALESCE((SELECT max(p.id) FROM notifications p
                                         WHERE p.channel = 'hook' AND p.customer_id = n.customer_id
                                           AND p.stage = n.stage AND p.id < n.id
                                           AND p.status <> 'skipped'), 0)) AS undone_status,
                (SELECT oi.number FROM notifications o
                   JOIN invoices oi ON oi.id = o.invoice_id AND oi.status = 'unpaid'
                  WHERE n.stage LIKE 'restore:%' AND o.channel = 'hook'
                    AND o.customer_id = n.customer_id AND o.stage = substr(n.stage, 9)
                    AND o.status <> 'skipped'
                  ORDER BY oi.number LIMIT 1) AS still_isolated
         FROM notifications n
         JOIN customers cu ON cu.id = n.customer_id
         LEFT JOIN invoices i ON i.id = n.invoice_id
         WHERE n.id = $1 AND n.channel = 'hook'",
    )
    .bind::<BigInt, _>(job.notification_id)
    .get_result(conn)
    .optional()?)
}

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEnd {
    /// The action did it; its output (cut, masked) is kept in the ledger's `body`.
    Done {
        output: String,
    },
    Failed {
        error: String,
    },
    Skipped {
        reason: String,
    },
}

/// Records a final state in the ledger and deletes the job, in one statement (the
/// queue's own, [`crate::queue::record_end`]).
pub fn finish(conn: &mut PgConnection, job: &HookJob, end: &HookEnd) -> Result<()> {
    let (status, body, error) = match end {
        HookEnd::Done { output } => ("sent", Some(output.as_str()), None),
        HookEnd::Failed { error } => ("failed", None, Some(error.as_str())),
        HookEnd::Skipped { reason } => ("skipped", None, Some(reason.as_str())),
    };
    let end = crate::queue::End {
        status,
        recipient: None,
        provider_id: None,
        error,
        body,
    };
    crate::queue::record_end(conn, job.id, &[job.notification_id], job.attempts, &end)
}

/// Puts `job` back for another attempt at `at`, keeping the error in the job and
/// the ledger (as a message's retry, [`crate::queue::put_back`]). With `count =
/// false` the attempt is handed back (a hold, not a try).
pub fn again_at(
    conn: &mut PgConnection,
    job: &HookJob,
    at: OffsetDateTime,
    error: &str,
    count: bool,
) -> Result<()> {
    let attempts = if count {
        job.attempts
    } else {
        (job.attempts - 1).max(0)
    };
    crate::queue::put_back(conn, job.id, &[job.notification_id], attempts, at, error)
}
