//! Issue 9: secrets never leak (the whole flow with a known SMTP password and Fonnte
//! token, RUST_LOG=debug, failures included), bad configuration names the variable
//! and exits 2, an unreachable database exits 1 with one line and no backtrace.

mod reliability_support;

use diesel::prelude::*;
use diesel::sql_types::Text;
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::{FonnteFake, Reply};
use dunning_test_smtp::SmtpPeer;
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
    let smtp = SmtpPeer::start("scripted");
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
        smtp.logins().iter().any(|a| a.contains(PASSWORD)),
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

// Issue 14: every binary and every command, at RUST_LOG=trace, with secrets set to
// marker strings, under a working configuration (real sends to the Fonnte fake and
// the SMTP server) and under hostile ones. No secret may appear in stdout, stderr or
// the worker's log file; no customer contact or name may appear in a log line
// (stderr); nothing panics.

const SWEEP_DB_PW: &str = "MkDbPw4e2d";
const SWEEP_SMTP_PW: &str = "MkSmtpPw7f3a";
const SWEEP_TOKEN: &str = "MkFonnteTok9c1b";
const SWEEP_WRONG_TOKEN: &str = "MkWrongTok11x";
/// `.env` paste of a Gmail app password, unquoted (four groups).
const SWEEP_SPACED_PW: &str = "mkgq zxap vbnt ruyw";
const SWEEP_NAME: &str = "Zzsiti Markername";
const SWEEP_EMAIL: &str = "zzmailmarker@example.com";
const SWEEP_PHONE: &str = "081299887766";
const SWEEP_PHONE_62: &str = "6281299887766";

/// Every command of `dunning-schedule` (with arguments that reach its real work),
/// each subcommand's --help, and the worker's.
fn sweep_commands(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let customers = dir.join("customers.csv");
    let invoices = dir.join("invoices.csv");
    std::fs::write(
        &customers,
        format!("external_id,name,email,phone\nmk1,{SWEEP_NAME},{SWEEP_EMAIL},{SWEEP_PHONE}\n"),
    )
    .unwrap();
    let due = (today() + time::Duration::days(7)).to_string();
    std::fs::write(
        &invoices,
        format!(
            "number,customer_external_id,amount,due_date,status\nMK-INV-2,mk1,99000,{due},unpaid\n"
        ),
    )
    .unwrap();
    let sched = schedule_bin().display().to_string();
    let s = |args: &[&str]| {
        (
            sched.clone(),
            args.iter().map(|a| (*a).to_owned()).collect(),
        )
    };
    let w = |args: &[&str]| {
        (
            WORKER.to_owned(),
            args.iter().map(|a| (*a).to_owned()).collect(),
        )
    };
    let (c, i) = (
        customers.display().to_string(),
        invoices.display().to_string(),
    );
    let mut v = vec![
        s(&["migrate"]),
        s(&["import", "--customers", &c, "--invoices", &i]),
        s(&["--dry-run"]),
        s(&[]),
        s(&["run", "--json"]),
        s(&["test-whatsapp", SWEEP_PHONE, "Tes pesan", "--yes"]),
        s(&["test-dunning", SWEEP_EMAIL, SWEEP_PHONE, "--yes"]),
        w(&["--once", "--tries", "2", "--backoff", "0"]),
        s(&["stats"]),
        s(&["stats", "--json"]),
        s(&["failed"]),
        s(&["failed", "--json"]),
        s(&["retry", "--all"]),
        s(&["doctor"]),
        s(&["resume"]),
        s(&["resume", "whatsapp"]),
        s(&["invoice", "paid", "MK-INV-2"]),
        s(&["invoice", "void", "MK-INV-404"]),
        s(&["--version"]),
        w(&["--version"]),
        w(&["--help"]),
        s(&["--help"]),
    ];
    for sub in [
        "run",
        "migrate",
        "test-whatsapp",
        "test-dunning",
        "stats",
        "failed",
        "retry",
        "doctor",
        "import",
        "resume",
        "invoice",
    ] {
        v.push(s(&[sub, "--help"]));
    }
    v
}

struct Sweep {
    /// Every byte any process wrote, for the secrets.
    all: String,
    /// Everything written to stderr (the log lines), for customer contacts.
    logs: String,
}

