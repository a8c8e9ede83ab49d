//! The worker's guarantees, against a real PostgreSQL, with the delivery channels
//! replaced by in-process test doubles (the channels have their own tests against
//! real SMTP and a Fonnte fake).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use dunning_channels::{Delivered, OutgoingMessage, PauseKind, SendError, Sender};
use dunning_core::config::SendWindow;
use dunning_core::message::Templates;
use dunning_core::{Channel, Zone};
use dunning_store::scheduling::{self, Request};
use dunning_test_db::TestDatabase;
use dunning_worker::{Config, Senders, Worker};
use time::OffsetDateTime;

/// A channel that records what it was asked to send and answers from a script
/// (then succeeds).
struct Double {
    channel: Channel,
    script: Mutex<VecDeque<Result<(), SendError>>>,
    sent: Mutex<Vec<(String, String, Instant)>>,
    delay: Duration,
    on_send: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Double {
    fn new(channel: Channel) -> Arc<Self> {
        Arc::new(Double {
            channel,
            script: Mutex::new(VecDeque::new()),
            sent: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
            on_send: Mutex::new(None),
        })
    }
    fn slow(channel: Channel, delay: Duration) -> Arc<Self> {
        Arc::new(Double {
            delay,
            ..Arc::into_inner(Double::new(channel)).unwrap()
        })
    }
    fn answer(&self, r: Result<(), SendError>) {
        self.script.lock().unwrap().push_back(r);
    }
    fn calls(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
    fn references(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }
}

impl Sender for Double {
    fn channel(&self) -> Channel {
        self.channel
    }
    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        if let Some(f) = self.on_send.lock().unwrap().as_ref() {
            f();
        }
        std::thread::sleep(self.delay);
        self.sent.lock().unwrap().push((
            msg.reference.to_owned(),
            msg.body.to_owned(),
            Instant::now(),
        ));
        match self.script.lock().unwrap().pop_front() {
            Some(Err(e)) => Err(e),
            _ => Ok(Delivered {
                provider_message_id: Some(format!("id-{}", msg.reference)),
            }),
        }
    }
}

struct Setup {
    db: TestDatabase,
    email: Arc<Double>,
    whatsapp: Arc<Double>,
}

fn today() -> time::Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `n` unpaid invoices due in 3 days (stage T-3 today); customer i has email and phone.
fn setup(n: i64) -> Setup {
    // The worker's log with RUST_LOG=info (hidden unless a test fails).
    let _ = env_logger::builder().is_test(true).try_init();
    let db = TestDatabase::new();
    let mut c = db.conn();
    exec(
        &mut c,
        &format!(
            "INSERT INTO customers (name, email, phone)
             SELECT 'Customer ' || g, 'c' || g || '@example.com', '0812' || lpad(g::text, 8, '0')
             FROM generate_series(1, {n}) g"
        ),
    );
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             SELECT 'INV-' || lpad(g::text, 6, '0'), g, 150000 + g, DATE '{}' + 3
             FROM generate_series(1, {n}) g",
            today()
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
    Setup {
        db,
        email: Double::new(Channel::Email),
        whatsapp: Double::new(Channel::WhatsApp),
    }
}

fn worker(s: &Setup, cfg: Config) -> Worker {
    worker_with(s, cfg, Arc::new(AtomicBool::new(false)))
}

fn worker_with(s: &Setup, cfg: Config, stop: Arc<AtomicBool>) -> Worker {
    Worker::new(
        s.db.pool(cfg.concurrency * 2 + 2),
        Senders {
            email: s.email.clone(),
            whatsapp: s.whatsapp.clone(),
        },
        Templates::builtin("Wikarta Provider"),
        cfg,
        stop,
    )
}

#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    job_attempts: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    reserved_by: Option<String>,
}

fn rows(s: &Setup) -> Vec<Row> {
    sql_query(
        "SELECT n.id, i.number, n.channel, n.status, n.attempts, n.error, j.attempts AS job_attempts,
                j.reserved_by
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         LEFT JOIN jobs j ON j.notification_id = n.id ORDER BY n.id",
    )
    .load(&mut s.db.conn())
    .unwrap()
}

fn transient() -> Result<(), SendError> {
    Err(SendError::Transient("connection reset by peer".into()))
}

