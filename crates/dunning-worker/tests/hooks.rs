//! Escalation hooks end to end against a real PostgreSQL: the scheduler's statement
//! queues stage runs, triggers record payments and opt-outs, real workers run fake
//! command scripts (/bin/sh) and POST to a local HTTP receiver on loopback, whose
//! signatures are checked by an independent HMAC implementation (python3's hmac).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use dunning_channels::{Delivered, OutgoingMessage, SendError, Sender};
use dunning_core::config::Secret;
use dunning_core::hooks::{HookSettings, Hooks};
use dunning_core::message::Templates;
use dunning_core::{Channel, Zone};
use dunning_store::hooks::{StagePlan, queue_stage_hooks};
use dunning_test_db::TestDatabase;
use dunning_worker::{Config, Senders, Worker};
use time::OffsetDateTime;

/// Reminders are not what these tests are about: a channel that accepts anything.
struct Accept(Channel);

impl Sender for Accept {
    fn channel(&self) -> Channel {
        self.0
    }
    fn send(&self, _: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        Ok(Delivered {
            provider_message_id: None,
        })
    }
}

const SECRET: &str = "hook-secret-4f9a2c";

fn today() -> time::Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `n` customers with one unpaid invoice each, due 7 days ago (stage T+7 today), and
/// one more invoice due today (no stage hook today).
fn database(n: i64) -> TestDatabase {
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
             SELECT 'INV-' || lpad(g::text, 6, '0'), g, 150000 + g, DATE '{d}' - 7
             FROM generate_series(1, {n}) g",
            d = today()
        ),
    );
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-TODAY', 1, 99000, DATE '{}')",
            today()
        ),
    );
    db
}

/// A folder with the fake hook scripts.
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            std::fs::write(dir.path().join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
        };
        // Records stdin and the variables, prints what it did.
        write(
            "record.sh",
            r#"D="$1"; cat > "$D/in-$DUNNING_NOTIFICATION_ID-$DUNNING_ATTEMPT.json"
echo "$DUNNING_EVENT $DUNNING_ACTION $DUNNING_INVOICE_NUMBER $DUNNING_CUSTOMER_ID $DUNNING_CHANNEL $DUNNING_RESTORES" >> "$D/log"
echo "ok $DUNNING_ACTION for $DUNNING_CUSTOMER_PHONE key=$2""#,
        );
        // Fails on its first run, succeeds on the next.
        write(
            "flaky.sh",
            r#"D="$1"; echo "$DUNNING_EVENT attempt $DUNNING_ATTEMPT" >> "$D/log"
if [ ! -e "$D/flag" ]; then touch "$D/flag"; echo "router busy" >&2; exit 3; fi
echo done"#,
        );
        // Hangs, with a child of its own holding the output open.
        write(
            "hang.sh",
            r#"D="$1"; sleep 300 & echo $! > "$D/child"; echo started; wait"#,
        );
        Scripts { dir }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    /// `command = [...]` running script `name` with the folder as first argument.
    fn command(&self, name: &str) -> String {
        format!(
            "command = [\"/bin/sh\", \"{}\", \"{}\", \"{SECRET}\"]",
            self.path(name),
            self.dir()
        )
    }
}

fn settings(timeout: Duration) -> HookSettings {
    HookSettings {
        file: PathBuf::from("hooks.toml"),
        explicit: true,
        timeout,
        secret: Some(Secret::new(SECRET)),
    }
}

fn worker(db: &TestDatabase, hooks: &Hooks, hs: &HookSettings, tries: u32) -> Worker {
    let mut cfg = Config::for_tests("default");
    cfg.tries = tries;
    Worker::new(
        db.pool(4),
        Senders {
            email: Arc::new(Accept(Channel::Email)),
            whatsapp: Arc::new(Accept(Channel::WhatsApp)),
        },
        Templates::builtin("Wikarta Provider"),
        cfg,
        Arc::new(AtomicBool::new(false)),
    )
    .with_hooks(hooks.clone(), hs)
}

