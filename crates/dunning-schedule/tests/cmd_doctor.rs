//! `doctor` as a process: each check's ✅/❌ and the fix that goes with a failure.

mod cmd_support;

use cmd_support::{Env, expect_code, ok};
use dunning_test_fonnte::FonnteFake;

/// A healthy installation: yesterday's and today's scheduler runs, a live worker,
/// Fonnte connected.
fn healthy(fake: &FonnteFake) -> Env {
    let mut env = Env::new();
    for (k, v) in fake.env() {
        env.set(k, v);
    }
    env.exec(
        "INSERT INTO schedule_runs (run_date, finished_at, host)
             SELECT d::date, now(), 'test' FROM generate_series(current_date - 8, current_date + 1, '1 day') d;
         INSERT INTO workers (id, hostname, pid, queue, last_seen_at)
             VALUES ('w1', 'host-a', 4242, 'default', now() - interval '10 seconds');",
    );
    env
}

fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(&format!(" {check}: ")))
        .unwrap_or_else(|| panic!("no {check} line in\n{text}"))
}

fn fix_after<'a>(text: &'a str, check: &str) -> &'a str {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains(&format!(" {check}: ")));
    lines.next();
    lines
        .next()
        .filter(|l| l.trim_start().starts_with("Fix:"))
        .unwrap_or_else(|| panic!("no fix after {check} in\n{text}"))
}

#[test]
fn a_healthy_installation_passes_every_check() {
    let fake = FonnteFake::start();
    let env = healthy(&fake);
    let text = ok(&env.run(&["doctor", "--emoji"]));
    for check in [
        "Timezone",
        "Database",
        "Scheduler",
        "Workers",
        "Queue",
        "Channels",
        "WhatsApp quota",
        "SMTP",
        "Fonnte",
        "Templates",
    ] {
        assert!(line(&text, check).starts_with("✅"), "{check}:\n{text}");
    }
    assert!(line(&text, "Fonnte").contains("connected"), "{text}");
    assert!(line(&text, "Workers").contains("host-a"), "{text}");
    assert!(line(&text, "Timezone").contains("Asia/Jakarta"), "{text}");
    assert!(!text.contains("❌"), "{text}");
    assert!(fake.requests().iter().any(|r| r.path == "/device"));
}

#[test]
fn a_disconnected_fonnte_device_fails_with_the_seed_fix() {
    let fake = FonnteFake::start();
    fake.set_connected(false);
    let env = healthy(&fake);
    let text = expect_code(&env.run(&["doctor", "--emoji"]), 1);
    let fonnte = line(&text, "Fonnte");
    assert!(fonnte.starts_with("❌"), "{text}");
    assert!(fonnte.contains("disconnected device"), "{text}");
    let fix = fix_after(&text, "Fonnte");
    assert!(
        fix.contains("fonnte.com") && fix.contains("QR code") && fix.contains("Connected"),
        "{fix}"
    );
    // The other checks still pass: the failure is pinned on the device.
    assert!(line(&text, "Workers").starts_with("✅"), "{text}");
}

#[test]
fn fonnte_answering_disconnected_device_on_the_device_call_fails_too() {
    let fake = FonnteFake::start();
    fake.always(Some(dunning_test_fonnte::Reply::reason(
        "request invalid on disconnected device",
    )));
    let env = healthy(&fake);
    let text = expect_code(&env.run(&["doctor", "--emoji"]), 1);
    assert!(line(&text, "Fonnte").starts_with("❌"), "{text}");
    assert!(fix_after(&text, "Fonnte").contains("QR code"), "{text}");
}

