//! The scheduler as cron runs it: the real binary against a real PostgreSQL.

use std::process::{Command, Output};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use dunning_test_db::TestDatabase;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dunning-schedule"));
    // A clean environment: no developer .env or variables leak into the test.
    let dir = std::env::temp_dir();
    cmd.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DUNNING_TIMEZONE", "Asia/Jakarta");
    cmd
}

/// `dunning-schedule args…`; a `--date` gets `--force`: these tests replay the seed's
/// November 2025, further from today than `--date` accepts without it.
fn schedule(db: &TestDatabase, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", db.url()).args(args);
    if args.contains(&"--date") {
        cmd.arg("--force");
    }
    cmd.output().expect("run dunning-schedule")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ledger {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = Text)]
    channel: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    run_date: String,
}

fn ledger(conn: &mut PgConnection) -> Vec<Ledger> {
    sql_query(
        "SELECT i.number, n.stage, n.channel, n.status, n.run_date::text AS run_date
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         ORDER BY i.number, n.run_date, n.channel",
    )
    .load(conn)
    .unwrap()
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    sql_query(sql).get_result::<N>(conn).unwrap().n
}

/// Customers 1..: John (both contacts), Jane (both), Siti (email only), Budi (phone only), Nobody (none).
fn customers(conn: &mut PgConnection) {
    exec(
        conn,
        "INSERT INTO customers (id, name, email, phone) VALUES
           (1, 'John Doe', 'john@example.com', '081234567890'),
           (2, 'Jane Smith', 'jane@example.com', '081311112222'),
           (3, 'Siti Rahayu', 'siti@example.com', NULL),
           (4, 'Budi Santoso', NULL, '085711112222'),
           (5, 'Nobody', NULL, '  ')",
    );
}

fn invoice(conn: &mut PgConnection, number: &str, customer: i64, due: &str, status: &str) {
    exec(
        conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date, status)
             VALUES ('{number}', {customer}, 150000, '{due}', '{status}')"
        ),
    );
}

#[test]
fn seed_example_reproduces() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-20251115-123456", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-20251115-789012", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-20251110-345678", 2, "2025-11-12", "unpaid");
    // INV-20251115-123456 already got its T-3 reminder (an earlier run today).
    exec(
        &mut c,
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status, sent_at)
         SELECT id, customer_id, 'T-3', ch, '2025-11-15', 'x', 'sent', now()
         FROM invoices, (VALUES ('email'), ('whatsapp')) v(ch) WHERE number = 'INV-20251115-123456'",
    );
    let out = ok(&schedule(&db, &["--date", "2025-11-15", "--emoji"]));
    let expected = [
        "🔄 Starting dunning scheduler...",
        "📅 Stage T-7 (2025-11-22): Found 0 invoices",
        "📅 Stage T-3 (2025-11-18): Found 2 invoices",
        "   ⏭️  Skipped INV-20251115-123456 (already sent)",
        "   ✅ Dispatched INV-20251115-789012 to John Doe (email + whatsapp)",
        "📅 Stage T-1 (2025-11-16): Found 0 invoices",
        "📅 Stage T+3 (2025-11-12): Found 1 invoices",
        "   ✅ Dispatched INV-20251110-345678 to Jane Smith (email + whatsapp)",
        "",
        "✅ Dunning scheduler completed:",
        "   📤 Dispatched: 2",
        "   ⏭️  Skipped: 1",
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..expected.len()], &expected, "full output:\n{out}");
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM jobs"), 4);
}

#[test]
fn plain_markers_when_not_a_terminal() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    let out = ok(&schedule(&db, &["--date", "2025-11-15"]));
    assert!(out.is_ascii(), "cron logs get ASCII only:\n{out}");
    assert!(out.contains("[ok] Dispatched INV-1 to John Doe"), "{out}");
}

#[test]
fn only_unpaid_invoices_with_contacts_are_queued_per_channel() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-PAID", 1, "2025-11-18", "paid");
    invoice(&mut c, "INV-VOID", 1, "2025-11-18", "void");
    invoice(&mut c, "INV-EMAIL", 3, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-WA", 4, "2025-11-16", "unpaid");
    invoice(&mut c, "INV-NONE", 5, "2025-11-22", "unpaid");
    invoice(&mut c, "INV-LATER", 1, "2025-11-30", "unpaid");
    let out = ok(&schedule(&db, &["--date", "2025-11-15"]));
    assert!(
        out.contains("Skipped INV-NONE (Nobody has no email address and no phone number)"),
        "{out}"
    );
    let rows = ledger(&mut c);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.number.as_str(), r.channel.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("INV-EMAIL", "email", "queued"),
            ("INV-NONE", "email", "skipped"),
            ("INV-NONE", "whatsapp", "skipped"),
            ("INV-WA", "whatsapp", "queued"),
        ]
    );
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM jobs"), 2);
}

