//! `dunning-schedule stats`: the seed's "statistik notifikasi hari ini" without SQL,
//! plus queue health, the WhatsApp quota and a chart of the last days.

use std::fmt::Write as _;

use dunning_core::Settings;
use dunning_store::ops::health::{self, LastRun, Paused};
use dunning_store::ops::stats::{self, ChannelStatus, DayCount, QueueHealth};
use dunning_store::scheduling;
use serde_json::json;
use time::{Date, OffsetDateTime};

use super::{Extra, human_secs, local_time};
use crate::app;
use crate::output::Marks;

const STATUSES: [&str; 4] = ["queued", "sent", "failed", "skipped"];
const CHANNELS: [&str; 2] = ["email", "whatsapp"];
/// Characters of the longest bar.
const BAR_WIDTH: usize = 40;

/// Prints the statistics of `date` (default today) and the `days` days up to it.
pub fn run(
    settings: &Settings,
    date: Option<&str>,
    days: u32,
    json: bool,
    m: Marks,
) -> anyhow::Result<()> {
    let day = match date {
        Some(d) => app::parse_date("--date", d)?,
        None => settings.zone.date_at(OffsetDateTime::now_utc()),
    };
    let offset = settings.zone.offset();
    let mut conn = app::connect_migrated(settings)?;
    let report = Report {
        day,
        by_status: stats::by_channel_status(&mut conn, day, offset)?,
        queue: stats::queue_health(&mut conn)?,
        failed_total: stats::failed_total(&mut conn)?,
        whatsapp_sent: scheduling::whatsapp_sent_this_month(&mut conn, day, offset)?,
        quota: i64::from(settings.fonnte_monthly_quota),
        history: stats::per_day(&mut conn, day, days, offset)?,
        last_run: health::last_run(&mut conn)?,
        paused: health::paused_channels(&mut conn)?,
    };
    let held = dunning_store::holds::held_counts(&mut conn, day)?;
    let day_start = day.midnight().assume_offset(offset);
    let payments = super::payments::stats(settings, &mut conn)?;
    if json {
        let mut v = report.json(settings);
        v["held"] = super::holds::held_json(&held);
        v["billing_sync"] = super::sync::stats_json(&mut conn)?;
        v["sent_without_payment_link"] = super::payments::json(&mut conn, day_start)?;
        v["payments"] = super::payments::stats_json(&payments);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.text(settings, m));
        print!("{}", super::payments::text(&mut conn, day_start, m.warn)?);
        print!("{}", super::payments::stats_text(&payments, m.warn));
        print!("{}", super::holds::held_text(&held, m));
        print!("{}", super::sync::stats_text(&mut conn)?);
    }
    Ok(())
}

struct Report {
    day: Date,
    by_status: Vec<ChannelStatus>,
    queue: QueueHealth,
    failed_total: i64,
    whatsapp_sent: i64,
    quota: i64,
    history: Vec<DayCount>,
    last_run: Option<LastRun>,
    paused: Vec<Paused>,
}

