//! `stats`, `failed`, `retry` and `invoice paid|void` as processes against a real
//! database (and, for the one-per-day rule, the real worker).

mod cmd_support;

use std::path::PathBuf;
use std::process::Command;

use cmd_support::{Env, expect_code, ok, today_jakarta};

/// One customer, two invoices, four deliveries today: one sent and one failed per channel.
fn seeded() -> Env {
    let env = Env::new();
    env.exec(
        "INSERT INTO customers (id, name, email, phone)
             VALUES (1, 'Budi Santoso', 'budi@email.com', '085707211646');
         INSERT INTO invoices (id, number, customer_id, amount, due_date)
             VALUES (1, 'INV-20251115-000001', 1, 150000, current_date + 3),
                    (2, 'INV-20251115-000002', 1, 250000, current_date + 1);
         INSERT INTO notifications (id, invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error, sent_at)
         VALUES (1, 1, 1, 'T-3', 'whatsapp', current_date, '085707211646', 'failed', 3,
                 'request invalid on disconnected device', NULL),
                (2, 1, 1, 'T-3', 'email', current_date, 'budi@email.com', 'sent', 1, NULL, now()),
                (3, 2, 1, 'T-1', 'whatsapp', current_date, '085707211646', 'sent', 1, NULL, now()),
                (4, 2, 1, 'T-1', 'email', current_date, 'budi@email.com', 'failed', 1,
                 'SMTP 550 mailbox unavailable', NULL);
         SELECT setval('notifications_id_seq', 10);",
    );
    env
}

#[test]
fn stats_json_counts_today_the_queue_and_the_quota() {
    let env = seeded();
    env.exec(
        "INSERT INTO notifications (id, invoice_id, customer_id, stage, channel, run_date, recipient, status)
             VALUES (5, 2, 1, 'T-1', 'whatsapp', current_date - 1, '085707211646', 'queued');
         INSERT INTO jobs (notification_id, channel, available_at) VALUES (5, 'whatsapp', now() - interval '5 minutes')",
    );
    let text = ok(&env.run(&["stats", "--json", "--days", "3"]));
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["notifications"]["email"]["sent"], 1, "{v}");
    assert_eq!(v["notifications"]["email"]["failed"], 1, "{v}");
    assert_eq!(v["notifications"]["whatsapp"]["sent"], 1, "{v}");
    assert_eq!(v["notifications"]["whatsapp"]["failed"], 1, "{v}");
    assert_eq!(v["failed_total"], 2);
    assert_eq!(v["queue"]["waiting"], 1);
    assert_eq!(v["queue"]["ready"], 1);
    let age = v["queue"]["oldest_ready_seconds"].as_i64().unwrap();
    assert!((290..400).contains(&age), "{age}");
    assert_eq!(v["whatsapp_quota"]["limit"], 1000);
    assert_eq!(v["whatsapp_quota"]["sent_this_month"], 1);
    assert_eq!(v["whatsapp_quota"]["remaining"], 999);
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2]["date"], today_jakarta().to_string());
    assert_eq!(days[2]["sent"], 2);
    assert_eq!(days[2]["failed"], 2);
    assert_eq!(days[0]["sent"], 0);
}

#[test]
fn stats_draws_a_chart_and_the_quota_in_the_terminal() {
    let mut env = seeded();
    env.set("FONNTE_MONTHLY_QUOTA", "1");
    let text = ok(&env.run(&["stats", "--emoji", "--days", "2"]));
    assert!(
        text.contains("WhatsApp this month: 1 sent of 1 (FONNTE_MONTHLY_QUOTA), 0 left"),
        "{text}"
    );
    assert!(text.contains("Failed deliveries (all days): 2"), "{text}");
    let today = today_jakarta();
    let row = format!("   {:02}-{:02} ", u8::from(today.month()), today.day());
    let line = text
        .lines()
        .find(|l| l.starts_with(&row))
        .unwrap_or_else(|| panic!("{text}"));
    // The busiest day: half sent (20 full blocks), half failed.
    assert!(
        line.contains(&format!("{}{}", "█".repeat(20), "░".repeat(20))),
        "{line}"
    );
    assert!(
        line.contains("2 sent") && line.contains("2 failed"),
        "{line}"
    );
    let plain = ok(&env.run(&["stats", "--days", "2"]));
    assert!(plain.contains(&"#".repeat(20)), "{plain}");
}