fn stage_plan(hooks: &Hooks) -> Vec<StagePlan> {
    hooks
        .stages
        .iter()
        .map(|h| StagePlan {
            stage: h.stage.to_string(),
            offset_days: h.stage.offset_days(),
            action: h.action.clone(),
        })
        .collect()
}

/// What the scheduler does for the hooks of a run on `today()`.
fn schedule(db: &TestDatabase, hooks: &Hooks) -> i64 {
    schedule_on(db, hooks, today(), today())
}

/// A run on `run_date` catching up from `first_day`.
fn schedule_on(
    db: &TestDatabase,
    hooks: &Hooks,
    first_day: time::Date,
    run_date: time::Date,
) -> i64 {
    queue_stage_hooks(
        &mut db.conn(),
        &stage_plan(hooks),
        first_day,
        run_date,
        "default",
        false,
    )
    .unwrap()
    .iter()
    .map(|q| q.runs)
    .sum()
}

#[derive(QueryableByName, Debug, Clone)]
struct Ledger {
    #[diesel(sql_type = Nullable<Text>)]
    number: Option<String>,
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    body: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = BigInt)]
    jobs: i64,
}

fn ledger(db: &TestDatabase) -> Vec<Ledger> {
    sql_query(
        "SELECT i.number, n.stage, n.status, n.attempts, n.body, n.error,
                (SELECT count(*) FROM jobs j WHERE j.notification_id = n.id) AS jobs
         FROM notifications n LEFT JOIN invoices i ON i.id = n.invoice_id
         WHERE n.channel = 'hook' ORDER BY n.id",
    )
    .load(&mut db.conn())
    .unwrap()
}

#[test]
fn a_stage_hook_runs_exactly_once_per_invoice_across_reruns_and_two_workers() {
    let db = database(3);
    let scripts = Scripts::new();
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = {{ action = \"isolir\", message = false }}\n[actions.isolir]\n{}\n",
            scripts.command("record.sh")
        ),
    )
    .unwrap();
    assert_eq!(schedule(&db, &hooks), 3, "first run queues one per invoice");
    assert_eq!(schedule(&db, &hooks), 0, "a rerun queues nothing");
    let tomorrow = today().next_day().unwrap();
    assert_eq!(
        schedule_on(&db, &hooks, today(), tomorrow),
        0,
        "tomorrow's run catching up today queues nothing"
    );
    let hs = settings(Duration::from_secs(10));
    let (a, b) = (worker(&db, &hooks, &hs, 3), worker(&db, &hooks, &hs, 3));
    std::thread::scope(|s| {
        s.spawn(|| a.run());
        s.spawn(|| b.run());
    });
    assert_eq!(
        schedule(&db, &hooks),
        0,
        "a run after the hooks ran queues nothing"
    );
    let mut log = scripts.log();
    log.sort();
    assert_eq!(
        log,
        vec![
            "T+7 isolir INV-000001 1  ",
            "T+7 isolir INV-000002 2  ",
            "T+7 isolir INV-000003 3  ",
        ]
    );
    let rows = ledger(&db);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(
            (r.status.as_str(), r.attempts, r.jobs),
            ("sent", 1, 0),
            "{r:?}"
        );
        let body = r.body.as_deref().unwrap();
        // The output is kept, with the phone number and the secret masked.
        assert!(body.starts_with("ok isolir for 0812****000"), "{body}");
        assert!(
            body.ends_with("key=***") && !body.contains(SECRET),
            "{body}"
        );
    }
    // The JSON on stdin: the invoice and the customer.
    let first = std::fs::read_dir(scripts.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("in-"))
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.path()).unwrap()).unwrap();
    assert_eq!(v["event"], "T+7");
    assert_eq!(v["action"], "isolir");
    assert!(
        v["invoice"]["number"]
            .as_str()
            .unwrap()
            .starts_with("INV-00000")
    );
    assert_eq!(v["invoice"]["status"], "unpaid");
    assert!(
        v["customer"]["name"]
            .as_str()
            .unwrap()
            .starts_with("Customer ")
    );
    assert_eq!(
        a.stats.sent.load(Ordering::Relaxed) + b.stats.sent.load(Ordering::Relaxed),
        3
    );
}

