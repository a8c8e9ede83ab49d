//! The queue's statements that diesel's DSL cannot express or would re-plan on every
//! job (they run through [`crate::named`], prepared once per connection): a data-modifying CTE, a
//! comparison with the clock of the moment (`clock_timestamp()`), advisory locks,
//! an aggregate that must read one invoice's rows only. Everything else is DSL in
//! the modules next to this one. No planner settings anywhere: where a plan went
//! wrong the query or the index was fixed.

/// The claim's core: reserves the oldest ready job of queue `$1` and channel `$2`
/// for worker `$3`, counting the attempt (`FOR UPDATE SKIP LOCKED`: workers never
/// take the same job and never wait for each other), and returns the job's `id`,
/// `notification_id`, `channel` and `attempts`. [`CLAIM`] adds the sender lock;
/// [`CLAIM_HOOK`] is it alone.
macro_rules! reserve_next {
    () => {
        "UPDATE jobs SET reserved_at = now(), reserved_by = $3,
                     attempts = attempts + 1
     WHERE id IN (SELECT id FROM jobs
                  WHERE queue = $1 AND channel = $2 AND available_at <= now()
                    AND reserved_at IS NULL
                  ORDER BY available_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING id, notification_id, channel, attempts"
    };
}

/// `reserve_next!` for a message, trying the sender lock (advisory lock class `$4`)
/// of every invoice the job carries (its own, or its group's; NULL without an
/// invoice): see `JobQueue::claim`. Written here rather than in the DSL because it
/// runs once per job and diesel never keeps an `UPDATE` prepared.
pub(crate) const CLAIM: &str = concat!(
    reserve_next!(),
    ",
               (SELECT bool_and(pg_try_advisory_lock($4, (n.invoice_id & 2147483647)::integer))
                FROM notifications n
                WHERE (n.id = jobs.notification_id OR n.group_id = jobs.notification_id)
                  AND n.invoice_id IS NOT NULL) AS sender_lock,
               EXISTS (SELECT 1 FROM notifications g
                       WHERE g.id = jobs.notification_id AND g.group_id IS NOT NULL) AS grouped"
);

/// `reserve_next!` for a hook run (`$2` = `hook`): no sender lock, a hook sends
/// nothing. See `JobQueue::claim_hook`.
pub(crate) const CLAIM_HOOK: &str = reserve_next!();

/// A final state: the ledger rows a job carried (`$2`, see [`FINISH_ONE`] and
/// [`FINISH`]) updated (with the recipient actually used) and the job deleted, in
/// one statement: all recorded, or (crash) none. `$1` job id, `$3` status, `$4`
/// recipient (NULL keeps the old one), `$5` provider message id, `$6` error, `$7`
/// attempts, `$8` body (a hook run's output; NULL keeps the old one). The
/// data-modifying CTE always runs to completion.
macro_rules! finish {
    ($rows:literal) => {
        concat!(
            "WITH noted AS (
         UPDATE notifications
            SET status = $3, recipient = COALESCE($4, recipient), provider_message_id = $5,
                error = $6, attempts = $7, body = COALESCE($8, body), updated_at = now(),
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END
          WHERE ",
            $rows,
            "
     )
     DELETE FROM jobs WHERE id = $1"
        )
    };
}

/// `finish!` for one ledger row, `$2` its id.
pub(crate) const FINISH_ONE: &str = finish!("id = $2");

/// `finish!` for the rows one grouped message carried, `$2` their ids.
pub(crate) const FINISH: &str = finish!("id = ANY($2)");

/// Ends every advisory lock this session holds (the sender lock the claim took,
/// see `JobQueue::claim`).
pub(crate) const UNLOCK_ALL: &str = "SELECT pg_advisory_unlock_all()";