#[test]
fn workers_drain_the_queue_without_taking_a_job_twice() {
    let s = setup(150);
    let cfg = Config {
        concurrency: 4,
        ..Config::for_tests("default")
    };
    let a = worker(&s, cfg.clone());
    let b = worker(&s, cfg);
    std::thread::scope(|sc| {
        sc.spawn(|| a.run());
        sc.spawn(|| b.run());
    });
    let all = rows(&s);
    assert_eq!(all.len(), 300);
    let odd: Vec<&Row> = all
        .iter()
        .filter(|r| r.status != "sent" || r.attempts != 1)
        .collect();
    assert!(odd.is_empty(), "{} rows not sent once: {odd:?}", odd.len());
    assert!(
        all.iter().all(|r| r.job_attempts.is_none()),
        "jobs left behind"
    );
    for d in [&s.email, &s.whatsapp] {
        let mut refs = d.references();
        assert_eq!(refs.len(), 150);
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), 150, "a job was sent twice on {}", d.channel);
    }
    assert!(
        a.stats.finished() > 0 && b.stats.finished() > 0,
        "both workers took part"
    );
}

#[test]
fn transient_failure_is_retried_with_backoff_then_succeeds() {
    let s = setup(1);
    s.whatsapp.answer(transient());
    let w = worker(
        &s,
        Config {
            backoff: vec![Duration::from_millis(300)],
            once: false,
            max_time: Some(Duration::from_secs(3)),
            ..Config::for_tests("default")
        },
    );
    let started = Instant::now();
    w.run();
    let wa = rows(&s)
        .into_iter()
        .find(|r| r.channel == "whatsapp")
        .unwrap();
    assert_eq!(wa.status, "sent");
    assert_eq!(wa.attempts, 2);
    let times: Vec<Instant> = s
        .whatsapp
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.2)
        .collect();
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_millis(290),
        "backoff was not waited"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn permanent_failure_fails_at_once() {
    let s = setup(1);
    s.whatsapp.answer(Err(SendError::Permanent(
        "target invalid: 0812 is not on WhatsApp".into(),
    )));
    worker(&s, Config::for_tests("default")).run();
    let wa = rows(&s)
        .into_iter()
        .find(|r| r.channel == "whatsapp")
        .unwrap();
    assert_eq!((wa.status.as_str(), wa.attempts), ("failed", 1));
    assert!(wa.error.unwrap().contains("target invalid"));
    assert_eq!(s.whatsapp.calls(), 1);
    assert_eq!(wa.job_attempts, None);
}

#[test]
fn exhausted_tries_end_in_failed() {
    let s = setup(1);
    for _ in 0..5 {
        s.email.answer(transient());
    }
    worker(&s, Config::for_tests("default")).run();
    let e = rows(&s).into_iter().find(|r| r.channel == "email").unwrap();
    assert_eq!((e.status.as_str(), e.attempts), ("failed", 3));
    assert!(e.error.unwrap().contains("after 3 attempts"));
    assert_eq!(s.email.calls(), 3);
}

#[test]
fn invoice_paid_after_enqueue_is_not_reminded() {
    let s = setup(2);
    exec(
        &mut s.db.conn(),
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-000001'",
    );
    exec(
        &mut s.db.conn(),
        "UPDATE invoices SET status = 'void' WHERE number = 'INV-000002'",
    );
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.email.calls() + s.whatsapp.calls(), 0);
    for r in rows(&s) {
        assert_eq!(r.status, "skipped");
        assert!(
            r.error.as_deref() == Some("invoice is paid")
                || r.error.as_deref() == Some("invoice is void"),
            "{r:?}"
        );
    }
}

#[test]
fn a_before_due_reminder_that_waited_past_the_due_date_is_dropped() {
    let s = setup(1);
    // The T-3 jobs waited (quota, pause) and the invoice is now past due.
    exec(
        &mut s.db.conn(),
        "UPDATE invoices SET due_date = DATE 'today' - 5",
    );
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.email.calls() + s.whatsapp.calls(), 0);
    for r in rows(&s) {
        assert_eq!(r.status, "skipped");
        assert!(
            r.error
                .as_deref()
                .unwrap()
                .starts_with("stale: the due date"),
            "{r:?}"
        );
    }
}

