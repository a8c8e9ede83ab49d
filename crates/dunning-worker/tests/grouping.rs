//! One message per customer (`DUNNING_GROUP=customer`, issue 21), end to end with
//! the real binaries: `dunning-schedule` queues, `dunning-worker` sends through the
//! real SMTP test server and the Fonnte fake, against a real PostgreSQL. The ledger
//! keeps one row per invoice, stage, channel and day; one message carries them.

mod reliability_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use dunning_core::Zone;
use dunning_store::scheduling;
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::FonnteFake;
use dunning_test_smtp::SmtpPeer;
use reliability_support::{WorkerEnv, count, exec, schedule_bin, today};

/// Budi (customer 1) owes two invoices due on different days whose stages both
/// fall on today (T-3 and T-1); Siti (customer 2) owes one, overdue (T+3).
fn seed(conn: &mut PgConnection) {
    let d = today();
    exec(
        conn,
        "INSERT INTO customers (name, email, phone) VALUES
             ('Budi Santoso', 'budi@example.id', '081234567890'),
             ('Siti Rahayu', 'siti@example.id', '081298765432')",
    );
    exec(
        conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date) VALUES
                 ('INV-A', 1, 150000, DATE '{}'),
                 ('INV-B', 1, 250000, DATE '{}'),
                 ('INV-C', 2, 99000, DATE '{}')",
            d + time::Duration::days(3),
            d + time::Duration::days(1),
            d - time::Duration::days(3),
        ),
    );
}

fn env(db: &TestDatabase, fonnte: &FonnteFake, outbox: &Path, group: &str) -> WorkerEnv {
    let mut env = WorkerEnv::new(db.url(), fonnte, outbox);
    env.set("DUNNING_GROUP", group);
    env
}

/// Runs `dunning-schedule ARGS`; its output, or a panic with it.
fn schedule(env: &WorkerEnv, args: &[&str]) -> String {
    let (status, out) = env.run(schedule_bin().to_str().unwrap(), args);
    assert!(status.success(), "dunning-schedule {args:?}: {out}");
    out
}

/// Runs a worker until the queue is drained.
fn drain(env: &WorkerEnv) -> String {
    let (status, out) = env.run(
        reliability_support::WORKER,
        &["--once", "--backoff", "0", "--concurrency", "1"],
    );
    assert!(status.success(), "dunning-worker: {out}");
    out
}

#[derive(QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    provider_message_id: Option<String>,
}

fn ledger(conn: &mut PgConnection) -> Vec<Row> {
    diesel::sql_query(
        "SELECT i.number, n.channel, n.status, n.error, n.provider_message_id
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         ORDER BY i.number, n.channel",
    )
    .load(conn)
    .unwrap()
}

/// The WhatsApp messages the fake took: (target, message).
fn whatsapps(fonnte: &FonnteFake) -> Vec<(String, String)> {
    fonnte
        .sent()
        .iter()
        .map(|r| {
            (
                r.field("target").unwrap_or_default(),
                r.field("message").unwrap_or_default(),
            )
        })
        .collect()
}

