-- A run for another day than the local today (`dunning-schedule --date`): a
-- backfill of a past day, or a test run for a future one. It covers its own day's
-- stages, but it is not the day's cron run: `doctor` and catch-up look only at runs
-- with backfill = false for "has the scheduler been running".
ALTER TABLE schedule_runs ADD COLUMN backfill BOOLEAN NOT NULL DEFAULT false;
