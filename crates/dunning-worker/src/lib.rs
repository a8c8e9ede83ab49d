//! `dunning-worker`: the long-running queue worker.
//!
//! Each worker thread loops: claim a ready job (`FOR UPDATE SKIP LOCKED`), load its
//! ledger row, re-check the invoice under a row lock, send, record the outcome. Any
//! number of threads, processes and hosts can run against one database.

pub mod cli;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::Connection as _;
use diesel::pg::PgConnection;
use dunning_channels::{OutgoingMessage, SendError, Sender};
use dunning_core::config::SendWindow;
use dunning_core::mask::mask_recipient;
use dunning_core::message::{InvoiceFacts, Templates};
use dunning_core::{Channel, Zone};
use dunning_store::queue::{self, ClaimedJob, Final, Held, Hold};
use dunning_store::{PgPool, StoreError};
use log::{error, info, warn};
use time::OffsetDateTime;

/// How a worker behaves (from flags and settings).
#[derive(Debug, Clone)]
pub struct Config {
    pub queue: String,
    pub tries: u32,
    pub backoff: Vec<Duration>,
    pub retry_after: Duration,
    pub sleep: Duration,
    pub concurrency: u32,
    pub once: bool,
    pub max_jobs: Option<u64>,
    pub max_time: Option<Duration>,
    pub whatsapp_interval: Duration,
    pub monthly_quota: u32,
    pub zone: Zone,
    pub window: SendWindow,
    /// How long a channel-wide failure pauses the channel for all workers.
    pub channel_pause: Duration,
}

impl Config {
    /// Defaults as documented for the binary, for tests.
    pub fn for_tests(queue: &str) -> Self {
        Config {
            queue: queue.to_owned(),
            tries: 3,
            backoff: vec![Duration::ZERO],
            retry_after: Duration::from_secs(120),
            sleep: Duration::from_millis(50),
            concurrency: 1,
            once: true,
            max_jobs: None,
            max_time: None,
            whatsapp_interval: Duration::ZERO,
            monthly_quota: 1000,
            zone: Zone::default(),
            window: SendWindow::ALWAYS,
            channel_pause: Duration::from_secs(300),
        }
    }
}

/// The delivery channels a worker sends through.
#[derive(Clone)]
pub struct Senders {
    pub email: Arc<dyn Sender>,
    pub whatsapp: Arc<dyn Sender>,
}

impl Senders {
    fn get(&self, channel: Channel) -> &dyn Sender {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::WhatsApp => self.whatsapp.as_ref(),
        }
    }
}

/// Counters of one worker run.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    pub retried: AtomicU64,
    pub released: AtomicU64,
}

impl Stats {
    /// Jobs that reached a final state.
    pub fn finished(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.skipped.load(Ordering::Relaxed)
    }
}

/// A worker process: shared by its threads.
pub struct Worker {
    quota_warned: AtomicBool,
    /// Until when WhatsApp claims are not worth trying (and whether for quota).
    wa_held: std::sync::Mutex<Option<(Instant, bool)>>,
    channel_cache: std::sync::Mutex<Option<(Instant, Vec<Channel>)>>,
    pool: PgPool,
    senders: Senders,
    templates: Arc<Templates>,
    cfg: Config,
    id: String,
    hostname: String,
    stop: Arc<AtomicBool>,
    started: Instant,
    claimed: AtomicU64,
    pub stats: Stats,
}