#[test]
fn a_channel_already_reminded_today_is_not_reminded_again() {
    let s = setup(1);
    // Another stage's reminder went out on WhatsApp earlier today (e.g. `retry`).
    exec(
        &mut s.db.conn(),
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status, sent_at)
         SELECT id, customer_id, 'T-7', 'whatsapp', run_date - 4, 'x', 'sent', now()
         FROM invoices, (SELECT DATE 'today' AS run_date) d",
    );
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.whatsapp.calls(), 0);
    assert_eq!(s.email.calls(), 1);
    let wa: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "whatsapp" && r.status != "sent")
        .collect();
    assert_eq!(wa[0].status, "skipped");
    assert_eq!(
        wa[0].error.as_deref(),
        Some("already reminded on this channel today")
    );
}

#[test]
fn abandoned_reservation_is_recovered_after_retry_after() {
    let s = setup(1);
    // A worker claimed both jobs 10 s ago and died.
    exec(
        &mut s.db.conn(),
        "UPDATE jobs SET available_at = now() - interval '10 seconds', reserved_at = now() - interval '10 seconds', reserved_by = 'dead:1:x', attempts = 1",
    );
    let patient = Config {
        retry_after: Duration::from_secs(120),
        ..Config::for_tests("default")
    };
    worker(&s, patient).run();
    assert_eq!(
        s.email.calls() + s.whatsapp.calls(),
        0,
        "taken before retry_after"
    );
    let eager = Config {
        retry_after: Duration::from_secs(5),
        ..Config::for_tests("default")
    };
    worker(&s, eager).run();
    let all = rows(&s);
    assert!(
        all.iter().all(|r| r.status == "sent" && r.attempts == 2),
        "{all:?}"
    );
}

#[test]
fn a_job_that_kept_killing_its_worker_is_not_retried_forever() {
    let s = setup(1);
    exec(
        &mut s.db.conn(),
        "UPDATE jobs SET available_at = now() - interval '10 minutes', reserved_at = now() - interval '10 minutes', reserved_by = 'dead:1:x', attempts = 3",
    );
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.email.calls() + s.whatsapp.calls(), 0);
    for r in rows(&s) {
        assert_eq!(r.status, "failed");
        assert!(r.error.unwrap().contains("stopped before recording"));
    }
}

#[test]
fn disconnected_device_pauses_whatsapp_without_burning_tries_while_email_flows() {
    let s = setup(3);
    s.whatsapp.answer(Err(device_disconnected()));
    worker(&s, Config::for_tests("default")).run();
    let all = rows(&s);
    let email: Vec<&Row> = all.iter().filter(|r| r.channel == "email").collect();
    let wa: Vec<&Row> = all.iter().filter(|r| r.channel == "whatsapp").collect();
    assert!(email.iter().all(|r| r.status == "sent"), "{email:?}");
    assert!(wa.iter().all(|r| r.status == "queued"), "{wa:?}");
    assert!(
        wa.iter().all(|r| r.job_attempts == Some(0)),
        "tries were burned: {wa:?}"
    );
    assert_eq!(
        s.whatsapp.calls(),
        1,
        "kept hammering a disconnected device"
    );
    #[derive(QueryableByName)]
    struct P {
        #[diesel(sql_type = Text)]
        reason: String,
    }
    let p: P = sql_query(
        "SELECT pause_reason AS reason FROM channel_state WHERE channel = 'whatsapp' AND paused_until > now()",
    )
    .get_result(&mut s.db.conn())
    .unwrap();
    assert!(p.reason.contains("disconnected device"));
}

