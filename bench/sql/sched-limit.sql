-- scripts/bench, scheduler: the physical limit. The same ledger rows and jobs the
-- scheduler writes for :'run_date' with the default stages (T-7, T-3, T-1, T+3), no
-- catch-up, written by one hand-written statement: unpaid invoices due on a stage
-- day, one row per channel the customer has a contact for (both channels as
-- `skipped` when the customer has neither), a job for each queued row.
\set ON_ERROR_STOP on
WITH ins AS (
    INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date, recipient, status, error)
    SELECT i.id, i.customer_id, s.stage, ch.channel, :'run_date'::date, i.due_date, ch.recipient,
           CASE WHEN ch.recipient IS NULL THEN 'skipped' ELSE 'queued' END,
           CASE WHEN ch.recipient IS NULL THEN 'customer has no email address and no phone number' END
    FROM (VALUES ('T-7', -7), ('T-3', -3), ('T-1', -1), ('T+3', 3)) AS s(stage, off)
    JOIN invoices i ON i.status = 'unpaid' AND i.due_date = :'run_date'::date - s.off
    JOIN customers c ON c.id = i.customer_id
    CROSS JOIN LATERAL (VALUES ('email', NULLIF(btrim(c.email), '')),
                               ('whatsapp', NULLIF(btrim(c.phone), ''))) AS ch(channel, recipient)
    WHERE ch.recipient IS NOT NULL
       OR (NULLIF(btrim(c.email), '') IS NULL AND NULLIF(btrim(c.phone), '') IS NULL)
    ON CONFLICT DO NOTHING
    RETURNING id, channel, status
)
INSERT INTO jobs (queue, notification_id, channel)
SELECT 'default', id, channel FROM ins WHERE status = 'queued';
