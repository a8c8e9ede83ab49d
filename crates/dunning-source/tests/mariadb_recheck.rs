//! The live re-check against a real MariaDB: a payment recorded in billing after
//! the invoice was queued stops the reminder; the source going down holds it
//! once the mirror is older than BILLING_MAX_STALENESS.

mod support;

use std::time::Duration;

use dunning_source::sync::sync;
use dunning_source::{Decision, Recheck, SourceError, Status, Timeouts, decide};
use dunning_store::ops::mirror;
use dunning_test_db::TestDatabase;
use dunning_test_db::mariadb::TestMariaDb;
use mysql::prelude::Queryable;
use support::*;
use time::OffsetDateTime;

const MAX: Duration = Duration::from_secs(15 * 60);

fn billing() -> TestMariaDb {
    let db = TestMariaDb::new();
    laravel_schema(&db);
    db.exec(
        "INSERT INTO customers (id, name, email) VALUES (1, 'Budi', 'budi@example.id');
         INSERT INTO invoices (invoice_number, customer_id, total, due_date) VALUES
             ('INV-1', 1, 150000, '2025-11-18'),
             ('INV-2', 1, 150000, '2025-11-18')",
    );
    db
}

#[test]
fn an_invoice_paid_in_billing_after_queueing_is_skipped_without_a_sync() {
    let billing = billing();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let cfg = config(billing.url(), &laravel_queries());
    let mut src =
        dunning_source::Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC)
            .unwrap();
    // 08:00: the sync and the run see INV-1 unpaid (the worker's queue has it).
    sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    let last_ok = mirror::last_success(&mut conn, false)
        .unwrap()
        .unwrap()
        .finished_at;
    let mut recheck = Recheck::new(cfg, wib());
    let now = OffsetDateTime::now_utc();
    let answer = recheck.invoice_status("INV-1");
    assert_eq!(answer.as_ref().unwrap(), &Some(Status::Unpaid));
    assert_eq!(decide(&answer, last_ok, now, MAX), Decision::Send);

    // 08:01: the customer pays at the counter; billing records it. No sync runs.
    billing.exec("UPDATE invoices SET paid_at = NOW() WHERE invoice_number = 'INV-1'");
    let answer = recheck.invoice_status("INV-1");
    assert_eq!(answer.as_ref().unwrap(), &Some(Status::Paid));
    assert_eq!(
        decide(&answer, last_ok, now, MAX),
        Decision::Skip("paid in billing")
    );
    // The mirror still says unpaid: the re-check, not a sync, stopped it.
    let inv = mirror_invoices(&mut conn);
    assert_eq!(inv[0].status, "unpaid");

    // Cancelled and deleted invoices are skipped too.
    billing.exec("UPDATE invoices SET cancelled_at = NOW() WHERE invoice_number = 'INV-2'");
    assert_eq!(recheck.invoice_status("INV-2").unwrap(), Some(Status::Void));
    billing.exec("DELETE FROM invoices WHERE invoice_number = 'INV-2'");
    let gone = recheck.invoice_status("INV-2");
    assert_eq!(gone.as_ref().unwrap(), &None);
    assert_eq!(
        decide(&gone, last_ok, now, MAX),
        Decision::Skip("no longer in billing")
    );
}

#[test]
fn the_source_going_down_mid_day_holds_reminders_once_the_mirror_is_stale() {
    let billing = billing();
    let cfg = config(billing.url(), &laravel_queries());
    let mut recheck = Recheck::new(cfg, wib());
    assert_eq!(
        recheck.invoice_status("INV-1").unwrap(),
        Some(Status::Unpaid)
    );

    // The server drops our connection (restart, network cut): the next re-check
    // fails instead of answering from a dead connection...
    let mut admin = billing.conn();
    let ids: Vec<u64> = admin
        .query(format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID()",
            billing.name()
        ))
        .unwrap();
    assert!(!ids.is_empty(), "the re-check's connection is open");
    for id in ids {
        // A connection that closed meanwhile (a setup connection still listed) is
        // "Unknown thread id": fine. The assertion below proves ours was killed.
        let _ = admin.query_drop(format!("KILL {id}"));
    }
    let down = recheck.invoice_status("INV-1");
    assert!(down.is_err(), "{down:?}");
    let now = OffsetDateTime::now_utc();
    let minutes = |m: i64| Some(now - time::Duration::minutes(m));
    // ...and the worker sends on the mirror only while it is fresh enough.
    assert_eq!(decide(&down, minutes(5), now, MAX), Decision::Send);
    assert_eq!(decide(&down, minutes(16), now, MAX), Decision::Hold);
    assert_eq!(decide(&down, None, now, MAX), Decision::Hold);

    // When the server is back, the next re-check reconnects by itself.
    assert_eq!(
        recheck.invoice_status("INV-1").unwrap(),
        Some(Status::Unpaid)
    );
}

#[test]
fn a_source_nobody_listens_on_is_an_error_fast_never_an_answer() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let cfg = config(
        &format!("mysql://u:p@127.0.0.1:{port}/billing"),
        &laravel_queries(),
    );
    let mut recheck = Recheck::new(cfg, wib());
    let started = std::time::Instant::now();
    let e = recheck.invoice_status("INV-1").unwrap_err();
    assert!(matches!(e, SourceError::Unreachable { .. }), "{e}");
    assert!(e.is_unreachable());
    assert!(started.elapsed() < Timeouts::RECHECK.connect + Duration::from_secs(2));
}

#[test]
fn a_status_the_query_does_not_map_is_an_error_not_a_send() {
    let billing = billing();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, name, email, phone FROM customers"
invoices = "SELECT invoice_number AS number, customer_id AS customer_external_id, total AS amount, due_date, 'lunas' AS status FROM invoices"
"#,
    )
    .unwrap();
    let mut recheck = Recheck::new(config(billing.url(), &q), wib());
    let answer = recheck.invoice_status("INV-1");
    let e = answer.as_ref().unwrap_err().to_string();
    assert!(
        e.contains("lunas") && e.contains("unpaid, paid or void"),
        "{e}"
    );
    let now = OffsetDateTime::now_utc();
    assert_eq!(decide(&answer, None, now, MAX), Decision::Hold);
}