/// The emails the SMTP server took: (to, subject, text).
fn emails(smtp: &SmtpPeer) -> Vec<(String, String, String)> {
    smtp.received()
        .iter()
        .map(|m| {
            (
                m["to"].as_str().unwrap_or_default().to_owned(),
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn two_unpaid_invoices_of_one_customer_go_out_as_one_email_and_one_whatsapp_with_the_total() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let fonnte = FonnteFake::start();
    let smtp = SmtpPeer::start("plain");
    let outbox = tempfile::tempdir().unwrap();
    let mut env = env(&db, &fonnte, outbox.path(), "customer");
    for (k, v) in smtp.env() {
        env.set(k, &v);
    }

    // The dry run counts messages: three invoices, two customers.
    let dry = schedule(&env, &["--dry-run"]);
    assert!(
        dry.contains("Email: 2") && dry.contains("WhatsApp: 2"),
        "{dry}"
    );
    assert!(dry.contains("this run uses 2"), "{dry}");
    assert!(
        dry.contains("3 email and 3 WhatsApp reminders in 2 email and 2 WhatsApp messages"),
        "{dry}"
    );
    // Per invoice (the default) the same day is three messages per channel.
    let mut per_invoice = WorkerEnv::new(db.url(), &fonnte, outbox.path());
    per_invoice.unset("DUNNING_GROUP");
    let dry = schedule(&per_invoice, &["--dry-run"]);
    assert!(dry.contains("this run uses 3"), "{dry}");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM notifications"),
        0
    );

    let run = schedule(&env, &[]);
    assert!(
        run.contains("Email: 2") && run.contains("WhatsApp: 2"),
        "{run}"
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 4);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM notifications"),
        6,
        "one ledger row per invoice and channel"
    );
    drain(&env);

    // One email to Budi listing both invoices with the total.
    let mails = emails(&smtp);
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let budi: Vec<_> = mails.iter().filter(|m| m.0.contains("budi@")).collect();
    assert_eq!(budi.len(), 1, "{mails:#?}");
    let (_, subject, text) = budi[0];
    assert_eq!(subject, "Pengingat Pembayaran 2 Tagihan 🕒");
    let a_due = dunning_core::format::tanggal(today() + time::Duration::days(3));
    let b_due = dunning_core::format::tanggal(today() + time::Duration::days(1));
    for want in [
        "Halo Budi Santoso,".to_owned(),
        "Kami ingin mengingatkan 2 tagihan Anda yang belum dibayar:".to_owned(),
        format!("1. Tagihan INV-B sebesar Rp 250.000 jatuh tempo besok, {b_due}."),
        format!("2. Tagihan INV-A sebesar Rp 150.000 akan jatuh tempo pada {a_due}."),
        "Total: Rp 400.000".to_owned(),
        "Tim Wikarta Provider".to_owned(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
    // Siti's group of one reads like today's single message (the seed's overdue text).
    let siti: Vec<_> = mails.iter().filter(|m| m.0.contains("siti@")).collect();
    assert_eq!(siti.len(), 1);
    assert_eq!(siti[0].1, "Peringatan Tunggakan Tagihan INV-C ⚠️");
    assert!(
        siti[0]
            .2
            .contains("tagihan INV-C sebesar Rp 99.000 telah melewati tanggal jatuh tempo"),
        "{}",
        siti[0].2
    );

    // One WhatsApp to Budi with the same list.
    let was = whatsapps(&fonnte);
    assert_eq!(was.len(), 2, "{was:#?}");
    let budi_wa: Vec<_> = was
        .iter()
        .filter(|w| w.0 == "081234567890" || w.0 == "6281234567890")
        .collect();
    assert_eq!(budi_wa.len(), 1, "{was:#?}");
    assert!(
        budi_wa[0].1.contains("INV-A") && budi_wa[0].1.contains("INV-B"),
        "{}",
        budi_wa[0].1
    );
    assert!(
        budi_wa[0].1.contains("Total: Rp 400.000"),
        "{}",
        budi_wa[0].1
    );

    // The ledger: every row delivered; Budi's rows of a channel share the message id.
    let rows = ledger(&mut conn);
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.status, "sent", "{r:?}");
    }
    for channel in ["email", "whatsapp"] {
        let ids: Vec<_> = rows
            .iter()
            .filter(|r| r.channel == channel && r.number != "INV-C")
            .map(|r| r.provider_message_id.clone())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0].is_some() && ids[0] == ids[1], "{channel}: {ids:?}");
    }
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
    // The quota counts messages: two WhatsApp messages carried three rows.
    let sent =
        scheduling::whatsapp_sent_this_month(&mut conn, today(), Zone::default().offset()).unwrap();
    assert_eq!(sent, 2);

    // A rerun the same day queues nothing more.
    schedule(&env, &[]);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
}

