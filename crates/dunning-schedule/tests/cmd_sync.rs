//! `dunning-schedule sync`, the sync before the daily run, `--no-sync`, and what
//! `doctor` and `stats` say about the billing source, against a real MariaDB.

mod cmd_support;

use cmd_support::{Env, expect_code, ok, stderr, today_jakarta};
use dunning_test_db::mariadb::TestMariaDb;

fn laravel_queries() -> String {
    format!(
        "{}/../../docs/examples/billing.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A Laravel-like billing database with one customer and `invoices`.
fn billing(invoices: &str) -> TestMariaDb {
    let db = TestMariaDb::new();
    db.exec(
        "CREATE TABLE customers (id BIGINT PRIMARY KEY, name VARCHAR(255), email VARCHAR(255),
             phone VARCHAR(32), updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE invoices (id BIGINT AUTO_INCREMENT PRIMARY KEY, invoice_number VARCHAR(64),
             customer_id BIGINT, total DECIMAL(15,2), due_date DATE, paid_at TIMESTAMP NULL,
             cancelled_at TIMESTAMP NULL, updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO customers (id, name, email, phone)
             VALUES (1, 'Budi Santoso', 'budi@example.id', '085707211646')",
    );
    if !invoices.is_empty() {
        db.exec(&format!(
            "INSERT INTO invoices (invoice_number, customer_id, total, due_date, paid_at) VALUES {invoices}"
        ));
    }
    db
}

fn env_with(url: &str) -> Env {
    let mut env = Env::new();
    env.set("BILLING_DATABASE_URL", url);
    env.set("BILLING_QUERIES", laravel_queries());
    env
}

fn migrate(env: &Env) {
    ok(&env.run(&["migrate"]));
}

#[test]
fn sync_prints_counts_and_json_and_stats_shows_it() {
    let due = today_jakarta() + time::Duration::days(3);
    let db = billing(&format!(
        "('INV-1', 1, 150000.00, '{due}', NULL), ('INV-2', 1, 150000.50, '{due}', NULL)"
    ));
    let env = env_with(db.url());
    migrate(&env);
    let text = ok(&env.run(&["sync"]));
    assert!(
        text.contains("invoices: INV-2: amount 150000.50 has a fraction"),
        "{text}"
    );
    assert!(
        text.contains("customers 1 new")
            && text.contains("invoices 1 new")
            && text.contains("1 rejected"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&env.run(&["sync", "--json"]))).unwrap();
    assert_eq!(json["invoices_unchanged"], 1, "{json}");
    assert_eq!(json["invoices_rejected"], 1, "{json}");
    assert_eq!(json["rejected"][0]["key"], "INV-2", "{json}");
    let stats = ok(&env.run(&["stats"]));
    assert!(
        stats.contains("Billing sync:") && stats.contains("ok: invoices 0 new"),
        "{stats}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["stats", "--json"]))).unwrap();
    assert_eq!(stats["billing_sync"]["last"]["ok"], true, "{stats}");
}

#[test]
fn the_daily_run_syncs_first_and_queues_from_the_source() {
    // T-3 today: due in three days.
    let due = today_jakarta() + time::Duration::days(3);
    let db = billing(&format!(
        "('INV-1', 1, 150000, '{due}', NULL), ('INV-PAID', 1, 150000, '{due}', NOW())"
    ));
    let env = env_with(db.url());
    migrate(&env);
    let text = ok(&env.run(&["run"]));
    assert!(text.contains("Billing sync (full"), "{text}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications n JOIN invoices i ON i.id = n.invoice_id WHERE i.number = 'INV-1'"),
        2,
        "email and WhatsApp queued for the unpaid invoice"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM notifications n JOIN invoices i ON i.id = n.invoice_id WHERE i.number = 'INV-PAID'"),
        0
    );
}

#[test]
fn a_failed_sync_stops_the_run_and_queues_nothing_unless_no_sync() {
    let due = today_jakarta() + time::Duration::days(3);
    let db = billing(&format!("('INV-1', 1, 150000, '{due}', NULL)"));
    let env = env_with(db.url());
    migrate(&env);
    ok(&env.run(&["sync"]));

    // The billing database goes away (a port nobody listens on).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut down = Env {
        db: env.db,
        dir: env.dir,
        vars: Vec::new(),
    };
    down.set(
        "BILLING_DATABASE_URL",
        format!("mysql://dunning:s3cr3t-pass@127.0.0.1:{port}/billing"),
    );
    down.set("BILLING_QUERIES", laravel_queries());
    for args in [&["run"][..], &["--dry-run"][..], &["sync"][..]] {
        let out = down.run(args);
        expect_code(&out, 1);
        let err = stderr(&out);
        assert!(err.contains(&format!("127.0.0.1:{port}/billing")), "{err}");
        assert!(!err.contains("s3cr3t-pass"), "{err}");
    }
    assert!(stderr(&down.run(&["run"])).contains("nothing was queued"));
    assert_eq!(down.count("SELECT count(*) AS n FROM notifications"), 0);
    let stats = ok(&down.run(&["stats"]));
    assert!(
        stats.contains("FAILED") && stats.contains("last successful"),
        "{stats}"
    );

    // The operator's explicit override queues from the mirror as it is.
    let text = ok(&down.run(&["run", "--no-sync"]));
    assert!(!text.contains("Billing sync"), "{text}");
    assert_eq!(down.count("SELECT count(*) AS n FROM notifications"), 2);
}

#[test]
fn doctor_checks_the_source_queries() {
    let db = billing("('INV-1', 1, 150000, '2025-11-18', NULL)");
    let env = env_with(db.url());
    migrate(&env);
    let text = env.run(&["doctor"]);
    let out = cmd_support::stdout(&text);
    assert!(
        out.contains("Billing source: reachable") && out.contains("Billing invoices query: 1 rows"),
        "{out}"
    );
    let mut bad = Env {
        db: env.db,
        dir: env.dir,
        vars: Vec::new(),
    };
    let q = bad.file(
        "billing.toml",
        "customers = \"SELECT id AS external_id, name, email FROM customers\"\ninvoices = \"SELECT invoice_number AS number FROM invoices\"\n",
    );
    bad.set("BILLING_DATABASE_URL", db.url());
    bad.set("BILLING_QUERIES", q.display().to_string());
    let out = bad.run(&["doctor"]);
    let text = expect_code(&out, 1);
    assert!(
        text.contains("Billing customers query: missing column(s): phone"),
        "{text}"
    );
    assert!(
        text.contains("Billing invoices query: missing column(s): customer_external_id, amount, due_date, status"),
        "{text}"
    );
}
