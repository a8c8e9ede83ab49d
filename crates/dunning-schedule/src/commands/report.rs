//! `dunning-schedule report`: the 09:00 report that replaces "cek log untuk error".
//!
//! Yesterday and today in Indonesian, every number from the reads the other
//! commands already use (`stats`, `failed`, `replies`, `doctor`, the dashboard's
//! recovery) and the quota forecast from the scheduler's own dry run. `--send` mails
//! it and/or WhatsApps it to the operator through the channels: the WhatsApp copy
//! takes the workers' shared send slot (paced), is refused when the monthly quota is
//! used up, and is recorded in the ledger so it counts against the quota.

use std::fmt::Write as _;

use dunning_channels::fix;
use dunning_channels::{OutgoingMessage, SendError};
use dunning_core::calendar::Calendar;
use dunning_core::contact::{normalize_phone, validate_email};
use dunning_core::format::{rupiah, tanggal};
use dunning_core::mask::{mask_ledger_recipient, mask_recipient};
use dunning_core::{Channel, Settings};
use dunning_store::ops::failed::{self, Failed, Filter};
use dunning_store::ops::history::{self, RECOVERY_DAYS, Recovery};
use dunning_store::ops::report::{self, GatewayPaid};
use dunning_store::ops::stats::{self, ChannelStatus};
use dunning_store::ops::{health, test_dunning};
use dunning_store::scheduling::{self, Request};
use serde_json::json;
use time::{Date, Duration, OffsetDateTime};

use crate::app::{self, UsageError};
use crate::output::Marks;

/// The variables of the report's recipients.
pub const VARIABLES: &[&str] = &["DUNNING_REPORT_EMAIL", "DUNNING_REPORT_WHATSAPP"];

const CHANNELS: [&str; 2] = ["email", "whatsapp"];
/// How far back gateway payments are compared with billing.
const GATEWAY_DAYS: i64 = 30;
/// Failures listed one by one (the rest are counted).
const LIST_MAX: usize = 10;

/// Gateway payments billing does not have yet, as far as billing could be asked.
#[derive(Debug, Default)]
struct NotInBilling {
    /// Billing still has them unpaid.
    unpaid: Vec<GatewayPaid>,
    /// Billing could not be asked about them (down, or no billing source).
    unchecked: Vec<GatewayPaid>,
    /// Why they could not be checked.
    why_unchecked: Option<String>,
}

/// Everything the report says.
struct Data {
    today: Date,
    yesterday: Date,
    days: Vec<(Date, Vec<ChannelStatus>)>,
    quota_limit: i64,
    whatsapp_sent: i64,
    whatsapp_queued: i64,
    /// WhatsApp reminders the scheduler's dry runs would queue from tomorrow to the
    /// end of the month (working days only).
    whatsapp_scheduled: i64,
    failed: Vec<Failed>,
    paused: Vec<health::Paused>,
    flagged: Vec<dunning_store::payments::FlaggedPayment>,
    replies: Vec<dunning_store::ops::replies::ReplyListing>,
    recovery: Vec<Recovery>,
    gateway: NotInBilling,
}

/// Prints the report of `date` (default today) and, with `send`, sends it.
pub fn run(
    settings: &Settings,
    date: Option<&str>,
    send: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let today = match date {
        Some(d) => app::parse_date("--date", d)?,
        None => settings.zone.date_at(OffsetDateTime::now_utc()),
    };
    let recipients = Recipients::from_env()?;
    if send && recipients.is_empty() {
        return Err(UsageError(
            "report --send: set DUNNING_REPORT_EMAIL (an email address) and/or DUNNING_REPORT_WHATSAPP (a phone number) in .env".into(),
        )
        .into());
    }
    let calendar = crate::calendar::load()?;
    let mut conn = app::connect_migrated(settings)?;
    let data = gather(settings, &calendar, &mut conn, today)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&data.json(settings))?);
    } else {
        print!("{}", data.text(settings, Marks::detect(false)));
    }
    if send {
        // The copy sent carries the emoji: mail and WhatsApp show them.
        let text = data.text(settings, Marks::EMOJI);
        send_report(settings, &mut conn, &recipients, &text, today)?;
    }
    Ok(())
}

