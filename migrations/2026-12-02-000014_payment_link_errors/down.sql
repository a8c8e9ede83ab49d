ALTER TABLE notifications DROP COLUMN link_error;
