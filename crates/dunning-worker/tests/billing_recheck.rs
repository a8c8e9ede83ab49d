//! The worker's live re-check against a real MariaDB billing source (issue 16): an
//! invoice paid in billing after it was queued is not reminded, without any sync; a
//! source that goes down holds reminders once the mirror is older than
//! BILLING_MAX_STALENESS, and they go out (or not, as billing then says) once it answers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Nullable, Text};
use dunning_channels::{Delivered, OutgoingMessage, SendError, Sender};
use dunning_core::message::Templates;
use dunning_core::{Channel, Zone};
use dunning_source::{SourceConfig, Timeouts};
use dunning_store::scheduling::{self, Request};
use dunning_test_db::TestDatabase;
use dunning_test_db::mariadb::TestMariaDb;
use dunning_worker::{Config, Senders, Worker};
use time::OffsetDateTime;

/// Records the references of what it was asked to send.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<String>>,
}

impl Sender for Recorder {
    fn channel(&self) -> Channel {
        Channel::Email
    }
    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        self.sent.lock().unwrap().push(msg.reference.to_owned());
        Ok(Delivered {
            provider_message_id: None,
        })
    }
}

fn today() -> time::Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

fn queries() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/billing.toml")
}

fn source(url: &str) -> SourceConfig {
    let (url, q) = (url.to_owned(), queries().display().to_string());
    SourceConfig::from_lookup(|k| match k {
        "BILLING_DATABASE_URL" => Some(url.clone()),
        "BILLING_QUERIES" => Some(q.clone()),
        _ => None,
    })
    .unwrap()
    .unwrap()
}

/// A URL of the same database on a port nobody listens on: the source is down.
fn down(url: &str) -> String {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, hostdb) = rest.rsplit_once('@').unwrap();
    let db = hostdb.split_once('/').unwrap().1;
    format!("{scheme}://{user}@127.0.0.1:{port}/{db}")
}

/// A Laravel-like billing database with two unpaid invoices due in 3 days (stage
/// T-3 today), mirrored into Dunning by a sync, and the day's run queued (email only).
fn setup() -> (TestMariaDb, TestDatabase) {
    let _ = env_logger::builder().is_test(true).try_init();
    let billing = TestMariaDb::new();
    billing.exec(&format!(
        "CREATE TABLE customers (
             id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NULL,
             email VARCHAR(255) NULL, phone VARCHAR(32) NULL, updated_at TIMESTAMP NULL);
         CREATE TABLE invoices (
             id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, invoice_number VARCHAR(64) NOT NULL,
             customer_id BIGINT UNSIGNED NOT NULL, total DECIMAL(15,2) NOT NULL,
             due_date DATETIME NOT NULL, paid_at TIMESTAMP NULL, cancelled_at TIMESTAMP NULL,
             updated_at TIMESTAMP NULL);
         INSERT INTO customers (id, name, email) VALUES
             (1, 'Budi', 'budi@example.id'), (2, 'Siti', 'siti@example.id');
         INSERT INTO invoices (invoice_number, customer_id, total, due_date) VALUES
             ('INV-1', 1, 150000.00, '{due}'), ('INV-2', 2, 250000.00, '{due}')",
        due = today() + time::Duration::days(3)
    ));
    let pg = TestDatabase::new();
    let mut conn = pg.conn();
    let cfg = source(billing.url());
    let mut src = dunning_source::Source::connect(
        &cfg,
        cfg.queries().unwrap(),
        Zone::default().offset(),
        Timeouts::SYNC,
    )
    .unwrap();
    dunning_source::sync::sync(&mut src, &mut conn, true, &mut |_, _| {}).unwrap();
    let stages = dunning_core::stage::parse_stages("T-7,T-3,T-1,T+3").unwrap();
    scheduling::schedule(
        &mut conn,
        &Request {
            run_date: today(),
            stages: &stages,
            catch_up_days: 0,
            queue: "default",
            dry_run: false,
            lines: false,
            host: "test",
            backfill: false,
            group: dunning_core::config::Grouping::Invoice,
        },
    )
    .unwrap();
    (billing, pg)
}

/// Runs a worker with the billing source at `url` until the queue is drained (or
/// only held jobs are left); returns what it sent.
fn work(pg: &TestDatabase, url: &str) -> Vec<String> {
    let email = Arc::new(Recorder::default());
    let worker = Worker::new(
        pg.pool(4),
        Senders {
            email: email.clone(),
            whatsapp: Arc::new(Recorder::default()),
        },
        Templates::builtin("Wikarta Provider"),
        Config::for_tests("default"),
        Arc::new(AtomicBool::new(false)),
    )
    .with_billing_source(source(url));
    worker.run();
    assert_eq!(worker.stats.failed.load(Ordering::Relaxed), 0);
    let mut sent = email.sent.lock().unwrap().clone();
    sent.sort();
    sent
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Ledger {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Text)]
    mirror: String,
}

