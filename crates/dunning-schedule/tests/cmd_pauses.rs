//! `pause`, `unpause`, `optout`, `optin`, `pauses`, `replies`, and what the
//! scheduler's dry run and `stats` say about held reminders: the real binary
//! against a real PostgreSQL.

use std::process::{Command, Output};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use dunning_test_db::TestDatabase;

fn schedule(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dunning-schedule"))
        .env_clear()
        .current_dir(std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DUNNING_TIMEZONE", "Asia/Jakarta")
        .env("DATABASE_URL", db.url())
        .args(args)
        .output()
        .expect("run dunning-schedule")
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

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    sql_query(sql).get_result::<N>(conn).unwrap().n
}

/// Two customers, each with an invoice whose T-3 stage falls on today (local).
fn seed(conn: &mut PgConnection) {
    exec(
        conn,
        "INSERT INTO customers (id, external_id, name, email, phone) VALUES
           (1, 'C-001', 'John Doe', 'john@example.com', '081234567890'),
           (2, 'C-002', 'Jane Smith', 'jane@example.com', '081311112222')",
    );
    exec(
        conn,
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         SELECT 'INV-' || c, c, 150000, (now() AT TIME ZONE 'Asia/Jakarta')::date + 3
         FROM generate_series(1, 2) c",
    );
}

fn local_day(conn: &mut PgConnection, plus: i32) -> String {
    #[derive(QueryableByName)]
    struct D {
        #[diesel(sql_type = diesel::sql_types::Text)]
        d: String,
    }
    sql_query(format!(
        "SELECT ((now() AT TIME ZONE 'Asia/Jakarta')::date + {plus})::text AS d"
    ))
    .get_result::<D>(conn)
    .unwrap()
    .d
}

#[test]
fn paused_and_opted_out_reminders_are_held_and_reported() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let until = local_day(&mut conn, 5);
    // John by phone number written differently from his record; Jane opts out of WhatsApp.
    let out = ok(&schedule(
        &db,
        &[
            "pause",
            "customer",
            "+62 812-3456-7890",
            "--until",
            &until,
            "--reason",
            "janji bayar ke CS",
        ],
    ));
    assert!(
        out.contains("customer C-001 (John Doe): reminders held through"),
        "{out}"
    );
    let out = ok(&schedule(
        &db,
        &["optout", "customer", "C-002", "--channel", "whatsapp"],
    ));
    assert!(out.contains("whatsapp opted out"), "{out}");

    let dry = ok(&schedule(&db, &["--dry-run"]));
    assert!(dry.contains("Skipped INV-1 (paused;"), "{dry}");
    assert!(dry.contains("Would dispatch INV-2 to Jane Smith (email; other channel: customer opted out of this channel)"), "{dry}");
    assert!(dry.contains("Held: 2 by a pause, 1 by an opt-out"), "{dry}");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM notifications"),
        0
    );

    let stats = ok(&schedule(&db, &["stats"]));
    assert!(stats.contains("Held: 1 unpaid invoice(s) paused today; opted out: 1 customer(s) of WhatsApp, 0 of email"), "{stats}");
    let list = ok(&schedule(&db, &["pauses"]));
    assert!(
        list.contains("customer C-001 (John Doe): held through"),
        "{list}"
    );
    assert!(
        list.contains("customer C-002 (Jane Smith): opted out of whatsapp"),
        "{list}"
    );

    ok(&schedule(&db, &[]));
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 1);
    // Unpause John, opt Jane back in: a rerun today queues the rest.
    let out = ok(&schedule(&db, &["unpause", "customer", "C-001"]));
    assert!(out.contains("1 pause(s) ended"), "{out}");
    ok(&schedule(
        &db,
        &["optin", "customer", "081311112222", "--channel", "all"],
    ));
    ok(&schedule(&db, &[]));
    // John: email and WhatsApp now; Jane: her WhatsApp joins the email queued earlier.
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM jobs"), 4);
}

#[test]
fn bad_input_names_the_problem_and_the_fix() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let past = schedule(
        &db,
        &[
            "pause",
            "invoice",
            "INV-1",
            "--until",
            "2020-01-01",
            "--reason",
            "x",
        ],
    );
    assert_eq!(past.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&past.stderr).contains("is before today"));
    let unknown = schedule(&db, &["optout", "customer", "C-404", "--channel", "all"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no customer has the external id or phone number \"C-404\"")
    );
    let until = local_day(&mut conn, 1);
    let blank = schedule(
        &db,
        &[
            "pause", "invoice", "INV-1", "--until", &until, "--reason", " ",
        ],
    );
    assert_eq!(blank.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&blank.stderr).contains("--reason is empty"));
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM pauses"), 0);
}

#[test]
fn replies_lists_flagged_messages_until_answered() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    exec(
        &mut conn,
        "INSERT INTO whatsapp_replies (dedup_key, sender, message, received_at, customer_id, intent, flagged)
         VALUES ('a', '6281234567890', 'internet mati sejak pagi', now(), 1, 'other', true),
                ('b', '6281234567890', 'STOP', now(), 1, 'opt_out', false)",
    );
    let out = ok(&schedule(&db, &["replies"]));
    assert!(
        out.contains("6281234567890 (John Doe) [other]: internet mati sejak pagi"),
        "{out}"
    );
    assert!(!out.contains("STOP"), "{out}");
    ok(&schedule(&db, &["replies", "--done", "1"]));
    let out = ok(&schedule(&db, &["replies"]));
    assert!(out.contains("No replies waiting"), "{out}");
}

#[test]
fn a_pause_that_ended_is_caught_up_with_the_newest_stage() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    exec(
        &mut conn,
        "INSERT INTO customers (id, external_id, name, email, phone)
         VALUES (1, 'C-001', 'John Doe', 'john@example.com', NULL)",
    );
    // T-3 fell yesterday, while a pause held John; the scheduler ran every day.
    exec(
        &mut conn,
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         VALUES ('INV-1', 1, 150000, (now() AT TIME ZONE 'Asia/Jakarta')::date + 2)",
    );
    exec(
        &mut conn,
        "INSERT INTO pauses (customer_id, starts_on, until, reason, created_by)
         SELECT 1, d - 5, d - 1, 'janji bayar', 'cli' FROM (SELECT (now() AT TIME ZONE 'Asia/Jakarta')::date AS d) t",
    );
    exec(
        &mut conn,
        "INSERT INTO schedule_runs (run_date, finished_at)
         SELECT (now() AT TIME ZONE 'Asia/Jakarta')::date - g, now() FROM generate_series(1, 4) g",
    );
    let yesterday = local_day(&mut conn, -1);
    let out = ok(&schedule(&db, &[]));
    assert!(
        out.contains(&format!("Catch-up T-3 (paused on {yesterday}")),
        "{out}"
    );
    assert!(
        out.contains("Dispatched INV-1 to John Doe (email)"),
        "{out}"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE stage = 'T-3'"
        ),
        1
    );
}
