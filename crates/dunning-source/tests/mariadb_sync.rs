//! Sync from a real MariaDB billing database into a real PostgreSQL mirror.

mod support;

use dunning_source::sync::{Mode, sync};
use dunning_source::{Source, SourceError, Timeouts, Which};
use dunning_store::ops::mirror;
use dunning_test_db::TestDatabase;
use dunning_test_db::mariadb::TestMariaDb;
use std::path::PathBuf;

use support::*;

fn source(url: &str) -> Source {
    let cfg = config(url, &laravel_queries());
    Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap()
}

fn seed(db: &TestMariaDb) {
    laravel_schema(db);
    db.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES
             (1, 'Budi Santoso', 'budi@example.id', '0857-0721-1646'),
             (2, 'Siti Aminah', NULL, '+62 812 3456 7890'),
             (3, NULL, 'noname@example.id', NULL),
             (4, 'Bad Phone', NULL, '12');
         INSERT INTO invoices (invoice_number, customer_id, total, due_date, paid_at) VALUES
             ('INV-1', 1, 150000.00, '2025-11-18 00:00:00', NULL),
             ('INV-2', 2, 250000.00, '2025-11-20 23:30:00', NOW()),
             ('INV-3', 1, 150000.50, '2025-11-18 00:00:00', NULL),
             ('INV-4', 1, 100000.00, '2025-11-19 00:00:00', NULL),
             ('INV-4', 2, 999.00, '2025-11-19 00:00:00', NULL),
             ('INV-5', 3, 50000.00, '2025-11-21 00:00:00', NULL)",
    );
}

#[test]
fn full_sync_mirrors_valid_rows_and_rejects_bad_ones_one_by_one() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let mut src = source(billing.url());
    let mut seen = 0;
    let report = sync(&mut src, &mut conn, false, &mut |_, n| seen = n).unwrap();
    assert_eq!(report.mode, Mode::Full);
    let c = report.counts;
    assert_eq!(
        (c.customers_new, c.customers_rejected),
        (2, 2),
        "{report:#?}"
    );
    assert_eq!(
        (c.invoices_new, c.invoices_rejected, c.invoices_void),
        (3, 3, 0),
        "{report:#?}"
    );
    assert_eq!(seen, 6, "progress saw every invoice row");
    let reasons: Vec<String> = report
        .rejected
        .iter()
        .map(|r| format!("{} {}: {}", r.query, r.key, r.reason))
        .collect();
    let has = |needle: &str| {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "no rejection with {needle:?} in {reasons:#?}"
        )
    };
    has("customers 3: name is NULL");
    has("customers 4: bad phone");
    has("invoices INV-3: amount 150000.50 has a fraction");
    has("invoices INV-4: duplicate number");
    has("invoices INV-5: unknown customer \"3\"");
    let inv = mirror_invoices(&mut conn);
    let got: Vec<(&str, &str, i64, &str, &str)> = inv
        .iter()
        .map(|i| {
            (
                i.number.as_str(),
                i.customer.as_str(),
                i.amount,
                i.due_date.as_str(),
                i.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("INV-1", "1", 150_000, "2025-11-18", "unpaid"),
            ("INV-2", "2", 250_000, "2025-11-20", "paid"),
            // The first INV-4 row wins; the duplicate is rejected.
            ("INV-4", "1", 100_000, "2025-11-19", "unpaid"),
        ]
    );
    let cust = mirror_customers(&mut conn);
    assert_eq!(cust[0].phone.as_deref(), Some("6285707211646"));
    assert_eq!(cust[1].phone.as_deref(), Some("6281234567890"));
    let rec = mirror::last(&mut conn).unwrap().unwrap();
    assert_eq!((rec.ok, rec.mode.as_str()), (Some(true), "full"));
    assert_eq!(rec.counts(), report.counts);
}

