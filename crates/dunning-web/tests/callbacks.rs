//! Gateway callbacks over real HTTP on loopback against a real PostgreSQL, signed
//! by `dunning_fake_gateways::sign` (ring), independently of the verifying code.

mod support;

use dunning_fake_gateways::{keys, sign};
use dunning_test_db::TestDatabase;
use support::*;

fn xendit_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![("x-callback-token", token.to_owned())]
}

fn post_xendit(web: &Web, token: &str, body: &str) -> (u16, String) {
    let h = xendit_headers(token);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    web.post("/webhooks/xendit", &h, body.as_bytes())
}

fn post_tripay(web: &Web, key: &str, event: &str, body: &[u8]) -> (u16, String) {
    let sig = sign::tripay_callback(body, key);
    web.post(
        "/webhooks/tripay",
        &[("X-Callback-Event", event), ("X-Callback-Signature", &sig)],
        body,
    )
}

fn midtrans(
    order: &str,
    tx: &str,
    status: &str,
    fraud: &str,
    gross: &str,
    currency: &str,
    key: &str,
) -> String {
    sign::midtrans_notification(order, tx, status, fraud, "200", gross, currency, key)
}

#[test]
fn xendit_paid_callback_marks_the_invoice_paid() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let body = sign::xendit_invoice("inv-x-1", NUMBER, "PAID", AMOUNT, AMOUNT, "IDR");
    let (status, _) = post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &body);
    assert_eq!(status, 200);
    let rows = payments(&mut conn);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].gateway.as_str(), rows[0].reference.as_str()),
        ("xendit", "inv-x-1")
    );
    assert_eq!(rows[0].invoice_id, Some(invoice));
    assert_eq!(rows[0].amount, AMOUNT);
    assert_eq!(rows[0].flag, None);
    let inv = invoice_state(&mut conn);
    assert_eq!(inv.status, "paid");
    assert_eq!(
        inv.paid_at.as_deref(),
        Some("2026-12-01T03:04:05"),
        "paid_at is the gateway's"
    );
}

#[test]
fn midtrans_settlement_marks_paid_and_a_challenged_capture_does_not() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let key = keys::MIDTRANS_SERVER_KEY;
    let challenged = midtrans(
        NUMBER,
        "tx-1",
        "capture",
        "challenge",
        "150000.00",
        "IDR",
        key,
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], challenged.as_bytes()).0,
        200
    );
    assert!(
        payments(&mut conn).is_empty(),
        "a challenged capture is not a payment"
    );
    assert_eq!(invoice_state(&mut conn).status, "unpaid");

    let settled = midtrans(
        NUMBER,
        "tx-1",
        "settlement",
        "accept",
        "150000.00",
        "IDR",
        key,
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], settled.as_bytes()).0,
        200
    );
    let rows = payments(&mut conn);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].reference.as_str(), rows[0].flag.as_deref()),
        ("tx-1", None)
    );
    let inv = invoice_state(&mut conn);
    assert_eq!(inv.status, "paid");
    assert_eq!(
        inv.paid_at.as_deref(),
        Some("2026-12-01T03:04:05"),
        "settlement_time is Jakarta time"
    );
}

#[test]
fn midtrans_capture_accepted_counts() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let body = midtrans(
        NUMBER,
        "tx-cc",
        "capture",
        "accept",
        "150000.00",
        "IDR",
        keys::MIDTRANS_SERVER_KEY,
    );
    assert_eq!(web.post("/webhooks/midtrans", &[], body.as_bytes()).0, 200);
    assert_eq!(invoice_state(&mut conn).status, "paid");
}

#[test]
fn tripay_paid_callback_marks_paid_and_answers_success_true() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let body = sign::tripay_body("DEV-T000100001", NUMBER, "PAID", AMOUNT + 4_250);
    let (status, answer) = post_tripay(
        &web,
        keys::TRIPAY_PRIVATE_KEY,
        "payment_status",
        body.as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(answer, r#"{"success":true}"#);
    let rows = payments(&mut conn);
    assert_eq!((rows.len(), rows[0].flag.as_deref()), (1, None));
    assert_eq!(invoice_state(&mut conn).status, "paid");
}

#[test]
fn forged_callbacks_get_401_and_change_nothing() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let x = sign::xendit_invoice("inv-x-1", NUMBER, "PAID", AMOUNT, AMOUNT, "IDR");
    assert_eq!(post_xendit(&web, "wrong-token", &x).0, 401);
    assert_eq!(
        post_xendit(&web, &keys::XENDIT_CALLBACK_TOKEN[..10], &x).0,
        401,
        "a prefix of the token"
    );
    assert_eq!(
        web.post("/webhooks/xendit", &[], x.as_bytes()).0,
        401,
        "no token header"
    );

    let m = midtrans(
        NUMBER,
        "tx-1",
        "settlement",
        "accept",
        "150000.00",
        "IDR",
        "SB-Mid-server-wrong",
    );
    assert_eq!(web.post("/webhooks/midtrans", &[], m.as_bytes()).0, 401);
    // A genuine signature over other fields: the amount was raised after signing.
    let real = midtrans(
        NUMBER,
        "tx-1",
        "settlement",
        "accept",
        "1500.00",
        "IDR",
        keys::MIDTRANS_SERVER_KEY,
    );
    let tampered = real.replace("\"1500.00\"", "\"150000.00\"");
    assert_ne!(real, tampered);
    assert_eq!(
        web.post("/webhooks/midtrans", &[], tampered.as_bytes()).0,
        401
    );

    let t = sign::tripay_body("DEV-T1", NUMBER, "PAID", AMOUNT);
    let (status, answer) = post_tripay(&web, "wrong-private-key", "payment_status", t.as_bytes());
    assert_eq!(status, 401);
    assert!(answer.contains("\"success\":false"), "{answer}");
    let signed_other = sign::tripay_callback(b"{}", keys::TRIPAY_PRIVATE_KEY);
    let h = [
        ("X-Callback-Event", "payment_status"),
        ("X-Callback-Signature", signed_other.as_str()),
    ];
    assert_eq!(
        web.post("/webhooks/tripay", &h, t.as_bytes()).0,
        401,
        "signature of another body"
    );
    assert_eq!(
        web.post(
            "/webhooks/tripay",
            &[("X-Callback-Event", "payment_status")],
            t.as_bytes()
        )
        .0,
        401
    );

    assert!(payments(&mut conn).is_empty());
    assert_eq!(invoice_state(&mut conn).status, "unpaid");
}