#[test]
fn a_failing_command_is_retried_then_succeeds() {
    let db = database(1);
    let scripts = Scripts::new();
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = \"isolir\"\n[actions.isolir]\n{}\n",
            scripts.command("flaky.sh")
        ),
    )
    .unwrap();
    assert_eq!(schedule(&db, &hooks), 1);
    let w = worker(&db, &hooks, &settings(Duration::from_secs(10)), 3);
    w.run();
    assert_eq!(scripts.log(), vec!["T+7 attempt 1", "T+7 attempt 2"]);
    let rows = ledger(&db);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("sent", 2));
    assert_eq!(rows[0].body.as_deref(), Some("done"));
    assert_eq!(w.stats.retried.load(Ordering::Relaxed), 1);
}

#[test]
fn a_hanging_command_is_killed_with_its_children_after_the_timeout() {
    let db = database(1);
    let scripts = Scripts::new();
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = \"isolir\"\n[actions.isolir]\n{}\n",
            scripts.command("hang.sh")
        ),
    )
    .unwrap();
    assert_eq!(schedule(&db, &hooks), 1);
    let started = Instant::now();
    worker(&db, &hooks, &settings(Duration::from_secs(1)), 1).run();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let rows = ledger(&db);
    assert_eq!(rows[0].status, "failed", "{:?}", rows[0]);
    let error = rows[0].error.as_deref().unwrap();
    assert!(
        error.contains("killed after DUNNING_HOOK_TIMEOUT=1s") && error.contains("started"),
        "{error}"
    );
    let child = std::fs::read_to_string(scripts.dir.path().join("child")).unwrap();
    let proc = PathBuf::from(format!("/proc/{}", child.trim()));
    let gone = |p: &Path| {
        std::fs::read_to_string(p.join("stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(&proc) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gone(&proc),
        "the hook's child process {} still runs",
        child.trim()
    );
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: Vec<u8>,
}

/// A local HTTP receiver that answers the scripted statuses in turn (then 200).
fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/dunning-hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut signature) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if lower.starts_with("x-dunning-signature:") {
                    signature = line.split_once(':').unwrap().1.trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.lock().unwrap().push(Received { signature, body });
            let status = statuses.next().unwrap_or(200);
            let text = format!("answer {status}");
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, got)
}