#[test]
fn a_worker_that_stopped_cleanly_is_not_reported_as_silent() {
    // After `dunning-worker --once` (the demo, a cron-driven drain) the worker said it
    // stopped: doctor must not call that a missing heartbeat "2s ago".
    let fake = FonnteFake::start();
    let env = healthy(&fake);
    env.exec("UPDATE workers SET last_seen_at = now() - interval '5 seconds', stopped_at = now() - interval '5 seconds'");
    let text = expect_code(&env.run(&["doctor", "--emoji"]), 1);
    let workers = line(&text, "Workers");
    assert!(workers.starts_with("❌"), "{text}");
    assert!(
        workers.contains("no worker running: the last one (on ")
            && workers.contains(") stopped cleanly 5s ago"),
        "{workers}"
    );
    assert!(!workers.contains("heartbeat"), "{workers}");
}

#[test]
fn no_recent_heartbeat_fails_with_the_worker_fix() {
    let fake = FonnteFake::start();
    let env = healthy(&fake);
    env.exec("UPDATE workers SET last_seen_at = now() - interval '3 hours'");
    let text = expect_code(&env.run(&["doctor", "--emoji"]), 1);
    let workers = line(&text, "Workers");
    assert!(workers.starts_with("❌"), "{text}");
    assert!(
        workers.contains("no worker heartbeat in the last 2m 0s"),
        "{workers}"
    );
    assert!(workers.contains("last heartbeat 3h 0m ago"), "{workers}");
    assert!(workers.contains("without a clean stop"), "{workers}");
    let fix = fix_after(&text, "Workers");
    assert!(
        fix.contains("dunning-worker") && fix.contains("supervisor"),
        "{fix}"
    );
}

#[test]
fn a_stopped_worker_and_a_stuck_queue_fail() {
    let fake = FonnteFake::start();
    let env = healthy(&fake);
    env.exec(
        "UPDATE workers SET stopped_at = now();
         INSERT INTO customers (id, name, phone) VALUES (1, 'Budi', '085707211646');
         INSERT INTO invoices (id, number, customer_id, amount, due_date) VALUES (1, 'INV-1', 1, 1, current_date);
         INSERT INTO notifications (id, invoice_id, customer_id, stage, channel, run_date, recipient)
             VALUES (1, 1, 1, 'T-3', 'whatsapp', current_date, '085707211646');
         INSERT INTO jobs (notification_id, channel, available_at) VALUES (1, 'whatsapp', now() - interval '2 hours');",
    );
    let text = expect_code(&env.run(&["doctor"]), 1);
    assert!(line(&text, "Workers").starts_with("[error]"), "{text}");
    let queue = line(&text, "Queue");
    assert!(
        queue.starts_with("[error]") && queue.contains("has waited 2h 0m"),
        "{text}"
    );
}

#[test]
fn missed_scheduler_days_and_a_never_run_scheduler_fail_with_the_cron_fix() {
    let fake = FonnteFake::start();
    let env = healthy(&fake);
    env.exec("DELETE FROM schedule_runs WHERE run_date = current_date - 2");
    let text = expect_code(&env.run(&["doctor"]), 1);
    let sched = line(&text, "Scheduler");
    assert!(
        sched.starts_with("[error]") && sched.contains("no run on"),
        "{text}"
    );
    assert!(fix_after(&text, "Scheduler").contains("crontab"), "{text}");

    env.exec("DELETE FROM schedule_runs");
    let text = expect_code(&env.run(&["doctor"]), 1);
    assert!(
        line(&text, "Scheduler").contains("no scheduler run recorded"),
        "{text}"
    );
}