#[test]
fn rerun_dispatches_nothing() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-2", 2, "2025-11-12", "unpaid");
    ok(&schedule(&db, &["--date", "2025-11-15"]));
    let before = ledger(&mut c);
    let out = ok(&schedule(&db, &["--date", "2025-11-15"]));
    assert!(out.contains("Dispatched: 0"), "{out}");
    assert!(out.contains("Skipped INV-1 (already queued)"), "{out}");
    assert_eq!(ledger(&mut c), before);
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM jobs"), 4);
}

#[test]
fn eight_concurrent_schedulers_create_each_job_once() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    exec(
        &mut c,
        "INSERT INTO customers (name, email, phone)
         SELECT 'C' || g, 'c' || g || '@example.com', '0812' || lpad(g::text, 8, '0')
         FROM generate_series(1, 300) g",
    );
    exec(
        &mut c,
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         SELECT 'INV-' || g, g, 1000, DATE '2025-11-15' + (g % 4) * 2 - 3
         FROM generate_series(1, 300) g",
    );
    let children: Vec<_> = (0..8)
        .map(|_| {
            bin()
                .env("DATABASE_URL", db.url())
                .args(["--date", "2025-11-15", "--json", "--force"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut dispatched = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let json: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        dispatched += json["totals"]["jobs"]["email"].as_i64().unwrap()
            + json["totals"]["jobs"]["whatsapp"].as_i64().unwrap();
    }
    let jobs = count(&mut c, "SELECT count(*) AS n FROM jobs");
    let distinct = count(
        &mut c,
        "SELECT count(DISTINCT (invoice_id, stage, channel)) AS n FROM notifications",
    );
    let rows = count(&mut c, "SELECT count(*) AS n FROM notifications");
    assert!(jobs > 0);
    assert_eq!(rows, distinct, "a reminder was created twice");
    assert_eq!(jobs, rows);
    assert_eq!(
        dispatched, jobs,
        "the runs' reports add up to the jobs created"
    );
}

#[test]
fn dry_run_changes_nothing_and_reports_quota() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-2", 2, "2025-11-18", "unpaid");
    let snapshot = |c: &mut PgConnection| {
        [
            "notifications",
            "jobs",
            "schedule_runs",
            "invoices",
            "customers",
            "channel_state",
        ]
        .map(|t| {
            count(
                c,
                &format!("SELECT count(*) AS n FROM {t} WHERE NOT (md5(row({t}.*)::text) IS NULL)"),
            )
        })
    };
    let before = snapshot(&mut c);
    let out = bin()
        .env("DATABASE_URL", db.url())
        .env("FONNTE_MONTHLY_QUOTA", "1")
        .args(["--date", "2025-11-15", "--dry-run", "--force"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("Would dispatch INV-1 to John Doe"), "{text}");
    assert!(text.contains("Would dispatch: 2"), "{text}");
    assert!(text.contains("this run uses 2"), "{text}");
    assert!(text.contains("only 1 remain this month"), "{text}");
    assert_eq!(snapshot(&mut c), before);
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM notifications"), 0);
}

#[test]
fn stage_dates_cross_year_end() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-NY", 1, "2026-01-04", "unpaid"); // T-7 on 2025-12-28
    invoice(&mut c, "INV-OLD", 2, "2025-12-30", "unpaid"); // T+3 on 2026-01-02
    let out = ok(&schedule(&db, &["--date", "2025-12-28"]));
    assert!(
        out.contains("Stage T-7 (2026-01-04): Found 1 invoices"),
        "{out}"
    );
    let out = ok(&schedule(&db, &["--date", "2026-01-02"]));
    assert!(
        out.contains("Stage T+3 (2025-12-30): Found 1 invoices"),
        "{out}"
    );
}

/// The daily run happened on "11-10" (a backfill marked as that day's regular run:
/// catch-up counts only regular runs), then `days_missed` days without a run, then
/// today's run. The days are named after the November 2025 days they stand for,
/// shifted so that "11-11" + `days_missed` is today. Returns the ledger rows created
/// by today's run.
fn catch_up_after(days_missed: i64) -> Vec<Ledger> {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    let today = time::OffsetDateTime::now_utc()
        .to_offset(time::UtcOffset::from_hms(7, 0, 0).unwrap())
        .date();
    let nov = |day: i64| (today + time::Duration::days(day - 11 - days_missed)).to_string();
    // Due 11-14: T-3 on 11-11, T-1 on 11-13, T+3 on 11-17.
    invoice(&mut c, "INV-A", 1, &nov(14), "unpaid");
    // Due 11-20: T-7 on 11-13, T-3 on 11-17, T-1 on 11-19.
    invoice(&mut c, "INV-B", 2, &nov(20), "unpaid");
    // Due 11-13: T-1 on 11-12, T+3 on 11-16.
    invoice(&mut c, "INV-C", 3, &nov(13), "unpaid");
    ok(&schedule(&db, &["--date", &nov(10)]));
    exec(&mut c, "UPDATE schedule_runs SET backfill = false");
    let run = today.to_string();
    let before = ledger(&mut c).len();
    let out = ok(&schedule(&db, &["--catch-up-days", "3"]));
    if days_missed > 0 {
        assert!(out.contains("No scheduler run on"), "{out}");
    }
    let rows = ledger(&mut c);
    assert_eq!(
        rows.len() - before,
        rows.iter().filter(|r| r.run_date == run).count()
    );
    rows.into_iter().filter(|r| r.run_date == run).collect()
}

fn stages(rows: &[Ledger]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.number.clone(), r.stage.clone()))
        .collect();
    v.dedup();
    v
}

