//! The payment loop end to end, per gateway (issue 17): a reminder with a payment link
//! from the gateway fake → a signed callback to dunning-web's router over loopback →
//! the invoice is paid → the next reminder is skipped → one receipt per channel in the
//! file outbox (`log` drivers), also after the callback is replayed.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use dunning_core::message::Templates;
use dunning_core::{Settings, Zone};
use dunning_fake_gateways::{GatewayFake, keys, sign};
use dunning_store::scheduling::{self, Request};
use dunning_test_db::TestDatabase;
use dunning_worker::{Config, Senders, Worker};
use support::*;
use time::{Date, Duration, OffsetDateTime};

const INVOICE: &str = "INV-20261202-000042";

fn today() -> Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

/// One customer (email and WhatsApp) with one unpaid invoice of [`AMOUNT`] due in 3 days.
fn seed_due_soon(conn: &mut PgConnection) {
    diesel::sql_query(
        "INSERT INTO customers (name, email, phone) VALUES ('Budi Santoso', 'budi@example.com', '085707211646')",
    )
    .execute(conn)
    .unwrap();
    diesel::sql_query(format!(
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         SELECT '{INVOICE}', id, {AMOUNT}, DATE '{}' FROM customers",
        today() + Duration::days(3)
    ))
    .execute(conn)
    .unwrap();
}

/// Queues `stage` as a scheduler run on `run_date` would.
fn schedule(conn: &mut PgConnection, stage: &str, run_date: Date) {
    let stages = dunning_core::stage::parse_stages(stage).unwrap();
    scheduling::schedule(
        conn,
        &Request {
            run_date,
            stages: &stages,
            catch_up_days: 0,
            queue: "default",
            dry_run: false,
            lines: false,
            host: "test",
            backfill: run_date != today(),
            group: dunning_core::config::Grouping::Invoice,
        },
    )
    .unwrap();
}

/// Drains the queue through the `log` drivers into `outbox`, with links and receipts.
fn work(db: &TestDatabase, outbox: &Path, payments: &dunning_pay::PaymentSettings) {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = outbox.display().to_string();
    let settings = Settings::from_lookup(|k| match k {
        "MAIL_MAILER" | "WHATSAPP_DRIVER" => Some("log".into()),
        "DUNNING_OUTBOX_DIR" => Some(dir.clone()),
        _ => None,
    })
    .unwrap();
    let worker = Worker::new(
        db.pool(4),
        Senders {
            email: Arc::from(dunning_channels::email_sender(&settings).unwrap()),
            whatsapp: Arc::from(dunning_channels::whatsapp_sender(&settings).unwrap()),
        },
        Templates::builtin("Wikarta Provider"),
        Config::for_tests("default"),
        Arc::new(AtomicBool::new(false)),
    )
    .with_payment_links(dunning_pay::Links::new(payments))
    .with_receipts(payments.receipts);
    worker.run();
}

