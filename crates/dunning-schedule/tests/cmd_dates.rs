//! `--date`: far dates need `--force`, the calendar's last day is refused instead of
//! panicking, and a backfill is recorded as one: it is not the day's run for
//! `doctor` and catch-up.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, today_jakarta};
use time::Duration;

fn runs(env: &Env) -> i64 {
    env.count("SELECT count(*) AS n FROM schedule_runs")
}

fn scheduler_line(text: &str) -> String {
    text.lines()
        .find(|l| l.contains(" Scheduler: "))
        .unwrap_or_else(|| panic!("no Scheduler line in\n{text}"))
        .to_owned()
}

#[test]
fn a_date_more_than_a_year_away_needs_force() {
    let env = Env::new();
    for days in [400, -400] {
        let date = (today_jakarta() + Duration::days(days)).to_string();
        let before = runs(&env);
        let out = env.run(&["--date", &date]);
        expect_code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("--date") && err.contains(&date) && err.contains("--force"),
            "{err}"
        );
        assert_eq!(runs(&env), before, "a refused date must record nothing");
        ok(&env.run(&["--date", &date, "--force"]));
    }
    // Within a year either way: no --force needed.
    for days in [-366, 366] {
        let date = (today_jakarta() + Duration::days(days)).to_string();
        ok(&env.run(&["--date", &date]));
    }
    assert_eq!(runs(&env), 4);
}

#[test]
fn the_last_day_of_the_calendar_is_refused_not_a_panic() {
    let env = Env::new();
    for args in [
        &["--date", "9999-12-31", "--force"][..],
        &["--date", "9999-12-31", "--force", "--dry-run"],
        &["--date", "9999-12-31", "--force", "--json"],
        &["--date=-9999-01-01", "--force"],
        &["--date", "9999-12-31"],
    ] {
        let out = env.run(args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        expect_code(&out, 2);
        assert!(err.contains("--date"), "{args:?}: {err}");
    }
    assert_eq!(runs(&env), 0, "nothing may be recorded for a refused date");
    // The other date flags too.
    for args in [
        &["stats", "--date", "9999-12-31"][..],
        &["stats", "--date=-9999-01-01", "--days", "366"],
        &["failed", "--since", "9999-12-31"],
    ] {
        let out = env.run(args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        expect_code(&out, 2);
        assert!(err.contains("out of range"), "{args:?}: {err}");
    }
}

#[test]
fn a_backfill_is_not_the_days_run_for_doctor_or_catch_up() {
    let env = Env::new();
    env.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES (1, 'Budi', 'budi@example.com', NULL);
         INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1', 1, 150000, current_date + 10);",
    );
    // A new installation backfills a day a week ago.
    let day = (today_jakarta() - Duration::days(7)).to_string();
    let out = ok(&env.run(&["--date", &day]));
    assert!(out.contains("Backfill"), "{out}");
    let json = ok(&env.run(&["--date", &day, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["backfill"], true, "{json}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM schedule_runs WHERE backfill"),
        2
    );

    // doctor: the backfill is not a run of the daily schedule, and no day counts as
    // missed because of it.
    let text = env.run(&["doctor"]);
    let line = scheduler_line(&String::from_utf8_lossy(&text.stdout));
    assert!(line.contains("no scheduler run recorded"), "{line}");
    assert!(!line.contains("no run on"), "{line}");

    // Today's regular run catches up nothing: the backfill is not the first run.
    let out = ok(&env.run(&[]));
    assert!(!out.contains("No scheduler run on"), "{out}");
    assert!(!out.contains("Backfill"), "{out}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM schedule_runs WHERE NOT backfill"),
        1
    );
    let text = env.run(&["doctor"]);
    let line = scheduler_line(&String::from_utf8_lossy(&text.stdout));
    assert!(line.contains("today's run done"), "{line}");

    // Once the schedule runs daily, a backfill of an old day changes nothing either.
    let old = (today_jakarta() - Duration::days(30)).to_string();
    ok(&env.run(&["--date", &old]));
    let text = env.run(&["doctor"]);
    let line = scheduler_line(&String::from_utf8_lossy(&text.stdout));
    assert!(line.contains("today's run done"), "{line}");
    assert!(
        line.contains(&format!("last run for {}", today_jakarta())),
        "{line}"
    );
}

#[test]
fn a_backfill_catches_up_no_other_day() {
    let env = Env::new();
    // Regular runs up to 10 days ago; the invoice's T-3 fell 6 days ago (local
    // dates: the database session's current_date is UTC).
    let today = today_jakarta();
    env.exec(&format!(
        "INSERT INTO schedule_runs (run_date, finished_at, host)
             SELECT d::date, now(), 'cron' FROM generate_series(DATE '{}', DATE '{}', '1 day') d;
         INSERT INTO customers (id, name, email, phone) VALUES (1, 'Budi', 'budi@example.com', NULL);
         INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1', 1, 150000, DATE '{}');",
        today - Duration::days(20),
        today - Duration::days(10),
        today - Duration::days(3)
    ));
    let day = (today_jakarta() - Duration::days(5)).to_string();
    let out = ok(&env.run(&["--date", &day, "--catch-up-days", "3"]));
    assert!(!out.contains("No scheduler run on"), "{out}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications"),
        0,
        "{out}"
    );
}