#[test]
fn an_invalid_template_and_an_unreachable_database_fail() {
    let fake = FonnteFake::start();
    let mut env = healthy(&fake);
    let dir = env.dir.path().join("templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("T-3.whatsapp.txt"), "Halo {{ nama_pelanggan }}").unwrap();
    env.set("DUNNING_TEMPLATES_DIR", dir.display().to_string());
    // A broken template is a configuration error: exit 2, like the scheduler's.
    let text = expect_code(&env.run(&["doctor"]), 2);
    let t = line(&text, "Templates");
    assert!(
        t.starts_with("[error]") && t.contains("T-3.whatsapp.txt"),
        "{text}"
    );

    let mut down = Env::new();
    down.set("DATABASE_URL", "postgres://nobody@127.0.0.1:9/none");
    let text = expect_code(&down.run(&["doctor"]), 1);
    assert!(line(&text, "Database").starts_with("[error]"), "{text}");
    assert!(
        fix_after(&text, "Database").contains("DATABASE_URL"),
        "{text}"
    );
}

/// Pause ends and the last run are shown in DUNNING_TIMEZONE with the zone named, by
/// `doctor`, `stats` and `resume` alike.
#[test]
fn times_are_shown_in_the_configured_zone_with_its_name() {
    let fake = FonnteFake::start();
    let mut env = healthy(&fake);
    env.set("DUNNING_TIMEZONE", "Asia/Jayapura");
    env.exec(
        "UPDATE schedule_runs SET finished_at = '2026-11-30 23:30:00+00';
         UPDATE channel_state SET paused_until = '2099-01-01 01:00:00+00',
                pause_reason = 'Fonnte: disconnected device' WHERE channel = 'whatsapp';",
    );
    let pause_end = "2099-01-01 10:00:00 Asia/Jayapura (UTC+09:00)";
    let finished = "2026-12-01 08:30:00 Asia/Jayapura (UTC+09:00)";

    let text = expect_code(&env.run(&["doctor"]), 1);
    let channels = line(&text, "Channels");
    assert!(
        channels.contains(&format!("whatsapp paused until {pause_end}")),
        "{text}"
    );
    assert!(
        line(&text, "Scheduler").contains(&format!("finished {finished}")),
        "{text}"
    );
    assert!(
        !text.contains(" UTC:") && !text.contains(" UTC on"),
        "{text}"
    );

    let text = ok(&env.run(&["stats"]));
    assert!(
        text.contains(&format!("whatsapp paused until {pause_end}")),
        "{text}"
    );
    assert!(text.contains(&format!("finished {finished}")), "{text}");

    let text = ok(&env.run(&["resume", "whatsapp"]));
    assert!(
        text.contains(&format!(
            "whatsapp: resumed (it was paused until {pause_end}: Fonnte: disconnected device)"
        )),
        "{text}"
    );
}

/// `doctor` names the company that signs the messages and warns while it is the default.
#[test]
fn doctor_shows_the_company_name_and_warns_on_the_default() {
    let fake = FonnteFake::start();
    let mut env = healthy(&fake);
    let text = ok(&env.run(&["doctor"]));
    let company = line(&text, "Company name");
    assert!(
        company.starts_with("[warn]")
            && company.contains("Salam, Tim Wikarta Provider")
            && company.contains("default"),
        "{text}"
    );
    assert!(
        fix_after(&text, "Company name").contains("DUNNING_COMPANY_NAME"),
        "{text}"
    );

    env.set("DUNNING_COMPANY_NAME", "PT Nusantara Net");
    let text = ok(&env.run(&["doctor"]));
    let company = line(&text, "Company name");
    assert!(
        company.starts_with("[ok]") && company.contains("Salam, Tim PT Nusantara Net"),
        "{text}"
    );
}

/// Issue 14: the SMTP check's fix is about the mail server, never about Fonnte.
#[test]
fn an_smtp_connection_failure_points_at_the_mail_settings_not_fonnte() {
    let fake = FonnteFake::start();
    let mut env = healthy(&fake);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.set("MAIL_MAILER", "smtp");
    env.set("MAIL_HOST", "127.0.0.1");
    env.set("MAIL_PORT", closed.to_string());
    env.set("MAIL_ENCRYPTION", "none");
    env.set("MAIL_FROM_ADDRESS", "noreply@wikarta.com");
    env.set("MAIL_TIMEOUT", "2");
    let text = expect_code(&env.run(&["doctor"]), 1);
    let fix = fix_after(&text, "SMTP");
    assert!(!fix.contains("FONNTE"), "{fix}");
    assert!(fix.contains("MAIL_HOST"), "{fix}");
}