#[test]
fn a_first_sync_into_an_empty_mirror_builds_every_index_again() {
    // The first sync loads an empty mirror without its secondary indexes and
    // builds them after: they must all be back, the same and valid.
    let billing = TestMariaDb::new();
    seed(&billing);
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let before = mirror_indexes(&mut conn);
    assert!(
        before.iter().any(|i| i.definition.contains("gin_trgm_ops")),
        "the migrations make trigram indexes: {before:#?}"
    );
    sync(&mut source(billing.url()), &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(mirror_indexes(&mut conn), before);
    assert_eq!(mirror_invoices(&mut conn).len(), 3);
    // A second sync writes into a mirror that is no longer empty: the indexes
    // are kept as they are.
    billing.exec(
        "INSERT INTO invoices (invoice_number, customer_id, total, due_date) VALUES
             ('INV-9', 2, 75000.00, '2025-11-25')",
    );
    sync(&mut source(billing.url()), &mut conn, true, &mut |_, _| {}).unwrap();
    assert_eq!(mirror_indexes(&mut conn), before);
    assert_eq!(mirror_invoices(&mut conn).len(), 4);
}

#[test]
fn second_sync_changes_nothing_then_follows_changes_deletions_and_keeps_dunning_payments() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let mut src = source(billing.url());
    sync(&mut src, &mut conn, true, &mut |_, _| {}).unwrap();
    let again = sync(&mut src, &mut conn, true, &mut |_, _| {})
        .unwrap()
        .counts;
    assert_eq!(
        (
            again.invoices_new,
            again.invoices_changed,
            again.invoices_unchanged,
            again.invoices_void
        ),
        (0, 0, 3, 0)
    );
    assert_eq!(
        (
            again.customers_new,
            again.customers_changed,
            again.customers_unchanged
        ),
        (0, 0, 2)
    );

    // Billing: INV-1's amount changes, INV-4 is deleted. Dunning: INV-2... stays paid,
    // and INV-1 was paid at a gateway (Dunning marked it) while billing says unpaid.
    billing.exec(
        "UPDATE invoices SET total = 175000 WHERE invoice_number = 'INV-1';
         DELETE FROM invoices WHERE invoice_number = 'INV-4' AND customer_id = 1;
         UPDATE customers SET email = 'budi.baru@example.id' WHERE id = 1",
    );
    dunning_store::billing::set_invoice_status(&mut conn, "INV-1", "paid").unwrap();
    let c = sync(&mut src, &mut conn, true, &mut |_, _| {})
        .unwrap()
        .counts;
    // INV-1 (amount) and INV-4 (its other row, customer 2, is now the only one).
    assert_eq!(
        (c.invoices_changed, c.invoices_void, c.customers_changed),
        (2, 0, 1),
        "{c:?}"
    );
    let inv = mirror_invoices(&mut conn);
    let inv1 = inv.iter().find(|i| i.number == "INV-1").unwrap();
    assert_eq!((inv1.amount, inv1.status.as_str()), (175_000, "paid"));
    let inv4 = inv.iter().find(|i| i.number == "INV-4").unwrap();
    assert_eq!(
        (inv4.customer.as_str(), inv4.amount, inv4.status.as_str()),
        ("2", 999, "unpaid")
    );

    billing.exec("DELETE FROM invoices WHERE invoice_number = 'INV-4'");
    let c = sync(&mut src, &mut conn, true, &mut |_, _| {})
        .unwrap()
        .counts;
    assert_eq!(c.invoices_void, 1, "{c:?}");
    let inv = mirror_invoices(&mut conn);
    assert_eq!(
        inv.iter().find(|i| i.number == "INV-4").unwrap().status,
        "void"
    );
}