#[test]
fn failed_lists_masked_recipients_and_the_last_error() {
    let env = seeded();
    let text = ok(&env.run(&["failed"]));
    assert!(
        !text.contains("085707211646") && !text.contains("budi@email.com"),
        "{text}"
    );
    let wa = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        wa.contains("INV-20251115-000001") && wa.contains("T-3") && wa.contains("whatsapp"),
        "{wa}"
    );
    assert!(
        wa.contains("0857****1646") && wa.contains("request invalid on disconnected device"),
        "{wa}"
    );
    assert!(text.contains("b***@email.com"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["failed", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let tomorrow = (today_jakarta() + time::Duration::days(1)).to_string();
    let none = ok(&env.run(&["failed", "--since", &tomorrow]));
    assert!(none.contains("No failed deliveries."), "{none}");
}

#[test]
fn failed_shows_a_hooks_action_name_unmasked() {
    let env = seeded();
    // The isolation hook of invoice 1 failed: its recipient is the action's name.
    env.exec(
        "INSERT INTO notifications (id, invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error)
         VALUES (6, 1, 1, 'T+7', 'hook', current_date, 'isolir', 'failed', 3,
                 'exit status 3: router busy')",
    );
    let text = ok(&env.run(&["failed"]));
    let hook = text
        .lines()
        .find(|l| l.trim_start().starts_with("6 "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        hook.contains(" hook ") && hook.contains(" isolir ") && hook.contains("router busy"),
        "{hook}"
    );
    assert!(
        text.contains("0857****1646"),
        "messages stay masked: {text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["failed", "--json"]))).unwrap();
    let rows = json.as_array().unwrap();
    let hook = rows.iter().find(|r| r["id"] == 6).unwrap();
    assert_eq!(hook["recipient"], "isolir", "{hook}");
    let wa = rows.iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(wa["recipient"], "0857****1646", "{wa}");
}

#[test]
fn retry_queues_the_given_ids_and_reports_unknown_ones() {
    let env = seeded();
    let out = env.run(&["retry", "1", "2", "999"]);
    let text = expect_code(&out, 1);
    assert!(text.contains("Queued 1 (whatsapp)"), "{text}");
    assert!(
        text.contains("Not retried 2: its status is sent, not failed"),
        "{text}"
    );
    assert!(
        text.contains("Not retried 999: no notification has this id"),
        "{text}"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE id = 1 AND status = 'queued' AND error IS NULL"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM jobs WHERE notification_id = 1 AND queue = 'default'"),
        1
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 1);
}

#[test]
fn retry_all_of_one_channel() {
    let env = seeded();
    ok(&env.run(&["retry", "--all", "--channel", "email"]));
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 1);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM jobs WHERE notification_id = 4"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"),
        1
    );
    ok(&env.run(&["retry", "--all"]));
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"),
        0
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 2);
}

