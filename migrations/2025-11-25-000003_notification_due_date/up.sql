-- The invoice's due date when the reminder was created. "Already sent" means sent
-- for this stage *and this due date*: when billing moves a due date (an extension),
-- the stages of the new date are reminded again instead of being skipped forever.
ALTER TABLE notifications ADD COLUMN due_date DATE;

UPDATE notifications n SET due_date = i.due_date FROM invoices i WHERE i.id = n.invoice_id;
