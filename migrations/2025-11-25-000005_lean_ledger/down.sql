DROP INDEX notifications_failed_created;
CREATE INDEX notifications_status_created ON notifications (status, created_at);
ALTER TABLE notifications ADD CONSTRAINT notifications_once_per_stage_channel_day
    UNIQUE (invoice_id, stage, channel, run_date);
