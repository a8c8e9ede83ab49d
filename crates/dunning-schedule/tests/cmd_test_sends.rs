//! `test-whatsapp` and `test-dunning` as an operator runs them: the seed's output,
//! the confirmation on a terminal, the refusal without one, and "no" doing nothing.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, stdout, today_jakarta};
use dunning_test_fonnte::FonnteFake;

fn with_fonnte(env: &mut Env, fake: &FonnteFake) {
    for (k, v) in fake.env() {
        env.set(k, v);
    }
}

#[test]
fn test_whatsapp_sends_through_fonnte_with_the_seed_output() {
    let fake = FonnteFake::start();
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    let out = env.run(&[
        "test-whatsapp",
        "085707211646",
        "Halo, test WhatsApp!",
        "--yes",
        "--emoji",
    ]);
    let text = ok(&out);
    assert!(
        text.starts_with(
            "Mengirim WhatsApp ke: 085707211646\nPesan: Halo, test WhatsApp!\n✅ WhatsApp berhasil dikirim!\n"
        ),
        "{text}"
    );
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].field("target").as_deref(), Some("6285707211646"));
    assert_eq!(
        sent[0].field("message").as_deref(),
        Some("Halo, test WhatsApp!")
    );
}

#[test]
fn plain_markers_keep_the_same_words() {
    let env = Env::new();
    let out = env.run(&["test-whatsapp", "085707211646", "Halo", "--yes"]);
    let text = ok(&out);
    assert!(text.contains("[ok] WhatsApp berhasil dikirim!\n"), "{text}");
    assert!(!text.contains('✅'), "{text}");
    // The log driver wrote it to the outbox instead of WhatsApp, and says so.
    assert_eq!(env.whatsapp_outbox().len(), 1);
    assert!(text.contains("WHATSAPP_DRIVER=log"), "{text}");
}

#[test]
fn test_whatsapp_on_a_disconnected_device_prints_the_reason_and_the_fix() {
    let fake = FonnteFake::start();
    fake.set_connected(false);
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    let out = env.run(&["test-whatsapp", "085707211646", "Halo", "--yes", "--emoji"]);
    let text = expect_code(&out, 1);
    assert!(text.contains("❌ WhatsApp gagal dikirim:"), "{text}");
    assert!(text.contains("disconnected device"), "{text}");
    assert!(
        text.contains("Fix:") && text.contains("fonnte.com"),
        "{text}"
    );
    assert!(text.contains("QR"), "{text}");
    assert!(!text.contains("berhasil"), "{text}");
}

#[test]
fn a_bad_phone_number_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(&["test-whatsapp", "021 555 1234", "Halo", "--yes"]);
    expect_code(&out, 2);
    assert!(env.whatsapp_outbox().is_empty());
}

#[test]
fn without_a_terminal_and_without_yes_nothing_is_sent_or_written() {
    let fake = FonnteFake::start();
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    let out = env.run(&["test-whatsapp", "085707211646", "Halo"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("Mengirim"), "{}", stdout(&out));

    let out = env.run(&["test-dunning", "customer@email.com", "085707211646"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(fake.requests().is_empty());
    for table in ["customers", "invoices", "notifications", "jobs"] {
        assert_eq!(
            env.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table}"
        );
    }
}

#[test]
fn on_a_terminal_the_prompt_defaults_to_yes() {
    let fake = FonnteFake::start();
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    // Enter alone takes the default.
    let out = env.run_on_terminal(
        &["test-whatsapp", "085707211646", "Halo, test WhatsApp!"],
        "\n",
    );
    let text = ok(&out);
    assert!(
        text.contains("⚠️  Ini akan mengirim WhatsApp ke 085707211646. Lanjutkan? (yes/no) [yes]:"),
        "{text}"
    );
    assert!(text.contains("✅ WhatsApp berhasil dikirim!"), "{text}");
    assert_eq!(fake.sent().len(), 1);
}

#[test]
fn answering_no_sends_and_writes_nothing() {
    let fake = FonnteFake::start();
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    let out = env.run_on_terminal(&["test-whatsapp", "085707211646", "Halo"], "no\n");
    let text = ok(&out);
    assert!(text.contains("Lanjutkan? (yes/no) [yes]:"), "{text}");
    assert!(!text.contains("Mengirim WhatsApp"), "{text}");
    assert!(fake.requests().is_empty());

    let out = env.run_on_terminal(
        &["test-dunning", "customer@email.com", "085707211646"],
        "no\n",
    );
    let text = ok(&out);
    assert!(
        text.contains("Ini akan mengirim WhatsApp & Email ke customer. Lanjutkan? (yes/no) [yes]:"),
        "{text}"
    );
    assert!(!text.contains("Membuat customer test"), "{text}");
    for table in ["customers", "invoices", "notifications", "jobs"] {
        assert_eq!(
            env.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table}"
        );
    }
    assert!(fake.requests().is_empty());
}

fn invoice_number_of(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains("Invoice created: "))
        .unwrap_or_else(|| panic!("no invoice line in\n{text}"));
    line.rsplit(' ').next().unwrap().to_owned()
}

