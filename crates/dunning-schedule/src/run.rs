//! The scheduler run: the bare `dunning-schedule` command.

use std::fmt::Write as _;

use dunning_core::calendar::{Calendar, Quiet};
use dunning_core::config::Grouping;
use dunning_core::message::customer_label;
use dunning_core::{Settings, Stage};
use dunning_store::scheduling::{self, Group, Line, Outcome, Report, Request};
use serde_json::json;
use time::{Date, OffsetDateTime};

use crate::app;
use crate::cli::RunArgs;
use crate::output::Marks;

/// Runs the scheduler and prints its report; returns the text printed.
pub fn run(settings: &Settings, args: &RunArgs) -> anyhow::Result<()> {
    let hooks = crate::hooks::load()?;
    let settings = &crate::hooks::message_settings(settings, hooks.as_ref());
    let today = settings.zone.date_at(OffsetDateTime::now_utc());
    let run_date = match &args.date {
        Some(d) => app::parse_date("--date", d)?,
        None => today,
    };
    check_run_date(run_date, today, args)?;
    let backfill = run_date != today;
    let marks = Marks::detect(args.emoji);
    let calendar = crate::calendar::load()?;
    if let Some(why) = calendar.quiet(run_date) {
        println!(
            "{}",
            quiet_day(settings, run_date, &calendar, why, args, marks, backfill)?
        );
        return Ok(());
    }
    // Catch-up makes up for days the daily run missed before today; a run for
    // another day does exactly that day. The window counts working days: quiet
    // days in it (or right before it) are added, so a long holiday is caught up.
    let window = if backfill {
        0
    } else {
        calendar.catch_up_window(run_date, args.catch_up_days)
    };
    let window_start = run_date - time::Duration::days(i64::from(window));
    let quiet_days = calendar.quiet_days(window_start, run_date);
    crate::commands::load_templates(settings)?;
    let mut conn = app::connect_migrated(settings)?;
    if !args.no_sync
        && let Some(line) =
            crate::commands::sync::before_run(settings, &mut conn, args.quiet || args.json)?
        && !args.json
    {
        println!("{line}");
    }
    let host = dunning_store::db::hostname();
    let report = scheduling::schedule_around(
        &mut conn,
        &Request {
            run_date,
            stages: &settings.stages,
            catch_up_days: window,
            queue: &args.to.queue,
            dry_run: args.dry_run,
            lines: !(args.quiet || args.json),
            host: &host,
            backfill,
            group: settings.group,
        },
        &quiet_days,
    )?;
    let hook_runs = match &hooks {
        Some(h) => crate::hooks::queue(
            &mut conn,
            h,
            window_start,
            run_date,
            &args.to.queue,
            args.dry_run,
        )?,
        None => Vec::new(),
    };
    let quota = if args.dry_run || args.json {
        let sent =
            scheduling::whatsapp_sent_this_month(&mut conn, run_date, settings.zone.offset())?;
        Some(Quota {
            limit: i64::from(settings.fonnte_monthly_quota),
            sent,
        })
    } else {
        None
    };
    let text = if args.json {
        let mut summary = summary_json(settings, run_date, args, &report, quota);
        summary["backfill"] = json!(backfill);
        summary["quiet"] = serde_json::Value::Null;
        summary["hooks"] = hook_runs
            .iter()
            .map(|q| json!({ "stage": q.stage, "runs": q.runs }))
            .collect();
        serde_json::to_string_pretty(&summary)?
    } else {
        let mut text = render_text(settings, run_date, args, &report, quota, marks, &calendar);
        if let Some(h) = &hooks {
            text.push_str(&crate::hooks::render(h, &hook_runs, args.dry_run));
        }
        if backfill {
            let _ = write!(
                text,
                "\n   {} Backfill: a run for {run_date}, not today ({today}), is recorded as a backfill; it does not count as today's run for `doctor` and catch-up, and catches up no other day.",
                marks.info
            );
        }
        text
    };
    println!("{text}");
    Ok(())
}

