//! The payment link in reminders (issue 17), from the worker's render step against a
//! real PostgreSQL and the local gateway fakes over loopback HTTP: none (the seed's
//! text byte for byte), template (billing's own link wins), Xendit, Midtrans and
//! Tripay; a gateway that is down costs the reminder its link, never the reminder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Nullable, Text};
use dunning_channels::{Delivered, OutgoingMessage, SendError, Sender};
use dunning_core::message::Templates;
use dunning_core::{Channel, Zone};
use dunning_fake_gateways::{GatewayFake, keys};
use dunning_pay::{Links, PaymentSettings};
use dunning_store::scheduling::{self, Request};
use dunning_test_db::TestDatabase;
use dunning_worker::{Config, Senders, Worker};
use time::OffsetDateTime;

/// Records what it was asked to send: (reference, body).
struct Recorder {
    channel: Channel,
    sent: Mutex<Vec<(String, String)>>,
}

impl Recorder {
    fn new(channel: Channel) -> Arc<Self> {
        Arc::new(Recorder {
            channel,
            sent: Mutex::new(Vec::new()),
        })
    }
    fn bodies(&self) -> Vec<(String, String)> {
        let mut v = self.sent.lock().unwrap().clone();
        v.sort();
        v
    }
}

impl Sender for Recorder {
    fn channel(&self) -> Channel {
        self.channel
    }
    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        self.sent
            .lock()
            .unwrap()
            .push((msg.reference.to_owned(), msg.body.to_owned()));
        Ok(Delivered {
            provider_message_id: None,
        })
    }
}

fn today() -> time::Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Two unpaid invoices due in 3 days (T-3 today), customers with email and phone;
/// INV-2 has a link billing wrote itself. The day's run is queued.
fn setup() -> TestDatabase {
    let _ = env_logger::builder().is_test(true).try_init();
    let db = TestDatabase::new();
    let mut c = db.conn();
    exec(
        &mut c,
        "INSERT INTO customers (name, email, phone) VALUES
             ('Budi Santoso', 'budi@example.id', '081234567890'),
             ('Siti Rahayu', 'siti@example.id', '081298765432')",
    );
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date, payment_url) VALUES
                 ('INV-20261201-000001', 1, 150000, DATE '{d}', NULL),
                 ('INV-20261201-000002', 2, 250000, DATE '{d}', 'https://portal.example.id/pay/2')",
            d = today() + time::Duration::days(3)
        ),
    );
    let stages = dunning_core::stage::parse_stages("T-7,T-3,T-1,T+3").unwrap();
    scheduling::schedule(
        &mut c,
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
    db
}