fn gather(
    settings: &Settings,
    calendar: &Calendar,
    conn: &mut diesel::PgConnection,
    today: Date,
) -> anyhow::Result<Data> {
    let offset = settings.zone.offset();
    let yesterday = today - Duration::days(1);
    let from = yesterday.midnight().assume_offset(offset);
    let days = vec![
        (
            yesterday,
            stats::by_channel_status(conn, yesterday, offset)?,
        ),
        (today, stats::by_channel_status(conn, today, offset)?),
    ];
    let whatsapp_queued = days
        .iter()
        .flat_map(|(_, rows)| rows)
        .filter(|r| r.channel == "whatsapp" && r.status == "queued")
        .map(|r| r.total)
        .sum();
    let failed = failed::list_matching(
        conn,
        &Filter {
            since: Some(from),
            ..Filter::default()
        },
        None,
    )?;
    let flagged = dunning_store::payments::flagged_payments(conn, 100)?
        .into_iter()
        .filter(|p| p.received_at >= from)
        .collect();
    Ok(Data {
        today,
        yesterday,
        days,
        quota_limit: i64::from(settings.fonnte_monthly_quota),
        whatsapp_sent: scheduling::whatsapp_sent_this_month(conn, today, offset)?,
        whatsapp_queued,
        whatsapp_scheduled: month_forecast(settings, calendar, conn, today)?,
        failed,
        paused: health::paused_channels(conn)?,
        flagged,
        replies: dunning_store::ops::replies::open(conn)?,
        recovery: history::recovery_by_stage(conn, today, 2, offset)?,
        gateway: not_in_billing(settings, conn, today)?,
    })
}

/// WhatsApp reminders the rest of the month will need if nobody pays: the
/// scheduler's dry run (the same statement and rules as `--dry-run`, rolled back)
/// for every working day from tomorrow to the month's end.
fn month_forecast(
    settings: &Settings,
    calendar: &Calendar,
    conn: &mut diesel::PgConnection,
    today: Date,
) -> anyhow::Result<i64> {
    let mut total = 0;
    let mut day = today;
    let host = dunning_store::db::hostname();
    while let Some(next) = day.next_day() {
        if next.month() != today.month() {
            break;
        }
        day = next;
        if calendar.quiet(day).is_some() {
            continue;
        }
        let report = scheduling::schedule(
            conn,
            &Request {
                run_date: day,
                stages: &settings.stages,
                catch_up_days: 0,
                queue: "default",
                dry_run: true,
                lines: false,
                host: &host,
                backfill: true,
                group: settings.group,
            },
        )?;
        // Messages, not invoices (DUNNING_GROUP=customer: one per customer).
        total += report.messages.whatsapp;
    }
    Ok(total)
}

/// Gateway payments of the last [`GATEWAY_DAYS`] days on invoices from billing,
/// checked live against billing (the worker's re-check query): those billing still
/// has unpaid must be entered there.
fn not_in_billing(
    settings: &Settings,
    conn: &mut diesel::PgConnection,
    today: Date,
) -> anyhow::Result<NotInBilling> {
    let since = (today - Duration::days(GATEWAY_DAYS))
        .midnight()
        .assume_offset(settings.zone.offset());
    let paid = report::gateway_paid_billing_invoices(conn, since)?;
    let mut out = NotInBilling::default();
    if paid.is_empty() {
        return Ok(out);
    }
    let Some(cfg) = dunning_source::SourceConfig::from_env()? else {
        out.why_unchecked = Some("BILLING_DATABASE_URL is not set".into());
        out.unchecked = paid;
        return Ok(out);
    };
    let mut billing = dunning_source::recheck::Recheck::new(cfg, settings.zone.offset());
    for p in paid {
        match billing.invoice_status(&p.invoice_number) {
            Ok(Some(dunning_source::recheck::Status::Unpaid)) => out.unpaid.push(p),
            Ok(_) => {}
            Err(e) => {
                out.why_unchecked = Some(e.to_string());
                out.unchecked.push(p);
            }
        }
    }
    Ok(out)
}

