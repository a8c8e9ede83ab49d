//! Command-line interface of `dunning-worker`.

use std::time::Duration;

use clap::Parser;
use dunning_core::Settings;

use crate::Config;

/// Dunning queue worker: takes reminder jobs from the database, re-checks that the
/// invoice is still unpaid, sends by Email or WhatsApp, records the outcome and
/// retries transient failures. Run several under supervisor or systemd; they
/// coordinate through the database. SIGTERM/SIGINT: finish the job in hand, exit 0.
#[derive(Debug, Parser, Clone)]
#[command(name = "dunning-worker", version)]
pub struct Cli {
    /// Seconds to wait between polls when no job is ready.
    #[arg(
        long,
        env = "DUNNING_WORKER_SLEEP",
        default_value_t = 3.0,
        value_name = "SECONDS"
    )]
    pub sleep: f64,

    /// Attempts per job in all (1 = no retries).
    #[arg(long, env = "DUNNING_WORKER_TRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub tries: u32,

    /// Seconds to wait before the 2nd, 3rd, … attempt (the last value repeats).
    #[arg(
        long,
        env = "DUNNING_WORKER_BACKOFF",
        default_value = "60,300",
        value_name = "S,S,…"
    )]
    pub backoff: String,

    /// Seconds after which a reservation is taken as abandoned (worker died) and the
    /// job is claimed again. Keep it longer than the slowest send (timeouts are 30 s).
    #[arg(
        long,
        env = "DUNNING_WORKER_RETRY_AFTER",
        default_value_t = 120,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=MAX_WAIT_SECS)
    )]
    pub retry_after: u64,

    /// Jobs in flight at once in this process (one per thread).
    #[arg(long, env = "DUNNING_WORKER_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,

    /// The queue to take jobs from.
    #[arg(
        long,
        env = "DUNNING_QUEUE",
        default_value = "default",
        value_name = "NAME"
    )]
    pub queue: String,

    /// Process the jobs that are ready now, then exit 0.
    #[arg(long)]
    pub once: bool,

    /// Exit 0 after this many jobs.
    #[arg(long, env = "DUNNING_WORKER_MAX_JOBS", value_name = "N")]
    pub max_jobs: Option<u64>,

    /// Exit 0 after this many seconds (finishing the jobs in hand).
    #[arg(long, env = "DUNNING_WORKER_MAX_TIME", value_name = "SECONDS")]
    pub max_time: Option<u64>,
}

/// The longest wait any flag accepts (30 days): beyond it a date computed from now
/// could overflow, and no operator means it.
pub const MAX_WAIT_SECS: u64 = 30 * 24 * 3600;

impl Cli {
    /// The worker's configuration from these flags and `settings`, validated.
    pub fn config(&self, settings: &Settings) -> Result<Config, String> {
        let backoff = self.backoff_secs()?;
        let sleep = self.sleep_duration()?;
        Ok(Config {
            queue: self.queue.clone(),
            tries: self.tries,
            backoff: backoff.into_iter().map(Duration::from_secs).collect(),
            retry_after: Duration::from_secs(self.retry_after),
            sleep,
            concurrency: self.concurrency,
            once: self.once,
            max_jobs: self.max_jobs,
            max_time: self.max_time.map(Duration::from_secs),
            whatsapp_interval: settings.whatsapp_min_interval,
            monthly_quota: settings.fonnte_monthly_quota,
            zone: settings.zone.clone(),
            window: settings.send_window,
            channel_pause: Duration::from_secs(300),
        })
    }

    /// The backoff list, validated.
    pub fn backoff_secs(&self) -> Result<Vec<u64>, String> {
        let parsed: Result<Vec<u64>, _> = self
            .backoff
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::parse::<u64>)
            .collect();
        match parsed {
            Ok(v) if !v.is_empty() && v.iter().all(|s| *s <= MAX_WAIT_SECS) => Ok(v),
            _ => Err(format!(
                "--backoff {:?} is invalid: write seconds separated by commas, e.g. 60,300 (at most {MAX_WAIT_SECS} each)",
                self.backoff
            )),
        }
    }

    /// `--sleep` as a duration, validated (finite, 0 to 3600 seconds).
    pub fn sleep_duration(&self) -> Result<std::time::Duration, String> {
        std::time::Duration::try_from_secs_f64(self.sleep)
            .ok()
            .filter(|d| d.as_secs() <= 3600)
            .ok_or_else(|| {
                format!(
                    "--sleep {} is invalid: a number of seconds from 0 to 3600, e.g. 3",
                    self.sleep
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn laravel_style_flags_parse() {
        let cli = Cli::try_parse_from(["dunning-worker", "--sleep=3", "--tries=3"]).unwrap();
        assert_eq!(cli.tries, 3);
        assert_eq!(cli.backoff_secs().unwrap(), [60, 300]);
        let bad = Cli::try_parse_from(["dunning-worker", "--backoff", "soon"]).unwrap();
        assert!(bad.backoff_secs().is_err());
    }
}