#[test]
fn a_paid_invoice_is_dropped_from_the_group_and_a_group_all_paid_sends_nothing() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    // Siti gets a second invoice, so that hers is a group too.
    exec(
        &mut conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-D', 2, 50000, DATE '{}')",
            today() + time::Duration::days(3)
        ),
    );
    let fonnte = FonnteFake::start();
    let outbox = tempfile::tempdir().unwrap();
    let mut env = env(&db, &fonnte, outbox.path(), "customer");
    env.set("DUNNING_RECEIPTS", "off");
    schedule(&env, &[]);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 4);
    // Paid between the run and the send: INV-B of Budi's pair, both of Siti's.
    exec(
        &mut conn,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number IN ('INV-B', 'INV-C', 'INV-D')",
    );
    drain(&env);

    let was = whatsapps(&fonnte);
    assert_eq!(was.len(), 1, "only Budi's message: {was:#?}");
    let text = &was[0].1;
    // A group of one left reads like today's single message.
    assert!(
        text.contains("tagihan INV-A sebesar Rp 150.000 akan jatuh tempo pada"),
        "{text}"
    );
    assert!(!text.contains("INV-B"), "{text}");
    let emls = reliability_support::eml_files(outbox.path());
    assert_eq!(emls.len(), 1, "{emls:?}");

    let rows = ledger(&mut conn);
    for r in &rows {
        match r.number.as_str() {
            "INV-A" => assert_eq!(r.status, "sent", "{r:?}"),
            _ => {
                assert_eq!(r.status, "skipped", "{r:?}");
                assert_eq!(r.error.as_deref(), Some("invoice is paid"), "{r:?}");
            }
        }
    }
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
}

/// The worker's statement that records a group's rows, seen waiting for a lock.
fn recording_blocked(conn: &mut PgConnection) -> bool {
    count(
        conn,
        "SELECT count(*) AS n FROM pg_stat_activity
         WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM jobs%'",
    ) > 0
}

