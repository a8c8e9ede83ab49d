DROP INDEX notifications_one_receipt;
DELETE FROM notifications WHERE stage = 'paid';
DROP INDEX notifications_once_per_channel_day;
CREATE UNIQUE INDEX notifications_once_per_channel_day ON notifications (invoice_id, channel, run_date);
DROP TRIGGER invoices_paid ON invoices;
DROP FUNCTION dunning_invoice_paid();
DROP TABLE paid_events;