#[test]
fn incremental_sync_reads_only_rows_updated_since_the_last_sync() {
    let billing = TestMariaDb::new();
    laravel_schema(&billing);
    billing.exec(
        "INSERT INTO customers (id, name, email, updated_at) VALUES
             (1, 'A', 'a@example.id', '2025-11-01 10:00:00'),
             (2, 'B', 'b@example.id', '2025-11-01 10:00:00');
         INSERT INTO invoices (invoice_number, customer_id, total, due_date, updated_at) VALUES
             ('INV-1', 1, 100000, '2025-11-18', '2025-11-01 10:00:00'),
             ('INV-2', 2, 200000, '2025-11-18', '2025-11-01 11:00:00')",
    );
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let mut src = source(billing.url());
    let first = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(first.mode, Mode::Full);
    let rec = mirror::last(&mut conn).unwrap().unwrap();
    // updated_at is a TIMESTAMP written in UTC: read in WIB, 11:00 UTC is 18:00.
    assert_eq!(
        rec.invoices_watermark.as_deref(),
        Some("2025-11-01 18:00:00")
    );

    let none = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(none.mode, Mode::Incremental);
    // Only INV-2 is within the 5-minute look-back of the watermark.
    assert_eq!(
        (
            none.counts.invoices_new,
            none.counts.invoices_changed,
            none.counts.invoices_unchanged
        ),
        (0, 0, 1),
        "{none:?}"
    );

    billing.exec(
        "UPDATE invoices SET paid_at = '2025-11-02 09:00:00', updated_at = '2025-11-02 09:00:00'
             WHERE invoice_number = 'INV-1';
         INSERT INTO invoices (invoice_number, customer_id, total, due_date, updated_at)
             VALUES ('INV-3', 2, 300000, '2025-11-25', '2025-11-02 09:30:00')",
    );
    let inc = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(inc.mode, Mode::Incremental);
    assert_eq!(
        (
            inc.counts.invoices_new,
            inc.counts.invoices_changed,
            inc.counts.invoices_unchanged
        ),
        // INV-3 new, INV-1 paid, INV-2 re-read within the look-back (unchanged).
        (1, 1, 1),
        "{inc:?}"
    );
    let inv = mirror_invoices(&mut conn);
    assert_eq!(
        inv.iter().find(|i| i.number == "INV-1").unwrap().status,
        "paid"
    );
    assert_eq!(
        mirror::last(&mut conn)
            .unwrap()
            .unwrap()
            .invoices_watermark
            .as_deref(),
        Some("2025-11-02 16:30:00")
    );
    // --full reads everything again.
    let full = sync(&mut src, &mut conn, true, &mut |_, _| {}).unwrap();
    assert_eq!((full.mode, full.counts.invoices_unchanged), (Mode::Full, 3));
}

#[test]
fn timestamps_are_read_in_dunning_timezone() {
    let billing = TestMariaDb::new();
    billing.exec(
        "CREATE TABLE c (id INT, nm VARCHAR(20));
         CREATE TABLE i (no VARCHAR(20), cid INT, amt DECIMAL(12,2), due TIMESTAMP NULL, st VARCHAR(10));
         INSERT INTO c VALUES (1, 'A');
         SET time_zone = '+00:00';
         INSERT INTO i VALUES ('INV-TZ', 1, 1000, '2025-11-17 18:30:00', 'unpaid')",
    );
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, nm AS name, NULL AS email, NULL AS phone FROM c"
invoices = "SELECT no AS number, cid AS customer_external_id, amt AS amount, due AS due_date, st AS status FROM i"
"#,
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    // 18:30 UTC on the 17th is 01:30 WIB on the 18th.
    assert_eq!(mirror_invoices(&mut conn)[0].due_date, "2025-11-18");
}

#[test]
fn a_user_with_only_select_is_enough() {
    let mut billing = TestMariaDb::new();
    seed(&billing);
    let ro = billing.readonly_user();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let mut src = source(&ro);
    let r = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(r.counts.invoices_new, 3);
    // And that user really cannot write: the test proves what it claims.
    let mut c = mysql::Conn::new(mysql::Opts::from_url(&ro).unwrap()).unwrap();
    use mysql::prelude::Queryable;
    let err = c
        .query_drop("UPDATE invoices SET total = 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("denied"), "{err}");
}

#[test]
fn a_missing_column_names_the_column_and_the_query_and_writes_nothing() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, name, email, phone FROM customers"
invoices = "SELECT invoice_number AS number, customer_id AS customer_external_id, total, due_date, 'unpaid' AS status FROM invoices"
"#,
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let err = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SourceError::MissingColumn {
                column: "amount",
                query: "invoices",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("`amount`") && msg.contains("invoices query") && msg.contains("total"),
        "{msg}"
    );
    assert!(mirror_customers(&mut conn).is_empty());
}

#[test]
fn a_query_with_a_syntax_error_names_the_query_and_is_recorded() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, name, email, phone FROM customers"
invoices = "SELEC invoice_number FROM invoices"
"#,
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let err = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("invoices query") && msg.contains("SQL syntax"),
        "{msg}"
    );
    assert!(
        mirror_customers(&mut conn).is_empty(),
        "a failed sync writes nothing"
    );
}

