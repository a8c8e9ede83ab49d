//! The dashboard's sessions and login limits over plain HTTP (no browser needed).

mod support;

use dunning_dashboard::Options;
use support::{App, get, http};

fn login(app: &App, name: &str, password: &str) -> (u16, Option<String>) {
    let agent = http();
    let mut page = agent.get(&app.url("/masuk")).call().unwrap();
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let html = page.body_mut().read_to_string().unwrap();
    let csrf = support::csrf_of(&html);
    let res = agent
        .post(&app.url("/masuk"))
        .header("Cookie", &cookie)
        .send_form([("name", name), ("password", password), ("csrf", &csrf)])
        .unwrap();
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dunning_session=") && !v.contains("Max-Age=0"))
        .map(|v| {
            assert!(
                v.contains("HttpOnly") && v.contains("SameSite=Strict"),
                "{v}"
            );
            v.split(';')
                .next()
                .unwrap()
                .trim_start_matches("dunning_session=")
                .to_owned()
        });
    (res.status().as_u16(), session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_rate_limited_per_user_even_with_the_right_password() {
    let app = App::start().await;
    app.add_user("sari", "admin", "kata-sandi-admin");
    for _ in 0..5 {
        let (status, session) = login(&app, "sari", "salah-sandi-123");
        assert_eq!((status, session), (401, None));
    }
    let (status, session) = login(&app, "sari", "kata-sandi-admin");
    assert_eq!((status, session), (429, None), "locked for 15 minutes");
    // The failures are in the database: another web process sees them too.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM web_login_failures WHERE username = 'sari'"),
        5
    );
    app.exec("UPDATE web_login_failures SET at = at - interval '16 minutes'");
    let (status, session) = login(&app, "sari", "kata-sandi-admin");
    assert_eq!(status, 303);
    assert!(session.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_after_eight_idle_hours() {
    let app = App::start().await;
    app.add_user("sari", "admin", "kata-sandi-admin");
    let (_, session) = login(&app, "sari", "kata-sandi-admin");
    let session = session.expect("logged in");
    assert_eq!(get(&app, "/hari-ini", &session).0, 200);
    // The database keeps the SHA-256 of the cookie, never the cookie itself.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM web_sessions WHERE token_digest = encode(sha256(convert_to('{session}', 'UTF8')), 'hex')"
        )),
        1
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM web_sessions WHERE token_digest = '{session}' OR csrf_token = '{session}'")),
        0
    );
    app.exec("UPDATE web_sessions SET last_seen_at = now() - interval '7 hours 59 minutes'");
    assert_eq!(
        get(&app, "/hari-ini", &session).0,
        200,
        "still within 8 h, and the clock restarts"
    );
    app.exec("UPDATE web_sessions SET last_seen_at = now() - interval '8 hours 1 minute'");
    let (status, _) = get(&app, "/hari-ini", &session);
    assert_eq!(status, 303, "idle for more than 8 h: back to the login");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM web_sessions"),
        0,
        "the idle session is gone"
    );
}

/// The text of the element with `id` in a page (`<x id="ID">TEXT</x>`).
fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + id.len()
        + 6;
    html[at..].split('<').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_forecasts_the_next_runs_whatsapp_messages_without_writing() {
    let app = App::start().await;
    app.add_user("sari", "admin", "kata-sandi-admin");
    // Three unpaid invoices at T-3 today with a phone number, one without a phone,
    // one paid: the run would send 3 WhatsApp messages.
    app.exec(
        "INSERT INTO customers (external_id, name, email, phone) VALUES
           ('C1', 'Budi', 'budi@example.id', '6285707211646'),
           ('C2', 'Sari', 'sari@example.id', '6281200000002'),
           ('C3', 'Tono', 'tono@example.id', NULL)",
    );
    app.exec(
        "INSERT INTO invoices (number, customer_id, amount, due_date, status)
         SELECT n, c.id, 100000, (now() AT TIME ZONE 'Asia/Jakarta')::date + 3, s
         FROM (VALUES ('INV-1', 'C1', 'unpaid'), ('INV-2', 'C1', 'unpaid'), ('INV-3', 'C2', 'unpaid'),
                      ('INV-4', 'C3', 'unpaid'), ('INV-5', 'C2', 'paid')) v(n, ext, s)
         JOIN customers c ON c.external_id = v.ext",
    );
    let (_, session) = login(&app, "sari", "kata-sandi-admin");
    let session = session.expect("logged in");
    // The dry run is the page's costliest read: only on request.
    let (status, html) = get(&app, "/hari-ini", &session);
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("id=\"wa-next-run\""), "{html}");
    assert!(
        html.contains("href=\"/hari-ini?perkiraan=1#kuota\""),
        "{html}"
    );
    let (status, html) = get(&app, "/hari-ini?perkiraan=1", &session);
    assert_eq!(status, 200, "{html}");
    assert_eq!(text_of(&html, "wa-next-run"), "3");
    // A forecast, not a run: nothing was queued or recorded.
    assert_eq!(app.count("SELECT count(*) AS n FROM notifications"), 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM jobs"), 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM schedule_runs"), 0);
}

