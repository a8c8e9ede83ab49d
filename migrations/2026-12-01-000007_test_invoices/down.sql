ALTER TABLE invoices DROP COLUMN is_test;
