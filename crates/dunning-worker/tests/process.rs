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
