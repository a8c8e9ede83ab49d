//! WhatsApp both ways against a real PostgreSQL: Fonnte's status, connect and
//! incoming-message webhooks with payloads as Fonnte documents them, pauses,
//! opt-outs and what the scheduler does with them.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Nullable, Text};
use dunning_core::reply::ReplySettings;
use dunning_core::{Channel, Stage, Zone};
use dunning_store::holds::{self, HoldReason, Target};
use dunning_store::inbound::{self, Inbound, InboundError};
use dunning_store::scheduling::{self, Outcome, Request};
use dunning_test_db::TestDatabase;
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

const SECRET: &str = "webhook-secret-123";

fn settings(fallback: bool) -> ReplySettings {
    ReplySettings::from_lookup(|k| match k {
        "FONNTE_WEBHOOK_SECRET" => Some(SECRET.into()),
        "WHATSAPP_FALLBACK" if fallback => Some("email".into()),
        _ => None,
    })
    .unwrap()
}

fn zone() -> Zone {
    "Asia/Jakarta".parse().unwrap()
}

fn exec(conn: &mut PgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    sql_query(sql)
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
    sql_query(sql)
        .get_result::<T>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .t
}

/// Budi: phone `0812-3456-7890` (Fonnte writes him as 6281234567890), email; one
/// unpaid invoice INV-1 due 2026-12-20.
fn seed(conn: &mut PgConnection, email: Option<&str>) {
    let email = email.map_or("NULL".to_owned(), |e| format!("'{e}'"));
    exec(
        conn,
        &format!(
            "INSERT INTO customers (id, external_id, name, email, phone)
             VALUES (1, 'C-001', 'Budi', {email}, '0812-3456-7890')"
        ),
    );
    exec(
        conn,
        "INSERT INTO invoices (id, number, customer_id, amount, due_date)
         VALUES (1, 'INV-1', 1, 150000, '2026-12-20')",
    );
}

fn run(conn: &mut PgConnection, day: Date) -> scheduling::Report {
    let stages = [
        Stage::from_offset(-7),
        Stage::from_offset(-3),
        Stage::from_offset(-1),
        Stage::from_offset(3),
    ];
    scheduling::schedule(
        conn,
        &Request {
            run_date: day,
            stages: &stages,
            catch_up_days: 3,
            queue: "default",
            dry_run: false,
            lines: true,
            host: "test",
            backfill: false,
            group: dunning_core::config::Grouping::Invoice,
        },
    )
    .unwrap()
}

/// What a worker records after Fonnte accepted the message.
fn mark_sent(conn: &mut PgConnection, channel: &str, provider_id: &str) {
    exec(
        conn,
        &format!(
            "WITH n AS (UPDATE notifications SET status = 'sent', sent_at = now(), provider_message_id = '{provider_id}'
                        WHERE channel = '{channel}' AND status = 'queued' RETURNING id)
             DELETE FROM jobs WHERE notification_id IN (SELECT id FROM n)"
        ),
    );
}

fn ctx<'a>(s: &'a ReplySettings, z: &'a Zone) -> Inbound<'a> {
    Inbound {
        settings: s,
        zone: z,
        company_name: "Wikarta Provider",
        queue: "default",
    }
}

fn status(
    conn: &mut PgConnection,
    s: &ReplySettings,
    body: &str,
) -> Result<inbound::InboundReply, InboundError> {
    let z = zone();
    inbound::fonnte_status(conn, &ctx(s, &z), Some(SECRET), body.as_bytes())
}

fn incoming(
    conn: &mut PgConnection,
    s: &ReplySettings,
    message: &str,
    inboxid: &str,
    now: OffsetDateTime,
) -> inbound::InboundReply {
    let z = zone();
    let body = serde_json::json!({
        "device": "6282227097005", "sender": "6281234567890", "message": message,
        "text": "", "member": "", "name": "Budi", "location": "", "pollname": "",
        "choices": "", "timestamp": now.unix_timestamp(), "inboxid": inboxid,
    })
    .to_string();
    inbound::fonnte_incoming(conn, &ctx(s, &z), Some(SECRET), body.as_bytes(), now).unwrap()
}

