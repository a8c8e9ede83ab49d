//! `POST /webhooks/fonnte/{status,connect,incoming}` through the router, against a
//! real PostgreSQL: payloads as Fonnte documents them (docs.fonnte.com, webhook
//! pages), forged secrets, replays, unknown ids, oversized and malformed bodies.

mod support;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use dunning_test_db::TestDatabase;
use support::*;

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

fn text(conn: &mut PgConnection, sql: &str) -> Option<String> {
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = Nullable<Text>)]
        t: Option<String>,
    }
    diesel::sql_query(sql)
        .get_result::<T>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .t
}

/// Everything a Fonnte webhook can write, as one line (to compare before and after).
fn footprint(conn: &mut PgConnection) -> String {
    format!(
        "states={} replies={} opt_outs={} pauses={} notifications={} jobs={} paused={:?}",
        count(conn, "SELECT count(*) AS n FROM delivery_states"),
        count(conn, "SELECT count(*) AS n FROM whatsapp_replies"),
        count(conn, "SELECT count(*) AS n FROM opt_outs"),
        count(conn, "SELECT count(*) AS n FROM pauses"),
        count(conn, "SELECT count(*) AS n FROM notifications"),
        count(conn, "SELECT count(*) AS n FROM jobs"),
        text(
            conn,
            "SELECT paused_until::text AS t FROM channel_state WHERE channel = 'whatsapp'"
        ),
    )
}

/// The invoice of [`seed`], reminded by WhatsApp and accepted by Fonnte as `id`.
fn sent_whatsapp(conn: &mut PgConnection, invoice: i64, id: &str) {
    diesel::sql_query(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date,
                                    recipient, status, sent_at, provider_message_id)
         SELECT id, customer_id, 'T-3', 'whatsapp', CURRENT_DATE, due_date, '6285707211646',
                'sent', now(), $2
         FROM invoices WHERE id = $1",
    )
    .bind::<BigInt, _>(invoice)
    .bind::<Text, _>(id)
    .execute(conn)
    .unwrap();
}

fn q(path: &str) -> String {
    format!("{path}?secret={FONNTE_SECRET}")
}

const STATUS_SENT: &str =
    r#"{"device":"6282227097005","id":"80367170","stateid":"","status":"sent","state":""}"#;
const STATUS_READ: &str =
    r#"{"device":"6282227097005","id":"80367170","stateid":"3EB0A1","status":"","state":"read"}"#;
const DISCONNECT: &str =
    r#"{"device":"6282227097005","status":"disconnect","timestamp":1764547200,"reason":"logout"}"#;

fn incoming(message: &str, inboxid: &str) -> String {
    serde_json::json!({
        "device": "6282227097005", "sender": "6285707211646", "message": message,
        "text": "", "member": "", "name": "Budi", "location": "", "pollname": "",
        "choices": "", "timestamp": 1764547200, "inboxid": inboxid,
    })
    .to_string()
}

#[test]
fn a_forged_or_missing_secret_gets_401_and_nothing_is_stored() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn);
    sent_whatsapp(&mut conn, invoice, "80367170");
    let web = Web::start(&db, payment_settings(None, "none"));
    let before = footprint(&mut conn);
    let stop = incoming("STOP", "1");
    let forged_payload = format!(
        r#"{{"device":"6282227097005","status":"disconnect","secret":"{}x"}}"#,
        FONNTE_SECRET
    );
    for (path, body) in [
        ("/webhooks/fonnte/status", STATUS_SENT),
        ("/webhooks/fonnte/connect", DISCONNECT),
        ("/webhooks/fonnte/incoming", stop.as_str()),
    ] {
        for url in [
            path.to_owned(),
            format!("{path}?secret=wrong"),
            format!("{path}?secret={FONNTE_SECRET}x"),
            format!("{path}?secret="),
        ] {
            let (status, answer) = web.post(&url, &[], body.as_bytes());
            assert_eq!(status, 401, "{url}: {answer}");
            assert!(
                answer.contains("?secret="),
                "the answer says the fix: {answer}"
            );
            assert!(!answer.contains(FONNTE_SECRET), "{answer}");
        }
        let (status, _) = web.post(path, &[], forged_payload.as_bytes());
        assert_eq!(status, 401, "{path} with a wrong payload secret");
    }
    assert_eq!(
        footprint(&mut conn),
        before,
        "a refused call stores nothing"
    );
}

#[test]
fn the_payload_secret_field_is_accepted_when_the_url_has_none() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let web = Web::start(&db, payment_settings(None, "none"));
    let body = format!(
        r#"{{"device":"6282227097005","status":"disconnect","timestamp":1764547200,"reason":"logout","secret":"{FONNTE_SECRET}"}}"#
    );
    let (status, answer) = web.post("/webhooks/fonnte/connect", &[], body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(
        text(
            &mut conn,
            "SELECT pause_reason AS t FROM channel_state WHERE channel = 'whatsapp'"
        )
        .unwrap()
        .contains("scan the QR code"),
    );
}