impl Sweep {
    fn run(&mut self, label: &str, env: &WorkerEnv, commands: &[(String, Vec<String>)]) {
        for (bin, args) in commands {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = env
                .command(bin, &args)
                .output()
                .unwrap_or_else(|e| panic!("run {bin}: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let shown = format!("[{label}] {bin} {args:?} exit {:?}\n", out.status.code());
            assert!(
                out.status.code().is_some_and(|c| c != 101) && !stderr.contains("panicked"),
                "{shown}{stdout}{stderr}"
            );
            self.all.push_str(&shown);
            self.all.push_str(&stdout);
            self.all.push_str(&stderr);
            self.logs.push_str(&stderr);
        }
    }
}

#[test]
fn no_secret_reaches_any_output_of_any_command_at_trace_level() {
    let db = TestDatabase::new();
    let url = db.url().replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{SWEEP_DB_PW}@"),
        1,
    );
    assert!(
        url.contains(SWEEP_DB_PW),
        "unexpected test URL {}",
        db.url()
    );
    let mut conn = db.conn();
    exec(
        &mut conn,
        &format!(
            "INSERT INTO customers (external_id, name, email, phone)
                 VALUES ('mk0', '{SWEEP_NAME}', '{SWEEP_EMAIL}', '{SWEEP_PHONE}')"
        ),
    );
    exec(
        &mut conn,
        &format!(
            "INSERT INTO invoices (number, customer_id, amount, due_date)
                 SELECT 'MK-INV-1', id, 150000, DATE '{}' FROM customers",
            today() + time::Duration::days(3)
        ),
    );
    let fonnte = FonnteFake::with_token(SWEEP_TOKEN);
    let smtp = SmtpPeer::start("scripted");
    let dir = tempfile::tempdir().unwrap();
    let mut env = WorkerEnv::new(&url, &fonnte, dir.path());
    for (k, v) in smtp.env() {
        env.set(k, &v);
    }
    env.set("MAIL_USERNAME", "billing@wikarta.test");
    env.set("MAIL_PASSWORD", SWEEP_SMTP_PW);
    env.set("RUST_LOG", "trace");
    env.set(
        "DUNNING_OUTBOX_DIR",
        &dir.path().join("outbox").display().to_string(),
    );
    let commands = sweep_commands(dir.path());
    let mut sweep = Sweep {
        all: String::new(),
        logs: String::new(),
    };
    sweep.run("working", &env, &commands);

    // The worker once more as supervisor runs it: output into a log file.
    exec(&mut conn, "UPDATE invoices SET status = 'unpaid'");
    let log_path = dir.path().join("worker.log");
    let mut child = env.spawn(&["--once", "--tries", "1"], &log_path);
    assert!(wait_exit(&mut child, std::time::Duration::from_secs(60)).success());
    let log_file = std::fs::read_to_string(&log_path).unwrap();
    sweep.all.push_str(&log_file);
    sweep.logs.push_str(&log_file);

    // The wire paths really ran with the secrets.
    assert!(
        fonnte
            .sent()
            .iter()
            .any(|r| r.header("authorization") == Some(SWEEP_TOKEN)),
        "nothing was sent to Fonnte:\n{}",
        sweep.all
    );
    assert!(
        smtp.logins().iter().any(|a| a.contains(SWEEP_SMTP_PW)),
        "no SMTP login:\n{}",
        sweep.all
    );
    assert!(!smtp.accepted().is_empty(), "no email sent:\n{}", sweep.all);
    assert!(
        sweep.logs.contains("TRACE") || sweep.logs.contains("DEBUG"),
        "RUST_LOG=trace had no effect:\n{}",
        sweep.logs
    );

    // Hostile configurations, each over every command.
    let mut hostile: Vec<(&str, WorkerEnv)> = Vec::new();
    let variant = |f: &dyn Fn(&mut WorkerEnv)| {
        let mut e = WorkerEnv {
            vars: env.vars.clone(),
            dir: env.dir.clone(),
        };
        f(&mut e);
        e
    };
    let port = url
        .split(':')
        .nth(3)
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_owned();
    hostile.push((
        "DATABASE_URL without ://",
        variant(&|e| {
            e.set(
                "DATABASE_URL",
                &url.replacen("postgres://", "postgres//", 1),
            )
        }),
    ));
    hostile.push((
        "DATABASE_URL with @ in the password",
        variant(&|e| {
            e.set(
                "DATABASE_URL",
                &url.replacen(SWEEP_DB_PW, &format!("{SWEEP_DB_PW}@{SWEEP_DB_PW}"), 1),
            )
        }),
    ));
    hostile.push((
        "keyword DSN with a bad sslmode",
        variant(&|e| {
            e.set(
                "DATABASE_URL",
                &format!("host=127.0.0.1 port={port} user=postgres password={SWEEP_DB_PW} sslmode=MkBogus"),
            )
        }),
    ));
    hostile.push((
        "unreachable database",
        variant(&|e| {
            e.set(
                "DATABASE_URL",
                &format!(
                    "postgres://postgres:{SWEEP_DB_PW}@127.0.0.1:{}/x",
                    free_port()
                ),
            )
        }),
    ));
    hostile.push((
        "FONNTE_URL without a scheme",
        variant(&|e| e.set("FONNTE_URL", "api.fonnte.com")),
    ));
    hostile.push((
        "a token Fonnte rejects",
        variant(&|e| e.set("FONNTE_TOKEN", SWEEP_WRONG_TOKEN)),
    ));
    // `.env` files: the variables are not in the environment, only in the file.
    let env_dir = |name: &str, text: String| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(".env"), text).unwrap();
        let mut e = variant(&|_| {});
        e.unset("MAIL_PASSWORD");
        e.unset("DATABASE_URL");
        e.unset("FONNTE_TOKEN");
        e.dir = d;
        e
    };
    hostile.push((
        ".env with an unquoted app password",
        env_dir(
            "env-spaced",
            format!(
                "DATABASE_URL={url}\nFONNTE_TOKEN={SWEEP_TOKEN}\nMAIL_PASSWORD={SWEEP_SPACED_PW}\n"
            ),
        ),
    ));
    hostile.push((
        ".env with an unclosed quote",
        env_dir(
            "env-quote",
            format!(
                "MAIL_PASSWORD={SWEEP_SMTP_PW}\nDATABASE_URL=\"{url}\nFONNTE_TOKEN={SWEEP_TOKEN}\n"
            ),
        ),
    ));
    hostile.push((
        ".env with a bare secret line",
        env_dir(
            "env-bare",
            format!("DATABASE_URL={url}\n{SWEEP_TOKEN} {SWEEP_SMTP_PW}\n"),
        ),
    ));
    for (label, e) in &hostile {
        sweep.run(label, e, &commands);
    }

    // A library's wire dump shows 16 bytes a line as hex and ASCII: a secret spans
    // lines there, so the dumped bytes are put back together before searching.
    let wire = wire_dumps(&sweep.all);
    for secret in [SWEEP_DB_PW, SWEEP_SMTP_PW, SWEEP_TOKEN, SWEEP_WRONG_TOKEN] {
        assert!(
            !wire.contains(secret),
            "secret {secret:?} in a library's wire dump (trace level):\n{wire}"
        );
    }
    sweep.logs.push_str(&wire);

    let mut secrets = vec![
        SWEEP_DB_PW,
        SWEEP_SMTP_PW,
        SWEEP_TOKEN,
        SWEEP_WRONG_TOKEN,
        "MkBogus",
    ];
    secrets.extend(SWEEP_SPACED_PW.split(' '));
    for secret in secrets {
        if let Some(at) = sweep.all.find(secret) {
            panic!("secret {secret:?} shown:\n{}", around(&sweep.all, at));
        }
    }
    for contact in [SWEEP_NAME, SWEEP_EMAIL, SWEEP_PHONE, SWEEP_PHONE_62] {
        if let Some(at) = sweep.logs.find(contact) {
            panic!(
                "{contact:?} unmasked in a log line:\n{}",
                around(&sweep.logs, at)
            );
        }
    }
}

/// The bytes of every hex-dump line (`4d6b 466f … ascii`, as ureq-proto logs at
/// trace), consecutive lines joined, as text.
fn wire_dumps(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let message = line.rsplit_once("] ").map_or(line, |(_, m)| m);
        let groups: Vec<&str> = message.split(' ').take(8).collect();
        if groups.len() < 8 || groups.iter().any(|g| g.len() != 4) {
            continue;
        }
        let mut bytes = Vec::new();
        let mut ok = true;
        for g in &groups {
            for pair in [&g[..2], &g[2..]] {
                match u8::from_str_radix(pair, 16) {
                    Ok(b) => bytes.push(b),
                    Err(_) if pair == "--" => {}
                    Err(_) => ok = false,
                }
            }
        }
        if ok {
            out.extend(bytes);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text around byte `at`, for a failure message.
fn around(text: &str, at: usize) -> String {
    let mut from = text[..at]
        .rfind("\n[")
        .map_or(at.saturating_sub(400), |i| i + 1);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    text[from..].chars().take(at - from + 300).collect()
}