#[test]
fn status_webhook_records_sent_delivered_read_once() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    run(&mut conn, date!(2026 - 12 - 13));
    mark_sent(&mut conn, "whatsapp", "80367170");
    let s = settings(false);
    // Fonnte's first call: id and status; the next ones link and use stateid.
    status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","id":"80367170","stateid":"","status":"sent","state":""}"#,
    )
    .unwrap();
    status(&mut conn, &s, r#"{"device":"6282227097005","id":"80367170","stateid":"3EB0A1","status":"","state":"delivered"}"#).unwrap();
    let read = status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","stateid":"3EB0A1","state":"read"}"#,
    )
    .unwrap();
    assert!(read.body.contains("recorded read"), "{}", read.body);
    // Fonnte retries: the replay changes nothing.
    let again = status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","stateid":"3EB0A1","state":"read"}"#,
    )
    .unwrap();
    assert!(again.body.contains("duplicate"), "{}", again.body);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM delivery_states ds JOIN notifications n ON n.id = ds.notification_id
                          WHERE n.channel = 'whatsapp' AND ds.state IN ('sent', 'delivered', 'read')"),
        3
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'whatsapp' AND status = 'sent'"
        ),
        1
    );
}

#[test]
fn invalid_fails_the_delivery_and_falls_back_to_email_once() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    // WhatsApp only when scheduled; the email address arrives afterwards.
    seed(&mut conn, None);
    run(&mut conn, date!(2026 - 12 - 13));
    mark_sent(&mut conn, "whatsapp", "80367171");
    exec(&mut conn, "UPDATE customers SET email = 'budi@example.com'");
    let s = settings(true);
    let r = status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","id":"80367171","stateid":"","status":"invalid","state":""}"#,
    )
    .unwrap();
    assert!(r.body.contains("email fallback queued"), "{}", r.body);
    let error = text(
        &mut conn,
        "SELECT error AS t FROM notifications WHERE channel = 'whatsapp' AND status = 'failed'",
    );
    assert!(error.unwrap().contains("invalid target"));
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM notifications n JOIN jobs j ON j.notification_id = n.id
                          WHERE n.channel = 'email' AND n.stage = 'T-7' AND n.run_date = '2026-12-13'
                            AND n.recipient = 'budi@example.com'"),
        1
    );
    // A replay, and an `expired` for the same message, queue nothing more.
    status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","id":"80367171","stateid":"","status":"invalid","state":""}"#,
    )
    .unwrap();
    status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","id":"80367171","status":"expired"}"#,
    )
    .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'email'"
        ),
        1
    );
}

#[test]
fn invalid_without_fallback_only_fails() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, None);
    run(&mut conn, date!(2026 - 12 - 13));
    mark_sent(&mut conn, "whatsapp", "80367172");
    exec(&mut conn, "UPDATE customers SET email = 'budi@example.com'");
    status(
        &mut conn,
        &settings(false),
        r#"{"id":"80367172","status":"invalid"}"#,
    )
    .unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE status = 'failed'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE channel = 'email'"
        ),
        0
    );
}

