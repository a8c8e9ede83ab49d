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