/// `dunning-worker`, next to this package's binary (`cargo build -p dunning-worker`).
fn worker_bin() -> PathBuf {
    let path = PathBuf::from(cmd_support::BIN)
        .parent()
        .expect("target dir")
        .join(format!("dunning-worker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: this test runs the real worker; build it first with `cargo build -p dunning-worker` (scripts/test builds everything)",
        path.display()
    );
    path
}

#[test]
fn a_retried_delivery_still_obeys_one_reminder_per_channel_per_day() {
    let env = Env::new();
    // Invoice 1 failed on WhatsApp yesterday and got another stage's WhatsApp today;
    // invoice 2 only failed yesterday.
    env.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES (1, 'Budi', NULL, '085707211646');
         INSERT INTO invoices (id, number, customer_id, amount, due_date)
             VALUES (1, 'INV-1', 1, 150000, current_date + 3), (2, 'INV-2', 1, 99000, current_date + 3);
         INSERT INTO notifications (id, invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error, sent_at, updated_at)
         VALUES (1, 1, 1, 'T-7', 'whatsapp', current_date - 1, '085707211646', 'failed', 3, 'timeout', NULL, now() - interval '1 day'),
                (2, 1, 1, 'T-3', 'whatsapp', current_date, '085707211646', 'sent', 1, NULL, now(), now()),
                (3, 2, 1, 'T-7', 'whatsapp', current_date - 1, '085707211646', 'failed', 3, 'timeout', NULL, now() - interval '1 day');",
    );
    ok(&env.run(&["retry", "1", "3"]));
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 2);

    let out = Command::new(worker_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", env.db.url())
        .env("DUNNING_OUTBOX_DIR", env.outbox())
        .env("DUNNING_TIMEZONE", "Asia/Jakarta")
        .env("DUNNING_SEND_WINDOW", "00:00-00:00")
        .env("WHATSAPP_MIN_INTERVAL", "0")
        .current_dir(env.dir.path())
        .arg("--once")
        .output()
        .expect("run dunning-worker");
    expect_code(&out, 0);

    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE id = 1 AND status = 'skipped'"),
        1,
        "the retried reminder of an invoice already reminded today must be skipped"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications WHERE id = 3 AND status = 'sent'"),
        1,
        "a retried reminder with no other reminder today is sent"
    );
    let outbox = env.whatsapp_outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert!(outbox[0].contains("INV-2"), "{outbox:?}");
    assert_eq!(env.count("SELECT count(*) AS n FROM jobs"), 0);
}

#[test]
fn invoice_paid_and_void_report_unknown_numbers() {
    let env = seeded();
    let out = env.run(&["invoice", "paid", "INV-20251115-000001", "INV-NOPE"]);
    let text = expect_code(&out, 1);
    assert!(text.contains("INV-20251115-000001: marked paid"), "{text}");
    assert!(
        text.contains("INV-NOPE: no invoice has this number"),
        "{text}"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE id = 1 AND status = 'paid' AND paid_at IS NOT NULL"),
        1
    );
    ok(&env.run(&["invoice", "void", "INV-20251115-000002"]));
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE id = 2 AND status = 'void'"),
        1
    );
}

/// A customer without a name: the run says "(no name)" instead of "to  (…)", and the
/// message greets "Halo Pelanggan,".
#[test]
fn an_empty_customer_name_prints_sensibly() {
    let env = Env::new();
    let due = cmd_support::today_jakarta() + time::Duration::days(3);
    env.exec(&format!(
        "INSERT INTO customers (id, name, email, phone) VALUES (1, '  ', NULL, '085707211646'), (2, '', NULL, NULL);
         INSERT INTO invoices (number, customer_id, amount, due_date)
             VALUES ('INV-1', 1, 150000, '{due}'), ('INV-2', 2, 150000, '{due}');"
    ));
    let text = ok(&env.run(&[]));
    assert!(
        text.contains("Dispatched INV-1 to (no name) (whatsapp)"),
        "{text}"
    );
    assert!(
        text.contains("Skipped INV-2 ((no name) has no email address and no phone number)"),
        "{text}"
    );
    let out = Command::new(worker_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", env.db.url())
        .env("DUNNING_OUTBOX_DIR", env.outbox())
        .env("DUNNING_TIMEZONE", "Asia/Jakarta")
        .env("DUNNING_SEND_WINDOW", "00:00-00:00")
        .env("WHATSAPP_MIN_INTERVAL", "0")
        .current_dir(env.dir.path())
        .arg("--once")
        .output()
        .expect("run dunning-worker");
    expect_code(&out, 0);
    let outbox = env.whatsapp_outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert!(outbox[0].contains("Halo Pelanggan,"), "{outbox:?}");
}
