DELETE FROM notifications WHERE channel = 'hook';
ALTER TABLE notifications DROP CONSTRAINT notifications_reminder_or_reply,
    ADD CONSTRAINT notifications_reminder_or_reply
    CHECK ((invoice_id IS NULL) = (reply_id IS NOT NULL) AND (reply_id IS NULL OR body IS NOT NULL));
ALTER TABLE jobs DROP CONSTRAINT jobs_channel_check,
    ADD CONSTRAINT jobs_channel_check CHECK (channel IN ('email', 'whatsapp'));
ALTER TABLE notifications DROP CONSTRAINT notifications_channel_check,
    ADD CONSTRAINT notifications_channel_check CHECK (channel IN ('email', 'whatsapp'));
DROP INDEX notifications_once_per_channel_day;
CREATE UNIQUE INDEX notifications_once_per_channel_day
    ON notifications (invoice_id, channel, run_date) WHERE stage <> 'paid';
DROP INDEX notifications_one_hook;
DROP TRIGGER opt_outs_hook ON opt_outs;
DROP FUNCTION dunning_hook_optout();
DROP TRIGGER invoices_paid_hook ON invoices;
DROP FUNCTION dunning_hook_paid();
DROP TABLE hook_events;
