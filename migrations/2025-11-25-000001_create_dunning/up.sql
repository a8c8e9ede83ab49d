-- Dunning schema.
--
-- `customers` and `invoices` are the integration contract with the billing system:
-- a billing application (or `dunning-schedule import`) writes them. Everything else
-- belongs to Dunning.

CREATE TABLE customers (
    id          BIGSERIAL PRIMARY KEY,
    -- The billing system's own id for the customer, used by `import` to upsert.
    external_id TEXT UNIQUE,
    name        TEXT NOT NULL,
    email       TEXT,
    phone       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    id          BIGSERIAL PRIMARY KEY,
    number      TEXT NOT NULL UNIQUE,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    -- Whole rupiah.
    amount      BIGINT NOT NULL CHECK (amount >= 0),
    due_date    DATE NOT NULL,
    status      TEXT NOT NULL DEFAULT 'unpaid' CHECK (status IN ('unpaid', 'paid', 'void')),
    paid_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The scheduler selects unpaid invoices by due date, one date per stage.
CREATE INDEX invoices_unpaid_due_date ON invoices (due_date) WHERE status = 'unpaid';
CREATE INDEX invoices_customer ON invoices (customer_id);

-- The ledger: one row per invoice, stage, channel and run date.
CREATE TABLE notifications (
    id                  BIGSERIAL PRIMARY KEY,
    invoice_id          BIGINT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    customer_id         BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    stage               TEXT NOT NULL,
    channel             TEXT NOT NULL CHECK (channel IN ('email', 'whatsapp')),
    -- The local date of the scheduler run that created this row.
    run_date            DATE NOT NULL,
    recipient           TEXT,
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'sent', 'failed', 'skipped')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    error               TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at             TIMESTAMPTZ,
    CONSTRAINT notifications_once_per_stage_channel_day
        UNIQUE (invoice_id, stage, channel, run_date)
);

-- Stronger than the constraint above: whatever the stage (catch-up runs can pick an
-- older one), an invoice gets at most one reminder per channel per day.
CREATE UNIQUE INDEX notifications_once_per_channel_day
    ON notifications (invoice_id, channel, run_date);
CREATE INDEX notifications_status_created ON notifications (status, created_at);
CREATE INDEX notifications_created ON notifications (created_at);
-- Monthly WhatsApp quota and the "already reminded today" re-check.
CREATE INDEX notifications_sent ON notifications (channel, sent_at) WHERE status = 'sent';

-- The queue. A job is one delivery of one ledger row; it is deleted when the
-- delivery reaches a final state (sent, failed, skipped), which the ledger keeps.
CREATE TABLE jobs (
    id              BIGSERIAL PRIMARY KEY,
    queue           TEXT NOT NULL DEFAULT 'default',
    notification_id BIGINT NOT NULL UNIQUE REFERENCES notifications (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'whatsapp')),
    -- Attempts started so far; counted when a worker claims the job.
    attempts        INTEGER NOT NULL DEFAULT 0,
    available_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    reserved_at     TIMESTAMPTZ,
    reserved_by     TEXT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX jobs_ready ON jobs (queue, available_at, id);

-- Per-channel state shared by all workers: WhatsApp pacing and channel-wide pauses
-- (disconnected device, invalid token, quota used up, SMTP login refused).
CREATE TABLE channel_state (
    channel      TEXT PRIMARY KEY CHECK (channel IN ('email', 'whatsapp')),
    next_send_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    paused_until TIMESTAMPTZ,
    pause_reason TEXT,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO channel_state (channel) VALUES ('email'), ('whatsapp');

-- Every scheduler run, so that missed days are known rather than guessed.
CREATE TABLE schedule_runs (
    id          BIGSERIAL PRIMARY KEY,
    run_date    DATE NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    host        TEXT NOT NULL DEFAULT '',
    dispatched  INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    caught_up   INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX schedule_runs_run_date ON schedule_runs (run_date);

-- Worker heartbeats, for `doctor` and `stats`.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queue        TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at   TIMESTAMPTZ,
    jobs_done    BIGINT NOT NULL DEFAULT 0
);
