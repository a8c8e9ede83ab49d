-- The dashboard's counts from indexes alone (index-only scans), on 1,000,000 ledger
-- rows and 100,000 invoices (scripts/bench, section 7). Each index replaces one with
-- the same key and predicate: the worker writes no more index entries than before.

-- Hari ini, the month's WhatsApp messages (scheduling::whatsapp_sent_this_month):
-- group_id rides along, so a grouped message is counted once without reading the
-- table. Same key and predicate as notifications_sent, which it replaces.
CREATE INDEX notifications_sent_group ON notifications (channel, sent_at) INCLUDE (group_id)
    WHERE status = 'sent';
DROP INDEX notifications_sent;
ALTER INDEX notifications_sent_group RENAME TO notifications_sent;

-- Riwayat, recovery by stage: the invoices paid since the window began, id included
-- (the join key was read from the table, one page per paid invoice).
CREATE INDEX invoices_paid_at_id ON invoices (paid_at) INCLUDE (id, amount) WHERE status = 'paid';
DROP INDEX invoices_paid_at;
ALTER INDEX invoices_paid_at_id RENAME TO invoices_paid_at;
