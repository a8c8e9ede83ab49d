//! Payment link creation against the local gateway fakes over loopback HTTP, with
//! the links stored in a real PostgreSQL.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use dunning_fake_gateways::{GatewayFake, keys};
use dunning_pay::{LinkError, Links, PaymentSettings};
use dunning_test_db::TestDatabase;

const NUMBER: &str = "INV-20261201-000777";
const AMOUNT: i64 = 175_000;

fn settings(fake: &GatewayFake, link: &str, overrides: &[(&str, &str)]) -> PaymentSettings {
    let mut vars: Vec<(String, String)> = vec![
        ("PAYMENT_LINK".into(), link.into()),
        (
            "PAYMENT_URL_TEMPLATE".into(),
            "https://billing.example.id/bayar/{number}".into(),
        ),
        ("XENDIT_API_URL".into(), fake.xendit_url()),
        ("MIDTRANS_API_URL".into(), fake.midtrans_url()),
        ("TRIPAY_API_URL".into(), fake.tripay_url()),
        ("XENDIT_SECRET_KEY".into(), keys::XENDIT_SECRET_KEY.into()),
        (
            "MIDTRANS_SERVER_KEY".into(),
            keys::MIDTRANS_SERVER_KEY.into(),
        ),
        ("TRIPAY_API_KEY".into(), keys::TRIPAY_API_KEY.into()),
        ("TRIPAY_PRIVATE_KEY".into(), keys::TRIPAY_PRIVATE_KEY.into()),
        (
            "TRIPAY_MERCHANT_CODE".into(),
            keys::TRIPAY_MERCHANT_CODE.into(),
        ),
    ];
    for (k, v) in overrides {
        vars.retain(|(n, _)| n != k);
        vars.push(((*k).into(), (*v).into()));
    }
    PaymentSettings::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .unwrap()
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn seed(conn: &mut PgConnection, email: Option<&str>) -> i64 {
    let c: Id = diesel::sql_query(
        "INSERT INTO customers (name, email, phone) VALUES ('Siti Rahayu', $1, '081234567890') RETURNING id",
    )
    .bind::<diesel::sql_types::Nullable<Text>, _>(email)
    .get_result(conn)
    .unwrap();
    let i: Id = diesel::sql_query(
        "INSERT INTO invoices (number, customer_id, amount, due_date) VALUES ($1, $2, $3, DATE '2026-12-18') RETURNING id",
    )
    .bind::<Text, _>(NUMBER)
    .bind::<BigInt, _>(c.id)
    .bind::<BigInt, _>(AMOUNT)
    .get_result(conn)
    .unwrap();
    i.id
}

#[derive(Debug, QueryableByName, PartialEq)]
struct LinkRow {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    generation: i32,
}

fn stored(conn: &mut PgConnection) -> Vec<LinkRow> {
    diesel::sql_query("SELECT order_id, url, generation FROM payment_links ORDER BY gateway")
        .load(conn)
        .unwrap()
}

fn expire_soon(conn: &mut PgConnection) {
    // Still valid for one hour: inside the reuse margin, so a new page is due.
    diesel::sql_query("UPDATE payment_links SET expires_at = now() + interval '1 hour'")
        .execute(conn)
        .unwrap();
}

/// Creates, reuses, and recreates after expiry, for one gateway; returns the
/// recorded create requests' bodies.
fn create_reuse_recreate(gateway: &str, create_path: &str) -> Vec<serde_json::Value> {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn, Some("siti@example.com"));
    let fake = GatewayFake::start();
    let links = Links::new(&settings(&fake, gateway, &[]));

    let first = links.link_for(&mut conn, invoice).unwrap().expect("a link");
    assert!(first.starts_with("http://127.0.0.1:"), "{first}");
    let again = links.link_for(&mut conn, invoice).unwrap().expect("a link");
    assert_eq!(first, again, "{gateway}: a valid page is reused");
    assert_eq!(
        fake.requests_to(create_path).len(),
        1,
        "{gateway}: reuse makes no request"
    );
    assert_eq!(stored(&mut conn)[0].order_id, NUMBER);

    expire_soon(&mut conn);
    let third = links.link_for(&mut conn, invoice).unwrap().expect("a link");
    assert_ne!(third, first, "{gateway}: an expiring page is replaced");
    let rows = stored(&mut conn);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].order_id.as_str(), rows[0].generation),
        (&*format!("{NUMBER}~2"), 2)
    );
    assert_eq!(rows[0].url, third);
    let bodies: Vec<_> = fake
        .requests_to(create_path)
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies.len(), 2);

    diesel::sql_query("UPDATE invoices SET status = 'paid'")
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        links.link_for(&mut conn, invoice).unwrap(),
        None,
        "no link for a paid invoice"
    );
    bodies
}

#[test]
fn xendit_link_is_created_reused_and_recreated_after_expiry() {
    let bodies = create_reuse_recreate("xendit", "/v2/invoices");
    assert_eq!(bodies[0]["external_id"], NUMBER);
    assert_eq!(bodies[0]["amount"], AMOUNT);
    assert_eq!(bodies[0]["currency"], "IDR");
    assert_eq!(bodies[1]["external_id"], format!("{NUMBER}~2"));
}