fn ledger(conn: &mut PgConnection) -> Vec<Ledger> {
    sql_query(
        "SELECT i.number, n.status, n.error, i.status AS mirror
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         WHERE n.channel = 'email' ORDER BY i.number",
    )
    .load(conn)
    .unwrap()
}

fn row(number: &str, status: &str, error: Option<&str>, mirror: &str) -> Ledger {
    Ledger {
        number: number.into(),
        status: status.into(),
        error: error.map(Into::into),
        mirror: mirror.into(),
    }
}

/// Makes every waiting job ready now (the hold's retry time has come).
fn retry_time_has_come(conn: &mut PgConnection) {
    sql_query("UPDATE jobs SET available_at = now()")
        .execute(conn)
        .unwrap();
}

#[test]
fn an_invoice_paid_in_billing_after_queueing_is_not_reminded() {
    let (billing, pg) = setup();
    // 08:01: the customer pays at the counter; billing records it. No sync runs.
    billing.exec("UPDATE invoices SET paid_at = NOW() WHERE invoice_number = 'INV-1'");
    let sent = work(&pg, billing.url());
    assert_eq!(sent, ["INV-2/T-3"]);
    assert_eq!(
        ledger(&mut pg.conn()),
        [
            // The mirror still says unpaid: the re-check, not a sync, stopped it.
            row("INV-1", "skipped", Some("paid in billing"), "unpaid"),
            row("INV-2", "sent", None, "unpaid"),
        ]
    );
}

#[test]
fn a_void_invoice_in_billing_is_not_reminded() {
    let (billing, pg) = setup();
    billing.exec("UPDATE invoices SET cancelled_at = NOW() WHERE invoice_number = 'INV-2'");
    assert_eq!(work(&pg, billing.url()), ["INV-1/T-3"]);
    assert_eq!(
        ledger(&mut pg.conn())[1],
        row("INV-2", "skipped", Some("void in billing"), "unpaid")
    );
}

#[test]
fn the_source_down_right_after_a_sync_sends_on_the_fresh_mirror() {
    let (billing, pg) = setup();
    // The sync ended moments ago: within BILLING_MAX_STALENESS (15 min).
    assert_eq!(work(&pg, &down(billing.url())), ["INV-1/T-3", "INV-2/T-3"]);
}

#[test]
fn the_source_going_down_mid_day_holds_until_it_answers_again() {
    let (billing, pg) = setup();
    let mut conn = pg.conn();
    // The last successful sync ended 20 minutes ago and the source is down now.
    sql_query("UPDATE billing_sync SET finished_at = now() - interval '20 minutes'")
        .execute(&mut conn)
        .unwrap();
    let sent = work(&pg, &down(billing.url()));
    assert!(sent.is_empty(), "sent on a stale mirror: {sent:?}");
    assert_eq!(
        ledger(&mut conn),
        [
            row("INV-1", "queued", None, "unpaid"),
            row("INV-2", "queued", None, "unpaid"),
        ]
    );
    #[derive(QueryableByName)]
    struct Job {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        attempts: i32,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        later: bool,
    }
    let jobs: Vec<Job> = sql_query(
        "SELECT attempts, available_at > now() + interval '30 seconds' AS later FROM jobs
         WHERE channel = 'email'",
    )
    .load(&mut conn)
    .unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter().all(|j| j.attempts == 0 && j.later),
        "held jobs wait, their attempt not counted"
    );

    // Meanwhile INV-1 was paid in billing. The source answers again: INV-2 goes
    // out, INV-1 does not.
    billing.exec("UPDATE invoices SET paid_at = NOW() WHERE invoice_number = 'INV-1'");
    retry_time_has_come(&mut conn);
    assert_eq!(work(&pg, billing.url()), ["INV-2/T-3"]);
    assert_eq!(
        ledger(&mut conn),
        [
            row("INV-1", "skipped", Some("paid in billing"), "unpaid"),
            row("INV-2", "sent", None, "unpaid"),
        ]
    );
}

#[test]
fn invoices_not_from_billing_are_not_asked() {
    let (billing, pg) = setup();
    let mut conn = pg.conn();
    // Written by billing into Dunning's tables (or `import`), not by a sync.
    sql_query("UPDATE invoices SET from_billing = false")
        .execute(&mut conn)
        .unwrap();
    billing.exec("UPDATE invoices SET paid_at = NOW()");
    assert_eq!(work(&pg, billing.url()), ["INV-1/T-3", "INV-2/T-3"]);
}
