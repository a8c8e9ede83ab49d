//! `dunning-schedule report`: its numbers against the ledger rows the test wrote, its
//! JSON shape, and `--send` through a real SMTP server (aiosmtpd) on loopback.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr};
use dunning_test_smtp::SmtpPeer;
use serde_json::Value;

/// The report's day: fixed, so that "yesterday", the month and its forecast are known.
const DAY: &str = "2026-11-10";

/// One ledger row the test inserts: its own invoice (far from due, unpaid, so no
/// forecast day touches it), created on `created` (local time, +07:00).
struct Row {
    stage: &'static str,
    channel: &'static str,
    status: &'static str,
    created: &'static str,
    attempts: i32,
}

const ROWS: &[Row] = &[
    // Yesterday (2026-11-09).
    Row {
        stage: "T-7",
        channel: "email",
        status: "sent",
        created: "2026-11-09 08:01",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "email",
        status: "sent",
        created: "2026-11-09 08:02",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "email",
        status: "sent",
        created: "2026-11-09 08:03",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "email",
        status: "failed",
        created: "2026-11-09 08:04",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "email",
        status: "skipped",
        created: "2026-11-09 08:05",
        attempts: 0,
    },
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "sent",
        created: "2026-11-09 08:06",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "sent",
        created: "2026-11-09 08:07",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "failed",
        created: "2026-11-09 08:08",
        attempts: 3,
    },
    // Today (2026-11-10), until the report.
    Row {
        stage: "T-7",
        channel: "email",
        status: "sent",
        created: "2026-11-10 08:01",
        attempts: 1,
    },
    Row {
        stage: "T-7",
        channel: "email",
        status: "queued",
        created: "2026-11-10 08:02",
        attempts: 0,
    },
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "queued",
        created: "2026-11-10 08:03",
        attempts: 0,
    },
    // Two days ago: outside the report, but its WhatsApp counts for the month's quota.
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "sent",
        created: "2026-11-08 08:00",
        attempts: 1,
    },
    // Last month: neither.
    Row {
        stage: "T-7",
        channel: "whatsapp",
        status: "sent",
        created: "2026-10-31 08:00",
        attempts: 1,
    },
];

/// Writes the rows above, a paid invoice reminded yesterday (recovery), one that
/// the rest of November will remind (forecast) and a reply waiting for an answer.
fn ledger(env: &Env) {
    env.exec(
        "INSERT INTO customers (id, name, email, phone) VALUES
           (1, 'Andi', 'andi@example.com', '081200000001'),
           (2, 'Bunga', 'bunga@example.com', '081200000002'),
           (3, 'Citra', 'citra@example.com', '081200000003')",
    );
    for (i, r) in ROWS.iter().enumerate() {
        let recipient = if r.channel == "email" {
            "andi@example.com"
        } else {
            "081200000001"
        };
        let sent_at = if r.status == "sent" {
            format!("'{}+07'", r.created)
        } else {
            "NULL".into()
        };
        let error = match r.status {
            "failed" => "'refused by the server'",
            "skipped" => "'no contact'",
            _ => "NULL",
        };
        env.exec(&format!(
            "INSERT INTO invoices (id, number, customer_id, amount, due_date, status)
               VALUES ({id}, 'INV-R-{id}', 1, 100000, '2027-06-01', 'unpaid');
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                        status, attempts, error, created_at, updated_at, sent_at)
               VALUES ({id}, 1, '{stage}', '{channel}', '{day}', '{recipient}', '{status}', {attempts},
                       {error}, '{created}+07', '{created}+07', {sent_at})",
            id = 100 + i,
            stage = r.stage,
            channel = r.channel,
            day = &r.created[..10],
            status = r.status,
            attempts = r.attempts,
            created = r.created,
        ));
    }
    env.exec(
        "INSERT INTO invoices (id, number, customer_id, amount, due_date, status, paid_at)
           VALUES (200, 'INV-PAID', 2, 250000, '2026-11-12', 'paid', '2026-11-09 15:00+07');
         INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, created_at, updated_at, sent_at)
           VALUES (200, 2, 'T-3', 'email', '2026-11-09', 'bunga@example.com', 'sent', 1,
                   '2026-11-09 09:00+07', '2026-11-09 09:00+07', '2026-11-09 09:00+07');
         -- Due 2026-11-20: T-7 (11-13), T-3 (11-17), T-1 (11-19), T+3 (11-23) are ahead.
         INSERT INTO invoices (id, number, customer_id, amount, due_date, status)
           VALUES (300, 'INV-AHEAD', 3, 150000, '2026-11-20', 'unpaid');
         INSERT INTO whatsapp_replies (dedup_key, sender, message, received_at, customer_id, intent, flagged)
           VALUES ('k1', '081200000003', 'sudah saya transfer kemarin', '2026-11-10 07:30+07', 3, 'paid', true),
                  ('k2', '081200000003', 'terima kasih', '2026-11-10 07:31+07', 3, 'thanks', false);
         -- The ids above were given by hand: move the sequences past them.
         SELECT setval('customers_id_seq', 1000), setval('invoices_id_seq', 1000);",
    );
}

