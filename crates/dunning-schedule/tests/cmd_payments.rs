//! What `doctor` and `stats` say about payments, as processes: the gateway's
//! credentials checked with an authenticated call against the local gateway fakes,
//! flagged payments, and invoices paid at the gateway that the billing source (a real
//! MariaDB) still has unpaid.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, today_jakarta};
use dunning_fake_gateways::{GatewayFake, keys};
use dunning_test_db::mariadb::TestMariaDb;

fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(&format!(" {check}: ")))
        .unwrap_or_else(|| panic!("no {check} line in\n{text}"))
}

fn xendit(env: &mut Env, fake: &GatewayFake, key: &str) {
    env.set("PAYMENT_LINK", "xendit");
    env.set("XENDIT_API_URL", fake.xendit_url());
    env.set("XENDIT_SECRET_KEY", key);
    env.set("XENDIT_CALLBACK_TOKEN", keys::XENDIT_CALLBACK_TOKEN);
}

#[test]
fn doctor_checks_the_gateway_key_with_an_authenticated_call() {
    let fake = GatewayFake::start();
    let mut env = Env::new();
    xendit(&mut env, &fake, keys::XENDIT_SECRET_KEY);
    let text = String::from_utf8_lossy(&env.run(&["doctor", "--emoji"]).stdout).into_owned();
    let l = line(&text, "Payment gateway");
    assert!(l.starts_with('✅'), "{text}");
    assert!(l.contains("accepted XENDIT_SECRET_KEY"), "{text}");
    assert_eq!(
        fake.requests_to("/balance").len(),
        1,
        "one authenticated call"
    );
    assert!(
        line(&text, "Payments").contains("no flagged payment"),
        "{text}"
    );

    let mut bad = Env::new();
    xendit(&mut bad, &fake, "xnd_development_wrongkey");
    let text = expect_code(&bad.run(&["doctor", "--emoji"]), 1);
    let l = line(&text, "Payment gateway");
    assert!(l.starts_with('❌'), "{text}");
    assert!(l.contains("XENDIT_SECRET_KEY"), "{text}");
    assert!(
        !text.contains("wrongkey"),
        "the key is never shown:\n{text}"
    );
}

#[test]
fn flagged_payments_are_listed_by_doctor_and_counted_by_stats() {
    let env = Env::new();
    ok(&env.run(&["migrate"]));
    env.exec(
        "INSERT INTO payments (gateway, reference, order_id, amount, currency, paid_at, raw, flag) VALUES
             ('xendit', 'inv-1', 'INV-NOPE', 150000, 'IDR', now(), '{}', 'unknown_invoice'),
             ('tripay', 'T-2', 'INV-X', 1000, 'IDR', now(), '{}', 'underpaid'),
             ('midtrans', 'm-3', 'INV-Y', 150000, 'USD', now(), '{}', 'wrong_currency')",
    );
    let out = env.run(&["doctor", "--emoji"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let l = line(&text, "Payments");
    assert!(l.starts_with("⚠️"), "{text}");
    assert!(l.contains("3 flagged payment(s)"), "{text}");
    for what in [
        "INV-NOPE (no such invoice) Rp 150000 IDR: unknown_invoice",
        "tripay T-2",
        "underpaid",
        "USD: wrong_currency",
    ] {
        assert!(text.contains(what), "{what}:\n{text}");
    }
    let stats = ok(&env.run(&["stats"]));
    assert!(
        stats.contains(
            "Flagged payments (not marked paid): underpaid 1, unknown_invoice 1, wrong_currency 1"
        ),
        "{stats}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["stats", "--json"]))).unwrap();
    assert_eq!(json["payments"]["flagged"]["underpaid"], 1, "{json}");
}

#[test]
fn paid_at_the_gateway_not_yet_in_billing_is_listed_until_billing_has_it() {
    let billing = TestMariaDb::new();
    let due = today_jakarta() + time::Duration::days(3);
    billing.exec(&format!(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(255), email VARCHAR(255),
             phone VARCHAR(32), updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE invoices (id BIGINT AUTO_INCREMENT PRIMARY KEY, invoice_number VARCHAR(64),
             customer_id BIGINT, total DECIMAL(15,2), due_date DATE, paid_at TIMESTAMP NULL,
             cancelled_at TIMESTAMP NULL, updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO customers (id, name, email, phone) VALUES (1, 'Budi', 'budi@example.id', NULL);
         INSERT INTO invoices (invoice_number, customer_id, total, due_date) VALUES
             ('INV-G1', 1, 150000, '{due}'), ('INV-G2', 1, 150000, '{due}')"
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
    // A verified gateway payment marked INV-G1 paid in Dunning (as dunning-web does).
    env.exec(
        "UPDATE invoices SET status = 'paid', paid_at = now() WHERE number = 'INV-G1';
         INSERT INTO payments (gateway, reference, order_id, invoice_id, amount, currency, paid_at, raw)
             SELECT 'xendit', 'inv-g1', number, id, amount, 'IDR', now(), '{}' FROM invoices WHERE number = 'INV-G1'",
    );
    let text = String::from_utf8_lossy(&env.run(&["doctor", "--emoji"]).stdout).into_owned();
    let l = line(&text, "Paid at the gateway");
    assert!(
        l.starts_with("⚠️")
            && l.contains("1 invoice(s) paid at the gateway, not yet in billing: INV-G1"),
        "{text}"
    );
    let stats = ok(&env.run(&["stats"]));
    assert!(
        stats.contains("Paid at the gateway, not yet in billing: 1"),
        "{stats}"
    );
    // Billing records the payment: nothing is waiting any more.
    billing.exec("UPDATE invoices SET paid_at = NOW() WHERE invoice_number = 'INV-G1'");
    let text = String::from_utf8_lossy(&env.run(&["doctor", "--emoji"]).stdout).into_owned();
    assert!(
        line(&text, "Paid at the gateway").contains("billing has every gateway payment"),
        "{text}"
    );
    assert!(!ok(&env.run(&["stats"])).contains("not yet in billing"));
}