#[test]
fn a_replayed_status_is_recorded_once_and_answered_200() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    let invoice = seed(&mut conn);
    sent_whatsapp(&mut conn, invoice, "80367170");
    let web = Web::start(&db, payment_settings(None, "none"));
    let url = q("/webhooks/fonnte/status");
    let (s1, a1) = web.post(&url, &[], STATUS_SENT.as_bytes());
    assert_eq!(s1, 200, "{a1}");
    assert!(a1.contains("recorded sent"), "{a1}");
    let (s2, a2) = web.post(&url, &[], STATUS_READ.as_bytes());
    assert_eq!(s2, 200, "{a2}");
    // Fonnte retries until it sees a 200: the same call again changes nothing.
    for _ in 0..3 {
        let (s, a) = web.post(&url, &[], STATUS_READ.as_bytes());
        assert_eq!(s, 200, "{a}");
        assert!(a.contains("duplicate"), "{a}");
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM delivery_states WHERE notification_id IS NOT NULL"
        ),
        2
    );
}

#[test]
fn an_unknown_message_id_is_stored_unmatched_and_answered_200() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let (status, answer) = web.post(
        &q("/webhooks/fonnte/status"),
        &[],
        br#"{"device":"6282227097005","id":"99999999","stateid":"","status":"sent","state":""}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("unknown message id 99999999"), "{answer}");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM delivery_states
             WHERE provider_message_id = '99999999' AND notification_id IS NULL"
        ),
        1
    );
}

/// POSTs `body` while reading the answer: the server answers 413 and hangs up
/// without reading the rest, which an HTTP client that first writes the whole body
/// reports as a broken pipe.
fn post_unread(web: &Web, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = web.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let payload = [head.as_bytes(), body.as_bytes()].concat();
    let sending = std::thread::spawn(move || {
        // The server may stop reading at any point: a write error is expected.
        let _ = writer.write_all(&payload);
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived.
            Err(_) if !answer.is_empty() => break,
            Err(e) => panic!("POST {path}: no answer: {e}"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("POST {path}: not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_1_mib_body_gets_413_and_nothing_is_stored() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let before = footprint(&mut conn);
    let big = format!(
        r#"{{"device":"6282227097005","sender":"6285707211646","message":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    for path in ["status", "connect", "incoming"] {
        let (status, answer) = post_unread(&web, &q(&format!("/webhooks/fonnte/{path}")), &big);
        assert_eq!(status, 413, "{path}: {answer}");
        assert!(answer.contains("limit for Fonnte webhooks"), "{answer}");
    }
    assert_eq!(footprint(&mut conn), before);
}

#[test]
fn a_malformed_body_gets_400_naming_the_problem_and_nothing_is_stored() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let before = footprint(&mut conn);
    for (path, body, says) in [
        ("status", "id=1&status=sent", "not JSON"),
        ("status", r#"["sent"]"#, "expected a JSON object"),
        (
            "status",
            r#"{"device":"628"}"#,
            "message-status webhook URL",
        ),
        (
            "connect",
            r#"{"device":"628","status":"maybe"}"#,
            "connect or disconnect",
        ),
        (
            "incoming",
            r#"{"device":"628","message":"STOP"}"#,
            "incoming-message webhook URL",
        ),
    ] {
        let (status, answer) = web.post(
            &q(&format!("/webhooks/fonnte/{path}")),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(answer.contains(says), "{path} {body}: {answer}");
    }
    // Without the URL secret an unreadable body has no secret: 401, not 400.
    let (status, _) = web.post("/webhooks/fonnte/status", &[], b"{oops");
    assert_eq!(status, 401);
    assert_eq!(footprint(&mut conn), before);
}

#[test]
fn connect_and_incoming_act_through_http() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn);
    let web = Web::start(&db, payment_settings(None, "none"));
    let (s, a) = web.post(&q("/webhooks/fonnte/connect"), &[], DISCONNECT.as_bytes());
    assert_eq!(s, 200, "{a}");
    assert!(
        text(
            &mut conn,
            "SELECT paused_until::text AS t FROM channel_state WHERE channel = 'whatsapp'"
        )
        .is_some()
    );
    let connect =
        r#"{"device":"6282227097005","status":"connect","timestamp":1764547260,"reason":""}"#;
    let (s, a) = web.post(&q("/webhooks/fonnte/connect"), &[], connect.as_bytes());
    assert_eq!(s, 200, "{a}");
    assert!(a.contains("resumed"), "{a}");
    assert!(
        text(
            &mut conn,
            "SELECT paused_until::text AS t FROM channel_state WHERE channel = 'whatsapp'"
        )
        .is_none()
    );
    let stop = incoming("Stop.", "inbox-77");
    for _ in 0..2 {
        let (s, a) = web.post(&q("/webhooks/fonnte/incoming"), &[], stop.as_bytes());
        assert_eq!(s, 200, "{a}");
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM opt_outs WHERE channel = 'whatsapp'"
        ),
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM whatsapp_replies"),
        1
    );
    // One answer queued, once, for the worker.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications n JOIN jobs j ON j.notification_id = n.id
             WHERE n.reply_id IS NOT NULL AND n.channel = 'whatsapp'"
        ),
        1
    );
}