impl Worker {
    /// A worker with the given parts. `stop` is set by signal handlers (or tests).
    pub fn new(
        pool: PgPool,
        senders: Senders,
        templates: Templates,
        cfg: Config,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let hostname = dunning_store::db::hostname();
        let id = format!("{}:{}:{}", hostname, std::process::id(), unique_suffix());
        Worker {
            quota_warned: AtomicBool::new(false),
            wa_held: std::sync::Mutex::new(None),
            channel_cache: std::sync::Mutex::new(None),
            pool,
            senders,
            templates: Arc::new(templates),
            cfg,
            id,
            hostname,
            stop,
            started: Instant::now(),
            claimed: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }

    /// This worker's id (`host:pid:suffix`), as stored in `jobs.reserved_by`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until stopped (signal, `--once` drained, `--max-jobs`, `--max-time`).
    pub fn run(&self) {
        self.beat();
        std::thread::scope(|s| {
            let heart = s.spawn(|| self.heartbeat_loop());
            let threads: Vec<_> = (0..self.cfg.concurrency)
                .map(|n| s.spawn(move || self.thread_loop(n)))
                .collect();
            for t in threads {
                let _ = t.join();
            }
            self.stop.store(true, Ordering::SeqCst);
            let _ = heart.join();
        });
        if let Ok(mut conn) = self.pool.get() {
            let _ = queue::worker_stopped(&mut conn, &self.id, self.stats.finished() as i64);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`, waking early when asked to stop.
    fn nap(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(100)));
        }
    }

    fn beat(&self) {
        match self.pool.get() {
            Ok(mut conn) => {
                if let Err(e) = queue::heartbeat(
                    &mut conn,
                    &self.id,
                    &self.hostname,
                    std::process::id() as i32,
                    &self.cfg.queue,
                    self.stats.finished() as i64,
                ) {
                    warn!("heartbeat not recorded: {e}");
                }
            }
            Err(e) => warn!("heartbeat not recorded: {e}"),
        }
    }

    fn heartbeat_loop(&self) {
        while !self.stopping() {
            self.nap(Duration::from_secs(10));
            if !self.stopping() {
                self.beat();
            }
        }
    }

    fn limits_reached(&self) -> bool {
        if let Some(max) = self.cfg.max_jobs {
            if self.claimed.load(Ordering::SeqCst) >= max {
                return true;
            }
        }
        if let Some(max) = self.cfg.max_time {
            if self.started.elapsed() >= max {
                return true;
            }
        }
        false
    }

    fn thread_loop(&self, n: u32) {
        let mut db_failures = 0u32;
        let mut state = ThreadState::default();
        loop {
            if self.stopping() || self.limits_reached() {
                break;
            }
            let now = OffsetDateTime::now_utc();
            let local = self.cfg.zone.local(now);
            if !self.cfg.window.contains(local.time()) {
                if self.cfg.once {
                    if n == 0 {
                        info!(
                            "outside the send window {} (now {:02}:{:02} local): nothing is due now",
                            self.cfg.window,
                            local.hour(),
                            local.minute()
                        );
                    }
                    break;
                }
                self.nap(self.cfg.sleep.max(Duration::from_secs(1)));
                continue;
            }
            match self.step(&mut state) {
                Ok(Step::Worked) => db_failures = 0,
                Ok(Step::Idle) => {
                    db_failures = 0;
                    if self.cfg.once {
                        break;
                    }
                    self.nap(self.cfg.sleep);
                }
                Ok(Step::Paced(wait)) => {
                    db_failures = 0;
                    self.nap(wait.clamp(Duration::from_millis(10), Duration::from_secs(1)));
                }
                Err(e) => {
                    // Start over with a fresh connection after any database error.
                    state.conn = None;
                    db_failures += 1;
                    let wait =
                        Duration::from_secs(1 << db_failures.min(5)).min(Duration::from_secs(30));
                    if e.is_connection_problem() {
                        warn!(
                            "database unavailable ({e}); retrying in {}s",
                            wait.as_secs()
                        );
                    } else {
                        error!("worker error: {e}; retrying in {}s", wait.as_secs());
                    }
                    if self.cfg.once && db_failures > 8 {
                        error!("giving up after {db_failures} database errors");
                        break;
                    }
                    self.nap(wait);
                }
            }
        }
    }

    /// Channels not paused for all workers (read at most once a second per process;
    /// a pause this process starts takes effect at once).
    fn unpaused_channels(&self, conn: &mut PgConnection) -> Result<Vec<Channel>, StoreError> {
        let mut cache = self.channel_cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() < Duration::from_secs(1));
        if !fresh {
            let states = queue::channel_states(conn)?;
            let allowed: Vec<Channel> = Channel::ALL
                .into_iter()
                .filter(|c| !states.iter().any(|s| s.channel == c.as_str() && s.paused))
                .collect();
            *cache = Some((Instant::now(), allowed));
        }
        Ok(cache.as_ref().map(|(_, c)| c.clone()).unwrap_or_default())
    }

    fn step(&self, state: &mut ThreadState) -> Result<Step, StoreError> {
        if state.conn.is_none() {
            state.conn = Some(self.pool.get()?);
        }
        let conn: &mut PgConnection = state.conn.as_mut().expect("connection");
        let mut allowed = self.unpaused_channels(conn)?;
        // WhatsApp held back recently (slot taken, quota used up): don't ask again
        // until then, so email claims don't pay for a WhatsApp job that must wait.
        let wa_wait = {
            let held = self.wa_held.lock().unwrap_or_else(|p| p.into_inner());
            held.filter(|(until, _)| *until > Instant::now())
        };
        if wa_wait.is_some() {
            allowed.retain(|c| *c != Channel::WhatsApp);
        }
        let now = OffsetDateTime::now_utc();
        let limits = queue::WhatsAppLimits {
            min_interval: self.cfg.whatsapp_interval,
            monthly_quota: (self.cfg.monthly_quota > 0).then_some(self.cfg.monthly_quota),
            month: queue::month_bounds(self.cfg.zone.date_at(now), self.cfg.zone.offset()),
        };
        let claim = queue::claim(
            conn,
            &self.cfg.queue,
            &self.id,
            self.cfg.retry_after,
            &allowed,
            &limits,
        )?;
        let held = match claim.whatsapp_held {
            Some(Held::Paced { next_send_at }) => {
                let wait =
                    (next_send_at - now).clamp(time::Duration::ZERO, time::Duration::seconds(60));
                let wait = Duration::try_from(wait).unwrap_or_default();
                Some((Instant::now() + wait, false))
            }
            Some(Held::Quota { used }) => {
                if !self.quota_warned.swap(true, Ordering::SeqCst) {
                    warn!(
                        "WhatsApp monthly quota reached ({used} of FONNTE_MONTHLY_QUOTA={} used this month): WhatsApp jobs wait for next month; email continues. Upgrade the Fonnte package or raise FONNTE_MONTHLY_QUOTA.",
                        self.cfg.monthly_quota
                    );
                }
                Some((Instant::now() + Duration::from_secs(60), true))
            }
            None => None,
        };
        if held.is_some() {
            *self.wa_held.lock().unwrap_or_else(|p| p.into_inner()) = held;
        }
        let wa_wait = held.or(wa_wait);
        match claim.job {
            Some(job) => {
                if job.channel() == Channel::WhatsApp {
                    // WhatsApp flows again: warn anew if the quota runs out later.
                    self.quota_warned.store(false, Ordering::SeqCst);
                }
                self.claimed.fetch_add(1, Ordering::SeqCst);
                self.process(conn, &job)?;
                Ok(Step::Worked)
            }
            // Only pacing keeps ready WhatsApp jobs back: wait for the slot, even
            // with --once (they are due now, just not all at once).
            None => match wa_wait {
                Some((until, false)) => {
                    Ok(Step::Paced(until.saturating_duration_since(Instant::now())))
                }
                _ => Ok(Step::Idle),
            },
        }
    }

    /// Takes one claimed job to its next state.
    fn process(&self, conn: &mut PgConnection, job: &ClaimedJob) -> Result<(), StoreError> {
        let started = Instant::now();
        let d = &job.delivery;
        let channel = job.channel();
        let masked = d
            .recipient
            .as_deref()
            .map(mask_recipient)
            .unwrap_or_default();
        let log_line = |outcome: &str| {
            // Provider errors may quote the recipient ("0812… is not a valid number"):
            // logs only ever show it masked.
            let outcome = match d.recipient.as_deref() {
                Some(raw) if !raw.is_empty() => outcome.replace(raw, &masked),
                _ => outcome.to_owned(),
            };
            info!(
                "job={} invoice={} stage={} channel={} to={} attempt={} outcome={} duration={}ms",
                job.id,
                d.invoice_number,
                d.stage,
                channel,
                masked,
                job.attempts,
                outcome,
                started.elapsed().as_millis()
            )
        };
        if job.attempts > self.cfg.tries as i32 {
            let error = format!(
                "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
                job.attempts - 1,
                self.cfg.tries
            );
            queue::finish(conn, job, &Final::Failed { error })?;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            log_line("failed (abandoned)");
            return Ok(());
        }
        let Some(stage) = d.stage() else {
            let error = format!("unknown stage {:?} in the ledger", d.stage);
            queue::finish(conn, job, &Final::Failed { error })?;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        // A "will be due on …" reminder that waited past the due date (quota, a long
        // pause, a late retry) would now be wrong: drop it; the overdue stage follows.
        let today = self.cfg.zone.date_at(OffsetDateTime::now_utc());
        if stage.offset_days() <= 0 && d.due_date < today {
            let reason = format!(
                "stale: the due date {} passed before this {} reminder could be sent",
                d.due_date, d.stage
            );
            queue::finish(conn, job, &Final::Skipped { reason })?;
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            log_line("skipped (stale)");
            return Ok(());
        }
        let Some(recipient) = d.recipient.clone() else {
            let reason = format!("customer has no {} contact", channel);
            queue::finish(conn, job, &Final::Skipped { reason })?;
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            log_line("skipped (no contact)");
            return Ok(());
        };
        let facts = InvoiceFacts {
            customer_name: d.customer_name.clone(),
            invoice_number: d.invoice_number.clone(),
            amount: d.amount,
            due_date: d.due_date,
        };
        let rendered = match self.templates.render(stage, channel, &facts) {
            Ok(r) => r,
            Err(e) => {
                let error = format!("template error: {e}");
                queue::finish(conn, job, &Final::Failed { error })?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                log_line("failed (template)");
                return Ok(());
            }
        };
        let (day_start, day_end) = local_day_bounds(&self.cfg.zone, OffsetDateTime::now_utc());
        let reference = format!("{}/{}", d.invoice_number, d.stage);
        let msg = OutgoingMessage {
            recipient: &recipient,
            subject: &rendered.subject,
            body: &rendered.body,
            reference: &reference,
        };
        // The send happens inside the transaction that holds the invoice row lock;
        // its result is kept outside so that a database failure after the send can
        // never make us forget (and repeat) a message that went out.
        let mut send_result: Option<Result<dunning_channels::Delivered, SendError>> = None;
        let tx = conn.transaction::<Option<Hold>, StoreError, _>(|c| {
            if let Some(hold) = queue::hold_before_send(c, d, day_start, day_end)? {
                queue::finish(
                    c,
                    job,
                    &Final::Skipped {
                        reason: hold.reason(),
                    },
                )?;
                return Ok(Some(hold));
            }
            let result = self.senders.get(channel).send(&msg);
            let outcome = self.outcome_of(job, channel, &result);
            send_result = Some(result);
            if let Some(Final::Sent { .. }) = &outcome {
                queue::finish(c, job, outcome.as_ref().expect("outcome"))?;
            }
            Ok(None)
        });
        match (tx, send_result) {
            (Ok(Some(hold)), _) => {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                log_line(&format!("skipped ({})", hold.reason()));
                Ok(())
            }
            (Ok(None), Some(Ok(_))) => {
                // Recorded inside the send transaction.
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                log_line("sent");
                Ok(())
            }
            // A failed send, or a send whose record was lost with the transaction.
            (_, Some(result)) => self.record(conn, job, channel, result, &log_line),
            (Err(e), None) => Err(e),
            (Ok(None), None) => Ok(()),
        }
    }

    /// The final state for a successful send (other results are handled in `record`).
    fn outcome_of(
        &self,
        _job: &ClaimedJob,
        _channel: Channel,
        result: &Result<dunning_channels::Delivered, SendError>,
    ) -> Option<Final> {
        match result {
            Ok(delivered) => Some(Final::Sent {
                provider_message_id: delivered.provider_message_id.clone(),
            }),
            Err(_) => None,
        }
    }

    /// Records what a send did, retrying the write until the database takes it.
    fn record(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        channel: Channel,
        result: Result<dunning_channels::Delivered, SendError>,
        log_line: &dyn Fn(&str),
    ) -> Result<(), StoreError> {
        match self.record_once(conn, job, channel, &result, log_line) {
            Err(e) if e.is_connection_problem() => {}
            other => return other,
        }
        // The thread's connection is gone (database restart?): keep trying on fresh
        // connections until the outcome is written, for as long as nobody else may
        // take the job over.
        let deadline = Instant::now() + self.cfg.retry_after;
        let mut wait = Duration::from_millis(200);
        loop {
            warn!(
                "job={} outcome not recorded yet (database unavailable); retrying in {}ms",
                job.id,
                wait.as_millis()
            );
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
            let attempt = self
                .pool
                .get()
                .map_err(StoreError::from)
                .and_then(|mut c| self.record_once(&mut c, job, channel, &result, log_line));
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if e.is_connection_problem() && Instant::now() < deadline => {}
                Err(e) => {
                    error!("job={} outcome could not be recorded: {e}", job.id);
                    return Err(e);
                }
            }
        }
    }

    fn record_once(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        channel: Channel,
        result: &Result<dunning_channels::Delivered, SendError>,
        log_line: &dyn Fn(&str),
    ) -> Result<(), StoreError> {
        match result {
            Ok(delivered) => {
                // Usually already recorded inside the send transaction; finishing
                // again is harmless (same values) and covers a lost commit.
                queue::finish(
                    conn,
                    job,
                    &Final::Sent {
                        provider_message_id: delivered.provider_message_id.clone(),
                    },
                )?;
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                log_line("sent");
            }
            Err(SendError::Permanent(e)) => {
                queue::finish(conn, job, &Final::Failed { error: e.clone() })?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                log_line(&format!("failed (permanent: {e})"));
            }
            Err(SendError::Transient(e)) => {
                if job.attempts < self.cfg.tries as i32 {
                    let idx = (job.attempts as usize).saturating_sub(1);
                    let backoff = self
                        .cfg
                        .backoff
                        .get(idx)
                        .or(self.cfg.backoff.last())
                        .copied()
                        .unwrap_or_default();
                    let at = OffsetDateTime::now_utc() + backoff;
                    queue::retry_later(conn, job, at, e)?;
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    log_line(&format!("retry in {}s ({e})", backoff.as_secs()));
                } else {
                    let error = format!("{e} (after {} attempts)", job.attempts);
                    queue::finish(conn, job, &Final::Failed { error })?;
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    log_line(&format!("failed (transient, tries exhausted: {e})"));
                }
            }
            Err(SendError::ChannelWide { reason, fix }) => {
                let pause = if reason.contains("quota") {
                    self.cfg.channel_pause.max(Duration::from_secs(3600))
                } else {
                    self.cfg.channel_pause
                };
                let until = OffsetDateTime::now_utc() + pause;
                queue::release(conn, job, until)?;
                let started = queue::pause_channel(conn, channel, until, reason)?;
                *self.channel_cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                if started {
                    error!(
                        "{channel} paused for all workers for {} min: {reason}. Fix: {fix}",
                        pause.as_secs() / 60
                    );
                }
                log_line(&format!("paused ({reason})"));
            }
            Err(other) => {
                let e = other.to_string();
                queue::finish(conn, job, &Final::Failed { error: e.clone() })?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                log_line(&format!("failed ({e})"));
            }
        }
        Ok(())
    }
}

/// What one worker thread keeps between jobs.
#[derive(Default)]
struct ThreadState {
    conn: Option<dunning_store::PooledConn>,
}

enum Step {
    Worked,
    Idle,
    /// Only WhatsApp jobs paced by the shared slot are waiting: try again after this.
    Paced(Duration),
}

/// The UTC instants where the local day containing `now` starts and ends.
pub fn local_day_bounds(zone: &Zone, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let date = zone.date_at(now);
    let start = date.midnight().assume_offset(zone.offset());
    (start, start + time::Duration::days(1))
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", nanos & 0xffff_ffff)
}
