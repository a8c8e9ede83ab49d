//! Shared by the `reliability_*` tests: seeding, real `dunning-worker` processes,
//! the Fonnte fake, a private throwaway PostgreSQL cluster, delivery accounting and
//! the chaos engine (kills and database restarts while workers drain a queue).
//!
//! Nothing here skips: a missing PostgreSQL, `TEST_DATABASE_URL` or server binary
//! fails the test with the fix.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Text};
use dunning_core::Zone;
use dunning_store::scheduling::{self, Request};
use dunning_test_fonnte::FonnteFake;
use time::{Date, OffsetDateTime};

pub const WORKER: &str = env!("CARGO_BIN_EXE_dunning-worker");

/// The `dunning-schedule` binary of the same build (tests that run both binaries).
pub fn schedule_bin() -> PathBuf {
    let path = Path::new(WORKER)
        .parent()
        .expect("target dir")
        .join(format!("dunning-schedule{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: this test runs both binaries; build it first with `cargo build -p dunning-schedule` (scripts/test builds everything)",
        path.display()
    );
    path
}
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A small deterministic PRNG (xorshift64*); the seed is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_time(name: &str) -> Rng {
        let seed = std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(42)
                    | 1
            });
        eprintln!("{name}={seed} (set it to replay this run)");
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Today in the worker's default zone (Asia/Jakarta).
pub fn today() -> Date {
    Zone::default().date_at(OffsetDateTime::now_utc())
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT count(*) AS n …` or any query returning one bigint column `n`.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<N>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

pub fn exec(conn: &mut PgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The phone of seeded customer `id` as stored, and as Fonnte receives it.
pub fn phone_of(id: i64) -> (String, String) {
    (format!("0812{id:08}"), format!("62812{id:08}"))
}

/// The invoice number of seeded customer `id`.
pub fn invoice_of(id: i64) -> String {
    format!("R-{id:06}")
}

/// Seeds `n` customers (ids 1..=n in a fresh database) with an email address and a
/// unique phone each, and one unpaid invoice per customer due in three days (T-3).
pub fn seed(conn: &mut PgConnection, n: usize) {
    let due = today() + time::Duration::days(3);
    diesel::sql_query(
        "INSERT INTO customers (external_id, name, email, phone)
         SELECT 'c' || g, 'Pelanggan ' || g, 'c' || g || '@example.com', '0812' || lpad(g::text, 8, '0')
         FROM generate_series(1, $1) g ORDER BY g",
    )
    .bind::<BigInt, _>(n as i64)
    .execute(conn)
    .expect("seed customers");
    diesel::sql_query(
        "INSERT INTO invoices (number, customer_id, amount, due_date)
         SELECT 'R-' || lpad(id::text, 6, '0'), id, 150000 + id, $1 FROM customers ORDER BY id",
    )
    .bind::<SqlDate, _>(due)
    .execute(conn)
    .expect("seed invoices");
}

/// Runs the scheduler for today as `dunning-schedule` does (the same store call);
/// returns the number of jobs queued.
pub fn schedule(conn: &mut PgConnection) -> i64 {
    let stages = dunning_core::stage::parse_stages("T-7,T-3,T-1,T+3").unwrap();
    scheduling::schedule(
        conn,
        &Request {
            run_date: today(),
            stages: &stages,
            catch_up_days: 0,
            queue: "default",
            dry_run: false,
            lines: false,
            host: "reliability-test",
            backfill: false,
            group: dunning_core::config::Grouping::Invoice,
        },
    )
    .expect("schedule");
    count(conn, "SELECT count(*) AS n FROM jobs")
}

/// Environment for a worker process: the given database, the Fonnte fake, the eml
/// outbox, no send window, no pacing. The process starts from an empty environment
/// (plus PATH) in a directory without `.env`.
pub struct WorkerEnv {
    pub vars: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl WorkerEnv {
    pub fn new(database_url: &str, fonnte: &FonnteFake, outbox: &Path) -> WorkerEnv {
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.into()),
            ("MAIL_MAILER".into(), "log".into()),
            ("DUNNING_OUTBOX_DIR".into(), outbox.display().to_string()),
            ("WHATSAPP_MIN_INTERVAL".into(), "0".into()),
            ("DUNNING_SEND_WINDOW".into(), "00:00-00:00".into()),
            ("FONNTE_MONTHLY_QUOTA".into(), "100000000".into()),
            ("FONNTE_TIMEOUT".into(), "5".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        for (k, v) in fonnte.env() {
            vars.push((k.into(), v));
        }
        WorkerEnv {
            vars,
            dir: outbox.to_path_buf(),
        }
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.into(), v.into()));
    }

    pub fn unset(&mut self, k: &str) {
        self.vars.retain(|(key, _)| key != k);
    }

    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts a worker whose stdout and stderr go to `log`.
    pub fn spawn(&self, args: &[&str], log: &Path) -> Child {
        let out = File::options().create(true).append(true).open(log).unwrap();
        self.command(WORKER, args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn dunning-worker")
    }

    /// Runs a worker to completion: (status, stdout + stderr).
    pub fn run(&self, bin: &str, args: &[&str]) -> (ExitStatus, String) {
        let out = self
            .command(bin, args)
            .output()
            .unwrap_or_else(|e| panic!("run {bin}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status, text)
    }
}

/// The default worker flags of these tests.
pub const FAST: &[&str] = &["--retry-after", "2", "--backoff", "0", "--sleep", "0.1"];

/// Sends SIGTERM (supervisor's stop signal).
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -TERM {}", child.id());
}

/// Waits for a child up to `limit`; kills it and panics when it does not exit.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many times each (invoice number, channel) was delivered: WhatsApp `/send`
/// requests the Fonnte fake received, and `.eml` files in the outbox.
pub fn deliveries(fonnte: &FonnteFake, outbox: &Path) -> HashMap<(String, &'static str), u64> {
    let mut out: HashMap<(String, &'static str), u64> = HashMap::new();
    for r in fonnte.sent() {
        let target = r.field("target").unwrap_or_default();
        let id: i64 = target
            .strip_prefix("62812")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected WhatsApp target {target:?}"));
        *out.entry((invoice_of(id), "whatsapp")).or_default() += 1;
    }
    for name in eml_files(outbox) {
        let i = name.find("-R-").expect("reference in eml name") + 1;
        *out.entry((name[i..i + 8].to_owned(), "email")).or_default() += 1;
    }
    out
}

/// Names of the `.eml` files in `outbox/email` (finished writes only).
pub fn eml_files(outbox: &Path) -> Vec<String> {
    match std::fs::read_dir(outbox.join("email")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// One ledger row as the assertions need it.
#[derive(Debug, Clone, QueryableByName)]
pub struct LedgerRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
}

pub fn ledger(conn: &mut PgConnection) -> Vec<LedgerRow> {
    diesel::sql_query(
        "SELECT n.id, i.number, n.channel, n.status, n.error, n.attempts
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id ORDER BY n.id",
    )
    .load(conn)
    .expect("ledger")
}

/// A free TCP port on loopback (the listener is dropped before the port is used).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway PostgreSQL cluster of our own (initdb into a temporary directory, its
/// own port), so a test can restart the server without disturbing the shared test
/// cluster. As root it runs as the `postgres` user, like `scripts/dev-db`.
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
    pgbin: PathBuf,
    as_postgres: bool,
}

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let out = Command::new(format!("{ROOT}/scripts/dev-db"))
            .arg("pgbin")
            .output()
            .expect("run scripts/dev-db pgbin");
        assert!(
            out.status.success(),
            "scripts/dev-db pgbin failed (PostgreSQL server binaries are needed for the restart test): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pgbin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = std::env::temp_dir().join(format!(
            "dunning-reliability-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = PrivateCluster {
            dir,
            port: free_port(),
            pgbin,
            as_postgres: is_root,
        };
        if is_root {
            let ok = Command::new("chown")
                .args(["postgres:", &cluster.dir.display().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown postgres {}", cluster.dir.display());
        }
        let data = cluster.dir.join("data");
        cluster.pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 100\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\ntimezone = 'UTC'\n",
            cluster.port,
            cluster.dir.display()
        );
        use std::io::Write as _;
        File::options()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        cluster.ctl(&["start"]);
        cluster
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let bin = self.pgbin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd.args(args).output().expect("run PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &[&str]) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let mut args = vec!["-D", data.as_str(), "-l", log.as_str(), "-w", "-t", "60"];
        args.extend_from_slice(action);
        self.pg("pg_ctl", &args);
    }

    /// `pg_ctl restart -m fast`: every connection is terminated.
    pub fn restart(&self) {
        self.ctl(&["-m", "fast", "restart"]);
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` and migrates it.
    pub fn create_db(&self, db: &str) -> String {
        let mut admin = PgConnection::establish(&self.url("postgres")).expect("private cluster");
        exec(&mut admin, &format!("CREATE DATABASE {db}"));
        let url = self.url(db);
        let mut conn = PgConnection::establish(&url).unwrap();
        dunning_store::db::run_pending_migrations(&mut conn).expect("migrate");
        url
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let bin = self.pgbin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    pub invoices: usize,
    pub workers: usize,
    pub kills: usize,
    pub restarts: usize,
    /// `--retry-after` of the workers (seconds).
    pub retry_after: u64,
    /// Give up (and fail) when the queue is not drained after this long.
    pub limit: Duration,
    /// Seed variable name for the PRNG.
    pub seed_var: &'static str,
}

/// What a chaos run observed.
#[derive(Debug, Default)]
pub struct ChaosSummary {
    pub jobs: i64,
    pub kills: usize,
    pub restarts: usize,
    pub sent: i64,
    pub skipped: i64,
    pub failed_by_reason: BTreeMap<String, i64>,
    /// Ledger rows not final, jobs left, or `sent` rows nobody received.
    pub lost: i64,
    /// Deliveries beyond one per sent row (messages received twice).
    pub duplicates: i64,
    pub deliveries: i64,
    pub elapsed: Duration,
    pub log_lines_db_unavailable: usize,
    pub panics: usize,
    pub kills_mid_drain: usize,
    pub restarts_mid_drain: usize,
    pub nonzero_exits: Vec<String>,
}

impl ChaosSummary {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let row =
            |s: &mut String, k: &str, v: String| s.push_str(&format!("| {k:<28} | {v:>12} |\n"));
        s.push_str(&format!(
            "| {:<28} | {:>12} |\n|{}|{}|\n",
            "metric",
            "value",
            "-".repeat(30),
            "-".repeat(14)
        ));
        row(&mut s, "jobs", self.jobs.to_string());
        row(
            &mut s,
            "kills (SIGKILL)",
            format!("{} ({} mid-drain)", self.kills, self.kills_mid_drain),
        );
        row(
            &mut s,
            "database restarts",
            format!("{} ({} mid-drain)", self.restarts, self.restarts_mid_drain),
        );
        row(&mut s, "sent", self.sent.to_string());
        row(&mut s, "skipped", self.skipped.to_string());
        row(
            &mut s,
            "failed",
            self.failed_by_reason.values().sum::<i64>().to_string(),
        );
        for (reason, n) in &self.failed_by_reason {
            let short: String = reason.chars().take(26).collect();
            row(&mut s, &format!("  failed: {short}"), n.to_string());
        }
        row(&mut s, "lost", self.lost.to_string());
        row(&mut s, "duplicates", self.duplicates.to_string());
        row(&mut s, "deliveries observed", self.deliveries.to_string());
        row(
            &mut s,
            "'database unavailable' logs",
            self.log_lines_db_unavailable.to_string(),
        );
        row(&mut s, "worker panics", self.panics.to_string());
        row(
            &mut s,
            "elapsed",
            format!("{:.1}s", self.elapsed.as_secs_f64()),
        );
        s
    }
}