#[test]
fn catch_up_after_one_missed_day() {
    // Runs on 11-10, missed 11-11, runs 11-12: INV-A's T-3 (11-11) is still useful
    // (due 11-14) and INV-C's T-1 is today.
    let rows = catch_up_after(1);
    assert_eq!(
        stages(&rows),
        [
            ("INV-A".into(), "T-3".into()),
            ("INV-C".into(), "T-1".into())
        ]
    );
}

#[test]
fn catch_up_after_two_missed_days_sends_only_the_newest_stage() {
    // Missed 11-11 and 11-12, runs 11-13: INV-A had T-3 on 11-11 and has T-1 today:
    // only T-1. INV-C's T-1 (11-12) came before its due date 11-13, which is today:
    // still "will be due" (today). INV-B's T-7 is today.
    let rows = catch_up_after(2);
    assert_eq!(
        stages(&rows),
        [
            ("INV-A".into(), "T-1".into()),
            ("INV-B".into(), "T-7".into()),
            ("INV-C".into(), "T-1".into()),
        ]
    );
    // Never two reminders for one invoice on one channel in one day.
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.number.clone(), r.channel.clone()))
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
}

#[test]
fn catch_up_after_four_missed_days_never_sends_a_stale_due_reminder() {
    // Missed 11-11..11-14 (only the last 3 are in the window: 11-12..11-14), runs
    // 11-15. INV-A was due 11-14: its T-1 (11-13) is stale, its T+3 comes on 11-17:
    // nothing. INV-C was due 11-13: T-1 stale: nothing. INV-B (due 11-20) had T-7 on
    // 11-13: still true, sent as catch-up.
    let rows = catch_up_after(4);
    assert_eq!(stages(&rows), [("INV-B".into(), "T-7".into())]);
}

#[test]
fn a_new_installation_does_not_catch_up() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-A", 1, "2025-11-14", "unpaid"); // T-3 was on 11-11
    let out = ok(&schedule(&db, &["--date", "2025-11-12"]));
    assert!(!out.contains("No scheduler run on"), "{out}");
    assert!(ledger(&mut c).is_empty());
}

