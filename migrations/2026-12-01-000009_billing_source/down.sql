DROP TABLE billing_sync;
ALTER TABLE invoices DROP COLUMN from_billing;
ALTER TABLE invoices DROP COLUMN IF EXISTS payment_url;