#[test]
fn whatsapp_pacing_holds_across_two_workers() {
    let s = setup(5);
    // The gate spaces WhatsApp claims by the interval, across all workers: record
    // the database clock at each claim. Send instants measured in this process also
    // carry thread scheduling (a send delayed on a loaded machine, then one on
    // time), which pacing does not govern.
    s.db.conn()
        .batch_execute(
            "CREATE TABLE claim_log (at timestamptz NOT NULL);
         CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO claim_log VALUES (clock_timestamp()); RETURN NEW; END $$;
         CREATE TRIGGER log_claim AFTER UPDATE OF reserved_at ON jobs FOR EACH ROW
         WHEN (NEW.channel = 'whatsapp' AND OLD.reserved_at IS NULL AND NEW.reserved_at IS NOT NULL)
         EXECUTE FUNCTION log_claim()",
        )
        .unwrap();
    let cfg = Config {
        whatsapp_interval: Duration::from_millis(400),
        ..Config::for_tests("default")
    };
    let a = worker(&s, cfg.clone());
    let b = worker(&s, cfg);
    std::thread::scope(|sc| {
        sc.spawn(|| a.run());
        sc.spawn(|| b.run());
    });
    assert_eq!(s.whatsapp.calls(), 5);
    assert_eq!(s.email.calls(), 5);
    #[derive(QueryableByName, Debug)]
    struct Gap {
        #[diesel(sql_type = diesel::sql_types::Double)]
        ms: f64,
    }
    let gaps: Vec<Gap> = sql_query(
        "SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY at))::float8 * 1000 AS ms
         FROM claim_log ORDER BY at OFFSET 1",
    )
    .load(&mut s.db.conn())
    .unwrap();
    assert_eq!(gaps.len(), 4, "one claim per WhatsApp job: {gaps:?}");
    assert!(
        gaps.iter().all(|g| g.ms >= 400.0),
        "two WhatsApp claims less than 400 ms apart: {gaps:?}"
    );
}

#[test]
fn a_gate_claim_that_began_before_the_last_one_is_not_held_by_a_zero_interval() {
    // CI saw a drain end with 112 WhatsApp jobs still queued: with a quota but no
    // pacing, a claim whose transaction began before another worker's claim saw that
    // claim's slot as "in the future" (both measured with now(), the transaction
    // start), was held as paced, and its thread, finding no email left, stopped.
    use dunning_store::queue::{Gate, JobQueue, WhatsAppLimits};
    let s = setup(2);
    let limits = WhatsAppLimits {
        min_interval: Duration::ZERO,
        monthly_quota: Some(1000),
        month: Zone::default().month_bounds(today()),
    };
    assert!(limits.gated(), "a quota sends WhatsApp through the gate");
    let ttl = Duration::from_secs(120);
    let mut early = s.db.conn();
    let mut other = s.db.conn();
    // This transaction begins first (its now() is earlier) ...
    early.batch_execute("BEGIN").unwrap();
    exec(&mut early, "SELECT 1");
    std::thread::sleep(Duration::from_millis(20));
    // ... another worker claims through the gate meanwhile ...
    let first = JobQueue::new("default", "b", ttl)
        .claim_whatsapp(&mut other, &limits)
        .unwrap();
    assert!(matches!(first, Gate::Claimed(..)), "{first:?}");
    // ... and this claim, inside the early transaction, must not see the slot taken.
    let second = JobQueue::new("default", "a", ttl)
        .claim_whatsapp(&mut early, &limits)
        .unwrap();
    early.batch_execute("COMMIT").unwrap();
    assert!(
        matches!(second, Gate::Claimed(..)),
        "held back by a zero interval: {second:?}"
    );
}

#[test]
fn monthly_quota_makes_whatsapp_wait() {
    let s = setup(3);
    // One WhatsApp message already went out this month; the quota is 2.
    exec(
        &mut s.db.conn(),
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status, sent_at)
         SELECT id, customer_id, 'T-7', 'whatsapp', DATE 'today' - 4, 'x', 'sent', now()
         FROM invoices WHERE number = 'INV-000003'",
    );
    let cfg = Config {
        monthly_quota: 2,
        concurrency: 3,
        ..Config::for_tests("default")
    };
    worker(&s, cfg).run();
    assert_eq!(s.whatsapp.calls(), 1, "the quota was overrun");
    assert_eq!(s.email.calls(), 3);
    let waiting: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "whatsapp" && r.status == "queued")
        .collect();
    assert_eq!(waiting.len(), 2);
    assert!(
        waiting.iter().all(|r| r.job_attempts == Some(0)),
        "{waiting:?}"
    );
}

#[test]
fn zero_quota_means_no_limit() {
    let s = setup(3);
    let cfg = Config {
        monthly_quota: 0,
        ..Config::for_tests("default")
    };
    worker(&s, cfg).run();
    assert_eq!(s.whatsapp.calls(), 3);
}

