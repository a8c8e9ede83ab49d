-- The worker's pre-send read asks "was this invoice reminded on this channel today?"
-- (queue::sql::RECHECK, sent_today) for every job. Since the ledger's unique index
-- became partial (receipts, 000015; hooks, 000019) no index served that question,
-- and each job read the whole ledger: a seq scan per send, growing with history.
-- A plain index on the invoice and channel answers it from a handful of rows.
CREATE INDEX notifications_invoice_channel ON notifications (invoice_id, channel);
