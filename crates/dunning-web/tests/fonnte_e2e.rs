//! WhatsApp both ways, end to end: the scheduler queues, a worker sends through the
//! Fonnte fake, the fake calls `dunning-web`'s webhooks as Fonnte does (status after
//! a send, connect on a device change), and replies arrive on the incoming webhook
//! with Fonnte's documented payload. Real PostgreSQL, real HTTP, the `.eml` outbox.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use dunning_channels::Sender;
use dunning_core::message::Templates;
use dunning_core::{Settings, Zone};
use dunning_store::scheduling::{self, Outcome, Request};
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::FonnteFake;
use dunning_worker::{Config, Senders, Worker};
use support::*;
use time::{Date, Duration as Days, OffsetDateTime};

const PHONE_AS_FONNTE_WRITES_IT: &str = "6285707211646";

fn today() -> Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

fn exec(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

fn states(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct S {
        #[diesel(sql_type = Text)]
        state: String,
    }
    diesel::sql_query(
        "SELECT ds.state FROM delivery_states ds JOIN notifications n ON n.id = ds.notification_id
         WHERE n.channel = 'whatsapp' AND n.invoice_id IS NOT NULL ORDER BY ds.id",
    )
    .load::<S>(conn)
    .unwrap()
    .into_iter()
    .map(|s| s.state)
    .collect()
}

/// The world of one test: database, `dunning-web`, the Fonnte fake with the three
/// webhook URLs set in its "dashboard", an outbox for email.
struct World {
    db: TestDatabase,
    web: Web,
    fonnte: FonnteFake,
    outbox: tempfile::TempDir,
}

impl World {
    fn new(fallback_email: bool) -> World {
        let _ = env_logger::builder().is_test(true).try_init();
        let db = TestDatabase::new();
        let vars: &[(&str, &str)] = if fallback_email {
            &[("WHATSAPP_FALLBACK", "email")]
        } else {
            &[]
        };
        let web = Web::start_with(&db, payment_settings(None, "none"), fonnte_hooks(vars));
        let fonnte = FonnteFake::start();
        fonnte.set_webhooks(
            Some(format!(
                "{}/webhooks/fonnte/status?secret={FONNTE_SECRET}",
                web.base
            )),
            Some(format!(
                "{}/webhooks/fonnte/connect?secret={FONNTE_SECRET}",
                web.base
            )),
        );
        World {
            db,
            web,
            fonnte,
            outbox: tempfile::tempdir().unwrap(),
        }
    }

    /// Budi (phone `085707211646`, `email`), invoice INV-1 due in 3 days: stage T-3
    /// today.
    fn seed(&self, email: Option<&str>) {
        let email = email.map_or("NULL".to_owned(), |e| format!("'{e}'"));
        let mut c = self.db.conn();
        exec(
            &mut c,
            &format!(
                "INSERT INTO customers (id, name, email, phone) VALUES (1, 'Budi', {email}, '085707211646')"
            ),
        );
        exec(
            &mut c,
            &format!(
                "INSERT INTO invoices (id, number, customer_id, amount, due_date)
                 VALUES (1, 'INV-1', 1, 150000, DATE '{}')",
                today() + Days::days(3)
            ),
        );
    }

    fn schedule(&self, day: Date) -> scheduling::Report {
        let stages = dunning_core::stage::parse_stages("T-7,T-3,T-1,T+3").unwrap();
        scheduling::schedule(
            &mut self.db.conn(),
            &Request {
                run_date: day,
                stages: &stages,
                catch_up_days: 3,
                queue: "default",
                dry_run: false,
                lines: true,
                host: "test",
                backfill: day != today(),
                group: dunning_core::config::Grouping::Invoice,
            },
        )
        .unwrap()
    }

    fn worker(&self, cfg: Config, stop: Arc<AtomicBool>) -> Worker {
        let mut vars = self.fonnte.env();
        vars.push(("MAIL_MAILER", "log".into()));
        vars.push((
            "DUNNING_OUTBOX_DIR",
            self.outbox.path().display().to_string(),
        ));
        let settings =
            Settings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
                .unwrap();
        let whatsapp: Arc<dyn Sender> =
            Arc::from(dunning_channels::whatsapp_sender(&settings).unwrap());
        let email: Arc<dyn Sender> = Arc::from(dunning_channels::email_sender(&settings).unwrap());
        Worker::new(
            self.db.pool(4),
            Senders { email, whatsapp },
            Templates::builtin("Wikarta Provider"),
            cfg,
            stop,
        )
    }

    /// One worker run that drains what is ready (`--once`).
    fn drain(&self) {
        self.worker(
            Config::for_tests("default"),
            Arc::new(AtomicBool::new(false)),
        )
        .run();
    }

    fn emails(&self) -> usize {
        eml_files(self.outbox.path())
    }

    /// Waits until the fake made `n` webhook calls, all answered 200.
    fn wait_for_calls(&self, n: usize) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.fonnte.webhook_calls();
            if calls.len() >= n {
                for c in &calls {
                    assert_eq!(c.status, 200, "{c:?}");
                }
                return;
            }
            assert!(Instant::now() < end, "webhook calls so far: {calls:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A customer's message, as Fonnte's incoming webhook delivers it.
    fn reply(&self, message: &str, inboxid: &str) -> String {
        let body = serde_json::json!({
            "device": "6285700000001", "sender": PHONE_AS_FONNTE_WRITES_IT,
            "message": message, "text": "", "member": "", "name": "Budi", "location": "",
            "pollname": "", "choices": "", "timestamp": OffsetDateTime::now_utc().unix_timestamp(),
            "inboxid": inboxid,
        })
        .to_string();
        let (status, answer) = self.web.post(
            &format!("/webhooks/fonnte/incoming?secret={FONNTE_SECRET}"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

fn eml_files(dir: &Path) -> usize {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .count()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_sent_reminder_is_recorded_as_read_from_fonntes_status_calls() {
    let w = World::new(false);
    w.seed(None);
    w.fonnte.set_message_states(&["sent", "delivered", "read"]);
    w.schedule(today());
    w.drain();
    assert_eq!(w.fonnte.sent().len(), 1);
    w.wait_for_calls(3);
    let mut conn = w.db.conn();
    assert_eq!(states(&mut conn), ["sent", "delivered", "read"]);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'whatsapp' AND status = 'sent'"
        ),
        1
    );
}

#[test]
fn an_invalid_whatsapp_falls_back_to_email_once() {
    let w = World::new(true);
    // WhatsApp only when scheduled; the email address is added afterwards (so no
    // email reminder exists for the day).
    w.seed(None);
    w.fonnte.set_message_states(&["invalid"]);
    w.schedule(today());
    exec(
        &mut w.db.conn(),
        "UPDATE customers SET email = 'budi@example.com'",
    );
    w.drain();
    w.wait_for_calls(1);
    let mut conn = w.db.conn();
    let failed = dunning_store::ops::failed::list(&mut conn, None).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("invalid target"),
        "{failed:?}"
    );
    w.drain();
    assert_eq!(w.emails(), 1, "the reminder went out by email");
    // Fonnte retries the call: no second email.
    let calls = w.fonnte.webhook_calls();
    let url = calls[0].url.trim_start_matches(&w.web.base).to_owned();
    let (status, _) = w.web.post(&url, &[], calls[0].body.as_bytes());
    assert_eq!(status, 200);
    w.drain();
    assert_eq!(w.emails(), 1, "once");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'email' AND status = 'sent'"
        ),
        1
    );
}

#[test]
fn a_disconnect_holds_whatsapp_for_every_worker_and_connect_releases_it_within_a_poll() {
    let w = World::new(false);
    w.seed(Some("budi@example.com"));
    w.schedule(today());
    // The device drops: Fonnte calls the connect webhook.
    w.fonnte.set_connected(false);
    w.wait_for_calls(1);
    let mut conn = w.db.conn();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM channel_state WHERE channel = 'whatsapp' AND paused_until > now()"
        ),
        1
    );
    // A worker keeps polling: email flows, WhatsApp is not even tried.
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = Config {
        once: false,
        sleep: Duration::from_millis(200),
        ..Config::for_tests("default")
    };
    let worker = w.worker(cfg, Arc::clone(&stop));
    std::thread::scope(|s| {
        let running = s.spawn(|| worker.run());
        let end = Instant::now() + Duration::from_secs(20);
        while w.emails() < 1 {
            assert!(
                Instant::now() < end,
                "email not sent while WhatsApp is paused"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(w.fonnte.sent().len(), 0, "no WhatsApp while disconnected");
        // The QR code is scanned again.
        w.fonnte.set_connected(true);
        w.wait_for_calls(2);
        let connected = Instant::now();
        while w.fonnte.sent().is_empty() {
            assert!(
                connected.elapsed() < Duration::from_secs(5),
                "the held WhatsApp reminder did not go out after connect"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A poll (200 ms) plus the pause state's cache (1 s).
        let took = connected.elapsed();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        stop.store(true, Ordering::SeqCst);
        running.join().unwrap();
    });
    assert_eq!(w.fonnte.sent().len(), 1);
}

#[test]
fn stop_ends_whatsapp_reminders_keeps_email_and_is_confirmed() {
    let w = World::new(false);
    w.seed(Some("budi@example.com"));
    let answer = w.reply("STOP", "inbox-stop-1");
    assert!(answer.contains("answer queued"), "{answer}");
    w.schedule(today());
    w.drain();
    let sent = w.fonnte.sent();
    assert_eq!(sent.len(), 1, "only the confirmation goes out by WhatsApp");
    assert_eq!(
        sent[0].field("target").as_deref(),
        Some(PHONE_AS_FONNTE_WRITES_IT)
    );
    let text = sent[0].field("message").unwrap();
    assert!(text.contains("MULAI"), "{text}");
    assert_eq!(w.emails(), 1, "the email reminder still goes out");
    let mut conn = w.db.conn();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'whatsapp' AND invoice_id IS NOT NULL"
        ),
        0
    );
}

#[test]
fn a_promise_to_pay_holds_reminders_until_the_date_then_the_newest_stage() {
    let w = World::new(false);
    w.seed(Some("budi@example.com"));
    // Due in 3 days; the customer promises to pay 5 days from now.
    let promised = today() + Days::days(5);
    let answer = w.reply(
        &format!(
            "saya bayar tanggal {}/{}",
            promised.day(),
            u8::from(promised.month())
        ),
        "inbox-promise-1",
    );
    assert!(answer.contains("promise"), "{answer}");
    let mut conn = w.db.conn();
    let mut day = today();
    while day <= promised {
        let report = w.schedule(day);
        for line in &report.lines {
            assert_eq!(line.whatsapp, Some(Outcome::HeldPaused), "{day}: {line:?}");
            assert_eq!(line.email, Some(Outcome::HeldPaused), "{day}: {line:?}");
        }
        assert_eq!(
            count(
                &mut conn,
                "SELECT count(*) AS n FROM notifications WHERE invoice_id IS NOT NULL"
            ),
            0,
            "{day}: nothing is queued while the promise holds"
        );
        day = day.next_day().unwrap();
    }
    // Today's worker run sends only the confirmation.
    w.drain();
    assert_eq!(w.fonnte.sent().len(), 1);
    assert_eq!(w.emails(), 0);
    let report = w.schedule(promised.next_day().unwrap());
    assert_eq!(report.lines.len(), 1, "{:?}", report.lines);
    // The day after the promise is T+3: the newest stage, not the missed T-1.
    assert_eq!(report.lines[0].stage, dunning_core::Stage::from_offset(3));
    assert_eq!(report.lines[0].whatsapp, Some(Outcome::Dispatched));
    assert_eq!(report.lines[0].email, Some(Outcome::Dispatched));
}