/// What the test wrote, counted by channel, status and day.
fn expected(channel: &str, status: &str, day: &str) -> i64 {
    let extra = i64::from(channel == "email" && status == "sent" && day == "2026-11-09");
    ROWS.iter()
        .filter(|r| r.channel == channel && r.status == status && r.created.starts_with(day))
        .count() as i64
        + extra
}

#[test]
fn the_report_counts_what_the_ledger_holds() {
    let env = Env::new();
    ledger(&env);
    let json: Value = serde_json::from_str(&ok(&env.run(&["report", "--date", DAY, "--json"])))
        .expect("report --json is JSON");

    assert_eq!(json["date"], DAY);
    for (key, day) in [("yesterday", "2026-11-09"), ("today", "2026-11-10")] {
        assert_eq!(json[key]["date"], day);
        for channel in ["email", "whatsapp"] {
            for status in ["sent", "failed", "skipped", "queued"] {
                assert_eq!(
                    json[key]["channels"][channel][status],
                    expected(channel, status, day),
                    "{key} {channel} {status}: {json:#}"
                );
            }
        }
    }
    // Sent in November: the two of yesterday and the one of 11-08, not October's.
    let quota = &json["whatsapp_quota"];
    assert_eq!(quota["limit"], 1000);
    assert_eq!(quota["sent_this_month"], 3);
    assert_eq!(quota["remaining"], 997);
    // INV-AHEAD's four stages on WhatsApp (Citra has a phone) from 11-11 to 11-30,
    // and the one WhatsApp still queued today.
    assert_eq!(quota["forecast_month"]["scheduled"], 4, "{json:#}");
    assert_eq!(quota["forecast_month"]["queued"], 1);
    assert_eq!(quota["forecast_month"]["total"], 3 + 1 + 4);

    let failed = json["action_needed"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{json:#}");
    let email = failed.iter().find(|f| f["channel"] == "email").unwrap();
    assert_eq!(email["invoice"], "INV-R-103");
    assert_eq!(
        email["recipient"],
        dunning_core::mask::mask_recipient("andi@example.com")
    );
    assert_eq!(email["fix"], dunning_channels::fix::MAIL_ADDRESS);
    let whatsapp = failed.iter().find(|f| f["channel"] == "whatsapp").unwrap();
    assert_eq!(whatsapp["fix"], dunning_channels::fix::WHATSAPP_NETWORK);

    assert_eq!(json["replies_waiting"]["count"], 1);

    // Reminders sent yesterday and today: the sent T-7 rows of ROWS (none paid) and
    // INV-PAID's T-3, paid six hours after it.
    let recovered = &json["recovered"];
    assert_eq!(recovered["paid"], 1);
    assert_eq!(recovered["paid_amount"], 250000);
    let stages = recovered["stages"].as_array().unwrap();
    let t3 = stages.iter().find(|s| s["stage"] == "T-3").unwrap();
    assert_eq!(
        (t3["reminded"].as_i64(), t3["paid"].as_i64()),
        (Some(1), Some(1))
    );
    let t7 = stages.iter().find(|s| s["stage"] == "T-7").unwrap();
    let t7_sent = ROWS
        .iter()
        .filter(|r| {
            r.status == "sent"
                && (r.created.starts_with("2026-11-09") || r.created.starts_with("2026-11-10"))
        })
        .count() as i64;
    assert_eq!(
        (t7["reminded"].as_i64(), t7["paid"].as_i64()),
        (Some(t7_sent), Some(0))
    );
    assert_eq!(
        json["gateway_not_in_billing"]["unpaid_in_billing"],
        serde_json::json!([])
    );

    // The same numbers in the Indonesian text.
    let text = ok(&env.run(&["report", "--date", DAY]));
    for line in [
        "Laporan Dunning Wikarta Provider — Selasa 10 November 2026",
        "Email     terkirim 4 | 1   gagal 1 | 0   dilewati 1 | 0   antre 0 | 1",
        "WhatsApp  terkirim 2 | 0   gagal 1 | 0   dilewati 0 | 0   antre 0 | 1",
        "Kuota WhatsApp: 3 terpakai bulan ini, sisa 997 dari 1000",
        "Perkiraan sampai akhir bulan: 8 pesan (3 terkirim + 1 antre + 4 terjadwal",
        "2 pengiriman gagal sejak kemarin:",
        "Lalu kirim ulang: dunning-schedule retry",
        "Balasan pelanggan menunggu dijawab: 1",
        "T-3: 1 dari 1 tagihan, Rp 250.000",
        "Pembayaran gateway belum tercatat di billing: 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains(&format!(
            "Perbaikan: {}",
            dunning_channels::fix::MAIL_ADDRESS
        )),
        "{text}"
    );
    assert!(
        !text.contains("andi@example.com"),
        "recipients are masked:\n{text}"
    );
}

