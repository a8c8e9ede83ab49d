DROP FUNCTION dunning_finish_many(bigint[], bigint[], text[], text[], text[], integer[]);
DROP FUNCTION dunning_hold_batch(bigint[], timestamptz, timestamptz);
DROP FUNCTION dunning_claim_batch(text, text, double precision, text[], integer, boolean);
ALTER TABLE jobs RESET (fillfactor);
CREATE INDEX jobs_ready ON jobs (queue, available_at, id);
DROP INDEX jobs_ready_channel;
CREATE FUNCTION dunning_claim(p_queue text, p_worker text, p_retry_after double precision, p_channels text[])
RETURNS TABLE (
    id bigint, notification_id bigint, channel text, attempts integer,
    invoice_id bigint, invoice_number text, amount bigint, due_date date,
    customer_name text, stage text, recipient text, status text, run_date date
)
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH claimed AS (
        UPDATE jobs j SET reserved_at = now(), reserved_by = p_worker, attempts = j.attempts + 1
        WHERE j.id = (
            SELECT r.id FROM jobs r
            WHERE r.queue = p_queue
              AND r.available_at <= now()
              AND (r.reserved_at IS NULL OR r.reserved_at < now() - make_interval(secs => p_retry_after))
              AND r.channel = ANY (p_channels)
            ORDER BY r.available_at, r.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING j.id, j.notification_id, j.channel, j.attempts
    )
    SELECT c.id, c.notification_id, c.channel, c.attempts,
           i.id, i.number, i.amount, i.due_date,
           cu.name, n.stage,
           COALESCE(CASE c.channel WHEN 'email' THEN NULLIF(btrim(cu.email), '')
                                   ELSE NULLIF(btrim(cu.phone), '') END, n.recipient),
           n.status, n.run_date
    FROM claimed c
    JOIN notifications n ON n.id = c.notification_id
    JOIN invoices i ON i.id = n.invoice_id
    JOIN customers cu ON cu.id = i.customer_id;
END
$$;

CREATE FUNCTION dunning_hold(p_invoice bigint, p_notification bigint, p_channel text,
                             p_day_start timestamptz, p_day_end timestamptz)
RETURNS TABLE (status text, own text, sent_today boolean)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT i.status,
           (SELECT n.status FROM notifications n WHERE n.id = p_notification),
           EXISTS (SELECT 1 FROM notifications n
                   WHERE n.invoice_id = i.id AND n.channel = p_channel AND n.id <> p_notification
                     AND n.status = 'sent' AND n.sent_at >= p_day_start AND n.sent_at < p_day_end)
    FROM invoices i WHERE i.id = p_invoice
    FOR SHARE OF i;
END
$$;

CREATE FUNCTION dunning_finish(p_notification bigint, p_job bigint, p_status text,
                               p_provider_message_id text, p_error text, p_attempts integer)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE notifications
       SET status = p_status, provider_message_id = p_provider_message_id, error = p_error,
           attempts = p_attempts, updated_at = now(),
           sent_at = CASE WHEN p_status = 'sent' THEN now() ELSE sent_at END
     WHERE id = p_notification;
    DELETE FROM jobs WHERE id = p_job;
END
$$;