#[test]
fn a_job_outside_the_send_window_waits() {
    let s = setup(1);
    let local = Zone::default().local(OffsetDateTime::now_utc()).time();
    // A one-minute window two hours from now.
    let start = local + time::Duration::hours(2);
    let window = SendWindow {
        start,
        end: start + time::Duration::minutes(1),
    };
    worker(
        &s,
        Config {
            window,
            ..Config::for_tests("default")
        },
    )
    .run();
    assert_eq!(s.email.calls() + s.whatsapp.calls(), 0);
    assert!(rows(&s).iter().all(|r| r.status == "queued"));
}

#[test]
fn a_stop_request_finishes_the_job_in_hand() {
    let s = Setup {
        email: Double::slow(Channel::Email, Duration::from_millis(300)),
        ..setup(5)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    *s.email.on_send.lock().unwrap() = Some(Box::new(move || flag.store(true, Ordering::SeqCst)));
    let w = worker_with(
        &s,
        Config {
            once: false,
            ..Config::for_tests("default")
        },
        stop,
    );
    w.run();
    let all = rows(&s);
    let sent = all.iter().filter(|r| r.status == "sent").count();
    // The stop came during the first email send: that send is finished and
    // recorded, no other send starts after it (a WhatsApp job may have gone before).
    assert_eq!(s.email.calls(), 1, "{all:?}");
    assert_eq!(
        sent,
        s.email.calls() + s.whatsapp.calls(),
        "only the jobs in hand are finished: {all:?}"
    );
    let queued: Vec<_> = all.iter().filter(|r| r.status == "queued").collect();
    assert!(queued.len() >= 4, "{all:?}");
    // The rest was never claimed: no attempt counted.
    assert!(
        queued
            .iter()
            .all(|r| r.job_attempts == Some(0) && r.reserved_by.is_none()),
        "{all:?}"
    );
}

/// Not a test: the drain rate with no-op channels and 1, 2, 4 workers, printed for
/// the notes (`cargo test --release -p dunning-worker --test worker -- --ignored
/// --nocapture drain_rate`). Speed lives in figures, not in assertions.
#[test]
#[ignore]
fn drain_rate_with_noop_channels() {
    for workers in [1u32, 2, 4] {
        let s = setup(3000);
        let cfg = Config {
            concurrency: 1,
            monthly_quota: 0,
            ..Config::for_tests("default")
        };
        let ws: Vec<Worker> = (0..workers).map(|_| worker(&s, cfg.clone())).collect();
        let started = Instant::now();
        std::thread::scope(|sc| {
            for w in &ws {
                sc.spawn(|| w.run());
            }
        });
        let secs = started.elapsed().as_secs_f64();
        let done = rows(&s).iter().filter(|r| r.status == "sent").count();
        assert_eq!(done, 6000);
        println!(
            "{workers} worker(s): {done} jobs in {secs:.2} s = {:.0} jobs/s",
            done as f64 / secs
        );
    }
}

fn pause_whatsapp(s: &Setup) {
    exec(
        &mut s.db.conn(),
        "UPDATE channel_state SET paused_until = now() + interval '1 hour', pause_reason = 'test'
         WHERE channel = 'whatsapp'",
    );
}

fn device_disconnected() -> SendError {
    SendError::ChannelWide {
        kind: PauseKind::Device,
        reason: "request invalid on disconnected device".into(),
        fix: "scan the QR code at fonnte.com".into(),
    }
}

/// Marks every job as reserved by a worker that died `ago` ago.
fn abandon(c: &mut PgConnection, ago: &str, attempts: i32, filter: &str) {
    exec(
        c,
        &format!(
            "UPDATE jobs SET available_at = now() - interval '{ago}', reserved_at = now() - interval '{ago}',
                    reserved_by = 'dead:1:x', attempts = {attempts} WHERE {filter}"
        ),
    );
}

#[test]
fn the_rescuer_makes_abandoned_jobs_ready_keeping_their_attempt() {
    use dunning_store::queue::JobQueue;
    let s = setup(3);
    let mut c = s.db.conn();
    abandon(&mut c, "10 minutes", 1, "channel = 'email'");
    let queue = JobQueue::new("default", "w", Duration::from_secs(120));
    assert_eq!(queue.rescue_abandoned(&mut c).unwrap(), 3);
    assert_eq!(queue.rescue_abandoned(&mut c).unwrap(), 0, "rescued twice");
    let email: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert!(
        email
            .iter()
            .all(|r| r.reserved_by.is_none() && r.job_attempts == Some(1)),
        "{email:?}"
    );
    // A reservation younger than --retry-after is left alone.
    abandon(&mut c, "10 seconds", 1, "channel = 'whatsapp'");
    assert_eq!(queue.rescue_abandoned(&mut c).unwrap(), 0);
}

#[test]
fn a_rescued_job_goes_to_the_customers_current_contact_and_the_ledger_says_so() {
    let s = setup(1);
    let mut c = s.db.conn();
    pause_whatsapp(&s);
    abandon(&mut c, "10 minutes", 1, "channel = 'email'");
    // The operator corrected the address after the reminder was scheduled.
    exec(
        &mut c,
        "UPDATE customers SET email = 'baru@example.com' WHERE id = 1",
    );
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.email.calls(), 1);
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Nullable<Text>)]
        recipient: Option<String>,
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    let r: R = sql_query(
        "SELECT recipient, attempts FROM notifications WHERE channel = 'email' AND status = 'sent'",
    )
    .get_result(&mut c)
    .unwrap();
    assert_eq!(r.recipient.as_deref(), Some("baru@example.com"));
    assert_eq!(r.attempts, 2);
}

