-- Batches: a worker thread claims up to N jobs in one statement and checks (and
-- locks) their invoices in one more, instead of two round trips per job.
--
-- Every function here plans its statements once per session (force_generic_plan):
-- with array parameters the plan cache would otherwise re-plan them on every call,
-- which cost more than running them. Their plans are pinned by the settings below.

-- Ready jobs are looked up per channel, so a channel whose backlog waits (paused,
-- or WhatsApp paced at one message per interval) is never scanned by the other
-- channel's claims.
CREATE INDEX jobs_ready_channel ON jobs (queue, channel, available_at, id);
DROP INDEX jobs_ready;

-- A claim only sets columns no index covers (reservation, attempts): with room left
-- in each page the update stays on the page (HOT) and touches no index. Jobs live
-- for minutes, so the space is cheap.
ALTER TABLE jobs SET (fillfactor = 50);

-- Claims up to p_limit fresh jobs (never reserved) of the given channels, split
-- evenly between them, oldest first; or, with p_abandoned, ONE job whose
-- reservation is older than p_retry_after (its worker died). An abandoned job is
-- taken back alone: it may be the job that killed its worker, and its batch-mates
-- must not share its fate a second time. The attempt is counted here.
CREATE FUNCTION dunning_claim_batch(p_queue text, p_worker text, p_retry_after double precision,
                                    p_channels text[], p_limit integer, p_abandoned boolean)
RETURNS TABLE (
    id bigint, notification_id bigint, channel text, attempts integer,
    invoice_id bigint, invoice_number text, amount bigint, due_date date,
    customer_name text, stage text, recipient text, status text, run_date date
)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[] := '{}';
    v_more bigint[];
    v_channel text;
    v_each integer;
BEGIN
    IF p_abandoned THEN
        FOREACH v_channel IN ARRAY p_channels LOOP
            SELECT array_agg(s.id) INTO v_more FROM (
                SELECT r.id FROM jobs r
                WHERE r.queue = p_queue AND r.channel = v_channel
                  AND r.available_at <= now()
                  AND r.reserved_at < now() - make_interval(secs => p_retry_after)
                ORDER BY r.available_at, r.id
                LIMIT 1
                FOR UPDATE SKIP LOCKED) s;
            IF v_more IS NOT NULL THEN
                v_ids := v_more;
                EXIT;
            END IF;
        END LOOP;
    ELSE
        v_each := GREATEST(1, ceil(p_limit::numeric / GREATEST(cardinality(p_channels), 1)))::integer;
        FOREACH v_channel IN ARRAY p_channels LOOP
            SELECT array_agg(s.id) INTO v_more FROM (
                SELECT r.id FROM jobs r
                WHERE r.queue = p_queue AND r.channel = v_channel
                  AND r.available_at <= now()
                  AND r.reserved_at IS NULL
                ORDER BY r.available_at, r.id
                LIMIT v_each
                FOR UPDATE SKIP LOCKED) s;
            IF v_more IS NOT NULL THEN
                v_ids := v_ids || v_more;
            END IF;
        END LOOP;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE jobs j SET reserved_at = now(), reserved_by = p_worker, attempts = j.attempts + 1
        WHERE j.id = ANY (v_ids)
        RETURNING j.id, j.notification_id, j.channel, j.attempts
    )
    SELECT c.id, c.notification_id, c.channel, c.attempts,
           i.id, i.number, i.amount, i.due_date,
           cu.name, n.stage,
           -- the customer's current contact, so a corrected number is used on retry
           COALESCE(CASE c.channel WHEN 'email' THEN NULLIF(btrim(cu.email), '')
                                   ELSE NULLIF(btrim(cu.phone), '') END, n.recipient),
           n.status, n.run_date
    FROM claimed c
    JOIN notifications n ON n.id = c.notification_id
    JOIN invoices i ON i.id = n.invoice_id
    JOIN customers cu ON cu.id = i.customer_id;
END
$$;

-- Right before a batch of sends: lock the batch's invoices (FOR SHARE, in invoice
-- order, until the caller's transaction ends) and report, per ledger row, what the
-- worker must check. A billing UPDATE of one of these invoices waits until the
-- caller commits (the worker keeps a batch's locks about a second at most).
CREATE FUNCTION dunning_hold_batch(p_notifications bigint[], p_day_start timestamptz,
                                   p_day_end timestamptz)
RETURNS TABLE (notification_id bigint, status text, own text, sent_today boolean, busy boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_busy bigint[];
BEGIN
    -- One sender per invoice and channel at a time, across all workers: another
    -- worker's batch may hold a second reminder for the same invoice (yesterday's
    -- retry next to today's stage), and FOR SHARE does not exclude FOR SHARE. A
    -- ledger row whose invoice·channel is taken is reported busy (the worker hands
    -- it back for a moment). The lock ends with the caller's transaction, after the
    -- holder recorded its send; the check below is a new statement, so it sees it.
    SELECT array_agg(n.id) INTO v_busy
    FROM notifications n
    WHERE n.id = ANY (p_notifications)
      AND NOT pg_try_advisory_xact_lock(hashtext('dunning:' || n.channel),
                                        (n.invoice_id & 2147483647)::integer);
    RETURN QUERY
    SELECT n.id, i.status, n.status,
           -- Read by invoice (a handful of rows), never by status: written as a
           -- WHERE on status/sent_at, the planner would pick the status index
           -- whenever the statistics predate today's sends (a fresh month, a
           -- queue filled after ANALYZE) and scan every message sent today for
           -- every job: quadratic over a drain (1 ms a job at 10,000 sent).
           COALESCE((SELECT bool_or(o.status = 'sent' AND o.sent_at >= p_day_start
                                    AND o.sent_at < p_day_end)
                     FROM notifications o
                     WHERE o.invoice_id = i.id AND o.channel = n.channel AND o.id <> n.id),
                    false),
           COALESCE(n.id = ANY (v_busy), false)
    FROM notifications n
    JOIN invoices i ON i.id = n.invoice_id
    WHERE n.id = ANY (p_notifications)
    ORDER BY i.id
    FOR SHARE OF i;
END
$$;

-- Final states of several jobs at once (one statement for the outcomes that worker
-- threads of one process record at the same moment: group commit). Each ledger row
-- is updated and its job deleted, all or nothing. Pinned to index lookups: the
-- planner cannot know how many rows the arrays hold.
CREATE FUNCTION dunning_finish_many(p_notifications bigint[], p_jobs bigint[], p_statuses text[],
                                    p_provider_message_ids text[], p_errors text[],
                                    p_attempts integer[])
RETURNS void
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    UPDATE notifications n
       SET status = f.status, provider_message_id = f.provider_message_id, error = f.error,
           attempts = f.attempts, updated_at = now(),
           sent_at = CASE WHEN f.status = 'sent' THEN now() ELSE n.sent_at END
      FROM unnest(p_notifications, p_statuses, p_provider_message_ids, p_errors, p_attempts)
           AS f(id, status, provider_message_id, error, attempts)
     WHERE n.id = f.id;
    DELETE FROM jobs WHERE id = ANY (p_jobs);
END
$$;

-- Superseded by the batch functions (one job = a batch of one).
DROP FUNCTION dunning_claim(text, text, double precision, text[]);
DROP FUNCTION dunning_hold(bigint, bigint, text, timestamptz, timestamptz);
DROP FUNCTION dunning_finish(bigint, bigint, text, text, text, integer);
