ALTER TABLE notifications DROP COLUMN due_date;