#[test]
fn the_ledger_records_the_number_a_retry_was_sent_to() {
    let s = setup(1);
    let mut c = s.db.conn();
    s.whatsapp.answer(transient());
    let first = Config {
        backoff: vec![Duration::ZERO],
        tries: 3,
        max_jobs: Some(2),
        ..Config::for_tests("default")
    };
    worker(&s, first).run();
    // The first attempt failed; the operator fixes the number before the retry.
    exec(
        &mut c,
        "UPDATE customers SET phone = '081299990000' WHERE id = 1",
    );
    worker(&s, Config::for_tests("default")).run();
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Nullable<Text>)]
        recipient: Option<String>,
    }
    let r: R = sql_query(
        "SELECT recipient FROM notifications WHERE channel = 'whatsapp' AND status = 'sent'",
    )
    .get_result(&mut c)
    .unwrap();
    assert_eq!(s.whatsapp.calls(), 2);
    assert_eq!(r.recipient.as_deref(), Some("081299990000"));
}

#[test]
fn a_job_that_kept_its_worker_from_recording_fails_when_rescued_past_its_tries() {
    let s = setup(1);
    abandon(&mut s.db.conn(), "10 minutes", 3, "true");
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.email.calls() + s.whatsapp.calls(), 0);
    assert!(rows(&s).iter().all(|r| r.status == "failed"));
}

#[test]
fn two_reminders_for_one_invoice_and_channel_never_both_go_out_today() {
    let s = setup(1);
    pause_whatsapp(&s);
    // Yesterday's T-7 email is still queued (e.g. waited for a retry) next to
    // today's T-3: only one may go out today.
    yesterdays_email_still_queued(&s);
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(
        s.email.calls(),
        1,
        "two reminders on one channel in one day"
    );
    let email: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert_eq!(email.len(), 2);
    assert_eq!(email.iter().filter(|r| r.status == "sent").count(), 1);
    let skipped: Vec<&Row> = email.iter().filter(|r| r.status == "skipped").collect();
    assert_eq!(
        skipped[0].error.as_deref(),
        Some("already reminded on this channel today"),
        "{email:?}"
    );
}

fn yesterdays_email_still_queued(s: &Setup) {
    let mut c = s.db.conn();
    exec(
        &mut c,
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status, due_date)
         SELECT id, customer_id, 'T-7', 'email', DATE 'today' - 1, 'c1@example.com', 'queued', due_date
         FROM invoices",
    );
    exec(
        &mut c,
        "INSERT INTO jobs (queue, notification_id, channel)
         SELECT 'default', id, 'email' FROM notifications WHERE stage = 'T-7'",
    );
}