/// The WhatsApp outbox: (reference, message) per line.
fn whatsapp(outbox: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(outbox.join("whatsapp.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["reference"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The email outbox's file names.
fn emails(outbox: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(outbox.join("email"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Ledger {
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

fn ledger(conn: &mut PgConnection) -> Vec<Ledger> {
    diesel::sql_query(
        "SELECT stage, channel, status, error FROM notifications ORDER BY run_date, stage = 'paid', stage, channel",
    )
    .load(conn)
    .unwrap()
}

fn l(stage: &str, channel: &str, status: &str, error: Option<&str>) -> Ledger {
    Ledger {
        stage: stage.into(),
        channel: channel.into(),
        status: status.into(),
        error: error.map(Into::into),
    }
}

/// The whole loop for one gateway; `callback` posts the gateway's signed PAID callback
/// for the order id the link was created with and returns the HTTP status.
fn the_loop(gateway: &str, callback: impl Fn(&Web, &str) -> u16) {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed_due_soon(&mut conn);
    let fake = GatewayFake::start();
    let payments = payment_settings(Some(&fake), gateway);
    let web = Web::start(&db, payments.clone());
    let outbox = tempfile::tempdir().unwrap();

    // 1. Today's T-3 reminder goes out with the gateway's payment page.
    schedule(&mut conn, "T-3", today());
    work(&db, outbox.path(), &payments);
    let sent = whatsapp(outbox.path());
    assert_eq!(sent.len(), 1, "{sent:?}");
    #[derive(QueryableByName)]
    struct Link {
        #[diesel(sql_type = Text)]
        order_id: String,
        #[diesel(sql_type = Text)]
        url: String,
    }
    let link: Link = diesel::sql_query("SELECT order_id, url FROM payment_links")
        .get_result(&mut conn)
        .unwrap();
    assert!(
        sent[0].1.contains(&format!(
            "Bayar sekarang melalui tautan berikut: {}",
            link.url
        )),
        "{}",
        sent[0].1
    );

    // 2. The T-1 reminder is queued (its run comes before the payment)…
    schedule(&mut conn, "T-1", today() + Duration::days(2));
    // 3. …the customer pays; the gateway calls back, signed.
    assert_eq!(callback(&web, &link.order_id), 200);
    let inv: String = diesel::sql_query("SELECT status FROM invoices")
        .get_result::<Status>(&mut conn)
        .unwrap()
        .status;
    assert_eq!(inv, "paid");
    // 4. The next reminder is skipped; the receipt goes out on both channels.
    work(&db, outbox.path(), &payments);
    let receipt = format!(
        "Halo Budi Santoso,

Terima kasih, pembayaran tagihan {INVOICE} sebesar Rp 150.000 telah kami terima.

Salam,
Tim Wikarta Provider"
    );
    let sent = whatsapp(outbox.path());
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1], (format!("{INVOICE}/paid"), receipt.clone()));
    let mails = emails(outbox.path());
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        mails.iter().filter(|n| n.contains("_paid")).count(),
        1,
        "{mails:?}"
    );
    assert_eq!(
        ledger(&mut conn),
        [
            l("T-3", "email", "sent", None),
            l("T-3", "whatsapp", "sent", None),
            l("paid", "email", "sent", None),
            l("paid", "whatsapp", "sent", None),
            l("T-1", "email", "skipped", Some("invoice is paid")),
            l("T-1", "whatsapp", "skipped", Some("invoice is paid")),
        ]
    );

    // 5. The gateway replays the callback: acknowledged, no second payment, no
    // second receipt.
    assert_eq!(callback(&web, &link.order_id), 200);
    work(&db, outbox.path(), &payments);
    assert_eq!(payments_of(&mut conn), 1);
    assert_eq!(whatsapp(outbox.path()).len(), 2);
    assert_eq!(emails(outbox.path()).len(), 2);
    // Even paid → unpaid → paid again (an operator's correction) sends no second one.
    diesel::sql_query("UPDATE invoices SET status = 'unpaid'")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("UPDATE invoices SET status = 'paid'")
        .execute(&mut conn)
        .unwrap();
    work(&db, outbox.path(), &payments);
    assert_eq!(whatsapp(outbox.path()).len(), 2);
    assert_eq!(ledger(&mut conn).len(), 6);
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Text)]
    status: String,
}

fn payments_of(conn: &mut PgConnection) -> usize {
    payments(conn).len()
}

#[test]
fn xendit_reminder_link_callback_paid_next_skipped_receipt() {
    the_loop("xendit", |web, order| {
        let body = sign::xendit_invoice("inv-x-42", order, "PAID", AMOUNT, AMOUNT, "IDR");
        web.post(
            "/webhooks/xendit",
            &[("x-callback-token", keys::XENDIT_CALLBACK_TOKEN)],
            body.as_bytes(),
        )
        .0
    });
}

#[test]
fn midtrans_reminder_link_callback_paid_next_skipped_receipt() {
    the_loop("midtrans", |web, order| {
        let body = sign::midtrans_notification(
            order,
            "tx-42",
            "settlement",
            "accept",
            "200",
            "150000.00",
            "IDR",
            keys::MIDTRANS_SERVER_KEY,
        );
        web.post("/webhooks/midtrans", &[], body.as_bytes()).0
    });
}

#[test]
fn tripay_reminder_link_callback_paid_next_skipped_receipt() {
    the_loop("tripay", |web, order| {
        let body = sign::tripay_body("DEV-T42", order, "PAID", AMOUNT);
        let sig = sign::tripay_callback(body.as_bytes(), keys::TRIPAY_PRIVATE_KEY);
        web.post(
            "/webhooks/tripay",
            &[
                ("X-Callback-Event", "payment_status"),
                ("X-Callback-Signature", &sig),
            ],
            body.as_bytes(),
        )
        .0
    });
}

#[test]
fn receipts_off_queues_none() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed_due_soon(&mut conn);
    let mut payments = payment_settings(None, "none");
    payments.receipts = false;
    let web = Web::start(&db, payments.clone());
    let body = sign::xendit_invoice("inv-x-43", INVOICE, "PAID", AMOUNT, AMOUNT, "IDR");
    let (status, _) = web.post(
        "/webhooks/xendit",
        &[("x-callback-token", keys::XENDIT_CALLBACK_TOKEN)],
        body.as_bytes(),
    );
    assert_eq!(status, 200);
    let outbox = tempfile::tempdir().unwrap();
    work(&db, outbox.path(), &payments);
    assert!(ledger(&mut conn).is_empty());
    assert!(whatsapp(outbox.path()).is_empty());
    // The event was taken: turning receipts on later sends none for this payment.
    payments.receipts = true;
    work(&db, outbox.path(), &payments);
    assert!(ledger(&mut conn).is_empty());
}

#[test]
fn invoice_paid_by_the_operator_or_billing_gets_a_receipt_too() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed_due_soon(&mut conn);
    // `dunning-schedule invoice paid` (and billing updating `invoices` itself).
    assert!(dunning_store::billing::set_invoice_status(&mut conn, INVOICE, "paid").unwrap());
    let outbox = tempfile::tempdir().unwrap();
    work(&db, outbox.path(), &payment_settings(None, "none"));
    assert_eq!(
        ledger(&mut conn),
        [
            l("paid", "email", "sent", None),
            l("paid", "whatsapp", "sent", None),
        ]
    );
}