#[test]
fn a_worker_killed_while_recording_a_group_never_sends_a_part_twice_and_loses_nothing() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    exec(&mut conn, "DELETE FROM invoices WHERE number = 'INV-C'");
    let fonnte = FonnteFake::start();
    let outbox = tempfile::tempdir().unwrap();
    let env = env(&db, &fonnte, outbox.path(), "customer");
    schedule(&env, &[]);
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 2);

    // Hold the rows of INV-B (listed first: due first) locked: the worker sends, then
    // waits to record the group. Killed there, its recording statement either never
    // ran or (the server finishes a statement it has begun) ran whole; a worker that
    // recorded row by row would be killed between the rows.
    let mut blocker = db.conn();
    blocker
        .batch_execute(
            "BEGIN; SELECT 1 FROM notifications n JOIN invoices i ON i.id = n.invoice_id
                    WHERE i.number = 'INV-B' FOR UPDATE",
        )
        .unwrap();
    let log = outbox.path().join("worker.log");
    let mut child = env.spawn(
        &[
            "--retry-after",
            "1",
            "--backoff",
            "0",
            "--sleep",
            "0.1",
            "--concurrency",
            "1",
        ],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !recording_blocked(&mut conn) {
        assert!(
            Instant::now() < deadline,
            "the worker never reached the recording: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered = fonnte.sent().len() + reliability_support::eml_files(outbox.path()).len();
    assert_eq!(delivered, 1, "one message out before the kill");
    let killed = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait();
    blocker.batch_execute("ROLLBACK").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%DELETE FROM jobs%' AND state = 'active' AND pid <> pg_backend_pid()",
    ) > 0
    {
        assert!(
            Instant::now() < deadline,
            "the killed worker's statement never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Nothing half-recorded: per channel, the group's rows are all queued or all sent.
    let rows = ledger(&mut conn);
    assert_eq!(rows.len(), 4);
    for channel in ["email", "whatsapp"] {
        let states: Vec<&str> = rows
            .iter()
            .filter(|r| r.channel == channel)
            .map(|r| r.status.as_str())
            .collect();
        assert!(
            states == ["queued", "queued"] || states == ["sent", "sent"],
            "a part of the {channel} group was recorded: {rows:#?}"
        );
    }

    // The reservation expires; a new worker finishes everything.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, out) = env.run(
        reliability_support::WORKER,
        &[
            "--once",
            "--retry-after",
            "1",
            "--backoff",
            "0",
            "--concurrency",
            "1",
        ],
    );
    assert!(status.success(), "{out}");
    let rows = ledger(&mut conn);
    for r in &rows {
        assert_eq!(r.status, "sent", "{rows:#?}");
    }
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);

    // Every message ever sent carried the whole group: a retry resends the message
    // that was in flight at the kill, never a part of it.
    let mut bodies: Vec<String> = whatsapps(&fonnte).into_iter().map(|w| w.1).collect();
    for f in reliability_support::eml_files(outbox.path()) {
        bodies.push(std::fs::read_to_string(outbox.path().join(&f)).unwrap_or(f));
    }
    assert!(
        bodies.len() == 2 || bodies.len() == 3,
        "one message per channel, plus at most the one in flight at the kill: {bodies:#?}"
    );
    for b in &bodies {
        assert!(
            b.contains("INV-A") && b.contains("INV-B"),
            "a message carried a part of the group:\n{b}"
        );
    }
}

#[test]
fn the_workers_quota_counts_a_grouped_whatsapp_message_once() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    // Siti's invoice comes later in the day (a sync at noon).
    exec(&mut conn, "DELETE FROM invoices WHERE number = 'INV-C'");
    let fonnte = FonnteFake::start();
    let outbox = tempfile::tempdir().unwrap();
    let mut env = env(&db, &fonnte, outbox.path(), "customer");
    env.set("FONNTE_MONTHLY_QUOTA", "2");
    schedule(&env, &[]);
    drain(&env);
    assert_eq!(fonnte.sent().len(), 1, "Budi's two invoices in one message");
    exec(
        &mut conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-C', 2, 99000, DATE '{}')",
            today() - time::Duration::days(3)
        ),
    );
    schedule(&env, &[]);
    // One message of the quota of 2 is used (it carried two rows): Siti's goes out.
    drain(&env);
    assert_eq!(fonnte.sent().len(), 2, "{:#?}", ledger(&mut conn));
    let rows = ledger(&mut conn);
    for r in rows.iter().filter(|r| r.channel == "whatsapp") {
        assert_eq!(r.status, "sent", "{rows:#?}");
    }
}

#[test]
fn each_invoice_of_a_grouped_message_carries_its_own_payment_link() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let fonnte = FonnteFake::start();
    let outbox = tempfile::tempdir().unwrap();
    let mut env = env(&db, &fonnte, outbox.path(), "customer");
    env.set("PAYMENT_LINK", "template");
    env.set(
        "PAYMENT_URL_TEMPLATE",
        "https://billing.example.id/bayar/{number}",
    );
    schedule(&env, &[]);
    drain(&env);
    let was = whatsapps(&fonnte);
    let budi = was
        .iter()
        .find(|w| w.1.contains("Halo Budi"))
        .unwrap_or_else(|| panic!("{was:#?}"));
    for want in [
        "1. Tagihan INV-B sebesar Rp 250.000 jatuh tempo besok",
        "   Bayar: https://billing.example.id/bayar/INV-B\n2. Tagihan INV-A",
        "   Bayar: https://billing.example.id/bayar/INV-A\n\nTotal: Rp 400.000",
    ] {
        assert!(budi.1.contains(want), "{want:?} missing from:\n{}", budi.1);
    }
}
