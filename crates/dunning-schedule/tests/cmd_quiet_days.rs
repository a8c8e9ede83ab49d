//! Quiet days (DUNNING_QUIET_WEEKDAYS, DUNNING_HOLIDAYS) as cron sees them: the real
//! binary, a real PostgreSQL, a holiday file in the working directory.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, today_jakarta};
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::Text;
use time::{Date, Duration};

fn day(offset: i64) -> Date {
    today_jakarta() + Duration::days(offset)
}

/// Customers 1..4, each with an email address and a phone number.
fn customers(env: &Env) {
    env.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES
           (1, 'Andi', 'andi@example.com', '081200000001'),
           (2, 'Bunga', 'bunga@example.com', '081200000002'),
           (3, 'Citra', 'citra@example.com', '081200000003'),
           (4, 'Dewi', 'dewi@example.com', '081200000004')",
    );
}

fn invoice(env: &Env, number: &str, customer: i64, due: Date) {
    env.exec(&format!(
        "INSERT INTO invoices (number, customer_id, amount, due_date, status)
         VALUES ('{number}', {customer}, 150000, '{due}', 'unpaid')"
    ));
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct Row {
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    stage: String,
    #[diesel(sql_type = Text)]
    channel: String,
}

/// The ledger rows written on `run_date`.
fn ledger(env: &Env, run_date: Date) -> Vec<(String, String, String)> {
    sql_query(format!(
        "SELECT i.number, n.stage, n.channel FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         WHERE n.run_date = '{run_date}' ORDER BY i.number, n.channel"
    ))
    .load::<Row>(&mut env.conn())
    .unwrap()
    .into_iter()
    .map(|r| (r.number, r.stage, r.channel))
    .collect()
}

fn both(number: &str, stage: &str) -> [(String, String, String); 2] {
    [
        (number.into(), stage.into(), "email".into()),
        (number.into(), stage.into(), "whatsapp".into()),
    ]
}

#[test]
fn a_quiet_weekday_queues_nothing_and_says_why() {
    let mut env = Env::new();
    customers(&env);
    invoice(&env, "INV-T3", 1, day(3)); // T-3 today
    invoice(&env, "INV-T1", 2, day(1)); // T-1 today
    // Today's weekday, in Indonesian, as an operator would write it.
    let weekday = today_jakarta().weekday();
    env.set(
        "DUNNING_QUIET_WEEKDAYS",
        dunning_core::calendar::hari(weekday).to_lowercase(),
    );

    let text = ok(&env.run(&[]));
    assert!(
        text.contains(&format!(
            "{} is a quiet day: {weekday} (DUNNING_QUIET_WEEKDAYS)",
            day(0)
        )),
        "{text}"
    );
    assert!(text.contains("This run queues nothing"), "{text}");
    assert!(
        text.contains(&format!("the next working day ({}) catches up", day(1))),
        "{text}"
    );
    let dry = ok(&env.run(&["--dry-run"]));
    assert!(dry.contains("This run would queue nothing"), "{dry}");
    let json: serde_json::Value = serde_json::from_str(&ok(&env.run(&["--json"]))).unwrap();
    assert_eq!(json["quiet"]["reason"], "weekday");
    assert_eq!(json["quiet"]["next_working_day"], day(1).to_string());
    assert_eq!(json["totals"]["dispatched"], 0);

    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 0);
    // A quiet day records no run: the next working day sees it and catches it up.
    assert_eq!(env.count("SELECT count(*) AS n FROM schedule_runs"), 0);

    // The same day is a working day without the setting: the reminders go out.
    let mut working = Env::new();
    customers(&working);
    invoice(&working, "INV-T3", 1, day(3));
    working.set("DUNNING_QUIET_WEEKDAYS", "");
    ok(&working.run(&[]));
    assert_eq!(working.count("SELECT count(*) AS n FROM notifications"), 2);
}

#[test]
fn a_holiday_run_for_a_date_names_the_holiday() {
    let mut env = Env::new();
    customers(&env);
    invoice(&env, "INV-A", 1, day(5)); // T-7 two days ago, T-3 on day(2)
    let file = env.file(
        "libur.txt",
        &format!("# test\n{}  Hari Raya Idul Fitri\n", day(2)),
    );
    env.set("DUNNING_HOLIDAYS", file.display().to_string());
    let text = ok(&env.run(&["--date", &day(2).to_string()]));
    assert!(
        text.contains("quiet day: holiday Hari Raya Idul Fitri (DUNNING_HOLIDAYS)"),
        "{text}"
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);
}