#[test]
fn test_dunning_creates_a_customer_and_an_invoice_due_for_the_stage_today_and_queues_it() {
    let env = Env::new();
    let out = env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--yes",
        "--emoji",
    ]);
    let text = ok(&out);
    let number = invoice_number_of(&text);
    let expected = format!(
        "🔧 Membuat customer test...\n\
         ✅ Customer test dibuat: Customer Test (ID: 1)\n\
         🧾 Membuat invoice test...\n\
         ✅ Invoice created: {number}\n\
         📱 Mengirim dunning notification (T-3)...\n\
         ✅ Job dispatched!\n"
    );
    assert!(text.starts_with(&expected), "{text}");
    let today = today_jakarta();
    let prefix = format!(
        "INV-{:04}{:02}{:02}-",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let digits = number
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{number}"));
    assert!(
        digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{number}"
    );

    // Due in 3 days (T-3 falls on today), one queued ledger row and one job per channel.
    let due = today + time::Duration::days(3);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM invoices WHERE number = '{number}' AND status = 'unpaid'
             AND due_date = '{due}' AND amount = 150000"
        )),
        1
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM notifications n JOIN invoices i ON i.id = n.invoice_id
             WHERE i.number = '{number}' AND n.stage = 'T-3' AND n.status = 'queued'
               AND n.run_date = '{today}'"
        )),
        2
    );
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM jobs j JOIN notifications n ON n.id = j.notification_id
             WHERE j.queue = 'default' AND j.channel = n.channel"
        ),
        2
    );
    // Nothing was sent by the command itself: the worker sends.
    assert!(env.whatsapp_outbox().is_empty());
}

#[test]
fn test_dunning_reuses_the_existing_customer_and_takes_the_stage() {
    let env = Env::new();
    env.exec(
        "INSERT INTO customers (name, email, phone) VALUES ('Someone Else', 'other@email.com', '6281111111111');
         INSERT INTO customers (name, email, phone) VALUES ('Dimas Pratama C', 'Customer@Email.com', '6285707211646')",
    );
    let out = env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--stage",
        "T+3",
        "--yes",
        "--emoji",
    ]);
    let text = ok(&out);
    assert!(
        text.contains("✅ Menggunakan customer existing: Dimas Pratama C (ID: 2)\n"),
        "{text}"
    );
    assert!(
        text.contains("📱 Mengirim dunning notification (T+3)...\n"),
        "{text}"
    );
    let due = today_jakarta() - time::Duration::days(3);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM invoices WHERE customer_id = 2 AND due_date = '{due}'"
        )),
        1
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM customers"), 2);

    // A second test gets a new invoice number and the same customer.
    let again = ok(&env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--stage",
        "T+3",
        "--yes",
    ]));
    assert!(
        again.contains("[ok] Menggunakan customer existing: Dimas Pratama C (ID: 2)"),
        "{again}"
    );
    assert_ne!(invoice_number_of(&text), invoice_number_of(&again));
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 4);
}