impl Report {
    /// The channels shown: email and WhatsApp always, escalation hooks when the day
    /// has any.
    fn channels(&self) -> Vec<&'static str> {
        let mut v = CHANNELS.to_vec();
        if self.by_status.iter().any(|r| r.channel == "hook") {
            v.push("hook");
        }
        v
    }

    fn count(&self, channel: &str, status: &str) -> i64 {
        self.by_status
            .iter()
            .filter(|r| r.channel == channel && r.status == status)
            .map(|r| r.total)
            .sum()
    }

    fn remaining(&self) -> i64 {
        (self.quota - self.whatsapp_sent).max(0)
    }

    fn text(&self, settings: &Settings, m: Marks) -> String {
        let x = Extra::of(m);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} Notifications created on {} ({}), by channel and status:",
            x.chart, self.day, settings.zone
        );
        let _ = writeln!(
            out,
            "   {:<10}{:>8}{:>8}{:>8}{:>8}{:>8}",
            "channel", "queued", "sent", "failed", "skipped", "total"
        );
        for ch in self.channels() {
            let counts: Vec<i64> = STATUSES.iter().map(|s| self.count(ch, s)).collect();
            let _ = writeln!(
                out,
                "   {:<10}{:>8}{:>8}{:>8}{:>8}{:>8}",
                ch,
                counts[0],
                counts[1],
                counts[2],
                counts[3],
                counts.iter().sum::<i64>()
            );
        }
        let q = &self.queue;
        let oldest = if q.ready > 0 {
            format!(", oldest ready for {}", human_secs(q.oldest_ready_secs))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{} Queue: {} waiting ({} ready now{oldest}), {} in progress",
            m.info, q.waiting, q.ready, q.reserved
        );
        match &self.last_run {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "{} Scheduler: last run for {} finished {}",
                    m.info,
                    r.run_date,
                    local_time(settings, r.finished_at)
                );
            }
            None => {
                let _ = writeln!(out, "{} Scheduler: no run recorded yet", m.warn);
            }
        }
        for p in &self.paused {
            let _ = writeln!(
                out,
                "{} {} paused until {}: {} (`dunning-schedule resume {}` after fixing it)",
                m.warn,
                p.channel,
                local_time(settings, p.paused_until),
                p.pause_reason.as_deref().unwrap_or("no reason recorded"),
                p.channel
            );
        }
        let failed_mark = if self.failed_total > 0 { m.error } else { m.ok };
        let _ = writeln!(
            out,
            "{failed_mark} Failed deliveries (all days): {}{}",
            self.failed_total,
            if self.failed_total > 0 {
                "; list them with `dunning-schedule failed`, re-send with `dunning-schedule retry`"
            } else {
                ""
            }
        );
        let quota_mark = if self.remaining() == 0 {
            m.warn
        } else {
            m.whatsapp
        };
        let _ = writeln!(
            out,
            "{quota_mark} WhatsApp this month: {} sent of {} (FONNTE_MONTHLY_QUOTA), {} left",
            self.whatsapp_sent,
            self.quota,
            self.remaining()
        );
        let (full, failed_cell) = if m.ok == Marks::EMOJI.ok {
            ('█', '░')
        } else {
            ('#', '-')
        };
        let _ = writeln!(
            out,
            "{} Last {} day(s) ({full} sent, {failed_cell} failed):",
            x.chart,
            self.history.len()
        );
        let max = self
            .history
            .iter()
            .map(|d| d.sent + d.failed)
            .max()
            .unwrap_or(0);
        for d in &self.history {
            let bar = bar(d.sent, d.failed, max, full == '█');
            let _ = writeln!(
                out,
                "   {:02}-{:02} {bar:<width$} {:>5} sent {:>5} failed",
                u8::from(d.day.month()),
                d.day.day(),
                d.sent,
                d.failed,
                width = BAR_WIDTH
            );
        }
        out
    }

    fn json(&self, settings: &Settings) -> serde_json::Value {
        let channels: serde_json::Map<String, serde_json::Value> = self
            .channels()
            .iter()
            .map(|ch| {
                let statuses: serde_json::Map<String, serde_json::Value> = STATUSES
                    .iter()
                    .map(|s| ((*s).to_owned(), json!(self.count(ch, s))))
                    .collect();
                ((*ch).to_owned(), serde_json::Value::Object(statuses))
            })
            .collect();
        json!({
            "date": self.day.to_string(),
            "timezone": settings.zone.name(),
            "notifications": channels,
            "queue": {
                "waiting": self.queue.waiting,
                "ready": self.queue.ready,
                "in_progress": self.queue.reserved,
                "oldest_ready_seconds": self.queue.oldest_ready_secs,
            },
            "failed_total": self.failed_total,
            "last_run": self.last_run.as_ref().map(|r| json!({
                "run_date": r.run_date.to_string(),
                "finished_at": local_time(settings, r.finished_at),
            })),
            "paused": self.paused.iter().map(|p| json!({
                "channel": p.channel,
                "until": local_time(settings, p.paused_until),
                "reason": p.pause_reason,
            })).collect::<Vec<_>>(),
            "whatsapp_quota": {
                "limit": self.quota,
                "sent_this_month": self.whatsapp_sent,
                "remaining": self.remaining(),
            },
            "days": self.history.iter().map(|d| json!({
                "date": d.day.to_string(),
                "sent": d.sent,
                "failed": d.failed,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A bar of at most [`BAR_WIDTH`] cells: `sent` in solid blocks (with eighth-block
/// precision in unicode), then `failed`, at least one cell when not zero.
fn bar(sent: i64, failed: i64, max: i64, unicode: bool) -> String {
    if max <= 0 {
        return String::new();
    }
    let width = BAR_WIDTH as i64;
    let mut failed_cells = if failed > 0 {
        (failed * width / max).max(1)
    } else {
        0
    };
    let mut out = String::new();
    if unicode {
        const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
        let eighths = sent * width * 8 / max;
        let eighths = if sent > 0 { eighths.max(1) } else { 0 };
        let whole = eighths / 8;
        out.extend(std::iter::repeat_n('█', whole as usize));
        let rest = (eighths % 8) as usize;
        if rest > 0 {
            out.push(EIGHTHS[rest]);
        }
        failed_cells = failed_cells.min(width + 1 - out.chars().count() as i64);
        out.extend(std::iter::repeat_n('░', failed_cells.max(0) as usize));
    } else {
        let cells = if sent > 0 {
            (sent * width / max).max(1)
        } else {
            0
        };
        out.extend(std::iter::repeat_n('#', cells as usize));
        failed_cells = failed_cells.min(width + 1 - cells);
        out.extend(std::iter::repeat_n('-', failed_cells.max(0) as usize));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_scale_to_the_busiest_day() {
        assert_eq!(bar(0, 0, 0, true), "");
        assert_eq!(bar(10, 0, 10, true).chars().count(), 40);
        assert_eq!(bar(5, 0, 10, false), "#".repeat(20));
        assert_eq!(bar(0, 1, 1000, false), "-");
        assert_eq!(bar(1, 0, 1000, true), "▏");
        assert_eq!(
            bar(9, 1, 10, false),
            format!("{}{}", "#".repeat(36), "-".repeat(4))
        );
    }
}