/// Seeds `plan.invoices` invoices (two channels each) into `url`, starts
/// `plan.workers` real workers, SIGKILLs a random one `plan.kills` times and restarts
/// the database `plan.restarts` times (needs `cluster`) at random moments while the
/// queue drains, restarts killed workers at once, and accounts for every message.
pub fn chaos(url: &str, cluster: Option<&PrivateCluster>, plan: &ChaosPlan) -> ChaosSummary {
    assert!(
        plan.restarts == 0 || cluster.is_some(),
        "restarts need a private cluster"
    );
    let mut rng = Rng::from_env_or_time(plan.seed_var);
    let mut conn = PgConnection::establish(url).expect("connect");
    seed(&mut conn, plan.invoices);
    let jobs = schedule(&mut conn);
    assert_eq!(jobs, 2 * plan.invoices as i64, "two jobs per invoice");
    drop(conn);

    let fonnte = FonnteFake::start();
    fonnte.set_quota(i64::MAX / 2);
    let outbox = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let env = WorkerEnv::new(url, &fonnte, outbox.path());
    let retry_after = plan.retry_after.to_string();
    let args: Vec<&str> = vec![
        "--retry-after",
        &retry_after,
        "--backoff",
        "0",
        "--sleep",
        "0.1",
    ];
    let mut spawned = 0usize;
    let mut spawn = |env: &WorkerEnv| {
        spawned += 1;
        env.spawn(&args, &logs.path().join(format!("worker-{spawned}.log")))
    };
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..plan.workers).map(|_| spawn(&env)).collect();

    // Events spread over the expected drain, at random moments.
    let mut events: Vec<bool> = std::iter::repeat_n(true, plan.kills)
        .chain(std::iter::repeat_n(false, plan.restarts))
        .collect();
    for i in (1..events.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        events.swap(i, j);
    }
    let mut summary = ChaosSummary {
        jobs,
        ..ChaosSummary::default()
    };
    let mut monitor = PgConnection::establish(url).ok();
    let left = |monitor: &mut Option<PgConnection>| -> Option<i64> {
        if monitor.is_none() {
            *monitor = PgConnection::establish(url).ok();
        }
        let m = monitor.as_mut()?;
        match diesel::sql_query("SELECT count(*) AS n FROM jobs").get_result::<N>(m) {
            Ok(n) => Some(n.n),
            Err(_) => {
                *monitor = None;
                None
            }
        }
    };
    let mut sent_since = 0i64;
    for kill in events {
        // Wait until a random share of the remaining work is done.
        let before = left(&mut monitor).unwrap_or(jobs);
        let target = before - (before as f64 * rng.range(5, 25) as f64 / 100.0) as i64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match left(&mut monitor) {
                Some(n) if n <= target => break,
                _ => std::thread::sleep(Duration::from_millis(rng.range(5, 60))),
            }
        }
        let mid = left(&mut monitor).unwrap_or(1) > 0;
        if kill {
            let i = rng.range(0, workers.len() as u64) as usize;
            workers[i].kill().expect("SIGKILL");
            let status = workers[i].wait().unwrap();
            assert!(
                status.code().is_none(),
                "worker was killed by a signal: {status:?}"
            );
            summary.kills += 1;
            summary.kills_mid_drain += usize::from(mid);
            workers[i] = spawn(&env);
        } else {
            cluster.expect("cluster").restart();
            monitor = None;
            summary.restarts += 1;
            summary.restarts_mid_drain += usize::from(mid);
        }
        sent_since += 1;
    }
    let _ = sent_since;
    // Drain.
    let end = Instant::now() + plan.limit;
    loop {
        if left(&mut monitor) == Some(0) {
            break;
        }
        if Instant::now() > end {
            break;
        }
        // A worker that exited on its own is a bug: restart it but remember.
        for w in workers.iter_mut() {
            if let Some(s) = w.try_wait().unwrap() {
                summary
                    .nonzero_exits
                    .push(format!("worker exited by itself: {s:?}"));
                *w = spawn(&env);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    summary.elapsed = started.elapsed();
    for w in &workers {
        sigterm(w);
    }
    for w in workers.iter_mut() {
        let s = wait_exit(w, Duration::from_secs(30));
        if !s.success() {
            summary.nonzero_exits.push(format!("SIGTERM exit: {s:?}"));
        }
    }

    let mut conn = PgConnection::establish(url).expect("connect after chaos");
    let rows = ledger(&mut conn);
    let seen = deliveries(&fonnte, outbox.path());
    let jobs_left = count(&mut conn, "SELECT count(*) AS n FROM jobs");
    summary.lost += jobs_left;
    let mut per_key: HashMap<(String, &'static str), usize> = HashMap::new();
    for r in &rows {
        let ch: &'static str = if r.channel == "email" {
            "email"
        } else {
            "whatsapp"
        };
        *per_key.entry((r.number.clone(), ch)).or_default() += 1;
        let got = seen.get(&(r.number.clone(), ch)).copied().unwrap_or(0) as i64;
        match r.status.as_str() {
            "sent" => {
                summary.sent += 1;
                if got == 0 {
                    summary.lost += 1; // recorded as sent, never received
                }
                summary.duplicates += (got - 1).max(0);
            }
            "failed" => {
                let reason = r.error.clone().unwrap_or_default();
                let reason = reason
                    .split([':', '('])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                *summary.failed_by_reason.entry(reason).or_default() += 1;
                summary.duplicates += got;
            }
            "skipped" => {
                summary.skipped += 1;
                summary.duplicates += got;
            }
            _ => summary.lost += 1,
        }
    }
    summary.lost += jobs - rows.len() as i64;
    assert!(
        per_key.values().all(|n| *n == 1),
        "more than one ledger row for an invoice and channel"
    );
    summary.deliveries = seen.values().sum::<u64>() as i64;
    for entry in std::fs::read_dir(logs.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        summary.log_lines_db_unavailable += text.matches("database unavailable").count();
        summary.panics += text.matches("panicked").count();
    }
    if std::env::var_os("CHAOS_KEEP_LOGS").is_some() {
        let keep = logs.keep();
        eprintln!("worker logs kept in {}", keep.display());
    }
    summary
}
