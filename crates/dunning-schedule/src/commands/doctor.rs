//! `dunning-schedule doctor`: every check an operator would otherwise do by hand,
//! each with ✅/❌ and, when it fails, the fix (the seed's Troubleshooting section).

use std::fmt::Write as _;

use diesel::pg::PgConnection;
use dunning_channels::{PauseKind, SendError};
use dunning_core::calendar::{Calendar, HOLIDAYS_WARN_DAYS};
use dunning_core::config::{MailDriver, WhatsAppDriver};
use dunning_core::message::Templates;
use dunning_core::{Channel, Settings};
use dunning_store::ops::{health, stats};
use dunning_store::scheduling;
use time::OffsetDateTime;

use super::test_whatsapp::reason_and_fix;
use super::{human_secs, local_time};
use crate::app::UsageError;
use crate::output::Marks;

use dunning_store::ops::health::{MISSED_WINDOW_DAYS, STUCK_AFTER_SECS};

const FIX_CRON: &str = "schedule `dunning-schedule` daily at 08:00 local time: install cron/crontab (it checks the hour in WIB, so a UTC server is fine) or the systemd timer systemd/dunning-schedule.timer; Windows: import windows/dunning-schedule.xml with `schtasks /Create /XML` (see docs/panduan.md)";
const FIX_WORKER: &str = "start the worker: `dunning-worker` (it must keep running); for production run it under supervisor or systemd (see supervisor/ and systemd/), e.g. supervisor with autostart=true, autorestart=true, numprocs=2";
const FIX_DEVICE: &str = "login ke fonnte.com, pastikan device sudah di-scan QR code, status device harus \"Connected\" (log in to fonnte.com, scan the QR code with the WhatsApp phone; the device must show \"Connected\")";
const FIX_QUOTA: &str = "upgrade paket Fonnte atau tunggu reset bulanan (upgrade the Fonnte package or wait for the monthly reset; Free: 1000 messages/month), then set FONNTE_MONTHLY_QUOTA to the package's limit";

struct Check {
    name: &'static str,
    ok: bool,
    /// Passed, but the operator should look at it (printed with the warning mark).
    warn: bool,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            warn: false,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            warn: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            warn: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check and prints it as it completes; exit 1 when any fails, exit 2 when
/// the templates are broken (a configuration error, like at the scheduler's start).
pub fn run(settings: &Settings, heartbeat_max_age: u64, m: Marks) -> anyhow::Result<()> {
    println!("{} Dunning doctor", m.info);
    let mut failed = 0;
    let mut report = |c: Check| {
        let mark = match (c.ok, c.warn) {
            (false, _) => m.error,
            (true, true) => m.warn,
            (true, false) => m.ok,
        };
        println!("{mark} {}: {}", c.name, c.detail);
        if let Some(fix) = c.fix {
            println!("   Fix: {fix}");
        }
        if !c.ok {
            failed += 1;
        }
    };

    let now = OffsetDateTime::now_utc();
    let today = settings.zone.date_at(now);
    let local = settings.zone.local(now);
    let targets: Vec<String> = settings
        .stages
        .iter()
        .map(|s| format!("{s} → due {}", s.target_due_date(today)))
        .collect();
    report(Check::pass(
        "Timezone",
        format!(
            "{}: local time {today} {:02}:{:02}; today's run date is {today} ({})",
            settings.zone,
            local.hour(),
            local.minute(),
            targets.join(", ")
        ),
    ));

    let (calendar, calendar_check) = quiet_days(today);
    report(calendar_check);
    report(hooks());

    let mut db = database(settings);
    match &mut db {
        Ok(conn) => {
            report(Check::pass(
                "Database",
                format!(
                    "reachable ({}), migrations up to date",
                    settings
                        .database_url
                        .as_ref()
                        .map(|u| dunning_store::db::describe_url(u.expose()))
                        .unwrap_or_default()
                ),
            ));
            for check in [
                scheduler(conn, settings, today, &calendar),
                workers(conn, heartbeat_max_age),
                queue(conn),
                paused(conn, settings),
            ] {
                report(check.unwrap_or_else(|e| {
                    Check::fail(
                        "Database",
                        e.to_string(),
                        "check the database connection and run `dunning-schedule doctor` again",
                    )
                }));
            }
            if let WhatsAppDriver::Fonnte(_) = settings.whatsapp {
                report(local_quota(conn, settings, today).unwrap_or_else(|e| {
                    Check::fail(
                        "WhatsApp quota",
                        e.to_string(),
                        "check the database connection",
                    )
                }));
            }
        }
        Err(check) => {
            report(Check {
                name: check.name,
                ok: check.ok,
                warn: check.warn,
                detail: check.detail.clone(),
                fix: check.fix.clone(),
            });
            println!("   (scheduler, worker and queue checks need the database: skipped)");
        }
    }
    report(smtp(settings));
    report(fonnte(settings));
    report(company(settings));
    let template_check = templates(settings);
    let broken_templates = !template_check.ok;
    report(template_check);
    for (name, ok, detail, fix) in super::sync::doctor(settings) {
        report(Check {
            name,
            ok,
            warn: false,
            detail,
            fix,
        });
    }

    for (name, ok, warn, detail, fix) in super::payments::doctor(settings, db.as_mut().ok()) {
        report(Check {
            name,
            ok,
            warn,
            detail,
            fix,
        });
    }

    if broken_templates {
        Err(UsageError(format!(
            "doctor: the templates are broken ({failed} check(s) failed): the scheduler and the workers refuse to start until the file named above is fixed"
        ))
        .into())
    } else if failed == 0 {
        println!("{} All checks passed.", m.ok);
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "doctor: {failed} check(s) failed; see the fixes above"
        ))
    }
}