#[test]
fn a_sync_that_fails_half_way_changes_nothing_and_is_recorded_as_failed() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    // The invoices query prepares fine and fails while it runs, after the
    // customers were written (in the sync's transaction).
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, name, email, phone FROM customers"
invoices = "SELECT invoice_number AS number, customer_id AS customer_external_id, total AS amount, due_date, 'unpaid' AS status FROM invoices WHERE (SELECT 1 UNION SELECT 2) = 1"
"#,
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let indexes = mirror_indexes(&mut conn);
    let err = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("invoices query"), "{err}");
    assert!(mirror_customers(&mut conn).is_empty(), "rolled back");
    assert_eq!(mirror_indexes(&mut conn), indexes, "every index is back");
    let rec = mirror::last(&mut conn).unwrap().unwrap();
    assert_eq!(rec.ok, Some(false));
    assert!(rec.error.unwrap().contains("invoices query"));
    assert!(mirror::last_success(&mut conn, false).unwrap().is_none());
}

#[test]
fn two_syncs_at_once_both_succeed_one_after_the_other() {
    use diesel::RunQueryDsl;
    let billing = TestMariaDb::new();
    seed(&billing);
    let pg = TestDatabase::new();
    // Hold both syncs at their first write to the mirror, so that they overlap:
    // the cron sync and the daily run's sync can start at the same minute.
    let mut blocker = pg.conn();
    diesel::sql_query("BEGIN").execute(&mut blocker).unwrap();
    diesel::sql_query("LOCK TABLE customers IN SHARE MODE")
        .execute(&mut blocker)
        .unwrap();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut conn = pg.conn();
            let url = billing.url().to_owned();
            std::thread::spawn(move || {
                let mut src = source(&url);
                sync(&mut src, &mut conn, true, &mut |_, _| {})
            })
        })
        .collect();
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let w: Waiting = diesel::sql_query("SELECT count(*) AS n FROM pg_locks WHERE NOT granted")
            .get_result(&mut blocker)
            .unwrap();
        if w.n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the two syncs never both waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    diesel::sql_query("COMMIT").execute(&mut blocker).unwrap();
    let mut reports: Vec<_> = runs
        .into_iter()
        .map(|r| r.join().unwrap().expect("each sync succeeds"))
        .collect();
    reports.sort_by_key(|r| std::cmp::Reverse(r.counts.invoices_new));
    let (first, second) = (&reports[0].counts, &reports[1].counts);
    assert_eq!(
        (first.invoices_new, first.customers_new),
        (3, 2),
        "{first:?}"
    );
    assert_eq!(
        (
            second.invoices_new,
            second.invoices_unchanged,
            second.customers_unchanged
        ),
        (0, 3, 2),
        "{second:?}"
    );
    assert_eq!(mirror_invoices(&mut blocker).len(), 3);
}

#[test]
fn unreachable_wrong_password_and_unknown_database_say_which_without_the_password() {
    let billing = TestMariaDb::new();
    let admin = billing.url().to_owned();
    let (scheme_user, rest) = admin.split_once('@').unwrap();
    let host_port = rest.split('/').next().unwrap();
    let user = scheme_user
        .trim_start_matches("mysql://")
        .split(':')
        .next()
        .unwrap();
    let connect = |url: &str| {
        let cfg = config(url, &laravel_queries());
        Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::RECHECK).unwrap_err()
    };
    let e = connect(&format!(
        "mysql://{user}:wr0ngpass@{host_port}/{}",
        billing.name()
    ));
    assert!(matches!(e, SourceError::Login { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(host_port) && msg.contains("password") && !msg.contains("wr0ngpass"),
        "{msg}"
    );

    let e = connect(&format!("{scheme_user}@{host_port}/no_such_db"));
    assert!(matches!(e, SourceError::UnknownDatabase { .. }), "{e}");
    assert!(e.to_string().contains("no_such_db"), "{e}");

    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let e = connect(&format!("mysql://{user}:s3cret@127.0.0.1:{port}/billing"));
    assert!(matches!(e, SourceError::Unreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}/billing")) && !msg.contains("s3cret"),
        "{msg}"
    );
}

#[test]
fn doctor_reports_columns_and_row_counts() {
    let billing = TestMariaDb::new();
    seed(&billing);
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, name, email, phone, created_at FROM customers"
invoices = "SELECT invoice_number AS number, customer_id AS customer_external_id, total, due_date FROM invoices"
"#,
    )
    .unwrap();
    let cfg = config(billing.url(), &q);
    let f = dunning_source::doctor::check(&cfg, wib());
    assert_eq!(f.len(), 3, "{f:#?}");
    assert!(f[0].ok);
    assert!(
        f[1].ok && f[1].detail.contains("4 rows") && f[1].detail.contains("created_at"),
        "{:?}",
        f[1]
    );
    assert!(!f[2].ok, "{:?}", f[2]);
    assert!(
        f[2].detail.contains("amount, status") && f[2].detail.contains("total"),
        "{:?}",
        f[2]
    );
    let src_ok = dunning_source::doctor::check(&config(billing.url(), &laravel_queries()), wib());
    assert!(
        src_ok.iter().all(|x| x.ok) && src_ok[2].detail.contains("6 rows"),
        "{src_ok:#?}"
    );
    let mut src = source(billing.url());
    assert_eq!(src.count(Which::Invoices).unwrap(), 6);
}

