//! `dunning-worker`: parse flags and settings, connect, run until stopped.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use dunning_core::Settings;
use dunning_core::message::Templates;
use dunning_worker::cli::Cli;
use dunning_worker::{Config, Senders, Worker};
use log::info;

#[cfg(windows)]
mod service;
mod stop;

fn main() -> ExitCode {
    // `dunning-worker service …`: the Windows service (src/service.rs).
    #[cfg(windows)]
    if let Some(code) = service::dispatch() {
        return code;
    }
    // `.env` first, so that flags with an `env =` name can be set there too.
    // (the working directory's, else the one beside the program: see dunning_core::envfile)
    let dotenv = dunning_core::envfile::load();
    let cli = Cli::parse();
    if let Err(msg) = dotenv {
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::from_env().map_err(|e| Failure::Usage(e.to_string()))?;
    let backoff = cli.backoff_secs().map_err(Failure::Usage)?;
    if !cli.sleep.is_finite() || cli.sleep < 0.0 {
        return Err(Failure::Usage(format!(
            "--sleep {} is invalid: a number of seconds, e.g. 3",
            cli.sleep
        )));
    }
    let url = settings
        .require_database_url()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let templates = Templates::load(
        &settings.company_name,
        settings.templates_dir.as_deref(),
        &settings.stages,
    )
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let email =
        dunning_channels::email_sender(&settings).map_err(|e| Failure::Usage(e.to_string()))?;
    let whatsapp =
        dunning_channels::whatsapp_sender(&settings).map_err(|e| Failure::Usage(e.to_string()))?;
    // Per thread: one connection for claims and outcomes, one holding a batch's
    // invoice locks; plus the heartbeat and a spare for recovery.
    let pool = dunning_store::db::pool(url.expose(), cli.concurrency * 2 + 2)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    {
        let mut conn = pool.get().map_err(|e| Failure::Runtime(e.to_string()))?;
        dunning_store::db::ensure_migrated(&mut conn)
            .map_err(|e| Failure::Runtime(e.to_string()))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    stop::on_request(&stop)
        .map_err(|e| Failure::Runtime(format!("cannot install signal handler: {e}")))?;
    let cfg = Config {
        queue: cli.queue.clone(),
        tries: cli.tries,
        backoff: backoff.into_iter().map(Duration::from_secs).collect(),
        retry_after: Duration::from_secs(cli.retry_after),
        sleep: Duration::from_secs_f64(cli.sleep),
        concurrency: cli.concurrency,
        batch: cli.batch,
        once: cli.once,
        max_jobs: cli.max_jobs,
        max_time: cli.max_time.map(Duration::from_secs),
        whatsapp_interval: settings.whatsapp_min_interval,
        monthly_quota: settings.fonnte_monthly_quota,
        zone: settings.zone.clone(),
        window: settings.send_window,
        channel_pause: Duration::from_secs(300),
    };
    let worker = Worker::new(
        pool,
        Senders {
            email: Arc::from(email),
            whatsapp: Arc::from(whatsapp),
        },
        templates,
        cfg,
        stop,
    );
    info!(
        "dunning-worker {} started: queue={} concurrency={} tries={} send window {} ({})",
        worker.id(),
        cli.queue,
        cli.concurrency,
        cli.tries,
        settings.send_window,
        settings.zone
    );
    worker.run();
    let s = &worker.stats;
    use std::sync::atomic::Ordering::Relaxed;
    info!(
        "dunning-worker stopped: {} sent, {} failed, {} skipped, {} retried later, {} paused",
        s.sent.load(Relaxed),
        s.failed.load(Relaxed),
        s.skipped.load(Relaxed),
        s.retried.load(Relaxed),
        s.released.load(Relaxed)
    );
    Ok(())
}