#[test]
fn midtrans_link_is_created_reused_and_recreated_after_expiry() {
    let bodies = create_reuse_recreate("midtrans", "/snap/v1/transactions");
    assert_eq!(bodies[0]["transaction_details"]["order_id"], NUMBER);
    assert_eq!(bodies[0]["transaction_details"]["gross_amount"], AMOUNT);
    // The fake refuses a reused order id as Midtrans does; the second page needed ~2.
    assert_eq!(
        bodies[1]["transaction_details"]["order_id"],
        format!("{NUMBER}~2")
    );
}

#[test]
fn tripay_link_is_created_reused_and_recreated_after_expiry() {
    let bodies = create_reuse_recreate("tripay", "/transaction/create");
    assert_eq!(bodies[0]["merchant_ref"], NUMBER);
    assert_eq!(bodies[0]["amount"], AMOUNT);
    assert_eq!(bodies[0]["method"], "QRIS");
}

#[test]
fn template_and_none_modes() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn, None);
    let fake = GatewayFake::start();
    let t = Links::new(&settings(&fake, "template", &[]));
    assert_eq!(
        t.link_for(&mut conn, invoice).unwrap().as_deref(),
        Some("https://billing.example.id/bayar/INV-20261201-000777")
    );
    let none = Links::new(&settings(&fake, "none", &[]));
    assert_eq!(none.link_for(&mut conn, invoice).unwrap(), None);
    assert!(fake.requests().is_empty());
    assert!(matches!(
        t.link_for(&mut conn, 999_999),
        Err(LinkError::NoInvoice(999_999))
    ));
}

#[test]
fn a_wrong_key_is_an_error_that_names_the_variable_not_the_key() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn, Some("siti@example.com"));
    let fake = GatewayFake::start();
    for (gateway, var, wrong) in [
        ("xendit", "XENDIT_SECRET_KEY", "xnd_development_wrongkey123"),
        (
            "midtrans",
            "MIDTRANS_SERVER_KEY",
            "SB-Mid-server-wrongkey123",
        ),
        ("tripay", "TRIPAY_API_KEY", "DEV-wrongkey123"),
    ] {
        let links = Links::new(&settings(&fake, gateway, &[(var, wrong)]));
        let err = links.link_for(&mut conn, invoice).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, LinkError::Unauthorized { status: 401, .. }),
            "{gateway}: {msg}"
        );
        assert!(msg.contains(var), "{msg}");
        assert!(
            !msg.contains("wrongkey123"),
            "the key must not be shown: {msg}"
        );
        let check = links
            .check_credentials()
            .expect("a gateway is configured")
            .unwrap_err();
        assert!(check.to_string().contains(var), "{check}");
    }
    assert!(
        stored(&mut conn).is_empty(),
        "nothing stored after a failed creation"
    );
}

#[test]
fn gateway_validation_errors_carry_the_gateways_message() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn, None);
    let fake = GatewayFake::start();
    let tripay = Links::new(&settings(&fake, "tripay", &[]));
    let err = tripay.link_for(&mut conn, invoice).unwrap_err();
    assert!(
        matches!(err, LinkError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("The customer email field is required."),
        "{err}"
    );
    // A wrong private key makes a wrong request signature.
    diesel::sql_query("UPDATE customers SET email = 'siti@example.com'")
        .execute(&mut conn)
        .unwrap();
    let bad_sig = Links::new(&settings(
        &fake,
        "tripay",
        &[("TRIPAY_PRIVATE_KEY", "not-the-key")],
    ));
    let err = bad_sig.link_for(&mut conn, invoice).unwrap_err();
    assert!(err.to_string().contains("Invalid signature"), "{err}");
    // Xendit refuses an amount below 1.
    diesel::sql_query("UPDATE invoices SET amount = 0")
        .execute(&mut conn)
        .unwrap();
    let xendit = Links::new(&settings(&fake, "xendit", &[]));
    let err = xendit.link_for(&mut conn, invoice).unwrap_err();
    assert!(
        err.to_string()
            .contains("amount must be greater than or equal to 1"),
        "{err}"
    );
    assert!(stored(&mut conn).is_empty());
}

#[test]
fn credential_check_accepts_the_right_keys() {
    let fake = GatewayFake::start();
    for gateway in ["xendit", "midtrans", "tripay"] {
        let links = Links::new(&settings(&fake, gateway, &[]));
        let ok = links.check_credentials().expect("configured").unwrap();
        assert!(ok.contains("accepted"), "{ok}");
    }
    assert!(
        Links::new(&settings(&fake, "none", &[]))
            .check_credentials()
            .is_none()
    );
}

#[test]
fn an_unreachable_gateway_is_an_error_not_a_hang() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn, Some("siti@example.com"));
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = GatewayFake::start();
    let links = Links::new(&settings(
        &fake,
        "xendit",
        &[("XENDIT_API_URL", &format!("http://127.0.0.1:{port}"))],
    ));
    let err = links.link_for(&mut conn, invoice).unwrap_err();
    assert!(matches!(err, LinkError::Unreachable { .. }), "{err}");
}