#[test]
fn replayed_callbacks_record_one_payment() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let x = sign::xendit_invoice("inv-x-1", NUMBER, "PAID", AMOUNT, AMOUNT, "IDR");
    let t = sign::tripay_body("DEV-T1", "INV-UNKNOWN-9", "PAID", AMOUNT);
    for _ in 0..3 {
        assert_eq!(post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &x).0, 200);
        assert_eq!(
            post_tripay(
                &web,
                keys::TRIPAY_PRIVATE_KEY,
                "payment_status",
                t.as_bytes()
            )
            .0,
            200
        );
    }
    let rows = payments(&mut conn);
    assert_eq!(rows.len(), 2, "one row per gateway and reference: {rows:?}");
    assert_eq!(invoice_state(&mut conn).status, "paid");
}

#[test]
fn unknown_order_is_acknowledged_recorded_and_flagged() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let body = midtrans(
        "INV-NOPE-1",
        "tx-9",
        "settlement",
        "accept",
        "150000.00",
        "IDR",
        keys::MIDTRANS_SERVER_KEY,
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], body.as_bytes()).0,
        200,
        "success, so the gateway stops retrying"
    );
    let rows = payments(&mut conn);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].invoice_id, rows[0].flag.as_deref()),
        (None, Some("unknown_invoice"))
    );
    assert_eq!(invoice_state(&mut conn).status, "unpaid");
}

#[test]
fn underpaid_and_wrong_currency_are_flagged_and_do_not_mark_paid() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let under = sign::xendit_invoice("inv-x-under", NUMBER, "PAID", AMOUNT, AMOUNT - 1, "IDR");
    assert_eq!(
        post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &under).0,
        200
    );
    let cents_short = midtrans(
        NUMBER,
        "tx-short",
        "settlement",
        "accept",
        "149999.99",
        "IDR",
        keys::MIDTRANS_SERVER_KEY,
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], cents_short.as_bytes())
            .0,
        200
    );
    let usd = sign::xendit_invoice("inv-x-usd", NUMBER, "PAID", AMOUNT, AMOUNT, "USD");
    assert_eq!(post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &usd).0, 200);
    let flags: Vec<_> = payments(&mut conn)
        .into_iter()
        .map(|r| (r.invoice_id, r.flag))
        .collect();
    assert_eq!(
        flags,
        vec![
            (Some(invoice), Some("underpaid".to_owned())),
            (Some(invoice), Some("underpaid".to_owned())),
            (Some(invoice), Some("wrong_currency".to_owned())),
        ]
    );
    assert_eq!(invoice_state(&mut conn).status, "unpaid");
}

