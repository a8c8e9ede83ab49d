//! The dashboard in a real browser: headless Chromium driven through chromedriver.
//! Each test serves the dashboard from a fresh database on loopback. Screenshots of
//! each page go to target/screenshots/ (docs/img/ with DUNNING_UPDATE_SCREENSHOTS=1).

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use dunning_core::message::Templates;
use support::{App, Browser, csrf_of, get, post};

const ADMIN: (&str, &str) = ("sari", "kata-sandi-admin");
const VIEWER: (&str, &str) = ("budi", "kata-sandi-viewer");

/// A hostile customer name: markup, CRLF, an RTL override, 5,000 characters.
fn hostile_name() -> String {
    format!(
        "<script>alert(1)</script>\r\nBadru\u{202E}gnp.exe{}",
        "A".repeat(5000)
    )
}

/// Today's deliveries of every status on both channels, one failed one to retry,
/// a paid invoice with its sent reminders (for the timeline), a hostile customer.
fn seed(app: &App) {
    app.exec(&format!(
        "INSERT INTO customers (external_id, name, email, phone) VALUES
           ('C1', 'Budi Santoso', 'budi@example.id', '6285707211646'),
           ('C2', $q${}$q$, 'evil@example.id', '6281200000002')",
        hostile_name()
    ));
    app.exec(
        "INSERT INTO invoices (number, customer_id, amount, due_date, status, paid_at)
         SELECT n, c.id, a, (now() AT TIME ZONE 'Asia/Jakarta')::date + d, s, p
         FROM (VALUES
             ('INV-20261201-000001', 'C1', 150000, 3, 'unpaid', NULL::timestamptz),
             ('INV-20261201-000002', 'C2', 250000, 3, 'unpaid', NULL),
             ('INV-20261201-000003', 'C1', 300000, 7, 'unpaid', NULL),
             ('INV-20261101-000004', 'C1', 175000, -20, 'paid', now() - interval '20 days')
         ) v(n, ext, a, d, s, p) JOIN customers c ON c.external_id = v.ext",
    );
    app.exec("UPDATE invoices SET created_at = now() - interval '30 days' WHERE number = 'INV-20261101-000004'");
    // Today: email sent ×2, failed ×1, queued ×1; whatsapp sent ×1, failed ×1, skipped ×1.
    app.exec(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error, sent_at, due_date)
         SELECT i.id, i.customer_id, st, ch, (now() AT TIME ZONE 'Asia/Jakarta')::date, r, s, 1, e,
                CASE WHEN s = 'sent' THEN now() END, i.due_date
         FROM (VALUES
             ('INV-20261201-000001', 'T-3', 'email', 'budi@example.id', 'sent', NULL),
             ('INV-20261201-000001', 'T-3', 'whatsapp', '6285707211646', 'failed', 'Fonnte: request invalid on disconnected device'),
             ('INV-20261201-000002', 'T-3', 'email', 'evil@example.id', 'failed', 'SMTP 550 mailbox unavailable'),
             ('INV-20261201-000002', 'T-3', 'whatsapp', '6281200000002', 'sent', NULL),
             ('INV-20261201-000003', 'T-7', 'email', 'budi@example.id', 'sent', NULL),
             ('INV-20261201-000003', 'T-7', 'whatsapp', '6285707211646', 'skipped', 'paid meanwhile')
         ) v(num, st, ch, r, s, e) JOIN invoices i ON i.number = v.num",
    );
    // A reminder still waiting in the queue.
    app.exec(
        "WITH n AS (
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient, status, due_date)
             SELECT id, customer_id, 'T-3', 'email', (now() AT TIME ZONE 'Asia/Jakarta')::date - 1,
                    'budi@example.id', 'queued', due_date
             FROM invoices WHERE number = 'INV-20261201-000003' RETURNING id, channel)
         INSERT INTO jobs (queue, notification_id, channel) SELECT 'default', id, channel FROM n",
    );
    // Last month's invoice: reminded at T-3, paid two days later.
    app.exec(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, provider_message_id, created_at, updated_at, sent_at, due_date)
         SELECT id, customer_id, 'T-3', 'whatsapp', due_date - 3, '6285707211646', 'sent', 1, 'fonnte-81',
                now() - interval '23 days', now() - interval '23 days', now() - interval '23 days', due_date
         FROM invoices WHERE number = 'INV-20261101-000004'",
    );
    app.add_user(ADMIN.0, "admin", ADMIN.1);
    app.add_user(VIEWER.0, "viewer", VIEWER.1);
}

