-- Payments reported by the gateways' signed callbacks (dunning-web), and the hosted
-- payment pages created for invoices (PAYMENT_LINK=xendit|midtrans|tripay).

CREATE TABLE payments (
    id          BIGSERIAL PRIMARY KEY,
    -- xendit, midtrans or tripay.
    gateway     TEXT NOT NULL CHECK (gateway IN ('xendit', 'midtrans', 'tripay')),
    -- The gateway's own id of the payment (Xendit invoice id, Midtrans
    -- transaction_id, Tripay reference): a replayed callback carries the same one.
    reference   TEXT NOT NULL,
    -- What we sent as external_id / order_id / merchant_ref: the invoice number, or
    -- the number with a ~N suffix for a link created again after it expired.
    order_id    TEXT NOT NULL,
    -- NULL when no invoice has that order id (flagged unknown_invoice).
    invoice_id  BIGINT REFERENCES invoices (id) ON DELETE SET NULL,
    -- Whole rupiah paid, as the gateway reported it (fractions rounded down).
    amount      BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    paid_at     TIMESTAMPTZ NOT NULL,
    -- The callback body as received (after its signature was verified).
    raw         JSONB NOT NULL,
    -- Why this payment did not mark its invoice paid, for the operator; NULL when it did.
    flag        TEXT CHECK (flag IN ('unknown_invoice', 'underpaid', 'wrong_currency',
                                     'invoice_not_unpaid')),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT payments_once_per_gateway_reference UNIQUE (gateway, reference)
);

CREATE INDEX payments_invoice ON payments (invoice_id);
CREATE INDEX payments_flagged ON payments (received_at) WHERE flag IS NOT NULL;

-- One current hosted payment page per invoice and gateway: created when a reminder
-- first needs it, reused while it is valid, replaced once it expired.
CREATE TABLE payment_links (
    invoice_id  BIGINT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    gateway     TEXT NOT NULL CHECK (gateway IN ('xendit', 'midtrans', 'tripay')),
    -- The order id sent to the gateway (unique: the callback is mapped back by it).
    order_id    TEXT NOT NULL UNIQUE,
    -- The gateway's id of the page (Xendit invoice id, Midtrans token, Tripay reference).
    reference   TEXT NOT NULL,
    url         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- How many pages were created for this invoice on this gateway (the ~N suffix).
    generation  INTEGER NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, gateway)
);
