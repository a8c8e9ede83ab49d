DROP INDEX IF EXISTS whatsapp_replies_created;
DROP INDEX IF EXISTS invoices_number_trgm;
DROP INDEX IF EXISTS customers_phone_digits_trgm;
DROP INDEX IF EXISTS customers_email_trgm;
DROP INDEX IF EXISTS customers_name_trgm;
-- pg_trgm stays: other objects may use it, and it costs nothing.
DROP INDEX IF EXISTS invoices_paid_at;
DROP INDEX IF EXISTS notifications_sent_recovery;
CREATE INDEX notifications_created ON notifications (created_at);
DROP INDEX IF EXISTS notifications_created_channel_status;