#[test]
fn disconnect_pauses_whatsapp_and_connect_releases_the_held_jobs_now() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    run(&mut conn, date!(2026 - 12 - 13));
    let s = settings(false);
    let z = zone();
    let c = ctx(&s, &z);
    let r = inbound::fonnte_connect(&mut conn, &c, Some(SECRET),
        br#"{"device":"6282227097005","status":"disconnect","timestamp":1764547200,"reason":"logout"}"#).unwrap();
    assert!(r.body.contains("paused"), "{}", r.body);
    let states = dunning_store::queue::channel_states(&mut conn).unwrap();
    let wa = states
        .iter()
        .find(|s| s.channel == Channel::WhatsApp)
        .unwrap();
    assert!(wa.paused_until.is_some());
    assert_eq!(wa.pause_reason.as_deref(), Some(inbound::DISCONNECTED));
    // A worker meanwhile handed the WhatsApp job back until later.
    exec(
        &mut conn,
        "UPDATE jobs SET available_at = now() + interval '1 hour' WHERE channel = 'whatsapp'",
    );
    inbound::fonnte_connect(
        &mut conn,
        &c,
        Some(SECRET),
        br#"{"device":"6282227097005","status":"connect","timestamp":1764547500,"reason":""}"#,
    )
    .unwrap();
    let states = dunning_store::queue::channel_states(&mut conn).unwrap();
    assert!(
        states
            .iter()
            .find(|s| s.channel == Channel::WhatsApp)
            .unwrap()
            .paused_until
            .is_none()
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM jobs WHERE channel = 'whatsapp' AND available_at <= now() \
             AND reserved_by IS NULL"
        ),
        1
    );
    // Fonnte retries the old disconnect after the connect: ignored.
    let late = inbound::fonnte_connect(&mut conn, &c, Some(SECRET),
        br#"{"device":"6282227097005","status":"disconnect","timestamp":1764547200,"reason":"logout"}"#).unwrap();
    assert!(late.body.contains("ignored"), "{}", late.body);
    let states = dunning_store::queue::channel_states(&mut conn).unwrap();
    assert!(
        states
            .iter()
            .find(|s| s.channel == Channel::WhatsApp)
            .unwrap()
            .paused_until
            .is_none()
    );
}

#[test]
fn stop_opts_out_of_whatsapp_only_and_answers_through_the_queue() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let s = settings(false);
    let r = incoming(
        &mut conn,
        &s,
        "Stop!",
        "991",
        datetime!(2026-12-10 03:00 UTC),
    );
    assert!(r.body.contains("answer queued"), "{}", r.body);
    // The same message again (Fonnte retry): stored once, answered once.
    incoming(
        &mut conn,
        &s,
        "Stop!",
        "991",
        datetime!(2026-12-10 03:00 UTC),
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM whatsapp_replies"),
        1
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM opt_outs WHERE channel = 'whatsapp'"
        ),
        1
    );
    let body = text(&mut conn, "SELECT n.body AS t FROM notifications n JOIN jobs j ON j.notification_id = n.id
                                WHERE n.reply_id IS NOT NULL AND n.channel = 'whatsapp' AND n.recipient = '6281234567890'");
    assert!(body.unwrap().contains("balas MULAI"));
    // A failed answer shows in `failed` like a reminder.
    exec(
        &mut conn,
        "UPDATE notifications SET status = 'failed', error = 'Fonnte: target invalid' WHERE reply_id IS NOT NULL",
    );
    let failed = dunning_store::ops::failed::list(&mut conn, None).unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].invoice_number.starts_with("reply #"),
        "{:?}",
        failed[0]
    );
    assert_eq!(failed[0].stage, "reply:opt_out");
    // The next scheduler run: email queued, WhatsApp held.
    let report = run(&mut conn, date!(2026 - 12 - 13));
    assert_eq!(report.lines.len(), 1);
    assert_eq!(report.lines[0].email, Some(Outcome::Dispatched));
    assert_eq!(report.lines[0].whatsapp, Some(Outcome::HeldOptedOut));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE invoice_id IS NOT NULL AND channel = 'whatsapp'"
        ),
        0
    );
    // MULAI opts back in.
    incoming(
        &mut conn,
        &s,
        "mulai",
        "992",
        datetime!(2026-12-13 05:00 UTC),
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM opt_outs"), 0);
}