fn database(settings: &Settings) -> Result<PgConnection, Check> {
    let url = settings.require_database_url().map_err(|e| {
        Check::fail(
            "Database",
            e.to_string(),
            "set DATABASE_URL in .env (postgres://user:pass@host/dunning)",
        )
    })?;
    let mut conn = dunning_store::db::connect(url.expose()).map_err(|e| {
        Check::fail(
            "Database",
            e.to_string(),
            "check DATABASE_URL (host, port, user, password, database name) and that PostgreSQL is running",
        )
    })?;
    match dunning_store::db::pending_migrations(&mut conn) {
        Ok(p) if p.is_empty() => Ok(conn),
        Ok(p) => Err(Check::fail(
            "Database",
            format!(
                "reachable, but {} migration(s) pending: {}",
                p.len(),
                p.join(", ")
            ),
            "run `dunning-schedule migrate`",
        )),
        Err(e) => Err(Check::fail(
            "Database",
            e.to_string(),
            "run `dunning-schedule migrate`",
        )),
    }
}

fn scheduler(
    conn: &mut PgConnection,
    settings: &Settings,
    today: time::Date,
    calendar: &Calendar,
) -> anyhow::Result<Check> {
    let name = "Scheduler";
    let Some(last) = health::last_run(conn)? else {
        return Ok(Check::fail(
            name,
            "no scheduler run recorded: reminders are never queued",
            FIX_CRON,
        ));
    };
    // No run is expected on a quiet day: only working days count as missed.
    let quiet = calendar.quiet_days(
        today - time::Duration::days(i64::from(MISSED_WINDOW_DAYS)),
        today,
    );
    let missed = scheduling::catch_up(conn, today, MISSED_WINDOW_DAYS, &quiet)?.missed;
    let ran = format!(
        "last run for {} finished {} on {} ({} dispatched, {} skipped)",
        last.run_date,
        local_time(settings, last.finished_at),
        if last.host.is_empty() {
            "?"
        } else {
            &last.host
        },
        last.dispatched,
        last.skipped
    );
    if !missed.is_empty() {
        let days: Vec<String> = missed.iter().map(ToString::to_string).collect();
        return Ok(Check::fail(
            name,
            format!("{ran}; no run on {}", days.join(", ")),
            format!(
                "{FIX_CRON}. The next run catches up the last DUNNING_CATCH_UP_DAYS days (default 3); for an older day run `dunning-schedule --date YYYY-MM-DD`"
            ),
        ));
    }
    let today_note = if last.run_date >= today {
        "today's run done".to_owned()
    } else if let Some(why) = calendar.quiet(today) {
        format!("today is a quiet day ({why}): no reminders are queued today")
    } else {
        "today's run has not happened yet".to_owned()
    };
    Ok(Check::pass(name, format!("{ran}; {today_note}")))
}

