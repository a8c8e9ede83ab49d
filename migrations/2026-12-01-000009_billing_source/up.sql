-- The billing source (`BILLING_DATABASE_URL`): `dunning-schedule sync` mirrors the
-- ISP's billing database into `customers` and `invoices`.

-- Written by a sync: only these are voided when they disappear from the source
-- (invoices made by `test-dunning`, `import` or the billing application stay).
ALTER TABLE invoices ADD COLUMN from_billing BOOLEAN NOT NULL DEFAULT false;
-- The payment link the billing source returned for the invoice, if any. IF NOT
-- EXISTS: the payment-link migration may add the same column.
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS payment_url TEXT;

-- One row per sync: `stats`, `doctor` and the worker's staleness rule read the last.
CREATE TABLE billing_sync (
    id                  BIGSERIAL PRIMARY KEY,
    started_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at         TIMESTAMPTZ,
    -- full (every row, disappeared invoices voided) or incremental (updated_at).
    mode                TEXT NOT NULL CHECK (mode IN ('full', 'incremental')),
    ok                  BOOLEAN,
    error               TEXT,
    customers_new       INTEGER NOT NULL DEFAULT 0,
    customers_changed   INTEGER NOT NULL DEFAULT 0,
    customers_unchanged INTEGER NOT NULL DEFAULT 0,
    customers_rejected  INTEGER NOT NULL DEFAULT 0,
    invoices_new        INTEGER NOT NULL DEFAULT 0,
    invoices_changed    INTEGER NOT NULL DEFAULT 0,
    invoices_unchanged  INTEGER NOT NULL DEFAULT 0,
    invoices_void       INTEGER NOT NULL DEFAULT 0,
    invoices_rejected   INTEGER NOT NULL DEFAULT 0,
    -- The newest updated_at read from each query, in the source's own local time
    -- (YYYY-MM-DD HH:MM:SS): where the next incremental sync starts.
    customers_watermark TEXT,
    invoices_watermark  TEXT
);

CREATE INDEX billing_sync_ok ON billing_sync (finished_at) WHERE ok;
