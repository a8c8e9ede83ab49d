//! `dunning-worker`: the long-running queue worker.
//!
//! Each worker thread loops: claim a ready job (`FOR UPDATE SKIP LOCKED`), load its
//! ledger row, re-check the invoice under a row lock, send, record the outcome. Any
//! number of threads, processes and hosts can run against one database.

pub mod cli;
mod group;

use std::collections::{HashSet, VecDeque};
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
use dunning_store::queue::{self, ClaimedJob, Final, Finished, Held, Hold, Pick};
use dunning_store::{PgPool, StoreError};
use log::{error, info, warn};
use time::OffsetDateTime;

/// Jobs a thread claims at once unless `--batch` says otherwise.
pub const DEFAULT_BATCH: u32 = 20;
/// How long a batch keeps its invoices locked before the rest of it is checked anew:
/// what a billing `UPDATE` of one of them may wait, plus the send in progress.
const LOCK_SPAN: Duration = Duration::from_secs(1);
/// How long a worker lets the writers that waited for one lock span take their
/// locks before it locks the next span of the same batch (see
/// [`queue::let_waiters_in`]).
const LOCK_GAP_LIMIT: Duration = Duration::from_millis(250);
/// How long a job waits when another worker is sending to its invoice on its channel.
const BUSY_RETRY: Duration = Duration::from_secs(2);
/// How often each process looks for jobs abandoned by dead workers (and at once
/// whenever no fresh job is ready).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How a worker behaves (from flags and settings).
#[derive(Debug, Clone)]
pub struct Config {
    pub queue: String,
    pub tries: u32,
    pub backoff: Vec<Duration>,
    pub retry_after: Duration,
    pub sleep: Duration,
    pub concurrency: u32,
    /// Jobs a thread claims at once (`--batch`).
    pub batch: u32,
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
            batch: DEFAULT_BATCH,
            once: true,
            max_jobs: None,
            // A test whose workers never finish fails instead of hanging CI.
            max_time: Some(Duration::from_secs(90)),
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
    /// When this process last looked for abandoned jobs, and whether it found one.
    sweep: std::sync::Mutex<(Instant, bool)>,
    group: group::GroupCommit,
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
            // The first claim looks for abandoned jobs at once.
            sweep: std::sync::Mutex::new((Instant::now(), true)),
            group: group::GroupCommit::default(),
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
        let (groups, outcomes, largest) = self.group.figures();
        if outcomes > 0 {
            log::debug!(
                "{outcomes} outcomes recorded in {groups} statements (up to {largest} at once)"
            );
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
                    // Start over with fresh connections after any database error.
                    state.conn = None;
                    state.lock = None;
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

    /// Reserves up to `n` of the `--max-jobs` budget; returns how many it got.
    fn reserve(&self, n: u32) -> u32 {
        let Some(max) = self.cfg.max_jobs else {
            self.claimed.fetch_add(u64::from(n), Ordering::SeqCst);
            return n;
        };
        let mut got = 0;
        let _ = self
            .claimed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                got = max.saturating_sub(c).min(u64::from(n)) as u32;
                Some(c + u64::from(got))
            });
        got
    }

    /// Gives back budget reserved but not used.
    fn unreserve(&self, n: u32) {
        if n > 0 {
            self.claimed.fetch_sub(u64::from(n), Ordering::SeqCst);
        }
    }

    fn whatsapp_limits(&self, now: OffsetDateTime) -> queue::WhatsAppLimits {
        queue::WhatsAppLimits {
            min_interval: self.cfg.whatsapp_interval,
            monthly_quota: (self.cfg.monthly_quota > 0).then_some(self.cfg.monthly_quota),
            month: queue::month_bounds(self.cfg.zone.date_at(now), self.cfg.zone.offset()),
        }
    }

    /// Notes why WhatsApp jobs were held back, so that claims skip WhatsApp until then.
    fn note_whatsapp_held(&self, held: Option<Held>) {
        let held = match held {
            Some(Held::Paced { wait }) => {
                (Instant::now() + wait.min(Duration::from_secs(60)), false)
            }
            Some(Held::Quota { used }) => {
                if !self.quota_warned.swap(true, Ordering::SeqCst) {
                    warn!(
                        "WhatsApp monthly quota reached ({used} of FONNTE_MONTHLY_QUOTA={} used this month): WhatsApp jobs wait for next month; email continues. Upgrade the Fonnte package or raise FONNTE_MONTHLY_QUOTA.",
                        self.cfg.monthly_quota
                    );
                }
                (Instant::now() + Duration::from_secs(60), true)
            }
            None => return,
        };
        *self.wa_held.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
    }

    /// Whether it is time to look for jobs abandoned by dead workers: every few
    /// seconds, and again at once while the last look found one.
    fn sweep_due(&self) -> bool {
        let sweep = self.sweep.lock().unwrap_or_else(|p| p.into_inner());
        sweep.1 || sweep.0.elapsed() >= SWEEP_EVERY
    }

    /// Claims one abandoned job, if any (see [`queue::Pick::Abandoned`]).
    fn claim_abandoned(
        &self,
        conn: &mut PgConnection,
        allowed: &[Channel],
        limits: &queue::WhatsAppLimits,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let mut found = None;
        if self.reserve(1) == 1 {
            let batch: Vec<Channel> = allowed
                .iter()
                .copied()
                .filter(|c| *c != Channel::WhatsApp || !limits.gated())
                .collect();
            found = queue::claim_batch(
                conn,
                &self.cfg.queue,
                &self.id,
                self.cfg.retry_after,
                &batch,
                Pick::Abandoned,
            )?
            .into_iter()
            .next();
            if found.is_none() && limits.gated() && allowed.contains(&Channel::WhatsApp) {
                let claim = queue::claim_whatsapp(
                    conn,
                    &self.cfg.queue,
                    &self.id,
                    self.cfg.retry_after,
                    limits,
                    Pick::Abandoned,
                )?;
                self.note_whatsapp_held(claim.whatsapp_held);
                found = claim.job;
            }
            if found.is_none() {
                self.unreserve(1);
            }
        }
        *self.sweep.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), found.is_some());
        Ok(found)
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
        let limits = self.whatsapp_limits(now);

        // Jobs abandoned by a dead worker come back one at a time.
        let mut swept = false;
        if self.sweep_due() {
            swept = true;
            if let Some(job) = self.claim_abandoned(conn, &allowed, &limits)? {
                self.process_batch(state, vec![job])?;
                return Ok(Step::Worked);
            }
        }

        let mut jobs = Vec::new();
        let budget = self.reserve(self.cfg.batch.max(1));
        // WhatsApp under pacing or a quota: one job through the shared gate.
        let mut paced_now = false;
        if limits.gated() && allowed.contains(&Channel::WhatsApp) && budget > 0 {
            let claim = queue::claim_whatsapp(
                conn,
                &self.cfg.queue,
                &self.id,
                self.cfg.retry_after,
                &limits,
                Pick::Fresh(1),
            )?;
            paced_now = matches!(claim.whatsapp_held, Some(Held::Paced { .. }));
            self.note_whatsapp_held(claim.whatsapp_held);
            jobs.extend(claim.job);
        }
        let batch_channels: Vec<Channel> = allowed
            .iter()
            .copied()
            .filter(|c| *c != Channel::WhatsApp || !limits.gated())
            .collect();
        let want = budget - jobs.len() as u32;
        if want > 0 {
            jobs.extend(queue::claim_batch(
                conn,
                &self.cfg.queue,
                &self.id,
                self.cfg.retry_after,
                &batch_channels,
                Pick::Fresh(want),
            )?);
        }
        self.unreserve(budget - jobs.len() as u32);
        if jobs.iter().any(|j| j.channel() == Channel::WhatsApp) {
            // WhatsApp flows again: warn anew if the quota runs out later.
            self.quota_warned.store(false, Ordering::SeqCst);
        }
        if jobs.is_empty() {
            if !swept {
                if let Some(job) = self.claim_abandoned(conn, &allowed, &limits)? {
                    self.process_batch(state, vec![job])?;
                    return Ok(Step::Worked);
                }
            }
            // Only pacing keeps ready WhatsApp jobs back: wait for the slot, even
            // with --once (they are due now, just not all at once). A slot that
            // opened again in the meantime is no reason to stop either.
            let held = *self.wa_held.lock().unwrap_or_else(|p| p.into_inner());
            return match held {
                Some((until, false)) if paced_now || until > Instant::now() => {
                    Ok(Step::Paced(until.saturating_duration_since(Instant::now())))
                }
                _ => Ok(Step::Idle),
            };
        }
        self.process_batch(state, jobs)?;
        Ok(Step::Worked)
    }

    /// Takes a batch of claimed jobs to their next state.
    ///
    /// Jobs that need no send (abandoned too often, stale, no contact, a template
    /// error) are finished at once. The others are sent under the invoice locks of
    /// one transaction on the thread's lock connection ([`queue::hold_batch`]), each
    /// outcome recorded on the thread's main connection right after its send, so a
    /// crash can repeat at most the one send in flight. After [`LOCK_SPAN`] the
    /// locks are released and the rest of the batch is checked anew, so a billing
    /// update never waits long. A stop or a channel-wide failure hands the jobs not
    /// yet started back without counting their attempt.
    fn process_batch(
        &self,
        state: &mut ThreadState,
        jobs: Vec<ClaimedJob>,
    ) -> Result<(), StoreError> {
        // The reservations were taken just now; before they could look abandoned
        // to other workers (slow sends, a hanging server), the rest is handed back.
        let claimed = Instant::now();
        let mut rest: VecDeque<Prepared> = Default::default();
        {
            let conn = state.conn.as_mut().expect("connection");
            for job in jobs {
                if let Some(p) = self.prepare(conn, job)? {
                    rest.push_back(p);
                }
            }
        }
        let mut sent_now: HashSet<(i64, Channel)> = HashSet::new();
        let mut seen: HashSet<i64> = HashSet::new();
        while !rest.is_empty() {
            let late = claimed.elapsed() >= self.cfg.retry_after / 2;
            if self.stopping() || late {
                if late {
                    warn!(
                        "{} jobs of a slow batch handed back before --retry-after ({}s) could make them look abandoned",
                        rest.len(),
                        self.cfg.retry_after.as_secs()
                    );
                }
                let ids: Vec<i64> = rest.iter().map(|p| p.job.id).collect();
                let conn = state.conn.as_mut().expect("connection");
                self.hand_back(conn, &ids, OffsetDateTime::now_utc())?;
                return Ok(());
            }
            if state.lock.is_none() {
                match self.pool.get() {
                    Ok(c) => state.lock = Some(c),
                    Err(e) => {
                        self.give_back(&rest);
                        return Err(e.into());
                    }
                }
            }
            let ThreadState { conn, lock } = state;
            let conn: &mut PgConnection = conn.as_mut().expect("connection");
            let lock: &mut PgConnection = lock.as_mut().expect("lock connection");
            let (day_start, day_end) = local_day_bounds(&self.cfg.zone, OffsetDateTime::now_utc());
            let ids: Vec<i64> = rest.iter().map(|p| p.job.notification_id).collect();
            let round = lock.transaction::<Vec<i32>, StoreError, _>(|lock| {
                let holds = queue::hold_batch(lock, &ids, day_start, day_end)?;
                let began = Instant::now();
                while let Some(p) = rest.pop_front() {
                    let d = &p.job.delivery;
                    let channel = p.job.channel();
                    let hold = if !seen.insert(p.job.notification_id) {
                        Some(Hold::AlreadyFinal("claimed twice in one batch".to_owned()))
                    } else if sent_now.contains(&(d.invoice_id, channel)) {
                        Some(Hold::AlreadyRemindedToday)
                    } else {
                        holds
                            .get(&p.job.notification_id)
                            .cloned()
                            .unwrap_or_else(|| {
                                Some(Hold::AlreadyFinal("gone from the ledger".to_owned()))
                            })
                    };
                    if hold == Some(Hold::Busy) {
                        // Back in a moment, attempt not counted; by then the other
                        // send is recorded and the re-check skips this one.
                        let at = OffsetDateTime::now_utc() + BUSY_RETRY;
                        self.hand_back(conn, &[p.job.id], at)?;
                        self.stats.released.fetch_add(1, Ordering::Relaxed);
                        p.log(&format!("deferred ({})", Hold::Busy.reason()));
                    } else if let Some(hold) = hold {
                        self.finish_job(
                            conn,
                            &p.job,
                            Final::Skipped {
                                reason: hold.reason(),
                            },
                        )?;
                        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                        p.log(&format!("skipped ({})", hold.reason()));
                    } else {
                        let rendered = p.rendered.as_ref().expect("rendered in prepare");
                        let msg = OutgoingMessage {
                            recipient: &p.recipient,
                            subject: &rendered.subject,
                            body: &rendered.body,
                            reference: &p.reference,
                        };
                        let result = self.senders.get(channel).send(&msg);
                        if result.is_ok() {
                            sent_now.insert((d.invoice_id, channel));
                        }
                        let wide = match &result {
                            Err(SendError::ChannelWide { reason, .. }) => Some(reason.clone()),
                            _ => None,
                        };
                        self.record(conn, &p, result)?;
                        if let Some(reason) = wide {
                            // The channel is paused: hand its other jobs back untouched.
                            let until = OffsetDateTime::now_utc() + self.pause_for(&reason);
                            let back: Vec<i64> = rest
                                .iter()
                                .filter(|q| q.job.channel() == channel)
                                .map(|q| q.job.id)
                                .collect();
                            self.hand_back(conn, &back, until)?;
                            self.stats
                                .released
                                .fetch_add(back.len() as u64, Ordering::Relaxed);
                            rest.retain(|q| q.job.channel() != channel);
                        }
                    }
                    if self.stopping() || began.elapsed() >= LOCK_SPAN {
                        break;
                    }
                }
                // Another span follows: note who waits for this one's locks. Best
                // effort: in a savepoint, so that a failure costs nothing but the wait.
                if rest.is_empty() || self.stopping() {
                    return Ok(Vec::new());
                }
                Ok(lock.transaction(queue::lock_waiters).unwrap_or_else(|e| {
                    log::debug!("lock waiters not read: {e}");
                    Vec::new()
                }))
            });
            match round {
                Ok(waiters) => {
                    if let Err(e) = queue::let_waiters_in(conn, &waiters, LOCK_GAP_LIMIT) {
                        log::debug!("lock waiters not let in: {e}");
                    }
                }
                Err(e) => {
                    self.give_back(&rest);
                    if e.is_connection_problem() {
                        state.lock = None;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Hands claimed jobs back, available at `at`, without counting their attempt.
    fn hand_back(
        &self,
        conn: &mut PgConnection,
        job_ids: &[i64],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        queue::release_many(conn, job_ids, at)?;
        self.unreserve(job_ids.len() as u32);
        Ok(())
    }

    /// After a database error mid-batch: hands the jobs not started back (best
    /// effort; otherwise they come back after `--retry-after`, as after a crash).
    fn give_back(&self, rest: &VecDeque<Prepared>) {
        if rest.is_empty() {
            return;
        }
        let ids: Vec<i64> = rest.iter().map(|p| p.job.id).collect();
        let back = self
            .pool
            .get()
            .map_err(StoreError::from)
            .and_then(|mut c| self.hand_back(&mut c, &ids, OffsetDateTime::now_utc()));
        match back {
            Ok(()) => {}
            Err(e) => warn!(
                "{} claimed jobs could not be handed back ({e}); they are taken again after --retry-after",
                ids.len()
            ),
        }
    }

    /// Checks a claimed job that needs no lock and renders its message. Jobs that
    /// must not be sent are finished here (`None`).
    fn prepare(
        &self,
        conn: &mut PgConnection,
        job: ClaimedJob,
    ) -> Result<Option<Prepared>, StoreError> {
        let mut p = Prepared::new(job);
        let early = self.early_outcome(&mut p);
        match early {
            None => Ok(Some(p)),
            Some((outcome, counter, line)) => {
                self.finish_job(conn, &p.job, outcome)?;
                counter.fetch_add(1, Ordering::Relaxed);
                p.log(&line);
                Ok(None)
            }
        }
    }

    /// The final state of a job that must not be sent, or `None` after rendering
    /// its message into `p`.
    fn early_outcome(&self, p: &mut Prepared) -> Option<(Final, &AtomicU64, String)> {
        let job = &p.job;
        let d = &job.delivery;
        if job.attempts > self.cfg.tries as i32 {
            let error = format!(
                "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
                job.attempts - 1,
                self.cfg.tries
            );
            return Some((
                Final::Failed { error },
                &self.stats.failed,
                "failed (abandoned)".into(),
            ));
        }
        let Some(stage) = d.stage() else {
            let error = format!("unknown stage {:?} in the ledger", d.stage);
            return Some((
                Final::Failed { error },
                &self.stats.failed,
                "failed (stage)".into(),
            ));
        };
        // A "will be due on …" reminder that waited past the due date (quota, a long
        // pause, a late retry) would now be wrong: drop it; the overdue stage follows.
        let today = self.cfg.zone.date_at(OffsetDateTime::now_utc());
        if stage.offset_days() <= 0 && d.due_date < today {
            let reason = format!(
                "stale: the due date {} passed before this {} reminder could be sent",
                d.due_date, d.stage
            );
            return Some((
                Final::Skipped { reason },
                &self.stats.skipped,
                "skipped (stale)".into(),
            ));
        }
        if d.recipient.is_none() {
            let reason = format!("customer has no {} contact", job.channel());
            return Some((
                Final::Skipped { reason },
                &self.stats.skipped,
                "skipped (no contact)".into(),
            ));
        }
        let facts = InvoiceFacts {
            customer_name: d.customer_name.clone(),
            invoice_number: d.invoice_number.clone(),
            amount: d.amount,
            due_date: d.due_date,
        };
        match self.templates.render(stage, job.channel(), &facts) {
            Ok(r) => {
                p.rendered = Some(r);
                None
            }
            Err(e) => Some((
                Final::Failed {
                    error: format!("template error: {e}"),
                },
                &self.stats.failed,
                "failed (template)".into(),
            )),
        }
    }

    /// Records what a send did, retrying the write until the database takes it.
    fn record(
        &self,
        conn: &mut PgConnection,
        p: &Prepared,
        result: Result<dunning_channels::Delivered, SendError>,
    ) -> Result<(), StoreError> {
        match self.record_once(conn, p, &result) {
            Err(e) if e.is_connection_problem() => {}
            other => return other,
        }
        // The thread's connection is gone (database restart?): keep trying on fresh
        // connections until the outcome is written, for as long as nobody else may
        // take the job over.
        let job = &p.job;
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
                .and_then(|mut c| self.record_once(&mut c, p, &result));
            match attempt {
                Ok(()) => {
                    // Recorded; the thread's own connection is still broken.
                    return Err(StoreError::ConnectionLost(
                        "the worker's connection was lost (the outcome was recorded on a new one)"
                            .to_owned(),
                    ));
                }
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
        p: &Prepared,
        result: &Result<dunning_channels::Delivered, SendError>,
    ) -> Result<(), StoreError> {
        let job = &p.job;
        let channel = job.channel();
        match result {
            Ok(delivered) => {
                self.finish_job(
                    conn,
                    job,
                    Final::Sent {
                        provider_message_id: delivered.provider_message_id.clone(),
                    },
                )?;
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                p.log("sent");
            }
            Err(SendError::Permanent(e)) => {
                self.finish_job(conn, job, Final::Failed { error: e.clone() })?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                p.log(&format!("failed (permanent: {e})"));
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
                    p.log(&format!("retry in {}s ({e})", backoff.as_secs()));
                } else {
                    let error = format!("{e} (after {} attempts)", job.attempts);
                    self.finish_job(conn, job, Final::Failed { error })?;
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    p.log(&format!("failed (transient, tries exhausted: {e})"));
                }
            }
            Err(SendError::ChannelWide { reason, fix }) => {
                let pause = self.pause_for(reason);
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
                p.log(&format!("paused ({reason})"));
            }
            Err(other) => {
                let e = other.to_string();
                self.finish_job(conn, job, Final::Failed { error: e.clone() })?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                p.log(&format!("failed ({e})"));
            }
        }
        Ok(())
    }

    /// Records a final state (committed before this returns; see [`group`]).
    fn finish_job(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        outcome: Final,
    ) -> Result<(), StoreError> {
        self.group.finish(conn, Finished::of(job, outcome))
    }

    /// How long a channel-wide failure pauses the channel (an hour at least for a
    /// used-up quota: it will not come back in minutes).
    fn pause_for(&self, reason: &str) -> Duration {
        if reason.contains("quota") {
            self.cfg.channel_pause.max(Duration::from_secs(3600))
        } else {
            self.cfg.channel_pause
        }
    }
}

/// A claimed job that passed the checks needing no lock, with its message.
struct Prepared {
    job: ClaimedJob,
    recipient: String,
    masked: String,
    reference: String,
    rendered: Option<dunning_core::message::Rendered>,
    started: Instant,
}

impl Prepared {
    fn new(job: ClaimedJob) -> Self {
        let d = &job.delivery;
        Prepared {
            recipient: d.recipient.clone().unwrap_or_default(),
            masked: d
                .recipient
                .as_deref()
                .map(mask_recipient)
                .unwrap_or_default(),
            reference: format!("{}/{}", d.invoice_number, d.stage),
            rendered: None,
            started: Instant::now(),
            job,
        }
    }

    /// One log line per job outcome; the recipient only ever appears masked.
    fn log(&self, outcome: &str) {
        let d = &self.job.delivery;
        // Provider errors may quote the recipient ("0812… is not a valid number").
        let outcome = match d.recipient.as_deref() {
            Some(raw) if !raw.is_empty() => outcome.replace(raw, &self.masked),
            _ => outcome.to_owned(),
        };
        info!(
            "job={} invoice={} stage={} channel={} to={} attempt={} outcome={} duration={}ms",
            self.job.id,
            d.invoice_number,
            d.stage,
            self.job.channel(),
            self.masked,
            self.job.attempts,
            outcome,
            self.started.elapsed().as_millis()
        )
    }
}

/// What one worker thread keeps between jobs.
#[derive(Default)]
struct ThreadState {
    /// Claims and outcomes (each statement commits at once).
    conn: Option<dunning_store::PooledConn>,
    /// The transaction holding a batch's invoice locks while it is sent.
    lock: Option<dunning_store::PooledConn>,
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
