//! Issue 14: one exit-code convention for both binaries (docs/reference.md, "Exit
//! codes"), and a reader that goes away (`| head -3`) ends a command quietly: no
//! "failed printing to stdout" panic, no exit 101.

mod reliability_support;

use std::process::{ExitStatus, Stdio};

use dunning_test_db::TestDatabase;
use dunning_test_fonnte::FonnteFake;
use reliability_support::*;

/// How a process ended, for messages.
fn ended(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "?".into(),
    }
}

struct Case {
    what: &'static str,
    code: i32,
    vars: Vec<(&'static str, String)>,
    unset: Vec<&'static str>,
    dotenv: Option<&'static str>,
    schedule: Vec<&'static str>,
    worker: Vec<&'static str>,
}

fn case(what: &'static str, code: i32) -> Case {
    Case {
        what,
        code,
        vars: Vec::new(),
        unset: Vec::new(),
        dotenv: None,
        schedule: vec![],
        worker: vec!["--once"],
    }
}

#[test]
fn both_binaries_follow_the_exit_code_table() {
    let db = TestDatabase::new();
    let fonnte = FonnteFake::start();
    let unmigrated = TestDatabase::new();
    exec(
        &mut unmigrated.conn(),
        "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT max(version) FROM __diesel_schema_migrations)",
    );
    let mut cases = vec![
        case("success", 0),
        Case {
            schedule: vec!["--help"],
            worker: vec!["--help"],
            ..case("--help", 0)
        },
        Case {
            schedule: vec!["--version"],
            worker: vec!["--version"],
            ..case("--version", 0)
        },
        Case {
            schedule: vec!["--no-such-flag"],
            worker: vec!["--no-such-flag"],
            ..case("an unknown flag", 2)
        },
        Case {
            vars: vec![("DUNNING_TIMEZONE", "Mars/Olympus".into())],
            ..case("an invalid variable", 2)
        },
        Case {
            unset: vec!["DATABASE_URL"],
            ..case("DATABASE_URL missing", 2)
        },
        Case {
            vars: vec![("DATABASE_URL", "postgres//u:pw@127.0.0.1/db".into())],
            ..case("DATABASE_URL garbled", 2)
        },
        Case {
            vars: vec![("FONNTE_URL", "api.fonnte.com".into())],
            ..case("FONNTE_URL without a scheme", 2)
        },
        Case {
            vars: vec![("DUNNING_SEND_WINDOW", "08:00-08:00".into())],
            ..case("an empty send window", 2)
        },
        Case {
            unset: vec!["MAIL_PASSWORD"],
            dotenv: Some("MAIL_PASSWORD=abcd efgh ijkl mnop\n"),
            ..case("a .env line that cannot be read", 2)
        },
        Case {
            vars: vec![(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{}/x", free_port()),
            )],
            ..case("database unreachable", 1)
        },
        Case {
            vars: vec![("DATABASE_URL", unmigrated.url().to_owned())],
            ..case("pending migrations", 1)
        },
    ];
    let mut failures = Vec::new();
    for c in cases.iter_mut() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = WorkerEnv::new(db.url(), &fonnte, dir.path());
        env.set("MAIL_PASSWORD", "x");
        for (k, v) in &c.vars {
            env.set(k, v);
        }
        for k in &c.unset {
            env.unset(k);
        }
        if let Some(text) = c.dotenv {
            std::fs::write(dir.path().join(".env"), text).unwrap();
        }
        let sched = schedule_bin().display().to_string();
        for (bin, args) in [(sched.as_str(), &c.schedule), (WORKER, &c.worker)] {
            let out = env.command(bin, args).output().unwrap();
            if out.status.code() != Some(c.code) {
                failures.push(format!(
                    "{}: {bin} {args:?}: {} instead of exit {}\n{}{}",
                    c.what,
                    ended(out.status),
                    c.code,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_closed_reader_ends_every_command_quietly() {
    let db = TestDatabase::new();
    let fonnte = FonnteFake::start();
    let mut conn = db.conn();
    seed(&mut conn, 30);
    let dir = tempfile::tempdir().unwrap();
    let env = WorkerEnv::new(db.url(), &fonnte, dir.path());
    let sched = schedule_bin().display().to_string();
    let commands: Vec<(&str, Vec<&str>)> = vec![
        (&sched, vec!["doctor"]),
        (&sched, vec!["--dry-run"]),
        (&sched, vec![]),
        (&sched, vec!["stats"]),
        (&sched, vec!["stats", "--json"]),
        (&sched, vec!["failed"]),
        (&sched, vec!["migrate"]),
        (&sched, vec!["resume"]),
        (&sched, vec!["invoice", "paid", "NO-SUCH"]),
        (&sched, vec!["--help"]),
        (&sched, vec!["--version"]),
        (&sched, vec!["--no-such-flag"]),
        (WORKER, vec!["--help"]),
        (WORKER, vec!["--version"]),
        (WORKER, vec!["--once"]),
        (WORKER, vec!["--sleep", "soon"]),
        (WORKER, vec!["--backoff", "soon"]),
    ];
    let mut failures = Vec::new();
    for (bin, args) in &commands {
        // stdout closed at once (`| head -0`), stderr read: no panic message.
        let mut child = env
            .command(bin, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(101) || err.contains("panicked") || err.contains("Broken pipe")
        {
            failures.push(format!(
                "{bin} {args:?} | (closed): {}\n{err}",
                ended(out.status)
            ));
        }
        // Both closed (`2>&1 | head -0`): still no panic exit.
        let mut child = env
            .command(bin, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        if status.code() == Some(101) {
            failures.push(format!("{bin} {args:?} 2>&1 | (closed): {}", ended(status)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