#[test]
fn promise_to_pay_holds_until_the_date_then_the_newest_stage_goes_out() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let s = settings(false);
    incoming(
        &mut conn,
        &s,
        "saya bayar tanggal 25/12",
        "993",
        datetime!(2026-12-01 02:00 UTC),
    );
    let body = text(
        &mut conn,
        "SELECT body AS t FROM notifications WHERE reply_id IS NOT NULL",
    )
    .unwrap();
    assert!(body.contains("sampai 25 Desember 2026"), "{body}");
    let mut day = date!(2026 - 12 - 02);
    while day <= date!(2026 - 12 - 25) {
        run(&mut conn, day);
        day = day.next_day().unwrap();
    }
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE invoice_id IS NOT NULL"
        ),
        0,
        "nothing is queued while the promise holds"
    );
    let report = run(&mut conn, date!(2026 - 12 - 26));
    assert_eq!(report.lines.len(), 1, "{:?}", report.lines);
    assert_eq!(report.lines[0].stage, Stage::from_offset(3));
    assert_eq!(report.lines[0].email, Some(Outcome::Dispatched));
    assert_eq!(report.lines[0].whatsapp, Some(Outcome::Dispatched));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM notifications WHERE invoice_id IS NOT NULL AND stage = 'T+3' AND run_date = '2026-12-26'"
        ),
        2
    );
}

#[test]
fn paid_claim_pauses_for_two_days_and_is_flagged() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let s = settings(false);
    incoming(
        &mut conn,
        &s,
        "sudah transfer ya kak",
        "994",
        datetime!(2026-12-12 02:00 UTC),
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM whatsapp_replies WHERE flagged AND intent = 'paid_claim' AND customer_id = 1"
        ),
        1
    );
    let hold = holds::hold_for(&mut conn, 1, 1, Channel::Email, date!(2026 - 12 - 14)).unwrap();
    assert!(
        matches!(hold, Some(HoldReason::Paused { until, .. }) if until == date!(2026 - 12 - 14))
    );
    assert_eq!(
        holds::hold_for(&mut conn, 1, 1, Channel::Email, date!(2026 - 12 - 15)).unwrap(),
        None
    );
    assert_eq!(
        dunning_store::ops::replies::open(&mut conn).unwrap().len(),
        1
    );
}

#[test]
fn unknown_senders_and_other_texts_are_stored_flagged_and_not_answered() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let s = settings(false);
    let z = zone();
    let body = br#"{"device":"6282227097005","sender":"6289999999999","message":"STOP","name":"x","timestamp":1764547200}"#;
    inbound::fonnte_incoming(
        &mut conn,
        &ctx(&s, &z),
        Some(SECRET),
        body,
        datetime!(2026-12-12 02:00 UTC),
    )
    .unwrap();
    incoming(
        &mut conn,
        &s,
        "internet saya mati dari kemarin",
        "995",
        datetime!(2026-12-12 02:00 UTC),
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM whatsapp_replies WHERE flagged"
        ),
        2
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM whatsapp_replies WHERE customer_id IS NULL"
        ),
        1
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM opt_outs"), 0);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM notifications"),
        0
    );
    let open = dunning_store::ops::replies::open(&mut conn).unwrap();
    assert_eq!(
        inbound::mark_handled(&mut conn, &[open[0].id], "cli:test").unwrap(),
        1
    );
    assert_eq!(
        dunning_store::ops::replies::open(&mut conn).unwrap().len(),
        1
    );
}