/// The signature of `body` computed by python3's hmac module.
fn python_signature(body: &[u8]) -> String {
    let mut child = std::process::Command::new(dunning_test_smtp::python())
        .args([
            "-c",
            "import hashlib, hmac, sys; print('sha256=' + hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
            SECRET,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to check signatures: run scripts/test-peers");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_post_is_signed_retried_on_5xx_and_failed_at_once_on_4xx() {
    let db = database(2);
    // Invoice 1's POST: 503 then 200. Invoice 2's: 404.
    let (url, got) = receiver(vec![503, 404, 200]);
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!("\"T+7\" = \"billing\"\n[actions.billing]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    assert_eq!(schedule(&db, &hooks), 2);
    // One worker, one job at a time, in ledger order.
    worker(&db, &hooks, &settings(Duration::from_secs(10)), 3).run();
    let rows = ledger(&db);
    let one = rows
        .iter()
        .find(|r| r.number.as_deref() == Some("INV-000001"))
        .unwrap();
    let two = rows
        .iter()
        .find(|r| r.number.as_deref() == Some("INV-000002"))
        .unwrap();
    assert_eq!((one.status.as_str(), one.attempts), ("sent", 2), "{one:?}");
    assert_eq!(one.body.as_deref(), Some("answer 200"));
    assert_eq!(
        (two.status.as_str(), two.attempts),
        ("failed", 1),
        "{two:?}"
    );
    assert!(
        two.error.as_deref().unwrap().contains("HTTP 404"),
        "{two:?}"
    );
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "503, 404, then the retry's 200");
    for r in &got {
        assert_eq!(
            r.signature,
            python_signature(&r.body),
            "signature of {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["event"], "T+7");
    }
}

#[test]
fn paid_after_isolir_restores_once_and_runs_the_paid_hook_once() {
    let db = database(2);
    let scripts = Scripts::new();
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = {{ action = \"isolir\", message = false }}
paid = \"lunas\"
optout = \"lunas\"
[actions.isolir]
{c}
restore = \"buka\"
[actions.buka]
{c}
[actions.lunas]
{c}
",
            c = scripts.command("record.sh")
        ),
    )
    .unwrap();
    let hs = settings(Duration::from_secs(10));
    assert_eq!(schedule(&db, &hooks), 2);
    worker(&db, &hooks, &hs, 3).run();
    let mut c = db.conn();
    // Invoice 1 paid, then unpaid and paid again (a replayed callback); invoice 3
    // (due today, never isolated) paid.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number IN ('INV-000001', 'INV-TODAY')",
    );
    exec(
        &mut c,
        "UPDATE invoices SET status = 'unpaid' WHERE number = 'INV-000001'",
    );
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid' WHERE number = 'INV-000001'",
    );
    exec(
        &mut c,
        "INSERT INTO opt_outs (customer_id, channel, reason, created_by) VALUES (2, 'whatsapp', 'STOP', 'test')",
    );
    worker(&db, &hooks, &hs, 3).run();
    worker(&db, &hooks, &hs, 3).run();
    // Paid again on another day (unpaid → paid): nothing runs a second time.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'unpaid' WHERE number = 'INV-000001'",
    );
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid' WHERE number = 'INV-000001'",
    );
    let plan = dunning_store::hooks::EventPlan {
        paid: Some("lunas".into()),
        optout: None,
        restores: vec![("T+7".into(), "buka".into())],
    };
    let tomorrow = today().next_day().unwrap();
    assert_eq!(
        dunning_store::hooks::sweep(&mut c, &plan, "default", tomorrow).unwrap(),
        0,
        "a second payment of the same invoice queues no second paid or restore run"
    );
    let mut log = scripts.log();
    log.sort();
    assert_eq!(
        log,
        vec![
            "T+7 isolir INV-000001 1  ",
            "T+7 isolir INV-000002 2  ",
            "optout lunas  2 whatsapp ",
            "paid lunas INV-000001 1  ",
            "paid lunas INV-TODAY 1  ",
            "restore buka INV-000001 1  T+7",
        ]
    );
    let stages: Vec<(Option<String>, String, String)> = ledger(&db)
        .into_iter()
        .map(|r| (r.number, r.stage, r.status))
        .collect();
    assert!(
        stages.contains(&(
            Some("INV-000001".into()),
            "restore:T+7".into(),
            "sent".into()
        )),
        "{stages:?}"
    );
    assert!(
        stages.contains(&(None, "optout:whatsapp".into(), "sent".into())),
        "{stages:?}"
    );
}

