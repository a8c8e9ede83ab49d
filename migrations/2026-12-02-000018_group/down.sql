DROP INDEX IF EXISTS notifications_group;
ALTER TABLE notifications DROP COLUMN IF EXISTS group_id;