#[test]
fn a_channel_wide_failure_pauses_the_channel_and_the_rest_waits_untouched() {
    let s = setup(4);
    s.whatsapp.answer(Err(SendError::ChannelWide {
        kind: PauseKind::Token,
        reason: "token invalid".into(),
        fix: "copy the device token".into(),
    }));
    // One thread: with no pacing and no quota, a second thread's WhatsApp send that
    // was already past its re-check when the first failed still goes out (at most
    // one per thread); what this test pins is that nothing starts after the pause.
    let cfg = Config {
        monthly_quota: 0,
        concurrency: 1,
        ..Config::for_tests("default")
    };
    worker(&s, cfg).run();
    assert_eq!(s.whatsapp.calls(), 1, "kept sending on a paused channel");
    assert_eq!(s.email.calls(), 4);
    let wa: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "whatsapp")
        .collect();
    assert!(
        wa.iter()
            .all(|r| r.status == "queued" && r.job_attempts == Some(0) && r.reserved_by.is_none()),
        "{wa:?}"
    );
}

#[test]
fn billing_never_waits_on_a_send_in_flight() {
    let s = Setup {
        email: Double::slow(Channel::Email, Duration::from_millis(1500)),
        ..setup(2)
    };
    pause_whatsapp(&s);
    // Set when the first send starts (the double counts a call when it ends).
    let in_flight = Arc::new(AtomicBool::new(false));
    let flag = in_flight.clone();
    *s.email.on_send.lock().unwrap() = Some(Box::new(move || flag.store(true, Ordering::SeqCst)));
    let w = worker(&s, Config::for_tests("default"));
    let waited = std::thread::scope(|scope| {
        let drain = scope.spawn(|| w.run());
        while !in_flight.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // A payment of the invoice being sent to, and of the next one, while the
        // first send is in flight.
        let started = Instant::now();
        exec(
            &mut s.db.conn(),
            "UPDATE invoices SET status = 'paid', paid_at = now(), updated_at = now()",
        );
        let waited = started.elapsed();
        drain.join().unwrap();
        waited
    });
    assert!(
        waited < Duration::from_millis(1000),
        "the payment waited {waited:?} for the send"
    );
    // The second invoice's reminder was re-checked after the payment: not sent.
    assert_eq!(s.email.calls(), 1);
    let skipped: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "email" && r.status == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].error.as_deref(), Some("invoice is paid"));
}