/// The daily run happened three days ago; the two days since were holidays (no run:
/// cron runs the scheduler, which queues nothing); today is a working day. The
/// catch-up window (1 working day) reaches past the holidays, and per invoice only
/// the newest due stage goes out: one reminder per invoice and channel, no burst.
#[test]
fn the_next_working_day_catches_up_the_holidays_with_the_newest_stage_only() {
    let mut env = Env::new();
    customers(&env);
    // T-3 fell on the second holiday (yesterday): still true, caught up.
    invoice(&env, "INV-A", 1, day(2));
    // T-3 fell on the first holiday, T-1 is today: only T-1.
    invoice(&env, "INV-B", 2, day(1));
    // T-7 fell on the first holiday, outside a plain one-day window: caught up.
    invoice(&env, "INV-C", 3, day(5));
    // T-1 fell on the first holiday and the due date (yesterday) has passed: a
    // "will be due" reminder would be false now, so nothing (T+3 comes on day 2).
    invoice(&env, "INV-D", 4, day(-1));
    let file = env.file(
        "holidays.txt",
        &format!(
            "{} Cuti Bersama Idul Fitri\n{} Hari Raya Idul Fitri\n",
            day(-2),
            day(-1)
        ),
    );
    env.set("DUNNING_HOLIDAYS", file.display().to_string());
    env.set("DUNNING_CATCH_UP_DAYS", "1");
    env.exec(&format!(
        "INSERT INTO schedule_runs (run_date, finished_at, host) VALUES ('{}', now(), 'test')",
        day(-3)
    ));
    // The holiday's own run (as cron would start it) queues nothing.
    let holiday = ok(&env.run(&["--date", &day(-1).to_string()]));
    assert!(holiday.contains("is a quiet day"), "{holiday}");
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);

    let text = ok(&env.run(&[]));
    assert!(
        text.contains(&format!(
            "Quiet day(s) {} (Cuti Bersama Idul Fitri), {} (Hari Raya Idul Fitri): catching up",
            day(-2),
            day(-1)
        )),
        "{text}"
    );
    assert!(!text.contains("No scheduler run on"), "{text}");
    let mut expected = Vec::new();
    expected.extend(both("INV-A", "T-3"));
    expected.extend(both("INV-B", "T-1"));
    expected.extend(both("INV-C", "T-7"));
    assert_eq!(ledger(&env, day(0)), expected, "{text}");
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 6);

    // A second run today adds nothing.
    ok(&env.run(&[]));
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 6);
}

#[test]
fn a_quiet_day_already_caught_up_is_not_planned_again() {
    let mut env = Env::new();
    customers(&env);
    invoice(&env, "INV-A", 1, day(1)); // T-3 on the holiday two days ago
    let file = env.file("holidays.txt", &format!("{} Libur\n", day(-2)));
    env.set("DUNNING_HOLIDAYS", file.display().to_string());
    // Runs three days ago and yesterday: yesterday's caught the holiday up.
    env.exec(&format!(
        "INSERT INTO schedule_runs (run_date, finished_at, host)
         VALUES ('{}', now(), 'test'), ('{}', now(), 'test')",
        day(-3),
        day(-1)
    ));
    let text = ok(&env.run(&[]));
    assert!(!text.contains("Quiet day(s)"), "{text}");
    // INV-A's T-1 is today: the ordinary stage, not a catch-up.
    assert_eq!(ledger(&env, day(0)), both("INV-A", "T-1"));
}

#[test]
fn a_bad_holiday_file_names_the_file_the_line_and_the_fix() {
    let mut env = Env::new();
    customers(&env);
    invoice(&env, "INV-T3", 1, day(3));
    env.file(
        "libur.txt",
        "# Libur\n2026-01-01 Tahun Baru\n2026-13-01 Salah bulan\n2026-08-17\n",
    );
    env.set("DUNNING_HOLIDAYS", "libur.txt");
    let out = env.run(&[]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("libur.txt line 3: \"2026-13-01\" is not a date"),
        "{err}"
    );
    assert!(
        err.contains("libur.txt line 4: 2026-08-17 has no name"),
        "{err}"
    );
    assert!(
        err.contains("Fix: write one holiday a line as YYYY-MM-DD"),
        "{err}"
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);

    // doctor reports the same problem as a failed check.
    let doctor = env.run(&["doctor"]);
    let text = expect_code(&doctor, 1);
    let line = text
        .lines()
        .find(|l| l.contains("Quiet days:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.starts_with("[error]") && line.contains("libur.txt line 3"),
        "{text}"
    );

    // A path that does not exist: the variable, the path and the fix.
    env.set("DUNNING_HOLIDAYS", "holidays/none.txt");
    let out = env.run(&[]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("DUNNING_HOLIDAYS=holidays/none.txt: cannot read the holiday file")
            && err.contains("Fix: correct the path"),
        "{err}"
    );

    // An unknown weekday name.
    env.set("DUNNING_HOLIDAYS", "");
    env.set("DUNNING_QUIET_WEEKDAYS", "minggu,libur");
    let out = env.run(&[]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("DUNNING_QUIET_WEEKDAYS")
            && err.contains("\"libur\" is not a day of the week"),
        "{err}"
    );
}

#[test]
fn doctor_warns_when_the_holiday_file_ends_within_60_days() {
    let mut env = Env::new();
    env.file(
        "soon.txt",
        &format!("{} Libur A\n{} Libur B\n", day(-100), day(30)),
    );
    env.file("later.txt", &format!("{} Libur C\n", day(90)));
    env.set("DUNNING_HOLIDAYS", "soon.txt");
    let text = env.run(&["doctor"]);
    let text = cmd_support::stdout(&text);
    let mut lines = text.lines().skip_while(|l| !l.contains("Quiet days:"));
    let line = lines.next().unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("[warn]"), "{text}");
    assert!(
        line.contains(&format!("2 holidays listed up to {}", day(30)))
            && line.contains("the holiday file ends in 30 days"),
        "{text}"
    );
    let fix = lines.next().unwrap();
    assert!(
        fix.contains("Fix: add the next year's national holidays"),
        "{fix}"
    );

    env.set("DUNNING_HOLIDAYS", "later.txt");
    let text = cmd_support::stdout(&env.run(&["doctor"]));
    let line = text.lines().find(|l| l.contains("Quiet days:")).unwrap();
    assert!(line.starts_with("[ok]"), "{text}");
}
