-- The dashboard's counts (Hari ini, Riwayat) are index-only scans, which read the
-- table wherever VACUUM has not yet marked a page all-visible. With PostgreSQL's
-- defaults, autovacuum visits a table after 20 % of it changed: on a ledger of
-- 1,000,000 rows that is 200,000 reminders, months in which the last 30 days (the
-- rows the pages count) stay unvacuumed and /riwayat reads the table (175 ms
-- instead of 70, docs/benchmarks.md). Vacuum these two tables after 0.5 % of them
-- (plus 1,000 rows) changed or was inserted instead: about daily at a few thousand
-- reminders a day. Such a vacuum only visits the pages changed since the last one.
ALTER TABLE notifications SET (
    autovacuum_vacuum_scale_factor = 0.005, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.005, autovacuum_vacuum_insert_threshold = 1000);
ALTER TABLE invoices SET (
    autovacuum_vacuum_scale_factor = 0.005, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.005, autovacuum_vacuum_insert_threshold = 1000);