/// The escalation hooks file: a bad one fails (the scheduler and the worker refuse to
/// start with it); a command whose program is missing here warns (the worker may
/// run on another machine).
fn hooks() -> Check {
    let name = "Hooks";
    let hooks = match crate::hooks::load() {
        Ok(Some(h)) => h,
        Ok(None) => return Check::pass(name, "none (no hooks file, DUNNING_HOOKS unset)"),
        Err(e) => {
            return Check::fail(
                name,
                format!("{e:#}"),
                "fix the line named above; until then `dunning-schedule` and `dunning-worker` refuse to start (exit 2)",
            );
        }
    };
    let mut events: Vec<String> = hooks
        .stages
        .iter()
        .map(|h| {
            format!(
                "{} → {}{}",
                h.stage,
                h.action,
                if h.message { "" } else { " (no reminder)" }
            )
        })
        .collect();
    events.extend(hooks.paid.iter().map(|a| format!("paid → {a}")));
    events.extend(hooks.optout.iter().map(|a| format!("optout → {a}")));
    for a in hooks.actions.values() {
        if let Some(r) = &a.restore {
            events.push(format!("{} restored by {r} after payment", a.name));
        }
    }
    let detail = events.join(", ");
    let missing = dunning_channels::hooks::missing_programs(&hooks);
    if missing.is_empty() {
        Check::pass(name, detail)
    } else {
        Check::warn(
            name,
            format!("{detail}; {}", missing.join("; ")),
            "install the program or correct `command` in the hooks file (this warning is harmless on a machine that runs no worker)",
        )
    }
}

/// The quiet weekdays and the holiday file: a bad file fails (the scheduler refuses
/// to run with it); a file whose last date is near or past warns, so next year's
/// holidays are added before reminders go out on them. Returns the calendar the
/// other checks use (empty when it cannot be read).
fn quiet_days(today: time::Date) -> (Calendar, Check) {
    let name = "Quiet days";
    let calendar = match crate::calendar::load() {
        Ok(c) => c,
        Err(e) => {
            return (
                Calendar::default(),
                Check::fail(
                    name,
                    format!("{e:#}"),
                    "fix the line or the path named above; until then `dunning-schedule` refuses to run (exit 2)",
                ),
            );
        }
    };
    let weekdays = if calendar.weekdays().is_empty() {
        "no quiet weekday".to_owned()
    } else {
        let names: Vec<String> = calendar
            .weekdays()
            .iter()
            .map(ToString::to_string)
            .collect();
        format!("quiet on {}", names.join(", "))
    };
    let today_note = match calendar.quiet(today) {
        Some(why) => format!("; today is quiet: {why}"),
        None => String::new(),
    };
    let Some(last) = calendar.holidays().last() else {
        return (
            calendar,
            Check::pass(
                name,
                format!(
                    "{weekdays}; no holiday file (DUNNING_HOLIDAYS unset): reminders go out on public holidays{today_note}"
                ),
            ),
        );
    };
    let detail = format!(
        "{weekdays}; {} holidays listed up to {last}{today_note}",
        calendar.holidays().len()
    );
    let left = (last - today).whole_days();
    let check = if left < HOLIDAYS_WARN_DAYS {
        let when = if left < 0 {
            format!("ended {} days ago", -left)
        } else {
            format!("ends in {left} days")
        };
        Check::warn(
            name,
            format!("{detail}: the holiday file {when}, after that reminders go out on holidays"),
            "add the next year's national holidays and cuti bersama (the SKB of the Ministers of Religion, Manpower and PANRB) to the DUNNING_HOLIDAYS file, one `YYYY-MM-DD Name` a line",
        )
    } else {
        Check::pass(name, detail)
    };
    (calendar, check)
}