#[test]
fn send_without_a_recipient_names_the_variables() {
    let env = Env::new();
    let out = env.run(&["report", "--send"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("DUNNING_REPORT_EMAIL") && err.contains("DUNNING_REPORT_WHATSAPP"),
        "{err}"
    );
}

#[test]
fn send_mails_the_report_and_counts_the_whatsapp_copy() {
    let smtp = SmtpPeer::start("plain");
    let mut env = Env::new();
    ledger(&env);
    for (k, v) in [
        ("MAIL_MAILER", "smtp".to_owned()),
        ("MAIL_HOST", "127.0.0.1".to_owned()),
        ("MAIL_PORT", smtp.port.to_string()),
        ("MAIL_ENCRYPTION", "none".to_owned()),
        ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".to_owned()),
        ("DUNNING_REPORT_EMAIL", "noc@wikarta.com".to_owned()),
        ("DUNNING_REPORT_WHATSAPP", "085700000009".to_owned()),
        ("WHATSAPP_MIN_INTERVAL", "0".to_owned()),
    ] {
        env.set(k, v);
    }
    let out = env.run(&["report", "--date", DAY, "--send"]);
    let printed = ok(&out);
    let mail = smtp
        .wait_received(1)
        .into_iter()
        .next()
        .expect("no message reached the SMTP server");
    assert_eq!(mail["to"], "noc@wikarta.com");
    assert_eq!(mail["subject"], "Laporan Dunning 10 November 2026");
    let body = mail["text"].as_str().unwrap();
    assert!(
        body.contains("Balasan pelanggan menunggu dijawab: 1"),
        "{body}"
    );
    assert!(
        body.contains("terkirim 4 | 1") && printed.contains("terkirim 4 | 1"),
        "{body}"
    );

    // The WhatsApp copy went through the driver (the log outbox here) and is in the
    // ledger, so the month's quota counts it.
    let outbox = env.whatsapp_outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert!(outbox[0].contains("Laporan Dunning"), "{}", outbox[0]);
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM notifications
             WHERE channel = 'whatsapp' AND status = 'sent' AND recipient = '085700000009'"
        ),
        1
    );
    assert!(
        stderr(&out).contains("Report emailed to"),
        "{}",
        stderr(&out)
    );
}

