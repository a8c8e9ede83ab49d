//! `dunning-worker`: the long-running queue worker.
//!
//! Each worker thread loops: claim one ready job (`FOR UPDATE SKIP LOCKED`), re-check
//! it right before the send ([`Worker::recheck`]), send, record the outcome. Any
//! number of threads, processes and hosts can run against one database. The state
//! the loop needs lives in small types of their own: the budget (`--max-jobs`,
//! `--max-time`), the WhatsApp gate's last answer, the channels' pauses, the
//! rescuer of abandoned jobs and the idle report.

mod answer;
mod billing;
mod budget;
pub mod cli;
mod every;
mod gate;
mod group;
mod hook;
pub use hook::PASSED_VARIABLES as HOOK_VARIABLES;
mod idle;
mod job;
mod pauses;
mod receipt;
pub mod recheck;
mod rescuer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_channels::Sender;
use dunning_core::config::SendWindow;
use dunning_core::message::Templates;
use dunning_core::{Channel, Zone};
use dunning_store::queue::{ClaimedJob, Gate, JobQueue, Slot, WhatsAppLimits};
use dunning_store::{PgPool, PooledConn, StoreError};
use log::{error, warn};
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
    /// Handed back without counting the attempt (held, paused).
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

/// What one turn of a thread's loop did.
enum Step {
    Worked,
    /// Nothing to do now.
    Idle,
    /// Only WhatsApp jobs paced by the shared slot are ready: look again after this.
    Paced(Duration),
}

