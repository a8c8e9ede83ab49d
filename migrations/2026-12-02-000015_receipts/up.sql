-- Receipts (issue 17): when an invoice turns from unpaid to paid — a gateway callback,
-- `dunning-schedule invoice paid`, a sync or import, or billing updating `invoices`
-- itself — the customer gets one "Terima kasih, pembayaran … telah kami terima" per
-- channel, through the same ledger and queue as reminders (stage 'paid').

-- The transitions, written by a trigger so that every writer of `invoices` is seen,
-- and turned into ledger rows and jobs by the worker (`receipts::queue_pending`),
-- which knows DUNNING_RECEIPTS and its queue. A row lives seconds.
CREATE TABLE paid_events (
    invoice_id BIGINT PRIMARY KEY REFERENCES invoices (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION dunning_invoice_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO paid_events (invoice_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER invoices_paid AFTER UPDATE OF status ON invoices
    FOR EACH ROW WHEN (OLD.status = 'unpaid' AND NEW.status = 'paid' AND NOT NEW.is_test)
    EXECUTE FUNCTION dunning_invoice_paid();

-- One reminder per invoice, channel and day stays the rule for reminders; a receipt
-- may go out on the day of a reminder, and only once per invoice and channel ever
-- (a replayed callback, or paid → unpaid → paid, sends no second one).
DROP INDEX notifications_once_per_channel_day;
CREATE UNIQUE INDEX notifications_once_per_channel_day
    ON notifications (invoice_id, channel, run_date) WHERE stage <> 'paid';
CREATE UNIQUE INDEX notifications_one_receipt
    ON notifications (invoice_id, channel) WHERE stage = 'paid';