/// A gateway paid two invoices mirrored from a real billing database (MariaDB):
/// billing has recorded one payment, not the other. The report asks billing live
/// and lists only the one billing still has unpaid; with billing unreachable it
/// lists both as unchecked, with the reason.
#[test]
fn gateway_payments_billing_still_has_unpaid_are_listed() {
    use dunning_test_db::mariadb::TestMariaDb;
    let due = cmd_support::today_jakarta() + time::Duration::days(20);
    let billing = TestMariaDb::new();
    billing.exec(&format!(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(255), email VARCHAR(255),
             phone VARCHAR(32), updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE invoices (id BIGINT AUTO_INCREMENT PRIMARY KEY, invoice_number VARCHAR(64),
             customer_id BIGINT, total DECIMAL(15,2), due_date DATE, paid_at TIMESTAMP NULL,
             cancelled_at TIMESTAMP NULL, updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO customers (id, name, email, phone)
             VALUES (1, 'Budi Santoso', 'budi@example.id', '085707211646');
         INSERT INTO invoices (invoice_number, customer_id, total, due_date, paid_at)
             VALUES ('INV-NOT-YET', 1, 150000.00, '{due}', NULL),
                    ('INV-ENTERED', 1, 200000.00, '{due}', NULL)"
    ));
    let mut env = Env::new();
    env.set("BILLING_DATABASE_URL", billing.url());
    env.set(
        "BILLING_QUERIES",
        format!(
            "{}/../../docs/examples/billing.toml",
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    ok(&env.run(&["migrate"]));
    ok(&env.run(&["sync"]));
    // The gateway's callbacks marked both paid in Dunning (as dunning-web does) ...
    env.exec(
        "INSERT INTO payments (gateway, reference, order_id, invoice_id, amount, currency, paid_at, raw)
           SELECT 'xendit', 'ref-' || number, number, id, amount, 'IDR', now() - interval '1 hour', '{}'
           FROM invoices WHERE number IN ('INV-NOT-YET', 'INV-ENTERED');
         UPDATE invoices SET status = 'paid', paid_at = now() - interval '1 hour'
           WHERE number IN ('INV-NOT-YET', 'INV-ENTERED');",
    );
    // ... and the cashier entered one of them in billing.
    billing.exec("UPDATE invoices SET paid_at = NOW() WHERE invoice_number = 'INV-ENTERED'");

    let json: Value = serde_json::from_str(&ok(&env.run(&["report", "--json"]))).unwrap();
    let g = &json["gateway_not_in_billing"];
    let listed: Vec<&str> = g["unpaid_in_billing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["invoice"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["INV-NOT-YET"], "{g:#}");
    assert_eq!(g["unpaid_in_billing"][0]["amount"], 150000);
    assert_eq!(g["unchecked"], serde_json::json!([]), "{g:#}");
    let text = ok(&env.run(&["report"]));
    assert!(
        text.contains("Pembayaran gateway belum tercatat di billing: 1")
            && text.contains("INV-NOT-YET Rp 150.000 via xendit (ref-INV-NOT-YET)"),
        "{text}"
    );

    // Billing unreachable: both are listed as unchecked, with the reason.
    env.set(
        "BILLING_DATABASE_URL",
        "mysql://dunning:pw@127.0.0.1:9/billing",
    );
    let json: Value = serde_json::from_str(&ok(&env.run(&["report", "--json"]))).unwrap();
    let g = &json["gateway_not_in_billing"];
    assert_eq!(g["unchecked"].as_array().unwrap().len(), 2, "{g:#}");
    assert!(g["unchecked_reason"].is_string(), "{g:#}");
}
