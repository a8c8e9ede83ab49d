//! Answers to customers' WhatsApp replies (queued by the incoming-message webhook,
//! `dunning_store::inbound`) go out through the worker like reminders: paced,
//! counted against the monthly quota, recorded in the ledger, retried by `retry`.
//! Real PostgreSQL and the Fonnte fake, through the real Fonnte sender.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text};
use dunning_channels::Sender;
use dunning_core::message::Templates;
use dunning_core::reply::ReplySettings;
use dunning_core::{Settings, Zone};
use dunning_store::inbound::{self, Inbound};
use dunning_store::ops::failed::{self, Selection};
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::{FonnteFake, Reply};
use dunning_worker::{Config, Senders, Worker};
use time::OffsetDateTime;

const SECRET: &str = "webhook-secret-for-replies";

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// Customers 1..=n, phone `08123456780<i>` (Fonnte writes `628123456780<i>`), each
/// with an open invoice that has no reminder queued.
fn seed(conn: &mut PgConnection, n: i64) {
    exec(
        conn,
        &format!(
            "INSERT INTO customers (id, name, email, phone)
             SELECT g, 'Pelanggan ' || g, 'c' || g || '@example.com', '08123456780' || g
             FROM generate_series(1, {n}) g"
        ),
    );
    exec(
        conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             SELECT 'INV-' || g, g, 150000, CURRENT_DATE + 20 FROM generate_series(1, {n}) g"
        ),
    );
}

/// Customer `i` writes `message` to the Fonnte device (the incoming webhook).
fn reply_from(conn: &mut PgConnection, i: i64, message: &str) -> String {
    let settings =
        ReplySettings::from_lookup(|k| (k == "FONNTE_WEBHOOK_SECRET").then(|| SECRET.to_owned()))
            .unwrap();
    let zone = Zone::default();
    let ctx = Inbound {
        settings: &settings,
        zone: &zone,
        company_name: "Wikarta Provider",
        queue: "default",
    };
    let now = OffsetDateTime::now_utc();
    let body = serde_json::json!({
        "device": "6285700000001", "sender": format!("628123456780{i}"), "message": message,
        "text": "", "member": "", "name": format!("Pelanggan {i}"), "location": "",
        "pollname": "", "choices": "", "timestamp": now.unix_timestamp(),
        "inboxid": format!("inbox-{i}-{message}"),
    })
    .to_string();
    inbound::fonnte_incoming(conn, &ctx, Some(SECRET), body.as_bytes(), now)
        .unwrap()
        .body
}

fn worker(db: &TestDatabase, fonnte: &FonnteFake, cfg: Config) -> Worker {
    let _ = env_logger::builder().is_test(true).try_init();
    let vars = fonnte.env();
    let settings =
        Settings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
    let whatsapp: Arc<dyn Sender> =
        Arc::from(dunning_channels::whatsapp_sender(&settings).unwrap());
    let email: Arc<dyn Sender> = Arc::from(dunning_channels::email_sender(&settings).unwrap());
    Worker::new(
        db.pool(4),
        Senders { email, whatsapp },
        Templates::builtin("Wikarta Provider"),
        cfg,
        Arc::new(AtomicBool::new(false)),
    )
}

#[derive(QueryableByName, Debug)]
struct AnswerRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    provider_message_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

fn answers(conn: &mut PgConnection) -> Vec<AnswerRow> {
    sql_query(
        "SELECT status, provider_message_id, error FROM notifications
         WHERE reply_id IS NOT NULL ORDER BY id",
    )
    .load(conn)
    .unwrap()
}

#[test]
fn answers_to_replies_are_sent_paced_and_recorded_in_the_ledger() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, 2);
    assert!(reply_from(&mut conn, 1, "STOP").contains("answer queued"));
    assert!(reply_from(&mut conn, 2, "sudah bayar").contains("answer queued"));
    let fonnte = FonnteFake::start();
    let cfg = Config {
        whatsapp_interval: Duration::from_millis(700),
        ..Config::for_tests("default")
    };
    let w = worker(&db, &fonnte, cfg);
    w.run();

    let sent = fonnte.sent();
    assert_eq!(sent.len(), 2, "both answers reach Fonnte");
    assert_eq!(sent[0].field("target").as_deref(), Some("6281234567801"));
    // The STOP confirmation reaches the customer it just opted out, and says how
    // to opt back in.
    assert!(
        sent[0].field("message").unwrap().contains("MULAI"),
        "{:?}",
        sent[0].field("message")
    );
    assert_eq!(sent[1].field("target").as_deref(), Some("6281234567802"));
    let rows = answers(&mut conn);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.status, "sent", "{r:?}");
        assert!(r.provider_message_id.is_some(), "{r:?}");
    }
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
    // Paced like reminders: the shared slot spaced the two sends.
    let spacing = count(
        &mut conn,
        "SELECT (extract(epoch FROM max(sent_at) - min(sent_at)) * 1000)::bigint AS n
         FROM notifications WHERE reply_id IS NOT NULL",
    );
    assert!(
        spacing >= 650,
        "answers {spacing} ms apart, paced at 700 ms"
    );
}

#[test]
fn answers_count_against_the_monthly_quota() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, 2);
    reply_from(&mut conn, 1, "LUNAS");
    reply_from(&mut conn, 2, "LUNAS");
    let fonnte = FonnteFake::start();
    let cfg = Config {
        monthly_quota: 1,
        ..Config::for_tests("default")
    };
    worker(&db, &fonnte, cfg).run();
    assert_eq!(fonnte.sent().len(), 1, "a quota of 1 lets one answer out");
    // The other waits for next month's quota, untouched.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications n JOIN jobs j ON j.notification_id = n.id
             WHERE n.reply_id IS NOT NULL AND n.status = 'queued' AND j.reserved_at IS NULL"
        ),
        1
    );
}

#[test]
fn a_failed_answer_shows_in_failed_and_retry_sends_it() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, 1);
    reply_from(&mut conn, 1, "janji bayar tanggal 25");
    let fonnte = FonnteFake::start();
    fonnte.push_reply(Reply::reason("target invalid"));
    worker(&db, &fonnte, Config::for_tests("default")).run();
    let rows = answers(&mut conn);
    assert_eq!(rows[0].status, "failed", "{rows:?}");
    assert!(
        rows[0].error.as_deref().unwrap().contains("target invalid"),
        "{rows:?}"
    );
    let listed = failed::list(&mut conn, None).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].invoice_number.starts_with("reply #"),
        "{listed:?}"
    );

    let retried = failed::retry(&mut conn, Selection::All, None, "default").unwrap();
    assert_eq!(retried.len(), 1);
    worker(&db, &fonnte, Config::for_tests("default")).run();
    assert_eq!(fonnte.sent().len(), 2, "retried once");
    let rows = answers(&mut conn);
    assert_eq!(rows[0].status, "sent", "{rows:?}");
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 0);
}