/// The pre-send read of a job's ledger rows (its own, or every row of the group it
/// leads, `DUNNING_GROUP=customer`, in the order the message lists them): the invoice's state, the customer's current
/// contact (so a corrected number is used on a retry), whether the invoice got a
/// reminder on this channel today already, and any pause or opt-out that holds it
/// today ([`crate::holds::hold_sql`]). A statement of its own after the claim that
/// took the sender lock, so that it sees an outcome recorded by the lock's last
/// holder.
///
/// The job's rows are named as a list (the row, then its group's others), not as
/// `n.id = $1 OR n.group_id = $1`, whose row estimate led the planner to hash the
/// whole `invoices` table for one row. "Sent today" reads the invoice's own ledger
/// rows (a handful, index `notifications_invoice_channel`): written as a
/// `WHERE` on status and `sent_at`, the planner may pick the index of sent rows and
/// read every message sent today for every job. `$1` notification id, `$2`/`$3` the
/// local day's bounds, `$4` the local day.
pub(crate) const RECHECK: &str = concat!(
    "SELECT n.id AS notification_id, n.stage, n.status AS ledger_status,
            i.id AS invoice_id, i.number AS invoice_number, i.amount, i.due_date,
            i.status AS invoice_status, i.from_billing, i.payment_url,
            cu.id AS customer_id, cu.name AS customer_name,
            COALESCE(NULLIF(btrim(CASE n.channel WHEN 'email' THEN cu.email ELSE cu.phone END), ''),
                     n.recipient) AS recipient,
            COALESCE((SELECT bool_or(o.status = 'sent' AND o.sent_at >= $2 AND o.sent_at < $3)
                      FROM notifications o
                      WHERE o.invoice_id = n.invoice_id AND o.channel = n.channel AND o.id <> n.id),
                     false) AS sent_today, n.link_error,
            h.kind AS hold_kind, h.until AS hold_until, h.reason AS hold_reason
     FROM notifications n
     JOIN invoices i ON i.id = n.invoice_id
     JOIN customers cu ON cu.id = i.customer_id
     LEFT JOIN LATERAL (",
    crate::holds::hold_sql!("i.id", "cu.id", "n.channel", "$4"),
    ") h ON true
     WHERE n.id IN (SELECT $1 UNION ALL
                    SELECT g.id FROM notifications g WHERE g.group_id = $1 AND g.id <> $1)
     ORDER BY i.due_date, i.number, n.id"
);

/// How long until the WhatsApp send slot opens, in seconds (0: open now), measured
/// with the clock of this moment, not `now()` (the transaction's start): a claim
/// that waited for the slot's row lock must not count its wait as spacing, nor see
/// a zero interval as a slot taken in the future. Run after locking the row.
pub(crate) const SLOT_WAIT: &str = "SELECT CASE WHEN next_send_at <= c.t THEN 0
                 ELSE extract(epoch FROM LEAST(next_send_at, c.t + interval '1 hour') - c.t)
            END::float8 AS wait_secs
     FROM channel_state CROSS JOIN (SELECT clock_timestamp() AS t) c
     WHERE channel = 'whatsapp'";

/// Takes the WhatsApp send slot: the next one opens `$1` seconds from this moment.
/// Returns the new `next_send_at` (to give the slot back, see `return_slot`).
pub(crate) const TAKE_SLOT: &str = "UPDATE channel_state
        SET next_send_at = clock_timestamp() + make_interval(secs => $1), updated_at = now()
      WHERE channel = 'whatsapp'
  RETURNING next_send_at";

/// WhatsApp messages counted against this month's quota: sent in the month (`$1` to
/// `$2`), plus jobs reserved by live workers (`$3`: `--retry-after` in seconds).
/// A message that carried several rows (`DUNNING_GROUP=customer`) counts once.
pub(crate) const QUOTA_USED: &str = "SELECT (SELECT count(DISTINCT COALESCE(group_id, id)) FROM notifications
              WHERE channel = 'whatsapp' AND status = 'sent' AND sent_at >= $1 AND sent_at < $2)
          + (SELECT count(*) FROM jobs
              WHERE channel = 'whatsapp' AND reserved_at >= now() - make_interval(secs => $3)) AS n";

/// The pre-send read of an answer to a customer's WhatsApp reply (a ledger row with
/// `reply_id`, no invoice): no row for a reminder. `$1` notification id.
pub(crate) const ANSWER: &str = "SELECT n.reply_id, n.stage, n.status AS ledger_status,
            NULLIF(btrim(n.recipient), '') AS recipient, n.body
     FROM notifications n
     WHERE n.id = $1 AND n.reply_id IS NOT NULL AND n.body IS NOT NULL";