#[test]
fn oversized_bodies_get_413_and_malformed_ones_400() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    // A genuinely signed body just over 64 KiB.
    let mut big = sign::tripay_body("DEV-T1", NUMBER, "PAID", AMOUNT);
    big.pop();
    big.push_str(&format!(",\"note\":\"{}\"}}", "x".repeat(64 * 1024)));
    assert!(big.len() > 64 * 1024);
    assert_eq!(
        post_tripay(
            &web,
            keys::TRIPAY_PRIVATE_KEY,
            "payment_status",
            big.as_bytes()
        )
        .0,
        413
    );
    let xbig = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &xbig).0, 413);
    assert_eq!(web.post("/webhooks/midtrans", &[], xbig.as_bytes()).0, 413);
    // Just under the limit is read (and then judged on its content).
    let mut fits = sign::tripay_body("DEV-T2", NUMBER, "PAID", AMOUNT);
    fits.pop();
    let room = 64 * 1024 - fits.len() - ",\"note\":\"\"}".len();
    fits.push_str(&format!(",\"note\":\"{}\"}}", "x".repeat(room)));
    assert_eq!(fits.len(), 64 * 1024);
    assert_eq!(
        post_tripay(
            &web,
            keys::TRIPAY_PRIVATE_KEY,
            "payment_status",
            fits.as_bytes()
        )
        .0,
        200
    );

    // Authenticated, but not JSON / not the gateway's fields.
    assert_eq!(
        post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, "{\"id\": ").0,
        400
    );
    assert_eq!(
        post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, "[1,2]").0,
        400
    );
    assert_eq!(
        post_tripay(
            &web,
            keys::TRIPAY_PRIVATE_KEY,
            "payment_status",
            b"not json"
        )
        .0,
        400
    );
    assert_eq!(
        post_tripay(
            &web,
            keys::TRIPAY_PRIVATE_KEY,
            "payment_status",
            b"{\"status\":\"PAID\"}"
        )
        .0,
        400
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], b"{\"order_id\":").0,
        400
    );
    assert_eq!(
        web.post("/webhooks/midtrans", &[], b"{\"order_id\":\"INV-1\"}")
            .0,
        400
    );
    // A verified Tripay callback of another event is not a payment.
    let other = sign::tripay_body("DEV-T3", NUMBER, "PAID", AMOUNT);
    assert_eq!(
        post_tripay(
            &web,
            keys::TRIPAY_PRIVATE_KEY,
            "other_event",
            other.as_bytes()
        )
        .0,
        400
    );

    let rows = payments(&mut conn);
    assert_eq!(rows.len(), 1, "only the body that fits: {rows:?}");
    assert_eq!(rows[0].reference, "DEV-T2");
}

#[test]
fn a_gateway_without_its_secret_refuses_every_callback() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let none = dunning_pay::PaymentSettings::from_lookup(|_| None).unwrap();
    let web = Web::start(&db, none);
    let x = sign::xendit_invoice("inv-x-1", NUMBER, "PAID", AMOUNT, AMOUNT, "IDR");
    assert_eq!(post_xendit(&web, "", &x).0, 503);
    let t = sign::tripay_body("DEV-T1", NUMBER, "PAID", AMOUNT);
    assert_eq!(post_tripay(&web, "", "payment_status", t.as_bytes()).0, 503);
    let m = midtrans(
        NUMBER,
        "tx-1",
        "settlement",
        "accept",
        "150000.00",
        "IDR",
        "",
    );
    assert_eq!(web.post("/webhooks/midtrans", &[], m.as_bytes()).0, 503);
    assert!(payments(&mut conn).is_empty());
}

#[test]
fn healthz_checks_the_database() {
    let db = TestDatabase::new();
    let web = Web::start(&db, payment_settings(None, "none"));
    let (status, body) = web.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"database":"ok","status":"ok"}"#);
}

/// Each gateway end to end against its fake: the reminder's link is created through
/// the gateway's API (then recreated once, so the order id is `NUMBER~2`), the
/// gateway calls back for that order id, the invoice is paid, and no further link is
/// made for it.
#[test]
fn link_then_signed_callback_pays_the_invoice_for_each_gateway() {
    for gateway in ["xendit", "midtrans", "tripay"] {
        let db = TestDatabase::new();
        let mut conn = db.conn();
        let invoice = seed(&mut conn);
        let fake = dunning_fake_gateways::GatewayFake::start();
        let settings = payment_settings(Some(&fake), gateway);
        let links = dunning_pay::Links::new(&settings);
        let web = Web::start(&db, settings);
        links.link_for(&mut conn, invoice).unwrap().expect("link");
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE payment_links SET expires_at = now()"),
            &mut conn,
        )
        .unwrap();
        let url = links.link_for(&mut conn, invoice).unwrap().expect("link");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let order = format!("{NUMBER}~2");
        let status = match gateway {
            "xendit" => {
                let body = sign::xendit_invoice("inv-e2e", &order, "PAID", AMOUNT, AMOUNT, "IDR");
                post_xendit(&web, keys::XENDIT_CALLBACK_TOKEN, &body).0
            }
            "midtrans" => {
                let body = midtrans(
                    &order,
                    "tx-e2e",
                    "settlement",
                    "accept",
                    "150000.00",
                    "IDR",
                    keys::MIDTRANS_SERVER_KEY,
                );
                web.post("/webhooks/midtrans", &[], body.as_bytes()).0
            }
            _ => {
                let body = sign::tripay_body("DEV-T-e2e", &order, "PAID", AMOUNT);
                post_tripay(
                    &web,
                    keys::TRIPAY_PRIVATE_KEY,
                    "payment_status",
                    body.as_bytes(),
                )
                .0
            }
        };
        assert_eq!(status, 200, "{gateway}");
        let rows = payments(&mut conn);
        assert_eq!(
            (rows.len(), rows[0].invoice_id, rows[0].flag.as_deref()),
            (1, Some(invoice), None),
            "{gateway}"
        );
        assert_eq!(invoice_state(&mut conn).status, "paid", "{gateway}");
        assert_eq!(
            links.link_for(&mut conn, invoice).unwrap(),
            None,
            "{gateway}: paid, no link"
        );
    }
}