fn workers(conn: &mut PgConnection, max_age: u64) -> anyhow::Result<Check> {
    let name = "Workers";
    let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
    let running = health::running_workers(conn)?;
    let alive: Vec<String> = running
        .iter()
        .filter(|w| w.silent_secs <= max_age)
        .map(|w| {
            format!(
                "{} (pid {}, queue {}, seen {} ago, {} jobs)",
                w.hostname,
                w.pid,
                w.queue,
                human_secs(w.silent_secs),
                w.jobs_done
            )
        })
        .collect();
    if !alive.is_empty() {
        return Ok(Check::pass(
            name,
            format!("{} alive: {}", alive.len(), alive.join("; ")),
        ));
    }
    let detail = match health::last_worker(conn)? {
        Some(w) => match w.stopped_secs {
            // A clean stop is not a crash: say so, or the operator hunts for one.
            Some(stopped) => format!(
                "no worker running: the last one (on {}) stopped cleanly {} ago",
                w.hostname,
                human_secs(stopped)
            ),
            None => format!(
                "no worker heartbeat in the last {} (last heartbeat {} ago, on {}, without a clean stop: killed, crashed or its host is down)",
                human_secs(max_age),
                human_secs(w.silent_secs),
                w.hostname
            ),
        },
        None => format!(
            "no worker heartbeat in the last {} (no worker has ever run on this database)",
            human_secs(max_age)
        ),
    };
    Ok(Check::fail(
        name,
        format!("{detail}: queued reminders are not sent"),
        FIX_WORKER,
    ))
}

fn queue(conn: &mut PgConnection) -> anyhow::Result<Check> {
    let name = "Queue";
    let q = stats::queue_health(conn)?;
    let detail = format!(
        "{} waiting ({} ready now), {} in progress",
        q.waiting, q.ready, q.reserved
    );
    if q.ready > 0 && q.oldest_ready_secs > STUCK_AFTER_SECS {
        return Ok(Check::fail(
            name,
            format!(
                "{detail}; the oldest ready job has waited {}: the queue is not moving",
                human_secs(q.oldest_ready_secs)
            ),
            format!("{FIX_WORKER}; check that its --queue matches DUNNING_QUEUE and read its log"),
        ));
    }
    let oldest = if q.ready > 0 {
        format!("; oldest ready for {}", human_secs(q.oldest_ready_secs))
    } else {
        String::new()
    };
    Ok(Check::pass(name, format!("{detail}{oldest}")))
}

fn paused(conn: &mut PgConnection, settings: &Settings) -> anyhow::Result<Check> {
    let name = "Channels";
    let paused = health::paused_channels(conn)?;
    if paused.is_empty() {
        return Ok(Check::pass(name, "no channel paused"));
    }
    let list: Vec<String> = paused
        .iter()
        .map(|p| {
            format!(
                "{} paused until {}: {}",
                p.channel,
                local_time(settings, p.paused_until),
                p.pause_reason.as_deref().unwrap_or("no reason recorded")
            )
        })
        .collect();
    Ok(Check::fail(
        name,
        list.join("; "),
        "fix the reason shown (it says how), then `dunning-schedule resume CHANNEL`; otherwise the workers try the channel again when the pause ends",
    ))
}

fn local_quota(
    conn: &mut PgConnection,
    settings: &Settings,
    today: time::Date,
) -> anyhow::Result<Check> {
    let name = "WhatsApp quota";
    let sent = scheduling::whatsapp_sent_this_month(conn, today, settings.zone.offset())?;
    let limit = i64::from(settings.fonnte_monthly_quota);
    let left = (limit - sent).max(0);
    let detail = format!("{sent} sent this month of {limit} (FONNTE_MONTHLY_QUOTA), {left} left");
    Ok(if left == 0 {
        Check::fail(name, format!("{detail}: quota exceeded"), FIX_QUOTA)
    } else {
        Check::pass(name, detail)
    })
}

