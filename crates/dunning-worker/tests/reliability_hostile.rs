//! Issue 9, hostile input: malformed contacts, hostile names and amounts, SMTP
//! servers answering 421/450/550 or dropping the connection mid-DATA, Fonnte
//! answering every documented error reason, HTTP 500, nothing (slow), 10 MB, invalid
//! JSON. Each gets a clear error in the ledger and every other job is delivered.

mod reliability_support;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Nullable, Text};
use dunning_test_db::TestDatabase;
use dunning_test_fonnte::{DOCUMENTED_REASONS, FonnteFake, Reply};
use dunning_test_smtp::SmtpPeer;
use reliability_support::*;

fn customer(
    conn: &mut PgConnection,
    n: usize,
    name: &str,
    email: Option<&str>,
    phone: Option<&str>,
    amount: i64,
) -> String {
    let number = format!("H-{n:04}");
    diesel::sql_query(
        "WITH c AS (INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id)
         INSERT INTO invoices (number, customer_id, amount, due_date) SELECT $4, id, $5, $6 FROM c",
    )
    .bind::<Text, _>(name)
    .bind::<Nullable<Text>, _>(email)
    .bind::<Nullable<Text>, _>(phone)
    .bind::<Text, _>(&number)
    .bind::<BigInt, _>(amount)
    .bind::<SqlDate, _>(today() + time::Duration::days(3))
    .execute(conn)
    .unwrap();
    number
}

fn row<'a>(rows: &'a [LedgerRow], number: &str, channel: &str) -> &'a LedgerRow {
    rows.iter()
        .find(|r| r.number == number && r.channel == channel)
        .unwrap_or_else(|| panic!("no {channel} row for {number}"))
}