fn failed_id(app: &App, number: &str, channel: &str) -> i64 {
    app.count(&format!(
        "SELECT n.id AS n FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         WHERE i.number = '{number}' AND n.channel = '{channel}' AND n.status = 'failed'"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_logs_in_sees_todays_counts_and_a_retried_delivery_is_sent() {
    let app = App::start().await;
    seed(&app);
    let b = Browser::start().await;

    b.goto(&app.url("/hari-ini")).await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/masuk"),
        "no page without a login"
    );
    b.screenshot("dashboard-masuk").await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    assert_eq!(b.client.current_url().await.unwrap().path(), "/hari-ini");
    assert_eq!(b.text("#me").await, "sari (admin)");

    // Every count on the page equals a count made here, independently, in SQL.
    for ch in ["email", "whatsapp"] {
        for st in ["queued", "sent", "failed", "skipped"] {
            let expected = app.count(&format!(
                "SELECT count(*) AS n FROM notifications WHERE channel = '{ch}' AND status = '{st}'
                   AND (created_at AT TIME ZONE 'Asia/Jakarta')::date = (now() AT TIME ZONE 'Asia/Jakarta')::date"
            ));
            let shown = b.text(&format!("#count-{ch}-{st}")).await;
            assert_eq!(shown, expected.to_string(), "{ch} {st}");
        }
    }
    assert_eq!(b.text("#count-email-sent").await, "2");
    assert_eq!(b.text("#count-whatsapp-failed").await, "1");
    assert_eq!(b.text("#queue-waiting").await, "1");
    assert_eq!(b.text("#failed-total").await, "2");
    // No worker and no scheduler run: what doctor marks ❌ is at the top.
    let problems = b.text("#problems").await;
    assert!(
        problems.contains("Tidak ada worker yang hidup"),
        "{problems}"
    );
    assert!(
        problems.contains("Penjadwal belum pernah berjalan"),
        "{problems}"
    );
    b.screenshot("dashboard-hari-ini").await;

    // Gagal: filter by channel, then retry one.
    let wa = failed_id(&app, "INV-20261201-000001", "whatsapp");
    b.goto(&app.url("/gagal?channel=whatsapp")).await;
    assert!(b.exists(&format!("#failed-{wa}")).await);
    assert!(
        !b.source().await.contains("SMTP 550"),
        "the email failure is filtered out"
    );
    b.goto(&app.url("/gagal")).await;
    b.screenshot("dashboard-gagal").await;
    b.click(&format!("#retry-{wa}")).await;
    assert!(b.text("#retried").await.starts_with("1 pengiriman"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM notifications WHERE id = {wa} AND status = 'queued'"
        )),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM jobs WHERE notification_id = {wa}"
        )),
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM audit_log WHERE actor = 'sari' AND action = 'kirim ulang'"
        ),
        1
    );

    // The worker (log drivers) sends it.
    let settings = app.settings.clone();
    let pool = app.db.pool(4);
    let worker = tokio::task::spawn_blocking(move || {
        let senders = dunning_worker::Senders {
            email: Arc::from(dunning_channels::email_sender(&settings).expect("email sender")),
            whatsapp: Arc::from(
                dunning_channels::whatsapp_sender(&settings).expect("whatsapp sender"),
            ),
        };
        let w = dunning_worker::Worker::new(
            pool,
            senders,
            Templates::builtin("Wikarta Provider"),
            dunning_worker::Config::for_tests("default"),
            Arc::new(AtomicBool::new(false)),
        );
        w.run();
    });
    worker.await.expect("worker");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM notifications WHERE id = {wa} AND status = 'sent'"
        )),
        1,
        "the retried WhatsApp reminder was sent"
    );
    let outbox =
        std::fs::read_to_string(app.outbox.path().join("whatsapp.jsonl")).expect("whatsapp outbox");
    assert!(outbox.contains("INV-20261201-000001"), "{outbox}");

    // Retry all matching, after a confirmation.
    b.goto(&app.url("/gagal?reason=smtp")).await;
    b.click("#retry-all").await;
    assert_eq!(b.text("#confirm-count").await, "1");
    b.screenshot("dashboard-gagal-konfirmasi").await;
    b.click("#confirm").await;
    assert!(b.text("#retried").await.starts_with("1 pengiriman"));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"),
        0
    );

    b.goto(&app.url("/audit")).await;
    let audit = b.text("#audit").await;
    assert!(audit.contains("kirim ulang semua"), "{audit}");
    assert!(audit.contains("masuk"), "{audit}");
    b.screenshot("dashboard-audit").await;

    b.click("header form button").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/masuk")
    );
    b.goto(&app.url("/hari-ini")).await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/masuk"),
        "logged out"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_resumes_a_paused_channel() {
    let app = App::start().await;
    seed(&app);
    app.exec(
        "UPDATE channel_state SET paused_until = now() + interval '1 hour',
             pause_reason = 'request invalid on disconnected device' WHERE channel = 'whatsapp'",
    );
    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    let problems = b.text("#problems").await;
    assert!(problems.contains("Kanal whatsapp dijeda"), "{problems}");
    b.click("#resume-whatsapp").await;
    assert_eq!(b.text("#resumed").await, "Kanal whatsapp dilanjutkan.");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM channel_state WHERE paused_until > now()"),
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action = 'lanjutkan kanal' AND detail LIKE '%disconnected device%'"),
        1
    );
    assert_eq!(b.text("#pauses").await, "Tidak ada kanal yang dijeda.");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_an_invoice_and_shows_its_timeline() {
    let app = App::start().await;
    seed(&app);
    let b = Browser::start().await;
    b.login(&app, VIEWER.0, VIEWER.1).await;

    // By phone as the operator types it: 0857…, not 62857….
    b.goto(&app.url("/cari?q=0857-0721-1646")).await;
    let results = b.text("#results").await;
    assert!(results.contains("INV-20261101-000004"), "{results}");
    assert!(!results.contains("INV-20261201-000002"), "{results}");

    b.goto(&app.url("/cari")).await;
    b.fill("#q", "INV-20261101-000004").await;
    b.click("#search").await;
    b.screenshot("dashboard-cari").await;
    b.click(".invoice-link").await;
    assert_eq!(b.text("#invoice-number").await, "INV-20261101-000004");
    assert_eq!(b.text("#invoice-status").await, "lunas");
    let kinds: Vec<String> = {
        let rows = b
            .client
            .find_all(fantoccini::Locator::Css("#timeline tr[class^=event-]"))
            .await
            .unwrap();
        let mut v = Vec::new();
        for r in rows {
            v.push(r.attr("class").await.unwrap().unwrap_or_default());
        }
        v
    };
    assert_eq!(
        kinds,
        ["event-invoice", "event-queued", "event-sent", "event-paid"],
        "oldest first"
    );
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("fonnte-81"), "{timeline}");
    assert!(
        !timeline.contains("6285707211646"),
        "recipients are masked: {timeline}"
    );
    b.screenshot("dashboard-tagihan").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_draws_the_chart_and_recovery_by_stage() {
    let app = App::start().await;
    seed(&app);
    let b = Browser::start().await;
    b.login(&app, VIEWER.0, VIEWER.1).await;
    b.goto(&app.url("/riwayat")).await;
    // Bars: email today sent+failed+queued(yesterday)… one rect per non-zero status and day.
    let rects = b
        .client
        .find_all(fantoccini::Locator::Css("#chart-whatsapp rect"))
        .await
        .unwrap()
        .len();
    let expected = app.count(
        "SELECT count(*) AS n FROM (SELECT DISTINCT (created_at AT TIME ZONE 'Asia/Jakarta')::date, status
         FROM notifications WHERE channel = 'whatsapp' AND created_at > now() - interval '29 days') x",
    );
    assert_eq!(rects as i64, expected);
    // The T-3 reminder of INV-…-000004 was paid 3 days after it: recovered.
    assert_eq!(b.text("#recovered-T-3").await, "1");
    b.screenshot("dashboard-riwayat").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_refused_actions_and_a_post_without_csrf_token_is_refused() {
    let app = App::start().await;
    seed(&app);
    let wa = failed_id(&app, "INV-20261201-000001", "whatsapp").to_string();

    // The viewer sees no action buttons, and a crafted POST with their own valid
    // token is refused.
    let b = Browser::start().await;
    b.login(&app, VIEWER.0, VIEWER.1).await;
    b.goto(&app.url("/gagal")).await;
    assert!(b.exists(&format!("#failed-{wa}")).await);
    assert!(
        !b.exists(&format!("#retry-{wa}")).await,
        "no retry button for a viewer"
    );
    let viewer = b.session_cookie().await;
    let csrf = csrf_of(&b.source().await);
    let (status, body) = post(
        &app,
        "/gagal/ulang",
        &viewer,
        &[("csrf", &csrf), ("id", &wa)],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Hanya admin"), "{body}");
    let (status, _) = post(
        &app,
        "/hari-ini/lanjutkan",
        &viewer,
        &[("csrf", &csrf), ("channel", "whatsapp")],
    );
    assert_eq!(status, 403);
    b.close().await;

    // An admin's POST without the token, or with another session's, is refused too.
    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    let admin = b.session_cookie().await;
    let (status, body) = post(&app, "/gagal/ulang", &admin, &[("id", &wa)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Token CSRF"), "{body}");
    let (status, _) = post(
        &app,
        "/gagal/ulang",
        &admin,
        &[("csrf", &csrf), ("id", &wa)],
    );
    assert_eq!(status, 403, "the viewer's token is not the admin's");
    let (status, _) = post(&app, "/gagal/ulang-semua", &admin, &[("channel", "")]);
    assert_eq!(status, 403);
    let (status, _) = post(&app, "/keluar", &admin, &[]);
    assert_eq!(status, 403, "even logout needs the token");
    // Every action, its form otherwise valid, refuses a POST without the token.
    for (path, form) in [
        ("/hari-ini/lanjutkan", &[("channel", "whatsapp")][..]),
        ("/gagal/ulang", &[("id", wa.as_str())][..]),
        ("/gagal/ulang-semua", &[("channel", "")][..]),
        ("/balasan/tangani", &[("id", "1")][..]),
        (
            "/jeda/tambah",
            &[("kind", "invoice"), ("key", "INV-20261201-000001")][..],
        ),
        ("/jeda/akhiri", &[("invoice_id", "1")][..]),
        (
            "/jeda/berhenti",
            &[("customer_id", "1"), ("channel", "whatsapp")][..],
        ),
        (
            "/jeda/kirim-lagi",
            &[("customer_id", "1"), ("channel", "whatsapp")][..],
        ),
    ] {
        let (status, body) = post(&app, path, &admin, form);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("Token CSRF"), "{path}: {body}");
    }
    assert_eq!(
        app.count("SELECT (SELECT count(*) FROM pauses) + (SELECT count(*) FROM opt_outs) AS n"),
        0,
        "nothing paused, nobody opted out"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"),
        2,
        "nothing changed"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action LIKE 'kirim%'"),
        0
    );

    // The same POST from the admin's browser page, with its token, works.
    b.goto(&app.url("/gagal")).await;
    let token = csrf_of(&b.source().await);
    let (status, _) = post(
        &app,
        "/gagal/ulang",
        &admin,
        &[("csrf", &token), ("id", &wa)],
    );
    assert_eq!(status, 303);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM notifications WHERE status = 'failed'"),
        1
    );
    // A login POST without the login form's token is refused.
    let res = support::http()
        .post(&app.url("/masuk"))
        .send_form([("name", ADMIN.0), ("password", ADMIN.1)])
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_customer_names_are_escaped_on_every_page() {
    let app = App::start().await;
    seed(&app);
    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    let cookie = b.session_cookie().await;
    let customer = app.count("SELECT id AS n FROM customers WHERE external_id = 'C2'");
    let invoice = app.count("SELECT id AS n FROM invoices WHERE number = 'INV-20261201-000002'");
    // The hostile customer replied with hostile text, and is paused and opted out
    // with a hostile reason.
    seed_replies(&app);
    app.exec(&format!(
        "INSERT INTO pauses (customer_id, starts_on, until, reason, created_by)
           VALUES ({customer}, current_date - 1, current_date + 5, $q${}$q$, 'sari')",
        hostile_name()
    ));
    app.exec(&format!(
        "INSERT INTO opt_outs (customer_id, channel, reason, created_by)
           VALUES ({customer}, 'email', $q${}$q$, 'sari')",
        hostile_name()
    ));
    for path in [
        "/balasan".to_owned(),
        "/jeda".to_owned(),
        "/gagal".to_owned(),
        "/cari?q=badru".to_owned(),
        format!("/cari/tagihan/{invoice}"),
        format!("/cari/pelanggan/{customer}"),
        "/cari?q=%3Cscript%3Ealert(2)%3C%2Fscript%3E".to_owned(),
    ] {
        let (status, html) = get(&app, &path, &cookie);
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains("<script"), "{path} has raw markup");
        assert!(
            html.contains("&lt;script&gt;"),
            "{path} shows the name escaped"
        );
        assert!(
            !html.contains(&"A".repeat(1000)),
            "{path} prints 5,000 characters in a list"
        );
        // The RTL override is neutralised, and customer text is isolated in <bdi>.
        assert!(!html.contains('\u{202E}'), "{path} prints the RTL override");
        assert!(html.contains("<bdi>"), "{path}");
        if !path.contains("alert(2)") {
            assert!(html.contains("Badru\u{FFFD}gnp.exe"), "{path}");
        }
    }
    // In the browser: no script ran, and the page still reads left to right.
    b.goto(&app.url(&format!("/cari/pelanggan/{customer}")))
        .await;
    let alert = b.client.get_alert_text().await;
    assert!(alert.is_err(), "an alert opened: {alert:?}");
    assert!(
        b.text("h1")
            .await
            .starts_with("Pelanggan <script>alert(1)</script>")
    );
    b.screenshot("dashboard-pelanggan-nama-berbahaya").await;
    b.close().await;
}

/// Three replies: an answered keyword (not flagged), a flagged one an operator
/// already handled, and a flagged open one from the hostile customer. Returns the
/// open one's id.
fn seed_replies(app: &App) -> i64 {
    app.exec(&format!(
        "INSERT INTO whatsapp_replies (dedup_key, sender, sender_name, message, received_at,
                                       customer_id, intent, flagged, handled_at, handled_by, created_at)
         SELECT k, s, sn, m, now() - make_interval(mins => a), c.id, i, f, h, hb, now() - make_interval(mins => a)
         FROM (VALUES
             ('k1', '6285707211646', 'Budi', 'STOP', 'C1', 'opt_out', false, NULL::timestamptz, NULL, 50),
             ('k2', '6285707211646', 'Budi', 'sudah bayar kemarin', 'C1', 'paid_claim', true, now() - interval '10 minutes', 'sari', 40),
             ('k3', '6281200000002', $q${}$q$, $q${}$q$, 'C2', 'other', true, NULL, NULL, 30)
         ) v(k, s, sn, m, ext, i, f, h, hb, a) JOIN customers c ON c.external_id = v.ext",
        hostile_name(),
        hostile_name()
    ));
    app.count("SELECT id AS n FROM whatsapp_replies WHERE dedup_key = 'k3'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_list_flagged_first_and_an_admin_marks_one_handled() {
    let app = App::start().await;
    seed(&app);
    let open = seed_replies(&app);

    // A viewer reads them but may not mark one handled.
    let b = Browser::start().await;
    b.login(&app, VIEWER.0, VIEWER.1).await;
    b.goto(&app.url("/balasan")).await;
    assert!(
        b.text("#open-count")
            .await
            .starts_with("1 balasan perlu dibalas")
    );
    assert!(!b.exists(&format!("#handle-{open}")).await);
    let viewer = b.session_cookie().await;
    let csrf = csrf_of(&b.source().await);
    let id = open.to_string();
    let (status, body) = post(
        &app,
        "/balasan/tangani",
        &viewer,
        &[("csrf", &csrf), ("id", &id)],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Hanya admin"), "{body}");
    b.close().await;

    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    let admin = b.session_cookie().await;
    let (status, _) = post(&app, "/balasan/tangani", &admin, &[("id", &id)]);
    assert_eq!(status, 403, "no CSRF token");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM whatsapp_replies WHERE handled_at IS NOT NULL"),
        1,
        "nothing changed"
    );
    b.goto(&app.url("/balasan")).await;
    // The open one comes first, then the others newest first.
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("#replies tr[id^=reply-]"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for r in rows {
        ids.push(r.attr("id").await.unwrap().unwrap_or_default());
    }
    let k = |key: &str| {
        format!(
            "reply-{}",
            app.count(&format!(
                "SELECT id AS n FROM whatsapp_replies WHERE dedup_key = '{key}'"
            ))
        )
    };
    assert_eq!(ids, [k("k3"), k("k2"), k("k1")]);
    let page = b.source().await;
    assert!(!page.contains("6281200000002"), "senders are masked");
    assert!(page.contains("&lt;script&gt;"));
    assert!(!page.contains("<script"));
    assert!(!page.contains('\u{202E}'));
    assert!(!page.contains(&"A".repeat(1001)), "5,000 characters cut");
    assert!(b.client.get_alert_text().await.is_err(), "no script ran");
    b.screenshot("dashboard-balasan").await;

    b.click(&format!("#handle-{open}")).await;
    assert_eq!(
        b.text("#handled").await,
        "1 balasan ditandai sudah ditangani."
    );
    assert_eq!(
        b.text("#open-count").await,
        "Tidak ada balasan yang perlu dibalas."
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM whatsapp_replies WHERE id = {open} AND handled_by = 'web:sari' AND handled_at IS NOT NULL"
        )),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE actor = 'sari' AND action = 'tandai balasan ditangani' AND detail = 'balasan {open}'"
        )),
        1
    );
    // The CLI's list agrees: nothing left to answer.
    assert!(
        dunning_store::ops::replies::open(&mut app.conn())
            .unwrap()
            .is_empty()
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_and_opt_outs_are_added_ended_and_opted_in_by_an_admin_only() {
    let app = App::start().await;
    seed(&app);
    let c1 = app.count("SELECT id AS n FROM customers WHERE external_id = 'C1'");
    let today = app.settings.zone.date_at(time::OffsetDateTime::now_utc());
    let until = (today + time::Duration::days(7)).to_string();

    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    b.goto(&app.url("/jeda")).await;
    assert_eq!(b.text("#pauses").await, "Tidak ada jeda yang berlaku.");

    // Pause customer C1 for a week.
    b.fill("#pause-key", "C1").await;
    b.client
        .execute(
            "document.getElementById('pause-until').value = arguments[0]",
            vec![serde_json::json!(until)],
        )
        .await
        .unwrap();
    b.fill("#pause-reason", "janji bayar ke CS").await;
    b.click("#pause-add").await;
    assert_eq!(b.text("#done").await, "1 jeda ditambahkan.");
    assert!(
        b.text("#pauses")
            .await
            .contains("pelanggan C1 (Budi Santoso)")
    );
    let held = dunning_store::holds::current(&mut app.conn(), today).unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].customer_id, Some(c1));
    assert_eq!(held[0].until.map(|d| d.to_string()), Some(until.clone()));
    assert_eq!(held[0].created_by, "web:sari");

    // Opt C1 out of WhatsApp by phone number, as the operator types it.
    b.fill("#optout-key", "0857-0721-1646").await;
    b.fill("#optout-reason", "minta berhenti lewat CS").await;
    b.click("#optout-add").await;
    assert_eq!(b.text("#done").await, "1 kanal dihentikan.");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM opt_outs WHERE customer_id = {c1} AND channel = 'whatsapp'"
        )),
        1
    );
    b.screenshot("dashboard-jeda").await;

    // A pause in the past is refused with the fix.
    let admin = b.session_cookie().await;
    let csrf = csrf_of(&b.source().await);
    let (status, body) = post(
        &app,
        "/jeda/tambah",
        &admin,
        &[
            ("csrf", &csrf),
            ("kind", "pelanggan"),
            ("key", "C1"),
            ("until", "2020-01-01"),
            ("reason", "x"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sudah lewat"), "{body}");
    let (status, body) = post(
        &app,
        "/jeda/berhenti",
        &admin,
        &[
            ("csrf", &csrf),
            ("key", "C404"),
            ("channel", "email"),
            ("reason", "x"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Tidak ada pelanggan"), "{body}");

    // A viewer sees them, without forms, and is refused every action.
    let v = Browser::start().await;
    v.login(&app, VIEWER.0, VIEWER.1).await;
    v.goto(&app.url("/jeda")).await;
    assert!(v.text("#pauses").await.contains("Budi Santoso"));
    assert!(!v.exists("#pause-add").await && !v.exists(".end-pause").await);
    let viewer = v.session_cookie().await;
    let vcsrf = csrf_of(&v.source().await);
    let c1s = c1.to_string();
    for (path, form) in [
        (
            "/jeda/tambah",
            vec![
                ("kind", "pelanggan"),
                ("key", "C1"),
                ("until", until.as_str()),
                ("reason", "x"),
            ],
        ),
        ("/jeda/akhiri", vec![("customer_id", c1s.as_str())]),
        (
            "/jeda/berhenti",
            vec![("key", "C1"), ("channel", "email"), ("reason", "x")],
        ),
        (
            "/jeda/kirim-lagi",
            vec![("customer_id", c1s.as_str()), ("channel", "whatsapp")],
        ),
    ] {
        let mut with = form.clone();
        with.push(("csrf", &vcsrf));
        let (status, body) = post(&app, path, &viewer, &with);
        assert_eq!(status, 403, "viewer {path}: {body}");
        let (status, _) = post(&app, path, &admin, &form);
        assert_eq!(status, 403, "admin without CSRF token {path}");
    }
    v.close().await;
    assert_eq!(app.count("SELECT count(*) AS n FROM pauses"), 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM opt_outs"), 1);

    // End the pause, opt the customer in again.
    b.goto(&app.url("/jeda")).await;
    b.click(&format!("#end-c{c1}")).await;
    assert!(b.text("#done").await.starts_with("1 jeda diakhiri"));
    assert_eq!(b.text("#pauses").await, "Tidak ada jeda yang berlaku.");
    b.click(&format!("#optin-{c1}-whatsapp")).await;
    assert_eq!(b.text("#done").await, "1 kanal dikirimi lagi.");
    assert!(
        dunning_store::holds::current(&mut app.conn(), today)
            .unwrap()
            .is_empty()
    );
    let actions = app.count(
        "SELECT count(*) AS n FROM audit_log WHERE actor = 'sari'
           AND action IN ('tambah jeda', 'berhenti kirim', 'akhiri jeda', 'kirim lagi')",
    );
    assert_eq!(actions, 4);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hook_run_is_shown_and_retried_from_the_dashboard() {
    let app = App::start().await;
    seed(&app);
    // The isolation of INV-…-000001 failed today (the router was busy).
    app.exec(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error, due_date)
         SELECT id, customer_id, 'T+7', 'hook', (now() AT TIME ZONE 'Asia/Jakarta')::date, 'isolir',
                'failed', 3, 'exit status 3: router busy', due_date
         FROM invoices WHERE number = 'INV-20261201-000001'",
    );
    let hook = failed_id(&app, "INV-20261201-000001", "hook");
    let b = Browser::start().await;
    b.login(&app, ADMIN.0, ADMIN.1).await;
    assert_eq!(b.text("#count-hook-failed").await, "1");
    assert_eq!(b.text("#count-email-sent").await, "2", "messages unchanged");
    assert_eq!(b.text("#failed-total").await, "3");

    b.goto(&app.url("/gagal?channel=hook")).await;
    assert!(b.exists(&format!("#failed-{hook}")).await);
    let wa = failed_id(&app, "INV-20261201-000001", "whatsapp");
    assert!(!b.exists(&format!("#failed-{wa}")).await, "only hook runs");
    let row = b.text(&format!("#failed-{hook}")).await;
    assert!(row.contains("isolir"), "the action's name, unmasked: {row}");
    b.screenshot("dashboard-gagal-hook").await;
    assert_eq!(b.text(&format!("#retry-{hook}")).await, "Jalankan ulang");
    b.click(&format!("#retry-{hook}")).await;
    assert!(b.text("#retried").await.starts_with("1 pengiriman"));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM notifications n JOIN jobs j ON j.notification_id = n.id
             WHERE n.id = {hook} AND n.status = 'queued' AND j.channel = 'hook'"
        )),
        1
    );

    // A worker with the hook configured runs it again: a fake command.
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let hooks = dunning_core::hooks::Hooks::parse(
        "hooks.toml",
        &format!(
            "\"T+7\" = \"isolir\"\n[actions.isolir]\ncommand = [\"/bin/sh\", \"-c\", \"echo isolated >> {}; echo ok\"]\n",
            ran.display()
        ),
    )
    .unwrap();
    let hook_settings = dunning_core::hooks::HookSettings {
        file: "hooks.toml".into(),
        explicit: true,
        timeout: std::time::Duration::from_secs(10),
        secret: None,
    };
    let settings = app.settings.clone();
    let pool = app.db.pool(4);
    tokio::task::spawn_blocking(move || {
        let senders = dunning_worker::Senders {
            email: Arc::from(dunning_channels::email_sender(&settings).expect("email sender")),
            whatsapp: Arc::from(
                dunning_channels::whatsapp_sender(&settings).expect("whatsapp sender"),
            ),
        };
        dunning_worker::Worker::new(
            pool,
            senders,
            Templates::builtin("Wikarta Provider"),
            dunning_worker::Config::for_tests("default"),
            Arc::new(AtomicBool::new(false)),
        )
        .with_hooks(hooks, &hook_settings)
        .run();
    })
    .await
    .expect("worker");
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "isolated\n",
        "ran once"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM notifications WHERE id = {hook} AND status = 'sent' AND body = 'ok'"
        )),
        1
    );

    // Today's row, the history chart and the invoice's timeline show it ran.
    b.goto(&app.url("/hari-ini")).await;
    assert_eq!(b.text("#count-hook-sent").await, "1");
    assert_eq!(b.text("#count-hook-failed").await, "0");
    b.goto(&app.url("/riwayat")).await;
    assert_eq!(
        b.client
            .find_all(fantoccini::Locator::Css("#chart-hook rect"))
            .await
            .unwrap()
            .len(),
        1
    );
    let invoice = app.count("SELECT id AS n FROM invoices WHERE number = 'INV-20261201-000001'");
    b.goto(&app.url(&format!("/cari/tagihan/{invoice}"))).await;
    let timeline = b.text("#timeline").await;
    assert!(timeline.contains("Aksi dijalankan"), "{timeline}");
    assert!(
        timeline.contains("isolir"),
        "the action's name, unmasked: {timeline}"
    );
    b.close().await;
}