#[test]
fn the_phpnuxbill_example_reads_phpnuxbill_tables() {
    let billing = TestMariaDb::new();
    // The columns the example reads, as install/phpnuxbill.sql creates them
    // (with its defaults for empty contacts: phonenumber '0', email '1').
    billing.exec(
        "CREATE TABLE tbl_customers (id INT PRIMARY KEY, username VARCHAR(45) NOT NULL,
             fullname VARCHAR(45) NOT NULL, phonenumber VARCHAR(20) DEFAULT '0',
             email VARCHAR(128) NOT NULL DEFAULT '1');
         CREATE TABLE tbl_plans (id INT PRIMARY KEY, name_plan VARCHAR(40) NOT NULL,
             price VARCHAR(40) NOT NULL, prepaid ENUM('yes','no') DEFAULT 'yes');
         CREATE TABLE tbl_user_recharges (id INT PRIMARY KEY, customer_id INT NOT NULL,
             username VARCHAR(32) NOT NULL, plan_id INT NOT NULL, namebp VARCHAR(40) NOT NULL,
             recharged_on DATE NOT NULL, expiration DATE NOT NULL, time TIME NOT NULL,
             status VARCHAR(20) NOT NULL);
         INSERT INTO tbl_customers (id, username, fullname, phonenumber) VALUES
             (1, 'budi', 'Budi Santoso', '085707211646');
         INSERT INTO tbl_customers (id, username, fullname) VALUES (2, 'siti', 'Siti');
         INSERT INTO tbl_plans VALUES (1, 'Home 10M', '150000', 'no'), (2, 'Voucher 1h', '5000', 'yes');
         INSERT INTO tbl_user_recharges VALUES
             (10, 1, 'budi', 1, 'Home 10M', '2025-10-18', '2025-11-18', '00:00:00', 'on'),
             (11, 2, 'siti', 2, 'Voucher 1h', '2025-11-01', '2025-11-01', '01:00:00', 'off')",
    );
    let q = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples/billing-phpnuxbill.toml");
    let cfg = config(billing.url(), &q);
    assert!(
        dunning_source::doctor::check(&cfg, wib())
            .iter()
            .all(|f| f.ok),
        "{:#?}",
        dunning_source::doctor::check(&cfg, wib())
    );
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let r = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(
        (r.counts.customers_new, r.counts.customers_rejected),
        (2, 0),
        "{r:?}"
    );
    let cust = mirror_customers(&mut conn);
    assert_eq!(
        (cust[1].email.as_deref(), cust[1].phone.as_deref()),
        (None, None)
    );
    let inv = mirror_invoices(&mut conn);
    assert_eq!(inv.len(), 1, "only the postpaid plan: {inv:?}");
    assert_eq!(
        (
            inv[0].number.as_str(),
            inv[0].amount,
            inv[0].due_date.as_str()
        ),
        ("NUX-10-20251118", 150_000, "2025-11-18")
    );
    // Paying renews the package: the period's number is gone, the re-check skips it.
    billing.exec("UPDATE tbl_user_recharges SET expiration = '2025-12-18' WHERE id = 10");
    let mut recheck = dunning_source::Recheck::new(cfg, wib());
    assert_eq!(recheck.invoice_status("NUX-10-20251118").unwrap(), None);
    let r = sync(&mut src, &mut conn, true, &mut |_, _| {}).unwrap();
    assert_eq!(
        (r.counts.invoices_new, r.counts.invoices_void),
        (1, 1),
        "{r:?}"
    );
}
