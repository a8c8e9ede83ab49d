//! The worker binary as supervisor runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dunning_test_db::TestDatabase;

fn bin(db: &TestDatabase, outbox: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dunning-worker"));
    cmd.env_clear()
        .current_dir(std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("DUNNING_OUTBOX_DIR", outbox)
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn sigterm_exits_cleanly() {
    let db = TestDatabase::new();
    let outbox = tempfile::tempdir().unwrap();
    let child = bin(&db, outbox.path())
        .args(["--sleep", "0.2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("dunning-worker stopped"), "{log}");
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let db = TestDatabase::new();
    let outbox = tempfile::tempdir().unwrap();
    let out = bin(&db, outbox.path())
        .env("WHATSAPP_DRIVER", "fonnte")
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FONNTE_TOKEN"));
    let out = bin(&db, outbox.path())
        .args(["--once", "--backoff", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backoff"));
}

#[test]
fn unreachable_database_is_one_line_exit_1() {
    let outbox = tempfile::tempdir().unwrap();
    let db = TestDatabase::new();
    let out = bin(&db, outbox.path())
        .env("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:9/dunning")
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        !err.contains("hunter2") && !err.contains("panicked"),
        "{err}"
    );
}

/// Issue 14: a worker with nothing it may send says why the waiting jobs wait.
#[test]
fn an_idle_worker_says_the_send_window_holds_the_jobs_and_until_when() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::new();
    let outbox = tempfile::tempdir().unwrap();
    diesel::sql_query(
        "WITH c AS (INSERT INTO customers (name, email) VALUES ('Budi', 'budi@example.com') RETURNING id),
              i AS (INSERT INTO invoices (number, customer_id, amount, due_date)
                    SELECT 'INV-1', id, 150000, current_date + 3 FROM c RETURNING id, customer_id),
              n AS (INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient)
                    SELECT id, customer_id, 'T-3', 'email', current_date, 'budi@example.com' FROM i RETURNING id)
         INSERT INTO jobs (notification_id, channel) SELECT id, 'email' FROM n",
    )
    .execute(&mut db.conn())
    .unwrap();
    // A one-minute window that is not now.
    let now = dunning_core::Zone::default().local(time::OffsetDateTime::now_utc());
    let start = now.time() + time::Duration::hours(2);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        (start + time::Duration::minutes(1)).hour(),
        (start + time::Duration::minutes(1)).minute()
    );
    let out = bin(&db, outbox.path())
        .env("DUNNING_SEND_WINDOW", &window)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    let said = format!("1 job(s) held by the send window {window} until ");
    let opens = format!("{:02}:{:02} WIB", start.hour(), start.minute());
    assert!(
        log.lines().any(|l| l.contains(&said) && l.contains(&opens)),
        "expected {said:?} … {opens:?} in\n{log}"
    );
    assert!(!log.contains("nothing is due now"), "{log}");
}
