-- Demo data for scripts/demo: invoices due at every stage relative to today in
-- Asia/Jakarta, one already paid, one customer without a phone number and one
-- without any contact.
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE d AS SELECT (now() AT TIME ZONE 'Asia/Jakarta')::date AS today;

INSERT INTO customers (external_id, name, email, phone) VALUES
    ('C-001', 'Dimas Pratama',  'dimas@example.com',  '085707211646'),
    ('C-002', 'John Doe',       'john@example.com',   '+62 812-3456-7890'),
    ('C-003', 'Jane Smith',     'jane@example.com',   '0813 1111 2222'),
    ('C-004', 'Siti Rahayu',    'siti@example.com',   NULL),
    ('C-005', 'Budi Santoso',   NULL,                 '6285711112222'),
    ('C-006', 'Tanpa Kontak',   NULL,                 NULL),
    ('C-007', 'Ayu Lestari',    'ayu@example.com',    '081299998888');

INSERT INTO invoices (number, customer_id, amount, due_date, status)
SELECT v.number, c.id, v.amount, d.today + v.days, v.status
FROM (VALUES
    ('INV-DEMO-0001', 'C-001',   150000,  7, 'unpaid'),   -- T-7
    ('INV-DEMO-0002', 'C-002',   250000,  3, 'unpaid'),   -- T-3
    ('INV-DEMO-0003', 'C-004',  1250000,  3, 'unpaid'),   -- T-3, email only
    ('INV-DEMO-0004', 'C-005',   175000,  1, 'unpaid'),   -- T-1, WhatsApp only
    ('INV-DEMO-0005', 'C-003',   300000, -3, 'unpaid'),   -- T+3, overdue
    ('INV-DEMO-0006', 'C-007',   200000,  3, 'paid'),     -- T-3 but paid: no reminder
    ('INV-DEMO-0007', 'C-006',    99000,  1, 'unpaid'),   -- T-1, no contact at all
    ('INV-DEMO-0008', 'C-007',   450000, 10, 'unpaid')    -- no stage today
) AS v(number, ext, amount, days, status)
JOIN customers c ON c.external_id = v.ext
CROSS JOIN d;
COMMIT;