fn smtp(settings: &Settings) -> Check {
    let name = "SMTP";
    match &settings.mail {
        MailDriver::Log => Check::pass(
            name,
            format!(
                "MAIL_MAILER=log: emails are written to {} (nothing to check; set MAIL_MAILER=smtp to send)",
                settings.outbox_dir.display()
            ),
        ),
        MailDriver::Smtp(_) => match dunning_channels::check_smtp(settings) {
            Ok(done) => Check::pass(name, done),
            Err(e) => {
                let (reason, fix) = reason_and_fix(Channel::Email, &e);
                Check::fail(name, reason, fix)
            }
        },
    }
}

fn fonnte(settings: &Settings) -> Check {
    let name = "Fonnte";
    if settings.whatsapp == WhatsAppDriver::Log {
        return Check::pass(
            name,
            format!(
                "WHATSAPP_DRIVER=log: WhatsApp messages are written to {} (nothing to check; set WHATSAPP_DRIVER=fonnte to send)",
                settings.outbox_dir.join("whatsapp.jsonl").display()
            ),
        );
    }
    match dunning_channels::fonnte_device(settings) {
        Ok(d) => {
            let mut facts = vec![format!(
                "device {}",
                if d.device.is_empty() { "?" } else { &d.device }
            )];
            if let Some(p) = &d.package {
                facts.push(format!("package {p}"));
            }
            if let Some(q) = &d.quota {
                facts.push(format!("quota {q} left"));
            }
            if let Some(e) = &d.expired {
                facts.push(format!("expires {e}"));
            }
            let facts = facts.join(", ");
            let quota_left = d
                .quota
                .as_deref()
                .and_then(|q| q.trim().parse::<i64>().ok());
            if !d.connected {
                Check::fail(
                    name,
                    format!(
                        "{facts}: disconnected device (Fonnte answers \"request invalid on disconnected device\")"
                    ),
                    FIX_DEVICE,
                )
            } else if quota_left == Some(0) {
                Check::fail(name, format!("{facts}: quota exceeded"), FIX_QUOTA)
            } else {
                Check::pass(name, format!("{facts}, connected"))
            }
        }
        Err(e) => {
            let (reason, fix) = reason_and_fix(Channel::WhatsApp, &e);
            let fix = match e {
                SendError::ChannelWide {
                    kind: PauseKind::Device,
                    ..
                } => FIX_DEVICE.to_owned(),
                _ => fix,
            };
            Check::fail(name, reason, fix)
        }
    }
}

/// The default of `DUNNING_COMPANY_NAME`: the seed's example provider.
const DEFAULT_COMPANY: &str = "Wikarta Provider";

fn company(settings: &Settings) -> Check {
    let name = "Company name";
    let signed = format!(
        "messages are signed \"Salam, Tim {}\" (DUNNING_COMPANY_NAME)",
        settings.company_name
    );
    if settings.company_name.trim() == DEFAULT_COMPANY {
        Check::warn(
            name,
            format!("{signed}: still the default, the seed's example company"),
            "set DUNNING_COMPANY_NAME in .env to your company's name, e.g. DUNNING_COMPANY_NAME=\"PT Wikarta Net\" (quotes for spaces)",
        )
    } else {
        Check::pass(name, signed)
    }
}

/// Checks the templates like the scheduler and the workers do at start, and lists
/// which file serves each stage and channel (built-in or the override's path).
fn templates(settings: &Settings) -> Check {
    let name = "Templates";
    match Templates::load(
        &settings.company_name,
        settings.templates_dir.as_deref(),
        &settings.stages,
    ) {
        Ok(t) => {
            let mut detail = match &settings.templates_dir {
                Some(dir) => format!("{} and the built-in texts are valid", dir.display()),
                None => "built-in texts (DUNNING_TEMPLATES_DIR not set), valid".into(),
            };
            detail.push_str("; each stage and channel is served by:");
            for (file, origin) in t.sources() {
                // `T-3.email.subject.txt` → `T-3 email subject`.
                let what = file.trim_end_matches(".txt").replace('.', " ");
                let _ = write!(detail, "\n     {what:<24} {origin}");
            }
            Check::pass(name, detail)
        }
        Err(e) => Check::fail(
            name,
            e.to_string(),
            "edit or remove the file named above (the message says what is wrong), then run `dunning-schedule doctor` again",
        ),
    }
}