#[test]
fn slow_sends_are_not_taken_as_abandoned_by_another_worker() {
    let s = Setup {
        email: Double::slow(Channel::Email, Duration::from_millis(700)),
        ..setup(6)
    };
    pause_whatsapp(&s);
    let cfg = Config {
        retry_after: Duration::from_secs(2),
        once: false,
        ..Config::for_tests("default")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let a = worker_with(&s, cfg.clone(), stop.clone());
    let b = worker_with(&s, cfg, stop.clone());
    std::thread::scope(|scope| {
        scope.spawn(|| a.run());
        std::thread::sleep(Duration::from_millis(300));
        scope.spawn(|| b.run());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && rows(&s).iter().filter(|r| r.status == "sent").count() < 6
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let a late duplicate show itself before stopping.
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
    });
    let refs = s.email.references();
    assert_eq!(refs.len(), 6, "a message was sent twice: {refs:?}");
    let email: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert!(
        email.iter().all(|r| r.status == "sent" && r.attempts == 1),
        "{email:?}"
    );
}

#[test]
fn two_workers_never_both_remind_one_invoice_on_one_channel() {
    let s = Setup {
        email: Double::slow(Channel::Email, Duration::from_millis(500)),
        ..setup(1)
    };
    pause_whatsapp(&s);
    // Yesterday's T-7 email still queued next to today's T-3: each worker takes one,
    // both re-check at the same moment, neither is sent yet.
    yesterdays_email_still_queued(&s);
    let cfg = Config {
        once: false,
        ..Config::for_tests("default")
    };
    let stop = Arc::new(AtomicBool::new(false));
    let a = worker_with(&s, cfg.clone(), stop.clone());
    let b = worker_with(&s, cfg, stop.clone());
    std::thread::scope(|scope| {
        scope.spawn(|| a.run());
        scope.spawn(|| b.run());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && rows(&s)
                .iter()
                .any(|r| r.channel == "email" && r.status == "queued")
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        s.email.calls(),
        1,
        "two reminders on one channel in one day"
    );
    let email: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert_eq!(email.iter().filter(|r| r.status == "sent").count(), 1);
    let skipped: Vec<&Row> = email.iter().filter(|r| r.status == "skipped").collect();
    assert_eq!(
        skipped.first().and_then(|r| r.error.as_deref()),
        Some("already reminded on this channel today"),
        "{email:?}"
    );
}

/// Issue 14: skips take no WhatsApp slot. Four paid invoices come first in line,
/// one unpaid last; with a 3 s interval, four skips holding a slot each would hold
/// the real reminder back 12 s.
#[test]
fn skipped_whatsapp_jobs_take_no_pacing_slot_and_no_quota() {
    let s = setup(5);
    exec(
        &mut s.db.conn(),
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number <> 'INV-000005'",
    );
    let cfg = Config {
        whatsapp_interval: Duration::from_secs(3),
        monthly_quota: 1,
        ..Config::for_tests("default")
    };
    let started = Instant::now();
    worker(&s, cfg).run();
    let took = started.elapsed();
    assert_eq!(s.whatsapp.calls(), 1, "{:?}", rows(&s));
    assert_eq!(s.whatsapp.references(), ["INV-000005/T-3"]);
    assert!(
        took < Duration::from_secs(3),
        "the skipped jobs held the real reminder back: {took:?}"
    );
    let wa: Vec<Row> = rows(&s)
        .into_iter()
        .filter(|r| r.channel == "whatsapp")
        .collect();
    assert_eq!(wa.iter().filter(|r| r.status == "skipped").count(), 4);
}

/// Issue 14: `resume` releases at once the jobs the pause held back.
#[test]
fn resume_releases_the_jobs_held_by_the_pause_at_once() {
    let s = setup(1);
    s.whatsapp.answer(Err(device_disconnected()));
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(s.whatsapp.calls(), 1);
    let wa_queued = |s: &Setup| {
        rows(s)
            .into_iter()
            .filter(|r| r.channel == "whatsapp" && r.status == "queued")
            .count()
    };
    assert_eq!(wa_queued(&s), 1, "the job waits for the pause");
    // The operator reconnected the device and resumes the channel.
    dunning_store::queue::resume_channel(&mut s.db.conn(), Channel::WhatsApp).unwrap();
    worker(&s, Config::for_tests("default")).run();
    assert_eq!(
        s.whatsapp.calls(),
        2,
        "the held job did not go out after resume"
    );
    assert_eq!(wa_queued(&s), 0, "{:?}", rows(&s));
}

/// A pause or an opt-out that comes after the reminder was queued (a customer's
/// "STOP" reply, `dunning-schedule pause invoice …`) stops it at the re-check.
#[test]
fn a_pause_or_opt_out_set_after_queueing_stops_the_reminder() {
    let s = setup(3);
    let mut c = s.db.conn();
    exec(
        &mut c,
        "INSERT INTO opt_outs (customer_id, channel, reason, created_by)
         VALUES (1, 'whatsapp', 'STOP', 'test')",
    );
    exec(
        &mut c,
        "INSERT INTO pauses (invoice_id, starts_on, until, reason, created_by)
         VALUES (2, DATE '2000-01-01', DATE '2999-12-31', 'janji bayar', 'test')",
    );
    worker(&s, Config::for_tests("default")).run();
    let got: Vec<(String, String, String, Option<String>)> = rows(&s)
        .into_iter()
        .map(|r| (r.number, r.channel, r.status, r.error))
        .collect();
    let find = |number: &str, channel: &str| {
        got.iter()
            .find(|r| r.0 == number && r.1 == channel)
            .unwrap_or_else(|| panic!("no {number} {channel} row: {got:?}"))
            .clone()
    };
    // Opted out of WhatsApp: that reminder is skipped, the email still goes out.
    let wa = find("INV-000001", "whatsapp");
    assert_eq!(wa.2, "skipped", "{got:?}");
    assert!(
        wa.3.as_deref().unwrap_or("").contains("opted out"),
        "{got:?}"
    );
    assert_eq!(find("INV-000001", "email").2, "sent", "{got:?}");
    // The paused invoice gets nothing on either channel; the third invoice both.
    for channel in ["email", "whatsapp"] {
        let p = find("INV-000002", channel);
        assert_eq!(p.2, "skipped", "{got:?}");
        assert!(
            p.3.as_deref().unwrap_or("").contains("paused until"),
            "{got:?}"
        );
        assert_eq!(find("INV-000003", channel).2, "sent", "{got:?}");
    }
    assert_eq!(s.email.calls(), 2);
    assert_eq!(s.whatsapp.calls(), 1);
}