/// A worker process: shared by its threads.
pub struct Worker {
    queue: JobQueue,
    pool: PgPool,
    senders: Senders,
    templates: Templates,
    cfg: Config,
    id: String,
    hostname: String,
    stop: Arc<AtomicBool>,
    budget: budget::Budget,
    gate: gate::WhatsAppGate,
    pauses: pauses::Pauses,
    rescuer: rescuer::Rescuer,
    idle: idle::IdleReport,
    /// The billing source asked right before each send (`BILLING_DATABASE_URL`).
    billing: Option<billing::BillingCheck>,
    /// Payment links put into reminders (`PAYMENT_LINK`).
    links: Option<dunning_pay::Links>,
    /// Queues receipts for invoices just paid (`DUNNING_RECEIPTS`).
    receipts: Option<every::Sweep<bool>>,
    /// Escalation hooks (`DUNNING_HOOKS`).
    hooks: Option<hook::HookWork>,
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
            queue: JobQueue::new(&cfg.queue, &id, cfg.retry_after),
            budget: budget::Budget::new(cfg.max_jobs, cfg.max_time),
            gate: Default::default(),
            pauses: Default::default(),
            rescuer: rescuer::Rescuer::new(),
            idle: Default::default(),
            billing: None,
            links: None,
            receipts: None,
            hooks: None,
            pool,
            senders,
            templates,
            cfg,
            id,
            hostname,
            stop,
            stats: Stats::default(),
        }
    }

    /// Asks this billing source right before each send of a reminder for an invoice
    /// that came from it (`from_billing`): paid or void there means skip; a source
    /// that cannot answer holds the job once the mirror is older than
    /// `BILLING_MAX_STALENESS` ([`dunning_source::decide`]).
    pub fn with_billing_source(mut self, source: dunning_source::SourceConfig) -> Self {
        self.billing = Some(billing::BillingCheck::new(source, self.cfg.zone.offset()));
        self
    }

    /// Puts a payment link into each reminder ([`dunning_pay::Links::link_for`]);
    /// with `PAYMENT_LINK=none` the messages stay as they are.
    pub fn with_payment_links(mut self, links: dunning_pay::Links) -> Self {
        self.links = Some(links);
        self
    }

    /// Looks every few seconds for invoices that turned paid (`paid_events`) and,
    /// when `enabled` (`DUNNING_RECEIPTS`), queues a receipt per channel for each on
    /// this worker's queue; when not, drops the events. Without this call nothing
    /// looks (tests, embedders).
    pub fn with_receipts(mut self, enabled: bool) -> Self {
        self.receipts = Some(receipt::receipt_sweep(enabled));
        self
    }

    /// Runs the escalation hooks of `hooks` from this worker's queue: queues the
    /// `paid`, `optout` and restore runs of events the database recorded, and runs
    /// hook jobs (stage runs come from the scheduler), also outside the send window.
    pub fn with_hooks(
        mut self,
        hooks: dunning_core::hooks::Hooks,
        settings: &dunning_core::hooks::HookSettings,
    ) -> Self {
        self.hooks = Some(hook::HookWork::new(hooks, settings));
        self
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
            let done = self.stats.finished() as i64;
            let _ = dunning_store::queue::worker_stopped(&mut conn, &self.id, done);
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
        let pid = std::process::id() as i32;
        let done = self.stats.finished() as i64;
        let result = self.pool.get().map_err(StoreError::from).and_then(|mut c| {
            dunning_store::queue::heartbeat(
                &mut c,
                &self.id,
                &self.hostname,
                pid,
                &self.cfg.queue,
                done,
            )
        });
        if let Err(e) = result {
            warn!("heartbeat not recorded: {e}");
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

    /// One thread: claim → re-check → send → record, one job at a time, until
    /// stopped. Database errors cost a growing pause and a fresh connection.
    fn thread_loop(&self, n: u32) {
        let mut conn: Option<PooledConn> = None;
        let mut failures = 0u32;
        while !self.stopping() && !self.budget.spent() {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.pool.get() {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        failures += 1;
                        if !self.after_error(&e.into(), failures) {
                            break;
                        }
                        continue;
                    }
                },
            };
            match self.turn(c, n) {
                Ok(Step::Worked) => failures = 0,
                Ok(Step::Paced(wait)) => {
                    failures = 0;
                    self.nap(wait.clamp(Duration::from_millis(10), Duration::from_secs(1)));
                }
                Ok(Step::Idle) => {
                    failures = 0;
                    if n == 0 {
                        self.report_idle(c);
                    }
                    if self.cfg.once {
                        break;
                    }
                    self.nap(self.cfg.sleep);
                }
                Err(e) => {
                    // Start over on a fresh connection, holding no lock.
                    if let Some(mut c) = conn.take() {
                        let _ = self.queue.unlock_senders(&mut c);
                    }
                    failures += 1;
                    if !self.after_error(&e, failures) {
                        break;
                    }
                }
            }
        }
    }

    /// Logs a database error and waits before the next try; false: give up
    /// (`--once` after many failures).
    fn after_error(&self, e: &StoreError, failures: u32) -> bool {
        let wait = Duration::from_secs(1 << failures.min(5)).min(Duration::from_secs(30));
        if e.is_connection_problem() {
            warn!(
                "database unavailable ({e}); retrying in {}s",
                wait.as_secs()
            );
        } else {
            error!("worker error: {e}; retrying in {}s", wait.as_secs());
        }
        if self.cfg.once && failures > 8 {
            error!("giving up after {failures} database errors");
            return false;
        }
        self.nap(wait);
        true
    }

    /// Says why this worker idles, once per change.
    fn report_idle(&self, conn: &mut PgConnection) {
        match self.why_idle(conn) {
            Ok(why) => self.idle.say(why),
            Err(e) => log::debug!("why idle not read: {e}"),
        }
    }

    /// One turn: outside the send window nothing is claimed; else the rescuer when
    /// due, then one job of the channels in this thread's order.
    fn turn(&self, conn: &mut PgConnection, n: u32) -> Result<Step, StoreError> {
        let local = self.cfg.zone.local(OffsetDateTime::now_utc());
        if let Some(hooks) = &self.hooks {
            hooks
                .events
                .when_due(conn, self.queue.name(), local.date())?;
        }
        if !self.cfg.window.contains(local.time()) {
            // Hooks act on machines, not people: they run outside the send window.
            return match &self.hooks {
                Some(hooks) if self.budget.take() => {
                    if self.run_hook(conn, hooks)? {
                        Ok(Step::Worked)
                    } else {
                        self.budget.give_back();
                        Ok(Step::Idle)
                    }
                }
                _ => Ok(Step::Idle),
            };
        }
        self.rescuer.when_due(conn, &self.queue)?;
        if let Some(receipts) = &self.receipts {
            receipts.when_due(conn, self.queue.name(), local.date())?;
        }
        if !self.budget.take() {
            return Ok(Step::Idle);
        }
        if let Some((job, slot)) = self.claim(conn, n)? {
            self.work(conn, &job, slot)?;
            return Ok(Step::Worked);
        }
        if let Some(hooks) = &self.hooks
            && self.run_hook(conn, hooks)?
        {
            return Ok(Step::Worked);
        }
        self.budget.give_back();
        if self.rescuer.now(conn, &self.queue)? > 0 {
            return Ok(Step::Worked);
        }
        Ok(self.gate.paced_wait().map_or(Step::Idle, Step::Paced))
    }

    /// Claims one job of an open channel; thread `n` starts with channel `n % 2`
    /// so that both channels flow while one has a backlog.
    fn claim(
        &self,
        conn: &mut PgConnection,
        n: u32,
    ) -> Result<Option<(ClaimedJob, Option<Slot>)>, StoreError> {
        let mut open = self.pauses.open(conn)?;
        let first = n as usize % open.len().max(1);
        open.rotate_left(first);
        for channel in open {
            let claimed = match channel {
                Channel::WhatsApp => self.claim_whatsapp(conn)?,
                Channel::Email => self.queue.claim(conn, channel)?.map(|j| (j, None)),
            };
            if claimed.is_some() {
                return Ok(claimed);
            }
        }
        Ok(None)
    }

    /// A WhatsApp job through the gate (pacing, quota), unless the gate's last
    /// answer still holds.
    fn claim_whatsapp(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<(ClaimedJob, Option<Slot>)>, StoreError> {
        let limits = self.whatsapp_limits();
        if !limits.gated() {
            return Ok(self
                .queue
                .claim(conn, Channel::WhatsApp)?
                .map(|j| (j, None)));
        }
        if self.gate.held().is_some() {
            return Ok(None);
        }
        match self.queue.claim_whatsapp(conn, &limits)? {
            Gate::Claimed(job, slot) => {
                self.gate.clear();
                Ok(Some((job, slot)))
            }
            Gate::Held(held) => {
                if self.gate.note(held) {
                    warn!(
                        "WhatsApp monthly quota reached (FONNTE_MONTHLY_QUOTA={}): WhatsApp jobs wait for next month; email continues. Upgrade the Fonnte package or raise FONNTE_MONTHLY_QUOTA.",
                        self.cfg.monthly_quota
                    );
                }
                Ok(None)
            }
            Gate::Empty => Ok(None),
        }
    }

    fn whatsapp_limits(&self) -> WhatsAppLimits {
        let zone = &self.cfg.zone;
        WhatsAppLimits {
            min_interval: self.cfg.whatsapp_interval,
            monthly_quota: (self.cfg.monthly_quota > 0).then_some(self.cfg.monthly_quota),
            month: zone.month_bounds(zone.date_at(OffsetDateTime::now_utc())),
        }
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", nanos & 0xffff_ffff)
}