#[test]
fn bad_usage_exits_2_and_names_the_problem() {
    let db = TestDatabase::new();
    let out = schedule(&db, &["--date", "15-11-2025"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--date") && err.contains("YYYY-MM-DD"),
        "{err}"
    );

    let out = bin()
        .env("DATABASE_URL", db.url())
        .env("DUNNING_TIMEZONE", "Europe/Atlantis")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DUNNING_TIMEZONE"));

    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
}

#[test]
fn unreachable_database_is_one_line_exit_1() {
    let out = bin()
        .env("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:9/dunning")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.1:9/dunning"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn pending_migrations_are_refused_with_the_fix() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    exec(&mut c, "DELETE FROM __diesel_schema_migrations");
    let out = schedule(&db, &["--date", "2025-11-15"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dunning-schedule migrate"), "{err}");
}

#[test]
fn json_summary_for_monitoring() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    let out = ok(&schedule(&db, &["--date", "2025-11-15", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["run_date"], "2025-11-15");
    assert_eq!(v["totals"]["dispatched"], 1);
    assert_eq!(v["totals"]["jobs"]["whatsapp"], 1);
    assert_eq!(v["stages"][1]["stage"], "T-3");
    assert_eq!(v["stages"][1]["found"], 1);
    let quiet = ok(&schedule(&db, &["--date", "2025-11-15", "--quiet"]));
    assert!(!quiet.contains("Stage"), "{quiet}");
    assert!(quiet.contains("Dispatched: 0"), "{quiet}");
}

#[test]
fn json_stage_jobs_count_messages_under_grouping() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    // On 2025-11-15: John has two invoices at T-3 and one at T-7, Jane one at T-3.
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-2", 1, "2025-11-18", "unpaid");
    invoice(&mut c, "INV-3", 1, "2025-11-22", "unpaid");
    invoice(&mut c, "INV-4", 2, "2025-11-18", "unpaid");
    let run = |group: &str| -> serde_json::Value {
        let out = bin()
            .env("DATABASE_URL", db.url())
            .env("DUNNING_GROUP", group)
            .args(["--date", "2025-11-15", "--force", "--dry-run", "--json"])
            .output()
            .unwrap();
        serde_json::from_str(&ok(&out)).unwrap()
    };
    let stage = |v: &serde_json::Value, name: &str| -> serde_json::Value {
        v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap_or_else(|| panic!("{v}"))
            .clone()
    };
    for channel in ["email", "whatsapp"] {
        // One message per customer: 2 messages carry 4 reminders.
        let v = run("customer");
        assert_eq!(v["totals"]["jobs"][channel], 2, "{v}");
        assert_eq!(v["totals"]["reminders"][channel], 4, "{v}");
        let (t3, t7) = (stage(&v, "T-3"), stage(&v, "T-7"));
        assert_eq!(t3["reminders"][channel], 3, "{v}");
        assert_eq!(t7["reminders"][channel], 1, "{v}");
        let jobs = |s: &serde_json::Value| s["jobs"][channel].as_i64().unwrap();
        let per_stage: i64 = v["stages"].as_array().unwrap().iter().map(jobs).sum();
        assert_eq!(per_stage, 2, "the stages' jobs add up to the messages: {v}");
        // Jane's message is a T-3 one; John's counts at one of his stages.
        assert!((1..=2).contains(&jobs(&t3)), "{v}");
        // One message per invoice: jobs and reminders agree, stage by stage.
        let v = run("invoice");
        assert_eq!(v["totals"]["jobs"][channel], 4, "{v}");
        assert_eq!(stage(&v, "T-3")["jobs"][channel], 3, "{v}");
        assert_eq!(stage(&v, "T-7")["jobs"][channel], 1, "{v}");
    }
}

#[test]
fn dotenv_in_the_working_directory_sets_variables_and_flags() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "# as in Laravel\nDATABASE_URL={}\nDUNNING_QUEUE=dunning\nDUNNING_STAGES=\"T-3\"\n",
            db.url()
        ),
    )
    .unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["--date", "2025-11-15", "--force"])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        !text.contains("Stage T-7"),
        "DUNNING_STAGES from .env ignored:\n{text}"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) AS n FROM jobs WHERE queue = 'dunning'"
        ),
        2,
        "DUNNING_QUEUE from .env ignored"
    );
    std::fs::write(dir.path().join(".env"), "DATABASE_URL=\"unterminated\n").unwrap();
    let out = bin().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".env"));
}

#[test]
fn resume_ends_a_channel_pause() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    exec(
        &mut c,
        "UPDATE channel_state SET paused_until = now() + interval '5 minutes',
                pause_reason = 'request invalid on disconnected device' WHERE channel = 'whatsapp'",
    );
    let out = ok(&schedule(&db, &["resume", "whatsapp"]));
    assert!(
        out.contains("whatsapp: resumed (it was paused until ")
            && out.contains("Asia/Jakarta (UTC+07:00): request invalid on disconnected device)"),
        "{out}"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) AS n FROM channel_state WHERE paused_until > now()"
        ),
        0
    );
    let out = ok(&schedule(&db, &["resume"]));
    assert!(
        out.contains("email: was not paused") && out.contains("whatsapp: was not paused"),
        "{out}"
    );
    assert_eq!(schedule(&db, &["resume", "sms"]).status.code(), Some(2));
}

#[test]
fn a_moved_due_date_gets_its_stages_again() {
    let db = TestDatabase::new();
    let mut c = db.conn();
    customers(&mut c);
    invoice(&mut c, "INV-1", 1, "2025-11-18", "unpaid");
    ok(&schedule(&db, &["--date", "2025-11-15"])); // T-3 for 11-18
    // Billing extends the invoice by a week: T-3 now falls on 11-22.
    exec(
        &mut c,
        "UPDATE invoices SET due_date = '2025-11-25' WHERE number = 'INV-1'",
    );
    let out = ok(&schedule(&db, &["--date", "2025-11-22"]));
    assert!(out.contains("Dispatched INV-1 to John Doe"), "{out}");
    // The same due date is still reminded only once per stage.
    let out = ok(&schedule(&db, &["--date", "2025-11-22"]));
    assert!(out.contains("Skipped INV-1 (already queued)"), "{out}");
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) AS n FROM notifications WHERE stage = 'T-3' AND due_date = '2025-11-25'"
        ),
        2
    );
}
