-- scripts/bench, scheduler: :customers customers and :invoices invoices, due dates
-- spread evenly over the 60 days around :'run_date' (30 before, 29 after), a third
-- of them paid. Customers: most have both contacts; every 5th has no email, every
-- 3rd no phone (so every 15th has neither: recorded as skipped by the scheduler).
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO customers (id, external_id, name, email, phone)
SELECT g, 'C' || g, 'Pelanggan ' || g,
       CASE WHEN g % 5 <> 0 THEN 'pelanggan' || g || '@wikarta-pelanggan.co.id' END,
       CASE WHEN g % 3 <> 0 THEN '0857' || lpad(g::text, 8, '0') END
FROM generate_series(1, :customers) AS g;
INSERT INTO invoices (id, number, customer_id, amount, due_date, status, paid_at)
SELECT g, 'INV-' || lpad(g::text, 8, '0'),
       -- a hash, so that contacts, due dates and payments are independent
       1 + (hashint4(g)::bigint & 2147483647) % :customers,
       150000 + (g % 20) * 25000,
       :'run_date'::date - 30 + (g % 60),
       CASE WHEN (g / 60) % 3 = 0 THEN 'paid' ELSE 'unpaid' END,
       CASE WHEN (g / 60) % 3 = 0 THEN now() END
FROM generate_series(1, :invoices) AS g;
SELECT setval('customers_id_seq', :customers), setval('invoices_id_seq', :invoices);
COMMIT;
VACUUM ANALYZE customers;
VACUUM ANALYZE invoices;
VACUUM ANALYZE notifications;
VACUUM ANALYZE jobs;
