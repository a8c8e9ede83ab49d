-- scripts/bench, worker drain: :customers customers with both contacts and one
-- unpaid invoice each, due 7 days after :'run_date' (stage T-7): the scheduler run
-- for :'run_date' then queues 2 × :customers jobs (Email and WhatsApp).
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO customers (id, external_id, name, email, phone)
SELECT g, 'C' || g, 'Pelanggan ' || g,
       'pelanggan' || g || '@wikarta-pelanggan.co.id',
       '0857' || lpad(g::text, 8, '0')
FROM generate_series(1, :customers) AS g;
INSERT INTO invoices (id, number, customer_id, amount, due_date)
SELECT g, 'INV-' || lpad(g::text, 8, '0'), g, 150000 + (g % 20) * 25000, :'run_date'::date + 7
FROM generate_series(1, :customers) AS g;
SELECT setval('customers_id_seq', :customers), setval('invoices_id_seq', :customers);
COMMIT;
VACUUM ANALYZE customers;
VACUUM ANALYZE invoices;
