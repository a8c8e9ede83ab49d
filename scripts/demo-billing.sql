-- Demo billing database for `scripts/demo --billing mariadb`: the tables of a typical
-- Laravel billing app on MariaDB/MySQL, as docs/examples/billing.toml reads them.
-- The same customers and invoices as scripts/demo-data.sql, due relative to today in
-- Asia/Jakarta (UTC+7, no daylight saving).
CREATE TABLE customers (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    email VARCHAR(255) NULL,
    phone VARCHAR(32) NULL,
    created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);
CREATE TABLE invoices (
    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    invoice_number VARCHAR(64) NOT NULL UNIQUE,
    customer_id BIGINT UNSIGNED NOT NULL,
    total DECIMAL(15,2) NOT NULL,
    due_date DATE NOT NULL,
    paid_at DATETIME NULL,
    cancelled_at DATETIME NULL,
    created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    FOREIGN KEY (customer_id) REFERENCES customers (id)
);
INSERT INTO customers (id, name, email, phone) VALUES
    (1, 'Dimas Pratama',  'dimas@example.com',  '085707211646'),
    (2, 'John Doe',       'john@example.com',   '+62 812-3456-7890'),
    (3, 'Jane Smith',     'jane@example.com',   '0813 1111 2222'),
    (4, 'Siti Rahayu',    'siti@example.com',   NULL),
    (5, 'Budi Santoso',   NULL,                 '6285711112222'),
    (6, 'Tanpa Kontak',   NULL,                 NULL),
    (7, 'Ayu Lestari',    'ayu@example.com',    '081299998888');
SET @today = DATE(CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', '+07:00'));
INSERT INTO invoices (invoice_number, customer_id, total, due_date, paid_at) VALUES
    ('INV-DEMO-0001', 1,  150000.00, @today + INTERVAL 7 DAY, NULL),    -- T-7
    ('INV-DEMO-0002', 2,  250000.00, @today + INTERVAL 3 DAY, NULL),    -- T-3
    ('INV-DEMO-0003', 4, 1250000.00, @today + INTERVAL 3 DAY, NULL),    -- T-3, email only
    ('INV-DEMO-0004', 5,  175000.00, @today + INTERVAL 1 DAY, NULL),    -- T-1, WhatsApp only
    ('INV-DEMO-0005', 3,  300000.00, @today - INTERVAL 3 DAY, NULL),    -- T+3, overdue
    ('INV-DEMO-0006', 7,  200000.00, @today + INTERVAL 3 DAY, NOW()),   -- T-3 but paid: no reminder
    ('INV-DEMO-0007', 6,   99000.00, @today + INTERVAL 1 DAY, NULL),    -- T-1, no contact at all
    ('INV-DEMO-0008', 7,  450000.00, @today + INTERVAL 10 DAY, NULL);   -- no stage today