#[test]
fn refused_calls_get_clear_answers_and_store_nothing() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let s = settings(false);
    let z = zone();
    let c = ctx(&s, &z);
    let now = datetime!(2026-12-12 02:00 UTC);
    let stop = br#"{"device":"6282227097005","sender":"6281234567890","message":"STOP"}"#;
    // Forged secret in the URL, then in the payload.
    let e = inbound::fonnte_incoming(&mut conn, &c, Some("guess"), stop, now).unwrap_err();
    assert_eq!(e.http_status(), 401);
    assert!(e.body().contains("?secret="), "{}", e.body());
    let forged = br#"{"sender":"6281234567890","message":"STOP","secret":"webhook-secret-12"}"#;
    assert_eq!(
        inbound::fonnte_incoming(&mut conn, &c, None, forged, now)
            .unwrap_err()
            .http_status(),
        401
    );
    // The payload secret alone is enough.
    let signed = format!(r#"{{"sender":"6281234567890","message":"halo","secret":"{SECRET}"}}"#);
    inbound::fonnte_incoming(&mut conn, &c, None, signed.as_bytes(), now).unwrap();
    // 1 MiB.
    let big = vec![b'a'; 1 << 20];
    let e = inbound::fonnte_status(&mut conn, &c, Some(SECRET), &big).unwrap_err();
    assert_eq!(e.http_status(), 413);
    // Malformed.
    let e = inbound::fonnte_status(&mut conn, &c, Some(SECRET), b"{\"id\": ").unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert!(e.body().contains("not JSON"), "{}", e.body());
    let e = inbound::fonnte_connect(&mut conn, &c, Some(SECRET), br#"{"status":"rebooting"}"#)
        .unwrap_err();
    assert_eq!(e.http_status(), 400);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM whatsapp_replies"),
        1
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM opt_outs"), 0);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM delivery_states"),
        0
    );
    // Unknown message id: kept, answered 200 so Fonnte stops retrying.
    let r = status(
        &mut conn,
        &s,
        r#"{"device":"6282227097005","id":"99999","status":"sent"}"#,
    )
    .unwrap();
    assert!(r.body.contains("unknown message id 99999"), "{}", r.body);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM delivery_states WHERE notification_id IS NULL"
        ),
        1
    );
}

#[test]
fn hold_for_covers_pauses_of_customer_or_invoice_and_channel_opt_outs() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let today = date!(2026 - 12 - 10);
    assert_eq!(
        holds::hold_for(&mut conn, 1, 1, Channel::WhatsApp, today).unwrap(),
        None
    );
    holds::pause(
        &mut conn,
        Target::Invoice(1),
        today,
        date!(2026 - 12 - 12),
        "dispute",
        "cli:test",
    )
    .unwrap();
    assert!(matches!(
        holds::hold_for(&mut conn, 1, 1, Channel::WhatsApp, today).unwrap(),
        Some(HoldReason::Paused { reason, .. }) if reason == "dispute"
    ));
    assert_eq!(
        holds::hold_for(&mut conn, 1, 1, Channel::WhatsApp, date!(2026 - 12 - 13)).unwrap(),
        None
    );
    assert_eq!(
        holds::unpause(&mut conn, Target::Invoice(1), today).unwrap(),
        1
    );
    assert_eq!(
        holds::hold_for(&mut conn, 1, 1, Channel::WhatsApp, today).unwrap(),
        None
    );
    holds::opt_out(&mut conn, 1, Channel::Email, "asked", "cli:test").unwrap();
    assert!(matches!(
        holds::hold_for(&mut conn, 1, 1, Channel::Email, today).unwrap(),
        Some(HoldReason::OptedOut { .. })
    ));
    assert_eq!(
        holds::hold_for(&mut conn, 1, 1, Channel::WhatsApp, today).unwrap(),
        None
    );
    assert_eq!(
        holds::find_customers(&mut conn, "+62 812 3456 7890").unwrap()[0].id,
        1
    );
    assert_eq!(holds::find_customers(&mut conn, "C-001").unwrap()[0].id, 1);
}

#[test]
fn unpause_lets_todays_rerun_queue_the_reminder() {
    let db = TestDatabase::new();
    let mut conn = db.conn();
    seed(&mut conn, Some("budi@example.com"));
    let day = date!(2026 - 12 - 13);
    holds::pause(
        &mut conn,
        Target::Customer(1),
        day,
        date!(2026 - 12 - 31),
        "dispute",
        "cli:test",
    )
    .unwrap();
    let held = run(&mut conn, day);
    assert_eq!(held.lines[0].email, Some(Outcome::HeldPaused));
    holds::unpause(&mut conn, Target::Customer(1), day).unwrap();
    let again = run(&mut conn, day);
    assert_eq!(again.lines[0].email, Some(Outcome::Dispatched));
}
