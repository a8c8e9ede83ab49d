//! A PostgreSQL billing source: a second database in the dev cluster.

mod support;

use diesel::connection::SimpleConnection;
use dunning_source::sync::sync;
use dunning_source::{Recheck, Source, Status, Timeouts};
use dunning_test_db::TestDatabase;
use support::*;

#[test]
fn sync_and_recheck_from_a_postgres_billing_database() {
    let billing = TestDatabase::plain();
    // Roles are cluster-wide: one per test process.
    let role = format!("billing_ro_{}", std::process::id());
    billing
        .conn()
        .batch_execute(&format!(
            "CREATE TABLE pelanggan (id int PRIMARY KEY, nama text, surel text, hp text);
             CREATE TABLE tagihan (no text, pelanggan_id int, total numeric(12,2),
                 jatuh_tempo timestamptz, lunas boolean, diubah timestamp);
             INSERT INTO pelanggan VALUES (1, 'Budi', 'budi@example.id', '0857-0721-1646');
             INSERT INTO tagihan VALUES
                 ('INV-1', 1, 150000.00, '2025-11-17 18:30:00+00', false, '2025-11-01 10:00'),
                 ('INV-2', 1, 99.50, '2025-11-18 00:00:00+07', false, '2025-11-01 10:00');
             DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN;
             GRANT SELECT ON pelanggan, tagihan TO {role};"
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("billing.toml");
    std::fs::write(
        &q,
        r#"customers = "SELECT id AS external_id, nama AS name, surel AS email, hp AS phone FROM pelanggan"
invoices = """
SELECT no AS number, pelanggan_id AS customer_external_id, total AS amount,
       jatuh_tempo AS due_date, CASE WHEN lunas THEN 'paid' ELSE 'unpaid' END AS status,
       diubah AS updated_at
FROM tagihan
"""
"#,
    )
    .unwrap();
    // Read with a user that may only SELECT.
    let ro_url = billing.url().replacen("postgres@", &format!("{role}@"), 1);
    let cfg = config(&ro_url, &q);
    let mut src = Source::connect(&cfg, cfg.queries().unwrap(), wib(), Timeouts::SYNC).unwrap();
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let r = sync(&mut src, &mut conn, false, &mut |_, _| {}).unwrap();
    assert_eq!(
        (r.counts.invoices_new, r.counts.invoices_rejected),
        (1, 1),
        "{r:?}"
    );
    assert!(r.rejected[0].reason.contains("fraction"), "{r:?}");
    let inv = mirror_invoices(&mut conn);
    // 18:30 UTC on the 17th is the 18th in WIB; NUMERIC 150000.00 is whole rupiah.
    assert_eq!(
        (inv[0].amount, inv[0].due_date.as_str()),
        (150_000, "2025-11-18")
    );

    let mut recheck = Recheck::new(cfg, wib());
    assert_eq!(
        recheck.invoice_status("INV-1").unwrap(),
        Some(Status::Unpaid)
    );
    billing
        .conn()
        .batch_execute("UPDATE tagihan SET lunas = true WHERE no = 'INV-1'")
        .unwrap();
    assert_eq!(recheck.invoice_status("INV-1").unwrap(), Some(Status::Paid));
    assert_eq!(recheck.invoice_status("INV-404").unwrap(), None);
    drop(src);
    drop(recheck);
    billing
        .conn()
        .batch_execute(&format!(
            "REVOKE ALL ON pelanggan, tagihan FROM {role}; DROP OWNED BY {role}"
        ))
        .ok();
    drop(billing);
    let admin = TestDatabase::new();
    admin
        .conn()
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .ok();
}
