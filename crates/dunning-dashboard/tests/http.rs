//! The dashboard's sessions and login limits over plain HTTP (no browser needed).

mod support;

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
