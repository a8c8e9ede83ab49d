-- One message per customer (DUNNING_GROUP=customer): the ledger keeps one row per
-- invoice, stage, channel and day; the rows one message carries point at the group's
-- lead row (the one its job names, which points at itself). NULL: a message of its own.
ALTER TABLE notifications ADD COLUMN group_id bigint;
CREATE INDEX notifications_group ON notifications (group_id) WHERE group_id IS NOT NULL;
