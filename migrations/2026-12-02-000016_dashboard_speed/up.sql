-- The dashboard's pages within 100 ms on 1,000,000 ledger rows and 100,000 invoices
-- (scripts/bench, section 7).

-- Riwayat, the 30-day chart: counts per day, channel and status from the index
-- alone. It has the key of notifications_created, which it replaces.
CREATE INDEX notifications_created_channel_status ON notifications (created_at)
    INCLUDE (channel, status);
DROP INDEX notifications_created;

-- Riwayat, recovery by stage: the month's sent reminders read from the index alone
-- (stage and invoice ride along), and only the invoices paid since the window began.
CREATE INDEX notifications_sent_recovery ON notifications (sent_at) INCLUDE (stage, invoice_id)
    WHERE status = 'sent';
CREATE INDEX invoices_paid_at ON invoices (paid_at) INCLUDE (amount) WHERE status = 'paid';

-- Cari: "contains" searches of names and email addresses, "ends with" of phone
-- digits and "starts with" of invoice numbers, by trigram (pg_trgm ships with
-- PostgreSQL, Debian's postgresql package included; a trusted extension since 13).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_name_trgm ON customers USING gin (lower(name) gin_trgm_ops);
CREATE INDEX customers_email_trgm ON customers USING gin (lower(email) gin_trgm_ops);
CREATE INDEX customers_phone_digits_trgm ON customers
    USING gin (regexp_replace(phone, '[^0-9]', '', 'g') gin_trgm_ops);
CREATE INDEX invoices_number_trgm ON invoices USING gin (number gin_trgm_ops);

-- Balasan: the latest replies that need no answer (any more).
CREATE INDEX whatsapp_replies_created ON whatsapp_replies (created_at);
