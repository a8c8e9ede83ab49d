//! Why a worker has nothing to do while jobs wait: the send window, a channel's
//! pause, the monthly quota, a retry's backoff. Said once per change, so that an
//! operator reading the log knows when the next message goes out.

use std::sync::Mutex;

use diesel::pg::PgConnection;
use dunning_core::config::SendWindow;
use dunning_core::{Channel, Zone};
use dunning_store::StoreError;
use dunning_store::queue::{ChannelState, Waiting};
use log::info;
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::Worker;

/// The last explanation logged, so a worker polling every few seconds says it once.
#[derive(Debug, Default)]
pub(crate) struct IdleReport {
    last: Mutex<Option<String>>,
}

impl IdleReport {
    /// Logs `why` unless it was the last thing said.
    pub(crate) fn say(&self, why: String) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() != Some(why.as_str()) {
            info!("idle: {why}");
            *last = Some(why);
        }
    }
}

/// `t` as a local time an operator reads: `08:00 WIB` today, else with the date.
pub(crate) fn local_time(zone: &Zone, t: OffsetDateTime) -> String {
    let now = OffsetDateTime::now_utc();
    let local = zone.local(t);
    let abbr = zone.abbreviation();
    if local.date() == zone.date_at(now) {
        format!("{:02}:{:02} {abbr}", local.hour(), local.minute())
    } else {
        format!(
            "{} {:02}:{:02} {abbr}",
            local.date(),
            local.hour(),
            local.minute()
        )
    }
}

/// The next moment the send window opens after `now`.
pub(crate) fn window_opens(
    zone: &Zone,
    window: &SendWindow,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let local = zone.local(now);
    let today = local
        .date()
        .with_time(window.start)
        .assume_offset(zone.offset());
    if today > now {
        today
    } else {
        today + TimeDuration::days(1)
    }
}

impl Worker {
    /// Why the waiting jobs of this queue are not being sent now, in one line.
    pub(crate) fn why_idle(&self, conn: &mut PgConnection) -> Result<String, StoreError> {
        let waiting = self.queue.waiting(conn)?;
        if waiting.is_empty() {
            return Ok("nothing is queued".into());
        }
        let now = OffsetDateTime::now_utc();
        let zone = &self.cfg.zone;
        if !self.cfg.window.contains(zone.local(now).time()) {
            let n: i64 = waiting.iter().map(|w| w.jobs).sum();
            return Ok(format!(
                "{n} job(s) held by the send window {} until {}",
                self.cfg.window,
                local_time(zone, window_opens(zone, &self.cfg.window, now))
            ));
        }
        let states = self.pauses.states(conn)?;
        let parts: Vec<String> = waiting
            .iter()
            .map(|w| self.why_channel_waits(w, &states, now))
            .collect();
        Ok(parts.join("; "))
    }

    fn why_channel_waits(
        &self,
        w: &Waiting,
        states: &[ChannelState],
        now: OffsetDateTime,
    ) -> String {
        let zone = &self.cfg.zone;
        let (n, ch) = (w.jobs, w.channel);
        let pause = states.iter().find(|s| s.channel == ch);
        if let Some(ChannelState {
            paused_until: Some(until),
            pause_reason,
            ..
        }) = pause
        {
            return format!(
                "{n} {ch} job(s) paused until {} ({}); `dunning-schedule resume {ch}` ends the pause",
                local_time(zone, *until),
                pause_reason.as_deref().unwrap_or("no reason recorded")
            );
        }
        if ch == Channel::WhatsApp
            && let Some(used) = self.gate.quota_used()
        {
            let next_month = zone.month_bounds(zone.date_at(now)).1;
            return format!(
                "{n} whatsapp job(s) held by the monthly quota ({used} of FONNTE_MONTHLY_QUOTA={} used) until {}",
                self.cfg.monthly_quota,
                local_time(zone, next_month)
            );
        }
        if w.first_ready_at > now {
            return format!(
                "{n} {ch} job(s) wait for a retry, the first at {}",
                local_time(zone, w.first_ready_at)
            );
        }
        if ch == Channel::WhatsApp && self.gate.paced_wait().is_some() {
            return format!(
                "{n} whatsapp job(s) paced at one message per {}s (WHATSAPP_MIN_INTERVAL)",
                self.cfg.whatsapp_interval.as_secs_f64()
            );
        }
        format!("{n} {ch} job(s) ready, taken at the next poll")
    }
}
