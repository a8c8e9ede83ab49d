CREATE INDEX invoices_paid_at_amount ON invoices (paid_at) INCLUDE (amount) WHERE status = 'paid';
DROP INDEX invoices_paid_at;
ALTER INDEX invoices_paid_at_amount RENAME TO invoices_paid_at;

CREATE INDEX notifications_sent_channel ON notifications (channel, sent_at) WHERE status = 'sent';
DROP INDEX notifications_sent;
ALTER INDEX notifications_sent_channel RENAME TO notifications_sent;