#[test]
fn hostile_customers_and_smtp_refusals_fail_clearly_and_everything_else_is_delivered() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let ok_phone = "085707211646";
    let mut n = 0;
    let mut add = |conn: &mut PgConnection,
                   name: &str,
                   email: Option<&str>,
                   phone: Option<&str>,
                   amount: i64| {
        n += 1;
        customer(conn, n, name, email, phone, amount)
    };
    let normal = add(
        &mut conn,
        "Budi",
        Some("budi@example.com"),
        Some(ok_phone),
        150_000,
    );
    let bad_phones: Vec<(String, &str)> = [
        "12345",
        "+1 555 0100",
        "abc",
        "0812345678901234567",
        "08123",
    ]
    .into_iter()
    .map(|p| {
        (
            add(&mut conn, "Phone", Some("p@example.com"), Some(p), 1000),
            p,
        )
    })
    .collect();
    let bad_emails: Vec<(String, &str)> = [
        "no-at-sign",
        "a@b",
        "x@@y.com",
        "evil@example.com\r\nBcc: victim@example.com",
        "Customer <c@example.com>",
    ]
    .into_iter()
    .map(|e| (add(&mut conn, "Email", Some(e), Some(ok_phone), 1000), e))
    .collect();
    let long = "Panjang ".repeat(2000);
    let hostile_names = [
        "Budi\r\nBcc: victim@example.com",
        "<script>alert(1)</script> & <b>Budi</b>",
        long.as_str(),
        "محمد عبد الله",
        "\u{202E}moc.liame\u{202C} Budi",
    ];
    let names: Vec<String> = hostile_names
        .iter()
        .map(|nm| add(&mut conn, nm, Some("n@example.com"), Some(ok_phone), 1000))
        .collect();
    let zero = add(&mut conn, "Nol", Some("z@example.com"), Some(ok_phone), 0);
    let huge = add(
        &mut conn,
        "Besar",
        Some("h@example.com"),
        Some(ok_phone),
        i64::MAX,
    );
    let smtp_cases: Vec<(String, &str)> = ["rcpt421", "rcpt450", "rcpt550", "dropdata"]
        .into_iter()
        .map(|m| {
            (
                add(
                    &mut conn,
                    "Smtp",
                    Some(&format!("{m}@example.com")),
                    Some(ok_phone),
                    1000,
                ),
                m,
            )
        })
        .collect();
    schedule(&mut conn);

    let fonnte = FonnteFake::start();
    let smtp = SmtpPeer::start("scripted");
    let outbox = tempfile::tempdir().unwrap();
    let mut env = WorkerEnv::new(db.url(), &fonnte, outbox.path());
    for (k, v) in smtp.env() {
        env.set(k, &v);
    }
    let (status, log) = env.run(
        WORKER,
        &[
            "--once",
            "--tries",
            "2",
            "--backoff",
            "0",
            "--retry-after",
            "2",
        ],
    );
    assert!(status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM jobs"),
        0,
        "{log}"
    );
    let rows = ledger(&mut conn);

    for (number, phone) in &bad_phones {
        let w = row(&rows, number, "whatsapp");
        assert_eq!(w.status, "failed", "{phone:?}: {w:?}");
        assert_eq!(w.attempts, 1, "a bad number is not retried: {w:?}");
        let e = w.error.as_deref().unwrap();
        assert!(
            e.contains(phone.trim()) || e.to_lowercase().contains("number"),
            "unclear error for {phone:?}: {e}"
        );
        assert_eq!(row(&rows, number, "email").status, "sent");
    }
    for (number, email) in &bad_emails {
        let m = row(&rows, number, "email");
        assert_eq!(m.status, "failed", "{email:?}: {m:?}");
        assert_eq!(m.attempts, 1, "{m:?}");
        assert!(
            m.error.as_deref().unwrap().to_lowercase().contains("email")
                || m.error.as_deref().unwrap().contains('@'),
            "{m:?}"
        );
        assert_eq!(row(&rows, number, "whatsapp").status, "sent");
    }
    for number in names.iter().chain([&normal, &zero, &huge]) {
        for ch in ["email", "whatsapp"] {
            assert_eq!(
                row(&rows, number, ch).status,
                "sent",
                "{:?}",
                row(&rows, number, ch)
            );
        }
    }
    for (number, mode) in &smtp_cases {
        let m = row(&rows, number, "email");
        assert_eq!(m.status, "failed", "{mode}: {m:?}");
        let e = m.error.as_deref().unwrap();
        match *mode {
            "rcpt550" => {
                assert_eq!(m.attempts, 1, "550 is permanent: {m:?}");
                assert!(e.contains("550"), "{e}");
            }
            "rcpt450" | "rcpt421" => {
                assert_eq!(m.attempts, 2, "4xx is retried: {m:?}");
                assert!(e.contains(&mode[4..]), "{e}");
            }
            _ => assert_eq!(m.attempts, 2, "a dropped connection is retried: {m:?}"),
        }
        assert_eq!(row(&rows, number, "whatsapp").status, "sent");
    }

    // What reached the SMTP server: no injected header, escaped HTML, exact amounts.
    let accepted = smtp.accepted();
    let sent_emails = rows
        .iter()
        .filter(|r| r.channel == "email" && r.status == "sent")
        .count();
    assert_eq!(accepted.len(), sent_emails);
    for (rcpts, data) in &accepted {
        assert_eq!(rcpts.len(), 1, "one recipient per message: {rcpts:?}");
        assert!(!rcpts[0].contains("victim"), "{rcpts:?}");
        let head = data.split("\r\n\r\n").next().unwrap();
        for line in head.lines() {
            assert!(
                !line.to_ascii_lowercase().starts_with("bcc:"),
                "injected header: {line}"
            );
        }
        // The HTML alternative escapes the customer's name.
        let html = data
            .split("Content-Type: text/html")
            .nth(1)
            .expect("an HTML part");
        assert!(
            !html.contains("<script>") && !html.contains("<b>Budi"),
            "unescaped HTML:\n{html}"
        );
    }
    assert!(
        accepted.iter().any(|(_, d)| d.contains("&lt;script&gt;")),
        "the HTML name was not delivered escaped"
    );
    let all = accepted.iter().map(|(_, d)| d.as_str()).collect::<String>();
    assert!(all.contains("Rp 0"), "amount 0");
    let wa: Vec<String> = fonnte
        .sent()
        .iter()
        .filter_map(|r| r.field("message"))
        .collect();
    assert!(
        wa.iter()
            .any(|m| m.contains("Rp 9.223.372.036.854.775.807")),
        "absurd amount shown exactly"
    );
    assert!(
        wa.iter().all(|m| !m.contains("\r\nBcc")),
        "CR/LF from a name reached WhatsApp unchanged"
    );
}

/// A name with NUL cannot be stored (PostgreSQL TEXT rejects it): the insert fails
/// with a clear error instead of storing a truncated name.
#[test]
fn a_nul_in_a_name_is_refused_by_the_database_with_a_clear_error() {
    let db = TestDatabase::new();
    let err = diesel::sql_query("INSERT INTO customers (name) VALUES ($1)")
        .bind::<Text, _>("Budi\0Evil")
        .execute(&mut db.conn())
        .unwrap_err()
        .to_string();
    assert!(err.contains("0x00"), "{err}");
    // An invoice without a customer cannot exist either.
    let err = diesel::sql_query("INSERT INTO invoices (number, customer_id, amount, due_date) VALUES ('X', 999, 1, current_date)")
        .execute(&mut db.conn())
        .unwrap_err()
        .to_string();
    assert!(err.contains("foreign key"), "{err}");
}