#[test]
fn test_dunning_refuses_a_stage_that_is_not_configured() {
    let env = Env::new();
    let out = env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--stage",
        "T-5",
        "--yes",
    ]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("DUNNING_STAGES"), "{}", stderr(&out));
    assert_eq!(env.count("SELECT count(*) AS n FROM invoices"), 0);
}

/// After `test-dunning`, the daily runs of the following days (its T-1 and T+3, and a
/// rerun today) find nothing to remind: the test invoice is for the test only.
#[test]
fn test_dunning_leaves_nothing_for_the_daily_run() {
    let env = Env::new();
    let text = ok(&env.run(&[
        "test-dunning",
        "customer@email.com",
        "085707211646",
        "--yes",
    ]));
    let number = invoice_number_of(&text);
    assert!(
        text.contains(&format!(
            "{number} is a test invoice: the daily run never reminds it"
        )),
        "{text}"
    );
    let today = today_jakarta();
    // Due today + 3: T-1 falls on today + 2, T+3 on today + 6.
    for days in [0, 2, 6] {
        let date = (today + time::Duration::days(days)).to_string();
        let run = ok(&env.run(&["--date", &date, "--catch-up-days", "0"]));
        assert!(!run.contains(&number), "{date}:\n{run}");
        assert!(run.contains("Dispatched: 0"), "{date}:\n{run}");
    }
    // Only the test's own two reminders exist, and the worker may still send them.
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE stage = 'T-3'"),
        2
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 2);
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 2);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE is_test AND status = 'unpaid'"),
        1
    );
}

/// Each test message is in the ledger as a sent WhatsApp message: `stats` counts it,
/// and at the quota the command refuses like the worker holds reminders back.
#[test]
fn test_whatsapp_counts_against_the_monthly_quota() {
    let fake = FonnteFake::start();
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    env.set("FONNTE_MONTHLY_QUOTA", "2");
    for _ in 0..2 {
        let text = ok(&env.run(&["test-whatsapp", "085707211646", "Halo", "--yes"]));
        assert!(
            text.contains("counts against the monthly WhatsApp quota"),
            "{text}"
        );
    }
    assert_eq!(fake.sent().len(), 2);
    let stats = ok(&env.run(&["stats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(v["whatsapp_quota"]["sent_this_month"], 2, "{stats}");
    assert_eq!(v["notifications"]["whatsapp"]["sent"], 2, "{stats}");
    // The test messages leave nothing the daily run would remind.
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE status = 'unpaid' OR NOT is_test"),
        0
    );

    let out = env.run(&["test-whatsapp", "085707211646", "Halo", "--yes"]);
    let text = expect_code(&out, 1);
    assert!(text.contains("quota used up: 2 of 2"), "{text}");
    assert!(text.contains("FONNTE_MONTHLY_QUOTA"), "{text}");
    assert_eq!(fake.sent().len(), 2, "nothing sent past the quota");
}

/// A transient failure is not retried by `test-whatsapp`: its text must not say so.
#[test]
fn test_whatsapp_does_not_promise_a_retry() {
    use dunning_test_fonnte::Reply;
    let fake = FonnteFake::start();
    fake.always(Some(Reply::html(502)));
    let mut env = Env::new();
    with_fonnte(&mut env, &fake);
    let out = env.run(&["test-whatsapp", "085707211646", "Halo", "--yes"]);
    let text = expect_code(&out, 1);
    let err = stderr(&out);
    let all = format!("{text}{err}");
    assert!(text.contains("WhatsApp gagal dikirim"), "{all}");
    assert!(text.contains("502"), "{all}");
    assert!(!text.contains("will retry"), "{all}");
    assert!(text.contains("does not retry"), "{all}");
    // The command's own error line; the channel's WARN log line is the channel's text.
    let error_line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        error_line.contains("not retried") && !error_line.contains("will retry"),
        "{all}"
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM notifications"), 0);
}