fn settings(link: &str, fake: Option<&GatewayFake>, xendit_key: &str) -> PaymentSettings {
    let (x, m, t) = fake.map_or_else(
        || {
            // Nobody listens there: the gateway is down.
            let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", free.local_addr().unwrap());
            (base.clone(), base.clone(), base)
        },
        |f| (f.xendit_url(), f.midtrans_url(), f.tripay_url()),
    );
    let vars: Vec<(&str, String)> = vec![
        ("PAYMENT_LINK", link.into()),
        (
            "PAYMENT_URL_TEMPLATE",
            "https://billing.example.id/bayar/{number}".into(),
        ),
        ("XENDIT_API_URL", x),
        ("MIDTRANS_API_URL", m),
        ("TRIPAY_API_URL", t),
        ("XENDIT_SECRET_KEY", xendit_key.into()),
        ("MIDTRANS_SERVER_KEY", keys::MIDTRANS_SERVER_KEY.into()),
        ("TRIPAY_API_KEY", keys::TRIPAY_API_KEY.into()),
        ("TRIPAY_PRIVATE_KEY", keys::TRIPAY_PRIVATE_KEY.into()),
        ("TRIPAY_MERCHANT_CODE", keys::TRIPAY_MERCHANT_CODE.into()),
    ];
    PaymentSettings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

/// Drains the queue with payment links from `settings`; returns (email, whatsapp)
/// bodies by reference.
type Sent = Vec<(String, String)>;
fn work(db: &TestDatabase, settings: &PaymentSettings) -> (Sent, Sent) {
    let email = Recorder::new(Channel::Email);
    let whatsapp = Recorder::new(Channel::WhatsApp);
    let worker = Worker::new(
        db.pool(4),
        Senders {
            email: email.clone(),
            whatsapp: whatsapp.clone(),
        },
        Templates::builtin("Wikarta Provider"),
        Config::for_tests("default"),
        Arc::new(AtomicBool::new(false)),
    )
    .with_payment_links(Links::new(settings));
    worker.run();
    assert_eq!(worker.stats.sent.load(Ordering::Relaxed), 4);
    assert_eq!(worker.stats.failed.load(Ordering::Relaxed), 0);
    (email.bodies(), whatsapp.bodies())
}

/// The seed's text for INV-…-000001, as sent before payment links existed.
fn seed_text(due: time::Date) -> String {
    format!(
        "Halo Budi Santoso,

Kami ingin mengingatkan bahwa tagihan INV-20261201-000001 sebesar Rp 150.000 akan jatuh tempo pada {}.
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider",
        dunning_core::format::tanggal(due)
    )
}

const LINE: &str = "Bayar sekarang melalui tautan berikut: ";

/// The link line of a body, if it has one.
fn link_of(body: &str) -> Option<&str> {
    let lines: Vec<&str> = body.lines().filter(|l| l.starts_with(LINE)).collect();
    assert!(lines.len() <= 1, "one link line at most: {body}");
    lines.first().map(|l| &l[LINE.len()..])
}

#[derive(QueryableByName, Debug)]
struct LinkError {
    #[diesel(sql_type = Nullable<Text>)]
    link_error: Option<String>,
}

fn link_errors(conn: &mut PgConnection) -> Vec<Option<String>> {
    sql_query("SELECT link_error FROM notifications ORDER BY id")
        .load::<LinkError>(conn)
        .unwrap()
        .into_iter()
        .map(|r| r.link_error)
        .collect()
}

#[test]
fn without_payment_links_the_text_is_byte_for_byte_the_seed() {
    let db = setup();
    let (email, whatsapp) = work(&db, &settings("none", None, keys::XENDIT_SECRET_KEY));
    let want = seed_text(today() + time::Duration::days(3));
    assert_eq!(email[0].1, want);
    assert_eq!(whatsapp[0].1, want);
    // Even billing's own link is left out with PAYMENT_LINK=none.
    assert_eq!(link_of(&email[1].1), None);
    assert_eq!(link_errors(&mut db.conn()), [None, None, None, None]);
}

#[test]
fn template_links_and_billing_links_win_over_the_template() {
    let db = setup();
    let (email, whatsapp) = work(&db, &settings("template", None, keys::XENDIT_SECRET_KEY));
    for sent in [&email, &whatsapp] {
        assert_eq!(
            link_of(&sent[0].1),
            Some("https://billing.example.id/bayar/INV-20261201-000001")
        );
        assert_eq!(link_of(&sent[1].1), Some("https://portal.example.id/pay/2"));
        // The link line is the only difference from the text without a link.
        let without = sent[0].1.replace(
            &format!("{LINE}https://billing.example.id/bayar/INV-20261201-000001\n"),
            "",
        );
        assert_eq!(without, seed_text(today() + time::Duration::days(3)));
    }
}

/// A page created through `gateway`'s API for each invoice, shared by both channels.
fn gateway_links(gateway: &str, create_path: &str) {
    let db = setup();
    let fake = GatewayFake::start();
    let (email, whatsapp) = work(
        &db,
        &settings(gateway, Some(&fake), keys::XENDIT_SECRET_KEY),
    );
    assert_eq!(
        fake.requests_to(create_path).len(),
        2,
        "one page per invoice, reused by the second channel"
    );
    #[derive(QueryableByName)]
    struct Url {
        #[diesel(sql_type = Text)]
        url: String,
    }
    let urls: Vec<Url> = sql_query("SELECT url FROM payment_links ORDER BY invoice_id")
        .load(&mut db.conn())
        .unwrap();
    assert_eq!(urls.len(), 2);
    for sent in [&email, &whatsapp] {
        for (i, (_, body)) in sent.iter().enumerate() {
            assert_eq!(link_of(body), Some(urls[i].url.as_str()), "{body}");
            assert!(urls[i].url.starts_with("http://127.0.0.1:"));
        }
    }
    assert_eq!(link_errors(&mut db.conn()), [None, None, None, None]);
}

#[test]
fn xendit_links_come_from_its_invoices_api() {
    gateway_links("xendit", "/v2/invoices");
}

#[test]
fn midtrans_links_come_from_snap() {
    gateway_links("midtrans", "/snap/v1/transactions");
}

#[test]
fn tripay_links_come_from_its_transaction_api() {
    gateway_links("tripay", "/transaction/create");
}

#[test]
fn a_gateway_that_is_down_costs_the_link_not_the_reminder() {
    let db = setup();
    let (email, whatsapp) = work(&db, &settings("xendit", None, keys::XENDIT_SECRET_KEY));
    let want = seed_text(today() + time::Duration::days(3));
    assert_eq!(email[0].1, want, "sent, without a link");
    assert_eq!(whatsapp[0].1, want);
    let mut conn = db.conn();
    let errors = link_errors(&mut conn);
    assert_eq!(errors.len(), 4);
    for e in &errors {
        let e = e.as_deref().expect("the failure is recorded");
        assert!(e.contains("xendit could not be reached"), "{e}");
    }
    let missing =
        dunning_store::payments::missing_links(&mut conn, OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!(missing.count, 4);
}

#[test]
fn a_refused_key_costs_the_link_not_the_reminder_and_names_the_variable() {
    let db = setup();
    let fake = GatewayFake::start();
    work(
        &db,
        &settings("xendit", Some(&fake), "xnd_development_wrong"),
    );
    for e in link_errors(&mut db.conn()) {
        let e = e.expect("the failure is recorded");
        assert!(e.contains("XENDIT_SECRET_KEY"), "{e}");
        assert!(
            !e.contains("xnd_development_wrong"),
            "no key in errors: {e}"
        );
    }
}