/// Fonnte's answers, one scenario per job. `None`: the job waits (channel paused,
/// tries not burned); `Some(status, attempts)`: its final ledger state.
type Case = (String, Reply, Option<(&'static str, i32)>);

#[test]
fn every_fonnte_failure_is_classified_and_email_keeps_flowing() {
    let big = vec![b' '; 10 * 1024 * 1024];
    let mut cases: Vec<Case> = Vec::new();
    for reason in DOCUMENTED_REASONS {
        let r = reason.to_ascii_lowercase();
        let expect = if [
            "token",
            "unknown user",
            "disconnected",
            "quota",
            "invalid device",
        ]
        .iter()
        .any(|k| r.contains(k))
        {
            None
        } else if r.contains("request timeout") {
            Some(("sent", 2))
        } else {
            Some(("failed", 1))
        };
        cases.push((format!("reason {reason:?}"), Reply::reason(reason), expect));
    }
    cases.push(("HTTP 500".into(), Reply::html(500), Some(("sent", 2))));
    cases.push((
        "no answer (slow)".into(),
        Reply::Hang(Duration::from_secs(3)),
        Some(("sent", 2)),
    ));
    cases.push((
        "10 MB body".into(),
        Reply::Http {
            status: 200,
            content_type: "application/json".into(),
            body: big,
        },
        Some(("sent", 2)),
    ));
    cases.push((
        "invalid JSON".into(),
        Reply::Http {
            status: 200,
            content_type: "application/json".into(),
            body: b"{\"status\":tru".to_vec(),
        },
        Some(("sent", 2)),
    ));
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let fonnte = FonnteFake::start();
    let outbox = tempfile::tempdir().unwrap();
    let mut env = WorkerEnv::new(db.url(), &fonnte, outbox.path());
    env.set("FONNTE_TIMEOUT", "1");
    // Earlier cases' invoices are marked paid below: no receipts, only the case's send.
    env.set("DUNNING_RECEIPTS", "off");
    for (i, (what, reply, expect)) in cases.into_iter().enumerate() {
        // One invoice per case, with an email job beside the WhatsApp one.
        exec(&mut conn, "DELETE FROM jobs");
        exec(
            &mut conn,
            "UPDATE channel_state SET paused_until = NULL, pause_reason = NULL",
        );
        let number = customer(
            &mut conn,
            i,
            "Budi",
            Some("budi@example.com"),
            Some(&format!("0812{:08}", i + 1)),
            1000,
        );
        exec(
            &mut conn,
            "UPDATE invoices SET status = 'paid' WHERE number <> '' AND id < (SELECT max(id) FROM invoices)",
        );
        schedule(&mut conn);
        let before = fonnte.sent().len();
        fonnte.push_reply(reply);
        let (status, log) = env.run(
            WORKER,
            &[
                "--once",
                "--tries",
                "2",
                "--backoff",
                "0",
                "--retry-after",
                "30",
            ],
        );
        assert!(status.success(), "{what}: {log}");
        assert!(!log.contains("panicked"), "{what}: {log}");
        let rows = ledger(&mut conn);
        assert_eq!(
            row(&rows, &number, "email").status,
            "sent",
            "{what}: email must keep flowing"
        );
        let w = row(&rows, &number, "whatsapp");
        match expect {
            None => {
                assert_eq!(w.status, "queued", "{what}: {w:?}");
                let attempts = count(
                    &mut conn,
                    "SELECT COALESCE(max(attempts), 0)::bigint AS n FROM jobs",
                );
                assert_eq!(attempts, 0, "{what}: a pause must not burn tries");
                assert_eq!(
                    count(
                        &mut conn,
                        "SELECT count(*) AS n FROM channel_state WHERE channel = 'whatsapp' AND paused_until > now()"
                    ),
                    1,
                    "{what}: WhatsApp not paused"
                );
                assert!(
                    log.contains("paused") && log.contains("Fix:"),
                    "{what}: no clear log line:\n{log}"
                );
            }
            Some((st, attempts)) => {
                assert_eq!(
                    (w.status.as_str(), w.attempts),
                    (st, attempts),
                    "{what}: {w:?}\n{log}"
                );
                if st == "failed" {
                    assert!(
                        w.error.as_deref().is_some_and(|e| e.contains("Fonnte")),
                        "{what}: {w:?}"
                    );
                }
                assert_eq!(
                    fonnte.sent().len() - before,
                    attempts as usize,
                    "{what}: requests"
                );
            }
        }
    }
}