/// What a run on a quiet day prints: nothing is queued, why, and which day
/// catches up.
fn quiet_day(
    settings: &Settings,
    run_date: Date,
    calendar: &Calendar,
    why: Quiet<'_>,
    args: &RunArgs,
    m: Marks,
    backfill: bool,
) -> anyhow::Result<String> {
    let next = calendar.next_working_day(run_date);
    if args.json {
        let mut summary = summary_json(settings, run_date, args, &Report::default(), None);
        summary["backfill"] = json!(backfill);
        summary["quiet"] = json!({
            "reason": match why { Quiet::Weekday(_) => "weekday", Quiet::Holiday(_) => "holiday" },
            "name": match why {
                Quiet::Weekday(w) => w.to_string(),
                Quiet::Holiday(name) => name.to_owned(),
            },
            "next_working_day": next.map(|d| d.to_string()),
        });
        return Ok(serde_json::to_string_pretty(&summary)?);
    }
    let next = match next {
        Some(d) => format!("the next working day ({d})"),
        None => "the next working day".to_owned(),
    };
    let verb = if args.dry_run {
        "would queue"
    } else {
        "queues"
    };
    Ok(format!(
        "{} {run_date} is a quiet day: {why}. This run {verb} nothing; {next} catches up (per invoice only the newest due stage).\n   {} Email: 0   {} WhatsApp: 0   (run date {run_date}, {})",
        m.skip, m.email, m.whatsapp, settings.zone
    ))
}

/// `2026-03-20 (Cuti Bersama Idul Fitri 1447 H)`, `2026-03-22 (Sunday)`.
fn quiet_list(calendar: &Calendar, days: &[Date]) -> String {
    let named: Vec<String> = days
        .iter()
        .map(|d| match calendar.quiet(*d) {
            Some(Quiet::Holiday(name)) => format!("{d} ({name})"),
            Some(Quiet::Weekday(w)) => format!("{d} ({w})"),
            None => d.to_string(),
        })
        .collect();
    named.join(", ")
}

/// How far `--date` may be from today without `--force`.
const MAX_DAYS_AWAY: i64 = 366;