#[test]
fn a_customer_is_restored_once_when_the_last_isolated_invoice_is_paid() {
    // Customer 1 and customer 2 each have two invoices 7 days overdue.
    let db = database(2);
    let scripts = Scripts::new();
    let mut c = db.conn();
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1B', 1, 120000, DATE '{d}' - 7), ('INV-2B', 2, 130000, DATE '{d}' - 7)",
            d = today()
        ),
    );
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = {{ action = \"isolir\", message = false }}
[actions.isolir]
{c}
restore = \"buka\"
[actions.buka]
{c}
",
            c = scripts.command("record.sh")
        ),
    )
    .unwrap();
    let hs = settings(Duration::from_secs(10));
    let drain = || {
        worker(&db, &hooks, &hs, 3).run();
        worker(&db, &hooks, &hs, 3).run();
    };
    let restores = |log: &[String]| -> Vec<String> {
        log.iter()
            .filter(|l| l.starts_with("restore "))
            .cloned()
            .collect()
    };
    assert_eq!(
        schedule(&db, &hooks),
        4,
        "every overdue invoice is isolated"
    );
    drain();

    // Paying one of customer 1's two isolated invoices restores nothing.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-000001'",
    );
    drain();
    assert_eq!(restores(&scripts.log()), Vec::<String>::new());
    // Paying the second one restores once.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-1B'",
    );
    drain();
    let log = restores(&scripts.log());
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with("restore buka INV-") && log[0].ends_with(" 1  T+7"),
        "{log:?}"
    );

    // Customer 2 pays both at once (one sweep takes both events): one restore.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number IN ('INV-000002', 'INV-2B')",
    );
    drain();
    let log = restores(&scripts.log());
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].ends_with(" 2  T+7"), "{log:?}");

    // A new episode: customer 1 falls behind again, is isolated and pays: restored again.
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1C', 1, 140000, DATE '{}' - 7)",
            today()
        ),
    );
    assert_eq!(schedule(&db, &hooks), 1);
    drain();
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-1C'",
    );
    drain();
    let log = restores(&scripts.log());
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2], "restore buka INV-1C 1  T+7");
    let rows: Vec<(Option<String>, String)> = ledger(&db)
        .into_iter()
        .filter(|r| r.stage == "restore:T+7")
        .map(|r| (r.number, r.status))
        .collect();
    assert_eq!(rows.len(), 3, "one ledger row per episode: {rows:?}");
    assert!(rows.iter().all(|(_, s)| s == "sent"), "{rows:?}");
}

#[test]
fn a_restore_queued_before_another_invoice_was_isolated_is_skipped() {
    let db = database(1);
    let scripts = Scripts::new();
    let hooks = Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = \"isolir\"
[actions.isolir]
{c}
restore = \"buka\"
[actions.buka]
{c}
",
            c = scripts.command("record.sh")
        ),
    )
    .unwrap();
    assert_eq!(schedule(&db, &hooks), 1);
    let hs = settings(Duration::from_secs(10));
    worker(&db, &hooks, &hs, 3).run();
    let mut c = db.conn();
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-000001'",
    );
    let plan = dunning_store::hooks::EventPlan {
        paid: None,
        optout: None,
        restores: vec![("T+7".into(), "buka".into())],
    };
    assert_eq!(
        dunning_store::hooks::sweep(&mut c, &plan, "default", today()).unwrap(),
        1
    );
    // Before the restore runs, another overdue invoice of the customer is isolated.
    exec(
        &mut c,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1B', 1, 120000, DATE '{}' - 7)",
            today()
        ),
    );
    assert_eq!(schedule(&db, &hooks), 1);
    worker(&db, &hooks, &hs, 3).run();
    worker(&db, &hooks, &hs, 3).run();
    let rows = ledger(&db);
    let restore = rows.iter().find(|r| r.stage == "restore:T+7").unwrap();
    assert_eq!(restore.status, "skipped", "{restore:?}");
    assert!(
        restore
            .error
            .as_deref()
            .unwrap()
            .contains("invoice INV-1B is unpaid and its T+7 action ran"),
        "{restore:?}"
    );
    // When INV-1B is paid, the customer is restored.
    exec(
        &mut c,
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-1B'",
    );
    worker(&db, &hooks, &hs, 3).run();
    worker(&db, &hooks, &hs, 3).run();
    let log: Vec<String> = scripts
        .log()
        .into_iter()
        .filter(|l| l.starts_with("restore "))
        .collect();
    assert_eq!(log, ["restore buka INV-1B 1  T+7"]);
}
