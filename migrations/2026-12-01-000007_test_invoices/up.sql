-- Invoices created by `test-dunning` and `test-whatsapp`. The scheduler never selects
-- them, so a test send leaves nothing that the daily run would remind; the worker
-- still delivers the test's own queued reminders (they are unpaid like a real one).
-- Billing applications need not know the column: it defaults to false.
ALTER TABLE invoices ADD COLUMN is_test BOOLEAN NOT NULL DEFAULT false;