/// Refuses a `--date` far from today (most likely a typo: 2062 for 2026) unless
/// `--force`. (Dates near the calendar's ends are refused by `app::parse_date`.)
fn check_run_date(run_date: Date, today: Date, args: &RunArgs) -> anyhow::Result<()> {
    let away = (run_date - today).whole_days();
    if away.abs() > MAX_DAYS_AWAY && !args.force {
        return Err(app::UsageError(format!(
            "--date {run_date} is {} days {} today ({today}): if that is really the day you mean, add --force",
            away.abs(),
            if away > 0 { "after" } else { "before" },
        ))
        .into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: i64,
    sent: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    found: i64,
    dispatched: i64,
    skipped: i64,
    /// Invoices with a job per channel (with `DUNNING_GROUP=customer` several
    /// share one message: [`Report::messages`] counts messages).
    email_jobs: i64,
    whatsapp_jobs: i64,
    /// Reminders (invoice·channel) held by a pause, and by an opt-out.
    held_paused: i64,
    held_opted_out: i64,
}

fn totals<'a>(groups: impl Iterator<Item = &'a Group>) -> Totals {
    let mut t = Totals::default();
    for g in groups {
        t.found += g.invoices;
        if g.dispatched() {
            t.dispatched += g.invoices;
        } else {
            t.skipped += g.invoices;
        }
        if g.email == Some(Outcome::Dispatched) {
            t.email_jobs += g.invoices;
        }
        if g.whatsapp == Some(Outcome::Dispatched) {
            t.whatsapp_jobs += g.invoices;
        }
        for o in [g.email, g.whatsapp].into_iter().flatten() {
            match o {
                Outcome::HeldPaused => t.held_paused += g.invoices,
                Outcome::HeldOptedOut => t.held_opted_out += g.invoices,
                _ => {}
            }
        }
    }
    t
}

/// The stage days of this run in print order: the missed days' stages that found
/// something (catch-up), then every configured stage of the run date.
fn sections(settings: &Settings, run_date: Date, report: &Report) -> Vec<(Stage, Date, bool)> {
    let mut out: Vec<(Stage, Date, bool)> = Vec::new();
    for g in &report.groups {
        if g.stage_date != run_date && !out.contains(&(g.stage, g.stage_date, true)) {
            out.push((g.stage, g.stage_date, true));
        }
    }
    out.extend(settings.stages.iter().map(|s| (*s, run_date, false)));
    out
}

fn channels_of(line: &Line) -> String {
    let mut v = Vec::new();
    if line.email == Some(Outcome::Dispatched) {
        v.push("email");
    }
    if line.whatsapp == Some(Outcome::Dispatched) {
        v.push("whatsapp");
    }
    v.join(" + ")
}

fn skip_reason(line: &Line) -> String {
    let reasons: Vec<&str> = [line.email, line.whatsapp]
        .into_iter()
        .flatten()
        .filter(|o| *o != Outcome::Dispatched)
        .map(Outcome::reason)
        .collect();
    let mut unique: Vec<&str> = Vec::new();
    for r in reasons {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    unique.join("; ")
}

fn render_text(
    settings: &Settings,
    run_date: Date,
    args: &RunArgs,
    report: &Report,
    quota: Option<Quota>,
    m: Marks,
    calendar: &Calendar,
) -> String {
    let mut out = String::new();
    let dry = args.dry_run;
    if !args.quiet {
        if dry {
            let _ = writeln!(
                out,
                "{} Dry run: nothing is written or sent; this is what a real run would do.",
                m.info
            );
        }
        let _ = writeln!(out, "{} Starting dunning scheduler...", m.start);
        if !report.missed_days.is_empty() {
            let days: Vec<String> = report.missed_days.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "{} No scheduler run on {}: catching up (newest applicable stage only)",
                m.catch_up,
                days.join(", ")
            );
        }
        if !report.quiet_days.is_empty() {
            let _ = writeln!(
                out,
                "{} Quiet day(s) {}: catching up (newest applicable stage only)",
                m.catch_up,
                quiet_list(calendar, &report.quiet_days)
            );
        }
        for (stage, day, catch_up) in sections(settings, run_date, report) {
            let in_section = |g: &&Group| g.stage == stage && g.stage_date == day;
            let t = totals(report.groups.iter().filter(in_section));
            let target = stage.target_due_date(day);
            if catch_up {
                // A day in the window that did run: its reminders were held by a pause
                // that has ended since.
                let why = if report.missed_days.contains(&day) {
                    "missed"
                } else if report.quiet_days.contains(&day) {
                    "quiet day"
                } else {
                    "paused on"
                };
                let _ = writeln!(
                    out,
                    "{} Catch-up {stage} ({why} {day}, due {target}): Found {} invoices",
                    m.catch_up, t.found
                );
            } else {
                let _ = writeln!(
                    out,
                    "{} Stage {stage} ({target}): Found {} invoices",
                    m.stage, t.found
                );
            }
            for line in report
                .lines
                .iter()
                .filter(|l| l.stage == stage && l.stage_date == day)
            {
                if line.dispatched() {
                    let verb = if dry { "Would dispatch" } else { "Dispatched" };
                    let mut extra = String::new();
                    let partial = skip_reason(line);
                    if !partial.is_empty() {
                        extra = format!("; other channel: {partial}");
                    }
                    let _ = writeln!(
                        out,
                        "   {} {verb} {} to {} ({}{extra})",
                        m.ok,
                        line.invoice_number,
                        customer_label(&line.customer_name),
                        channels_of(line)
                    );
                } else if [line.email, line.whatsapp].contains(&Some(Outcome::NoContact)) {
                    let _ = writeln!(
                        out,
                        "   {} Skipped {} ({} has no email address and no phone number)",
                        m.warn,
                        line.invoice_number,
                        customer_label(&line.customer_name)
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "   {} Skipped {} ({})",
                        m.skip,
                        line.invoice_number,
                        skip_reason(line)
                    );
                }
            }
        }
        out.push('\n');
    }
    let all = totals(report.groups.iter());
    let title = if dry {
        "Dunning scheduler dry run completed:"
    } else {
        "Dunning scheduler completed:"
    };
    let _ = writeln!(out, "{} {title}", m.ok);
    let verb = if dry { "Would dispatch" } else { "Dispatched" };
    let _ = writeln!(out, "   {} {verb}: {}", m.sent, all.dispatched);
    let _ = writeln!(out, "   {} Skipped: {}", m.skip, all.skipped);
    if all.held_paused + all.held_opted_out > 0 {
        let _ = writeln!(
            out,
            "   {} Held: {} by a pause, {} by an opt-out (reminders per channel; `dunning-schedule pauses` lists them)",
            m.skip, all.held_paused, all.held_opted_out
        );
    }
    // Messages, not invoices: with DUNNING_GROUP=customer one carries several.
    let msgs = report.messages;
    let _ = writeln!(
        out,
        "   {} Email: {}   {} WhatsApp: {}   (run date {run_date}, {})",
        m.email, msgs.email, m.whatsapp, msgs.whatsapp, settings.zone
    );
    if settings.group == Grouping::Customer {
        let _ = writeln!(
            out,
            "   {} One message per customer (DUNNING_GROUP=customer): {} email and {} WhatsApp reminders in {} email and {} WhatsApp messages",
            m.info, all.email_jobs, all.whatsapp_jobs, msgs.email, msgs.whatsapp
        );
    }
    if let Some(q) = quota {
        let remaining = (q.limit - q.sent).max(0);
        let _ = writeln!(
            out,
            "   {} WhatsApp quota: {} sent this month, {} of {} left; this run uses {}",
            m.whatsapp, q.sent, remaining, q.limit, msgs.whatsapp
        );
        if msgs.whatsapp > remaining {
            let _ = writeln!(
                out,
                "   {} This run needs {} WhatsApp messages but only {} remain this month (FONNTE_MONTHLY_QUOTA={}): the rest will wait for next month. Upgrade the Fonnte package or raise FONNTE_MONTHLY_QUOTA.",
                m.warn, msgs.whatsapp, remaining, q.limit
            );
        }
    }
    out.trim_end().to_owned()
}

fn summary_json(
    settings: &Settings,
    run_date: Date,
    args: &RunArgs,
    report: &Report,
    quota: Option<Quota>,
) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = sections(settings, run_date, report)
        .into_iter()
        .map(|(stage, day, catch_up)| {
            let t = totals(
                report
                    .groups
                    .iter()
                    .filter(|g| g.stage == stage && g.stage_date == day),
            );
            // Messages (jobs), as `totals.jobs`: with DUNNING_GROUP=customer one
            // carries several reminders and counts at the stage of its job's row.
            let jobs = report
                .stage_messages
                .iter()
                .find(|s| s.stage == stage && s.stage_date == day)
                .map(|s| s.messages)
                .unwrap_or_default();
            json!({
                "stage": stage.to_string(),
                "stage_date": day.to_string(),
                "due_date": stage.target_due_date(day).to_string(),
                "catch_up": catch_up,
                "found": t.found,
                "dispatched": t.dispatched,
                "skipped": t.skipped,
                "jobs": { "email": jobs.email, "whatsapp": jobs.whatsapp },
                "reminders": { "email": t.email_jobs, "whatsapp": t.whatsapp_jobs },
            })
        })
        .collect();
    let all = totals(report.groups.iter());
    json!({
        "run_date": run_date.to_string(),
        "timezone": settings.zone.name(),
        "dry_run": args.dry_run,
        "missed_days": report.missed_days.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "quiet_days": report.quiet_days.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "stages": stages,
        "totals": {
            "found": all.found,
            "dispatched": all.dispatched,
            "skipped": all.skipped,
            "jobs": { "email": report.messages.email, "whatsapp": report.messages.whatsapp },
            "reminders": { "email": all.email_jobs, "whatsapp": all.whatsapp_jobs },
            "group": match settings.group { Grouping::Invoice => "invoice", Grouping::Customer => "customer" },
            "held": { "paused": all.held_paused, "opted_out": all.held_opted_out },
        },
        "whatsapp_quota": quota.map(|q| json!({
            "limit": q.limit,
            "sent_this_month": q.sent,
            "remaining": (q.limit - q.sent).max(0),
            "this_run": report.messages.whatsapp,
            "exceeded": report.messages.whatsapp > (q.limit - q.sent).max(0),
        })),
    })
}