/// The fix for a failed delivery. The ledger keeps the error text, not its kind:
/// a delivery that failed on its first attempt was refused (permanent), one that
/// failed after several was a temporary problem that did not go away.
fn fix_for(f: &Failed) -> String {
    let channel = if f.channel == "whatsapp" {
        Channel::WhatsApp
    } else {
        Channel::Email
    };
    let e = if f.attempts <= 1 {
        SendError::Permanent(String::new())
    } else {
        SendError::Transient(String::new())
    };
    fix::for_error(channel, &e)
}

impl Data {
    fn count(&self, day: usize, channel: &str, status: &str) -> i64 {
        self.days[day]
            .1
            .iter()
            .filter(|r| r.channel == channel && r.status == status)
            .map(|r| r.total)
            .sum()
    }

    fn remaining(&self) -> i64 {
        (self.quota_limit - self.whatsapp_sent).max(0)
    }

    fn forecast(&self) -> i64 {
        self.whatsapp_sent + self.whatsapp_queued + self.whatsapp_scheduled
    }

    fn recovered(&self) -> (i64, i64) {
        self.recovery
            .iter()
            .fold((0, 0), |(n, a), r| (n + r.paid, a + r.paid_amount))
    }

    fn text(&self, settings: &Settings, m: Marks) -> String {
        let mut out = String::new();
        let local = |t: OffsetDateTime| {
            let l = settings.zone.local(t);
            format!("{} {:02}:{:02}", tanggal(l.date()), l.hour(), l.minute())
        };
        let _ = writeln!(
            out,
            "{} Laporan Dunning {} — {} {}",
            m.info,
            settings.company_name,
            dunning_core::calendar::hari(self.today.weekday()),
            tanggal(self.today)
        );
        let _ = writeln!(
            out,
            "Kemarin ({}) dan hari ini ({}), {}.",
            tanggal(self.yesterday),
            tanggal(self.today),
            settings.zone
        );
        let _ = writeln!(out, "\n{} Pengiriman (kemarin | hari ini):", m.sent);
        for ch in CHANNELS {
            let c = |s| (self.count(0, ch, s), self.count(1, ch, s));
            let (sent, failed, skipped, queued) =
                (c("sent"), c("failed"), c("skipped"), c("queued"));
            let _ = writeln!(
                out,
                "   {:<9} terkirim {} | {}   gagal {} | {}   dilewati {} | {}   antre {} | {}",
                if ch == "email" { "Email" } else { "WhatsApp" },
                sent.0,
                sent.1,
                failed.0,
                failed.1,
                skipped.0,
                skipped.1,
                queued.0,
                queued.1
            );
        }
        let _ = writeln!(
            out,
            "\n{} Kuota WhatsApp: {} terpakai bulan ini, sisa {} dari {} (FONNTE_MONTHLY_QUOTA).",
            m.whatsapp,
            self.whatsapp_sent,
            self.remaining(),
            self.quota_limit
        );
        let forecast = self.forecast();
        let _ = write!(
            out,
            "   Perkiraan sampai akhir bulan: {forecast} pesan ({} terkirim + {} antre + {} terjadwal bila belum ada yang membayar)",
            self.whatsapp_sent, self.whatsapp_queued, self.whatsapp_scheduled
        );
        if forecast > self.quota_limit {
            let _ = writeln!(
                out,
                ".\n   {} Melebihi kuota {} pesan: upgrade paket Fonnte lalu naikkan FONNTE_MONTHLY_QUOTA, atau sisanya menunggu bulan depan.",
                m.warn,
                forecast - self.quota_limit
            );
        } else {
            let _ = writeln!(out, ": cukup.");
        }

        let _ = writeln!(out, "\n{} Perlu tindakan:", m.warn);
        let mut none = true;
        for p in &self.paused {
            none = false;
            let _ = writeln!(
                out,
                "   {} {} dijeda sampai {}: {}",
                m.error,
                p.channel,
                local(p.paused_until),
                p.pause_reason.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                out,
                "      Perbaikan: perbaiki penyebab di atas, lalu `dunning-schedule resume {}` (`dunning-schedule doctor` memeriksa semuanya)",
                p.channel
            );
        }
        if !self.failed.is_empty() {
            none = false;
            let _ = writeln!(
                out,
                "   {} {} pengiriman gagal sejak kemarin:",
                m.error,
                self.failed.len()
            );
            let mut fixes: Vec<String> = Vec::new();
            for f in self.failed.iter().take(LIST_MAX) {
                let _ = writeln!(
                    out,
                    "      #{} {} {} {} {}: {}",
                    f.id,
                    f.invoice_number,
                    f.stage,
                    f.channel,
                    f.recipient.as_deref().map_or_else(
                        || "-".to_owned(),
                        |to| mask_ledger_recipient(&f.channel, to)
                    ),
                    f.error.as_deref().unwrap_or("-").replace(['\r', '\n'], " ")
                );
                let fix = fix_for(f);
                if !fixes.contains(&fix) {
                    fixes.push(fix);
                }
            }
            if self.failed.len() > LIST_MAX {
                let _ = writeln!(
                    out,
                    "      … dan {} lainnya (`dunning-schedule failed`)",
                    self.failed.len() - LIST_MAX
                );
            }
            for fix in fixes {
                let _ = writeln!(out, "      Perbaikan: {fix}");
            }
            let ids: Vec<String> = self
                .failed
                .iter()
                .take(LIST_MAX)
                .map(|f| f.id.to_string())
                .collect();
            let _ = writeln!(
                out,
                "      Lalu kirim ulang: dunning-schedule retry {}",
                ids.join(" ")
            );
        }
        for p in &self.flagged {
            none = false;
            let _ = writeln!(
                out,
                "   {} Pembayaran {} {} ({}) {} ditandai {}: periksa di dashboard gateway dan billing",
                m.warn,
                p.gateway,
                p.reference,
                p.invoice_number
                    .as_deref()
                    .unwrap_or("tagihan tidak dikenal"),
                rupiah(p.amount),
                p.flag
            );
        }
        if none {
            let _ = writeln!(out, "   Tidak ada.");
        }

        let _ = writeln!(
            out,
            "\n{} Balasan pelanggan menunggu dijawab: {}",
            m.whatsapp,
            self.replies.len()
        );
        for r in self.replies.iter().take(LIST_MAX) {
            let _ = writeln!(
                out,
                "   #{} {} ({}), {}: {}",
                r.id,
                r.customer.as_deref().unwrap_or("bukan pelanggan"),
                mask_recipient(&r.sender),
                local(r.received_at),
                r.message
                    .chars()
                    .take(120)
                    .collect::<String>()
                    .replace(['\r', '\n'], " ")
            );
        }
        if !self.replies.is_empty() {
            let _ = writeln!(
                out,
                "   Jawab dari HP WhatsApp, lalu: dunning-schedule replies --done <id>…"
            );
        }

        let (paid, amount) = self.recovered();
        let _ = writeln!(
            out,
            "\n{} Dibayar setelah pengingat (pengingat terkirim kemarin dan hari ini, dibayar dalam {RECOVERY_DAYS} hari): {paid} tagihan, {}",
            m.ok,
            rupiah(amount)
        );
        for r in &self.recovery {
            let _ = writeln!(
                out,
                "   {}: {} dari {} tagihan, {}",
                r.stage,
                r.paid,
                r.reminded,
                rupiah(r.paid_amount)
            );
        }

        let g = &self.gateway;
        let _ = writeln!(
            out,
            "\n{} Pembayaran gateway belum tercatat di billing: {}",
            m.info,
            g.unpaid.len()
        );
        for p in &g.unpaid {
            let _ = writeln!(
                out,
                "   {} {} via {} ({}), {}: catat pembayarannya di billing",
                p.invoice_number,
                rupiah(p.amount),
                p.gateway,
                p.reference,
                local(p.paid_at)
            );
        }
        if !g.unchecked.is_empty() {
            let _ = writeln!(
                out,
                "   {} {} pembayaran gateway tidak bisa dicocokkan dengan billing ({}): periksa sendiri {}",
                m.warn,
                g.unchecked.len(),
                g.why_unchecked.as_deref().unwrap_or("-"),
                g.unchecked
                    .iter()
                    .map(|p| p.invoice_number.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        out
    }

    fn json(&self, settings: &Settings) -> serde_json::Value {
        let day = |i: usize| {
            let mut channels = serde_json::Map::new();
            for ch in CHANNELS {
                channels.insert(
                    ch.into(),
                    json!({
                        "sent": self.count(i, ch, "sent"),
                        "failed": self.count(i, ch, "failed"),
                        "skipped": self.count(i, ch, "skipped"),
                        "queued": self.count(i, ch, "queued"),
                    }),
                );
            }
            json!({ "date": self.days[i].0.to_string(), "channels": channels })
        };
        let paid_json = |p: &GatewayPaid| {
            json!({
                "invoice": p.invoice_number, "gateway": p.gateway, "reference": p.reference,
                "amount": p.amount, "paid_at": p.paid_at.to_string(),
            })
        };
        let (paid, amount) = self.recovered();
        json!({
            "date": self.today.to_string(),
            "timezone": settings.zone.name(),
            "yesterday": day(0),
            "today": day(1),
            "whatsapp_quota": {
                "limit": self.quota_limit,
                "sent_this_month": self.whatsapp_sent,
                "remaining": self.remaining(),
                "forecast_month": {
                    "total": self.forecast(),
                    "sent": self.whatsapp_sent,
                    "queued": self.whatsapp_queued,
                    "scheduled": self.whatsapp_scheduled,
                    "exceeds_quota_by": (self.forecast() - self.quota_limit).max(0),
                },
            },
            "action_needed": {
                "failed": self.failed.iter().map(|f| json!({
                    "id": f.id, "invoice": f.invoice_number, "stage": f.stage,
                    "channel": f.channel,
                    "recipient": f.recipient.as_deref().map(|to| mask_ledger_recipient(&f.channel, to)),
                    "attempts": f.attempts, "error": f.error, "fix": fix_for(f),
                })).collect::<Vec<_>>(),
                "paused_channels": self.paused.iter().map(|p| json!({
                    "channel": p.channel, "until": p.paused_until.to_string(),
                    "reason": p.pause_reason,
                })).collect::<Vec<_>>(),
                "flagged_payments": self.flagged.iter().map(|p| json!({
                    "id": p.id, "gateway": p.gateway, "reference": p.reference,
                    "invoice": p.invoice_number, "amount": p.amount, "flag": p.flag,
                })).collect::<Vec<_>>(),
            },
            "replies_waiting": {
                "count": self.replies.len(),
                "ids": self.replies.iter().map(|r| r.id).collect::<Vec<_>>(),
            },
            "recovered": {
                "window_days": RECOVERY_DAYS,
                "paid": paid,
                "paid_amount": amount,
                "stages": self.recovery.iter().map(|r| json!({
                    "stage": r.stage, "reminded": r.reminded, "paid": r.paid,
                    "paid_amount": r.paid_amount,
                })).collect::<Vec<_>>(),
            },
            "gateway_not_in_billing": {
                "unpaid_in_billing": self.gateway.unpaid.iter().map(paid_json).collect::<Vec<_>>(),
                "unchecked": self.gateway.unchecked.iter().map(paid_json).collect::<Vec<_>>(),
                "unchecked_reason": self.gateway.why_unchecked,
            },
        })
    }
}

/// Where `--send` delivers the report.
#[derive(Debug, Default)]
struct Recipients {
    email: Option<String>,
    whatsapp: Option<String>,
}

impl Recipients {
    fn from_env() -> anyhow::Result<Recipients> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let email = var(VARIABLES[0]);
        if let Some(e) = &email {
            validate_email(e).map_err(|err| {
                UsageError(format!(
                    "{}={e:?} is invalid: {err}; write one address, e.g. noc@wikarta.com",
                    VARIABLES[0]
                ))
            })?;
        }
        let whatsapp = var(VARIABLES[1]);
        if let Some(p) = &whatsapp {
            normalize_phone(p).map_err(|err| {
                UsageError(format!(
                    "{}={p:?} is invalid: {err}; write one number, e.g. 085707211646",
                    VARIABLES[1]
                ))
            })?;
        }
        Ok(Recipients { email, whatsapp })
    }

    fn is_empty(&self) -> bool {
        self.email.is_none() && self.whatsapp.is_none()
    }
}

/// Sends the report to each configured recipient; a failure on one channel does not
/// stop the other (exit 1 at the end).
fn send_report(
    settings: &Settings,
    conn: &mut diesel::PgConnection,
    to: &Recipients,
    text: &str,
    today: Date,
) -> anyhow::Result<()> {
    let subject = format!("Laporan Dunning {}", tanggal(today));
    let reference = format!("report-{today}");
    let mut errors = Vec::new();
    if let Some(email) = &to.email {
        let sent = dunning_channels::email_sender(settings).and_then(|s| {
            s.send(&OutgoingMessage {
                recipient: email,
                subject: &subject,
                body: text,
                reference: &reference,
            })
        });
        match sent {
            Ok(_) => eprintln!("Report emailed to {}", mask_recipient(email)),
            Err(e) => {
                let (reason, fix) = super::test_whatsapp::reason_and_fix(Channel::Email, &e);
                errors.push(format!("email not sent: {reason}. Fix: {fix}"));
            }
        }
    }
    if let Some(phone) = &to.whatsapp {
        match send_whatsapp(settings, conn, phone, text, &reference, today) {
            Ok(()) => eprintln!("Report sent by WhatsApp to {}", mask_recipient(phone)),
            Err(e) => errors.push(format!("WhatsApp not sent: {e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!("report --send: {}", errors.join("; ")))
    }
}

/// One WhatsApp message like a reminder: refused when this month's quota is used
/// up, sent in the workers' shared send slot (`WHATSAPP_MIN_INTERVAL`), recorded in
/// the ledger (so `stats`, the quota and the dashboard count it).
fn send_whatsapp(
    settings: &Settings,
    conn: &mut diesel::PgConnection,
    phone: &str,
    text: &str,
    reference: &str,
    today: Date,
) -> anyhow::Result<()> {
    let quota = i64::from(settings.fonnte_monthly_quota);
    let used = scheduling::whatsapp_sent_this_month(conn, today, settings.zone.offset())?;
    if quota > 0 && used >= quota {
        return Err(anyhow::anyhow!(
            "the monthly quota is used up ({used} of {quota}, FONNTE_MONTHLY_QUOTA). Fix: {}",
            fix::WHATSAPP_QUOTA
        ));
    }
    while let Some(wait) =
        dunning_store::queue::take_whatsapp_slot(conn, settings.whatsapp_min_interval)?
    {
        std::thread::sleep(wait);
    }
    let sender = dunning_channels::whatsapp_sender(settings).map_err(|e| {
        let (reason, fix) = super::test_whatsapp::reason_and_fix(Channel::WhatsApp, &e);
        anyhow::anyhow!("{reason}. Fix: {fix}")
    })?;
    let delivered = sender
        .send(&OutgoingMessage {
            recipient: phone,
            subject: "",
            body: text,
            reference,
        })
        .map_err(|e| {
            let (reason, fix) = super::test_whatsapp::reason_and_fix(Channel::WhatsApp, &e);
            anyhow::anyhow!("{reason}. Fix: {fix}")
        })?;
    let normalized = normalize_phone(phone).unwrap_or_else(|_| phone.to_owned());
    let forms = super::test_dunning::phone_forms(&normalized);
    let prefix = format!(
        "REPORT-{:04}{:02}{:02}-",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    test_dunning::record_whatsapp(
        conn,
        &test_dunning::TestWhatsApp {
            phone,
            phone_forms: &forms,
            customer_name: "Operator (laporan)",
            run_date: today,
            number_prefix: &prefix,
            provider_message_id: delivered.provider_message_id.as_deref(),
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "the report was sent, but recording it in the ledger failed ({e}): the monthly quota count misses this one message"
        )
    })?;
    Ok(())
}
