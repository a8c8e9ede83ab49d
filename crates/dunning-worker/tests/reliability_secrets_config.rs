//! Issue 9: secrets never leak (the whole flow with a known SMTP password and Fonnte
//! token, RUST_LOG=debug, failures included), bad configuration names the variable
//! and exits 2, an unreachable database exits 1 with one line and no backtrace.

mod reliability_support;

use diesel::prelude::*;
use diesel::sql_types::Text;
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::{FonnteFake, Reply};
use reliability_support::smtp::ScriptedSmtp;
use reliability_support::*;

const PASSWORD: &str = "Sm7p-Pa55w0rd-KNOWN-91c2";
const TOKEN: &str = "F0nnte-T0ken-KNOWN-5e8a";

#[derive(QueryableByName)]
struct T {
    #[diesel(sql_type = Text)]
    t: String,
}

#[test]
fn no_secret_in_logs_errors_ledger_or_outbox() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, 20);
    schedule(&mut conn);
    let fonnte = FonnteFake::with_token(TOKEN);
    let smtp = ScriptedSmtp::start();
    let outbox = tempfile::tempdir().unwrap();
    let mut env = WorkerEnv::new(db.url(), &fonnte, outbox.path());
    for (k, v) in smtp.env() {
        env.set(k, &v);
    }
    env.set("MAIL_USERNAME", "billing@wikarta.test");
    env.set("MAIL_PASSWORD", PASSWORD);
    env.set("RUST_LOG", "debug");
    // Some failures too, so error paths are logged and recorded.
    fonnte.push_reply(Reply::html(500));
    fonnte.push_reply(Reply::reason("target invalid"));
    let (status, mut log) = env.run(WORKER, &["--once", "--tries", "2", "--backoff", "0"]);
    assert!(status.success(), "{log}");
    // Then a rejected token (channel-wide) for the remaining WhatsApp jobs.
    seed_more(&mut conn);
    fonnte.always(Some(Reply::reason("token invalid")));
    let (_, log2) = env.run(WORKER, &["--once", "--tries", "2", "--backoff", "0"]);
    log.push_str(&log2);
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "RUST_LOG=debug had no effect"
    );

    // The secrets really were used.
    assert!(
        smtp.log
            .lock()
            .unwrap()
            .auth
            .iter()
            .any(|a| a.contains(PASSWORD)),
        "no SMTP login happened"
    );
    assert!(
        fonnte
            .sent()
            .iter()
            .any(|r| r.header("authorization") == Some(TOKEN))
    );

    for secret in [PASSWORD, TOKEN] {
        assert!(!log.contains(secret), "secret in the worker's log output");
        let dump: Vec<T> = diesel::sql_query(
            "SELECT concat_ws('|', n.*) AS t FROM notifications n
             UNION ALL SELECT concat_ws('|', j.*) FROM jobs j
             UNION ALL SELECT concat_ws('|', c.*) FROM channel_state c
             UNION ALL SELECT concat_ws('|', w.*) FROM workers w",
        )
        .load(&mut conn)
        .unwrap();
        assert!(
            dump.iter().all(|r| !r.t.contains(secret)),
            "secret in the ledger"
        );
        for entry in walk(outbox.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "secret in {}",
                entry.display()
            );
        }
    }
    // The error paths did run.
    let failed = count(
        &mut conn,
        "SELECT count(*) AS n FROM notifications WHERE status = 'failed'",
    );
    assert!(failed >= 1, "{log}");
    assert!(log.contains("paused"), "{log}");
}

fn seed_more(conn: &mut PgConnection) {
    exec(conn, "UPDATE channel_state SET paused_until = NULL");
    exec(
        conn,
        "INSERT INTO customers (name, phone) VALUES ('Late', '081299990000')",
    );
    exec(
        conn,
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         SELECT 'LATE-1', max(id), 5, current_date + 3 FROM customers",
    );
    diesel::sql_query(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient)
         SELECT id, customer_id, 'T-3', 'whatsapp', current_date, '081299990000' FROM invoices WHERE number = 'LATE-1'",
    )
    .execute(conn)
    .unwrap();
    exec(
        conn,
        "INSERT INTO jobs (notification_id, channel) SELECT max(id), 'whatsapp' FROM notifications",
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn bad_configuration_names_the_variable_and_exits_2() {
    let fonnte = FonnteFake::start();
    let dir = tempfile::tempdir().unwrap();
    let base = WorkerEnv::new("postgres://127.0.0.1:1/none", &fonnte, dir.path());
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        ("DATABASE_URL", None, &[]),
        ("DUNNING_TIMEZONE", Some("Mars/Olympus"), &[]),
        ("DUNNING_SEND_WINDOW", Some("8-20"), &[]),
        ("DUNNING_STAGES", Some("T-7,X"), &[]),
        ("MAIL_MAILER", Some("sendgrid"), &[]),
        ("WHATSAPP_DRIVER", Some("twilio"), &[]),
        ("FONNTE_TOKEN", None, &[]),
        ("FONNTE_MONTHLY_QUOTA", Some("-1"), &[]),
        ("WHATSAPP_MIN_INTERVAL", Some("soon"), &[]),
        ("FONNTE_TIMEOUT", Some("forever"), &[]),
        ("--backoff", None, &["--backoff", "soon"]),
        ("--sleep", None, &["--sleep=-1"]),
    ];
    for (var, value, args) in cases {
        let mut env = WorkerEnv {
            vars: base.vars.clone(),
            dir: base.dir.clone(),
        };
        if !var.starts_with("--") {
            match value {
                Some(v) => env.set(var, v),
                None => env.unset(var),
            }
        }
        let (status, out) = env.run(WORKER, args);
        assert_eq!(status.code(), Some(2), "{var}: {out}");
        assert!(out.contains(var), "{var} not named: {out}");
        assert!(!out.contains("panicked"), "{var}: {out}");
    }
    // MAIL_MAILER=smtp without MAIL_HOST.
    let mut env = WorkerEnv {
        vars: base.vars.clone(),
        dir: base.dir.clone(),
    };
    env.set("MAIL_MAILER", "smtp");
    let (status, out) = env.run(WORKER, &[]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("MAIL_HOST"), "{out}");
}

#[test]
fn an_unreachable_database_exits_1_with_one_line_and_no_secret() {
    let fonnte = FonnteFake::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://dunning:Db-Pa55-KNOWN@127.0.0.1:{}/dunning",
        free_port()
    );
    let env = WorkerEnv::new(&url, &fonnte, dir.path());
    let started = std::time::Instant::now();
    let (status, out) = env.run(WORKER, &[]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{out}");
    assert!(lines[0].contains("127.0.0.1"), "{out}");
    assert!(!out.contains("Db-Pa55-KNOWN"), "password shown: {out}");
    assert!(
        !out.contains("panicked") && !out.to_lowercase().contains("backtrace"),
        "{out}"
    );
}
