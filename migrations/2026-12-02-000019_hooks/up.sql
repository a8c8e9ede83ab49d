-- Escalation hooks (issue 21): actions (a command, or a signed HTTP POST) run on a
-- stage, on payment, on opt-out, and the restore of a stage's action after payment.
-- Each run is a ledger row of channel 'hook' (stage = the event: 'T+7', 'paid',
-- 'optout:whatsapp', 'restore:T+7'; recipient = the action's name; body = the
-- action's output) with a job, so hooks are queued, retried, listed by `failed` and
-- counted by `stats` like messages.

ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check,
    ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'whatsapp', 'hook'));
ALTER TABLE jobs DROP CONSTRAINT jobs_channel_check,
    ADD CONSTRAINT jobs_channel_check CHECK (channel IN ('email', 'whatsapp', 'hook'));
-- A hook run is about an invoice, or (an opt-out) only a customer; never a reply.
ALTER TABLE notifications DROP CONSTRAINT notifications_reminder_or_reply,
    ADD CONSTRAINT notifications_reminder_or_reply CHECK (CASE WHEN channel = 'hook'
        THEN reply_id IS NULL
        ELSE (invoice_id IS NULL) = (reply_id IS NOT NULL) AND (reply_id IS NULL OR body IS NOT NULL)
    END);

-- What the worker turns into hook runs: invoices that turned paid and opt-outs,
-- written by triggers so that every writer is seen (gateway callbacks, `invoice
-- paid`, syncs, billing itself; the CLI, WhatsApp STOP replies, the dashboard). The
-- worker takes them (`hooks::sweep`); without hooks configured it drops them.
CREATE TABLE hook_events (
    id          BIGSERIAL PRIMARY KEY,
    event       TEXT NOT NULL CHECK (event IN ('paid', 'optout')),
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    invoice_id  BIGINT REFERENCES invoices (id) ON DELETE CASCADE,
    channel     TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION dunning_hook_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_events (event, customer_id, invoice_id) VALUES ('paid', NEW.customer_id, NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER invoices_paid_hook AFTER UPDATE OF status ON invoices
    FOR EACH ROW WHEN (OLD.status = 'unpaid' AND NEW.status = 'paid' AND NOT NEW.is_test)
    EXECUTE FUNCTION dunning_hook_paid();

CREATE FUNCTION dunning_hook_optout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_events (event, customer_id, channel) VALUES ('optout', NEW.customer_id, NEW.channel);
    RETURN NULL;
END
$$;

CREATE TRIGGER opt_outs_hook AFTER INSERT ON opt_outs
    FOR EACH ROW EXECUTE FUNCTION dunning_hook_optout();

-- Exactly once per invoice (or, for an opt-out, customer) and event, whatever runs,
-- reruns, crashes or concurrent workers do. Hook rows leave the one-reminder-a-day
-- rule of the message channels: an isolation and its restore may fall on one day.
CREATE UNIQUE INDEX notifications_one_hook
    ON notifications (customer_id, COALESCE(invoice_id, 0), stage) WHERE channel = 'hook';
DROP INDEX notifications_once_per_channel_day;
CREATE UNIQUE INDEX notifications_once_per_channel_day
    ON notifications (invoice_id, channel, run_date) WHERE stage <> 'paid' AND channel <> 'hook';