/// One customer with an overdue invoice whose isolation hook failed today and whose
/// paid hook ran. Returns the failed run's notification id.
fn seed_hook_runs(app: &App) -> i64 {
    app.exec(
        "INSERT INTO customers (external_id, name, email, phone)
         VALUES ('C1', 'Budi', 'budi@example.id', '6285707211646')",
    );
    app.exec(
        "INSERT INTO invoices (number, customer_id, amount, due_date, status)
         SELECT n, c.id, 150000, (now() AT TIME ZONE 'Asia/Jakarta')::date - 7, 'unpaid'
         FROM (VALUES ('INV-1'), ('INV-2')) v(n) CROSS JOIN customers c",
    );
    app.exec(
        "INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                    status, attempts, error, due_date)
         SELECT i.id, i.customer_id, st, 'hook', (now() AT TIME ZONE 'Asia/Jakarta')::date, a, s, 1, e,
                i.due_date
         FROM (VALUES ('INV-1', 'T+7', 'isolir', 'failed', 'exit status 3: router busy'),
                      ('INV-2', 'T+7', 'isolir', 'sent', NULL)) v(num, st, a, s, e)
         JOIN invoices i ON i.number = v.num",
    );
    app.count("SELECT id AS n FROM notifications WHERE status = 'failed'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_runs_show_when_hooks_are_configured_or_have_run_and_not_otherwise() {
    let markers = [
        ("/hari-ini", "id=\"hook-row\""),
        ("/riwayat", "id=\"chart-hook\""),
        ("/gagal", "<option value=\"hook\""),
    ];
    // An ISP without hooks: no hook row, chart or filter.
    let plain = App::start().await;
    plain.add_user("sari", "admin", "kata-sandi-admin");
    let (_, session) = login(&plain, "sari", "kata-sandi-admin");
    let session = session.expect("logged in");
    for (path, marker) in markers {
        let (status, html) = get(&plain, path, &session);
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains(marker), "{path} shows hooks: {html}");
    }

    // Hooks configured, none run yet: shown, with zeros.
    let configured = App::start_with(Options {
        hooks: true,
        ..Options::default()
    })
    .await;
    configured.add_user("sari", "admin", "kata-sandi-admin");
    let (_, s2) = login(&configured, "sari", "kata-sandi-admin");
    let s2 = s2.expect("logged in");
    for (path, marker) in markers {
        let (status, html) = get(&configured, path, &s2);
        assert_eq!(status, 200, "{path}: {html}");
        assert!(html.contains(marker), "{path} hides hooks: {html}");
    }
    let (_, html) = get(&configured, "/hari-ini", &s2);
    assert_eq!(text_of(&html, "count-hook-total"), "0");

    // Not configured (the web process has no hooks.toml) but the ledger has runs:
    // shown with the ledger's numbers, outside the messages' totals.
    let failed = seed_hook_runs(&plain);
    let (_, html) = get(&plain, "/hari-ini", &session);
    assert!(html.contains("Aksi (hook)"), "{html}");
    assert_eq!(text_of(&html, "count-hook-failed"), "1");
    assert_eq!(text_of(&html, "count-hook-sent"), "1");
    assert_eq!(text_of(&html, "count-hook-total"), "2");
    assert_eq!(text_of(&html, "count-email-total"), "0");
    assert_eq!(text_of(&html, "failed-total"), "1");
    let (_, html) = get(&plain, "/riwayat", &session);
    assert!(html.contains("id=\"chart-hook\""), "{html}");
    assert!(html.contains("(2 notifikasi"), "{html}");
    let (status, html) = get(&plain, "/gagal?channel=hook", &session);
    assert_eq!(status, 200, "the hook channel is a valid filter: {html}");
    assert!(html.contains(&format!("id=\"failed-{failed}\"")), "{html}");
    assert!(html.contains("<option value=\"hook\" selected"), "{html}");
    assert!(html.contains("Jalankan ulang"), "{html}");
    // The action's name is not personal data: shown as is, not masked.
    assert!(html.contains("<td class=\"nw\">isolir</td>"), "{html}");
    let (_, html) = get(&plain, "/gagal?channel=email", &session);
    assert!(!html.contains(&format!("id=\"failed-{failed}\"")), "{html}");
}
