-- WhatsApp both ways (issue 18): Fonnte delivery states, customers' replies,
-- pauses and opt-outs, and automatic answers queued like reminders.

-- A hold on reminders: one customer (all invoices) or one invoice, for the run
-- dates starts_on..until (inclusive). `unpause` ends it by moving `until` to the
-- day before; the row stays as history (and for catch-up after the pause).
CREATE TABLE pauses (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT REFERENCES customers (id) ON DELETE CASCADE,
    invoice_id  BIGINT REFERENCES invoices (id) ON DELETE CASCADE,
    starts_on   DATE NOT NULL,
    until       DATE NOT NULL,
    reason      TEXT NOT NULL,
    -- who set it: `cli:<user>`, `whatsapp:<reply id>`, later `web:<login>`
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pauses_customer_or_invoice CHECK ((customer_id IS NULL) <> (invoice_id IS NULL))
);
CREATE INDEX pauses_customer ON pauses (customer_id, until) WHERE customer_id IS NOT NULL;
CREATE INDEX pauses_invoice ON pauses (invoice_id, until) WHERE invoice_id IS NOT NULL;

-- A customer who asked not to be reminded on a channel. Deleted by opt-in.
CREATE TABLE opt_outs (
    customer_id BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'whatsapp')),
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, channel)
);

-- Every message a customer (or anyone) sent to the Fonnte device.
CREATE TABLE whatsapp_replies (
    id          BIGSERIAL PRIMARY KEY,
    -- Fonnte retries a webhook up to 15 times: the same message is stored once.
    -- `inbox:<inboxid>` when Fonnte sends one, else a digest of device, sender,
    -- timestamp and text.
    dedup_key   TEXT NOT NULL UNIQUE,
    device      TEXT,
    sender      TEXT NOT NULL,
    sender_name TEXT,
    message     TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    customer_id BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    intent      TEXT NOT NULL,
    -- "perlu dibalas": an operator must read it (a paid claim to verify, or a
    -- message no keyword answers)
    flagged     BOOLEAN NOT NULL,
    handled_at  TIMESTAMPTZ,
    handled_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX whatsapp_replies_open ON whatsapp_replies (created_at) WHERE flagged AND handled_at IS NULL;
CREATE INDEX whatsapp_replies_customer ON whatsapp_replies (customer_id, created_at);

-- Fonnte's message-status webhook: each state of each sent message, once.
-- notification_id is NULL when the id matched no ledger row (yet).
CREATE TABLE delivery_states (
    id                  BIGSERIAL PRIMARY KEY,
    provider_message_id TEXT NOT NULL,
    notification_id     BIGINT REFERENCES notifications (id) ON DELETE CASCADE,
    state               TEXT NOT NULL,
    -- Fonnte's `stateid`: later calls name the message by it alone.
    state_id            TEXT,
    received_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT delivery_states_once UNIQUE (provider_message_id, state)
);
CREATE INDEX delivery_states_notification ON delivery_states (notification_id);
CREATE INDEX delivery_states_state_id ON delivery_states (state_id) WHERE state_id IS NOT NULL;

-- The time of the last device connect/disconnect applied: Fonnte retries failed
-- webhooks for 15 minutes, so a late `disconnect` must not undo a newer `connect`.
ALTER TABLE channel_state ADD COLUMN device_event_at TIMESTAMPTZ;
CREATE INDEX notifications_provider_message_id ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Automatic answers to replies are WhatsApp messages in the same ledger and queue
-- as reminders (paced, counted against the quota, retried, visible in `failed`):
-- a ledger row with reply_id set, no invoice, stage 'reply:<kind>' and the
-- rendered text in body. One answer per received message.
ALTER TABLE notifications ALTER COLUMN invoice_id DROP NOT NULL;
ALTER TABLE notifications ADD COLUMN reply_id BIGINT REFERENCES whatsapp_replies (id) ON DELETE CASCADE;
ALTER TABLE notifications ADD COLUMN body TEXT;
ALTER TABLE notifications ADD CONSTRAINT notifications_reminder_or_reply
    CHECK ((invoice_id IS NULL) = (reply_id IS NOT NULL) AND (reply_id IS NULL OR body IS NOT NULL));
CREATE UNIQUE INDEX notifications_one_answer ON notifications (reply_id) WHERE reply_id IS NOT NULL;
