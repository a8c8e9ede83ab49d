-- Fewer index entries per delivery. Recording an outcome updates the ledger row's
-- status and sent_at, which indexes cover, so each update inserts one new entry
-- into every index of the table: six before this migration, four after it (three
-- for a skipped or failed row). That index maintenance was the largest single
-- cost of recording an outcome.

-- Implied by notifications_once_per_channel_day (invoice, channel, run_date): an
-- invoice that gets at most one reminder per channel and day gets at most one per
-- stage, channel and day. The scheduler's ON CONFLICT DO NOTHING names no index.
ALTER TABLE notifications DROP CONSTRAINT notifications_once_per_stage_channel_day;

-- Read only by `dunning-schedule failed` (status = 'failed', newest first): an
-- index of the failed rows alone, which a sent or skipped row never enters.
DROP INDEX notifications_status_created;
CREATE INDEX notifications_failed_created ON notifications (created_at) WHERE status = 'failed';
