//! `dunning-worker`: parse flags and settings, connect, run until stopped.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use dunning_core::Settings;
use dunning_core::hooks::{HookSettings, Hooks};
use dunning_core::message::Templates;
use dunning_core::startup::{self, Exit};
use dunning_store::PgPool;
use dunning_worker::cli::Cli;
use dunning_worker::{Senders, Worker};
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
    let cli = match startup::begin(Cli::parse, "info") {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    match run(cli) {
        Ok(()) => Exit::Success.into(),
        Err(Failure::Usage(msg)) => {
            startup::print_error(&msg);
            Exit::Usage.into()
        }
        Err(Failure::Runtime(msg)) => {
            startup::print_error(&msg);
            Exit::Failure.into()
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn usage(e: impl ToString) -> Failure {
    Failure::Usage(e.to_string())
}

fn runtime(e: impl ToString) -> Failure {
    Failure::Runtime(e.to_string())
}

/// Reads the settings, connects, and runs the worker until it is asked to stop.
fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::from_env().map_err(usage)?;
    let cfg = cli.config(&settings).map_err(Failure::Usage)?;
    let url = settings.require_database_url().map_err(usage)?;
    let templates = Templates::load(
        &settings.company_name,
        settings.templates_dir.as_deref(),
        &settings.stages,
    )
    .map_err(usage)?;
    let source = dunning_source::SourceConfig::from_env().map_err(usage)?;
    let payments = dunning_pay::PaymentSettings::from_env().map_err(usage)?;
    let (hook_settings, hooks) = load_hooks(cfg.retry_after)?;
    let email = dunning_channels::email_sender(&settings).map_err(usage)?;
    let whatsapp = dunning_channels::whatsapp_sender(&settings).map_err(usage)?;
    let pool = connect(url.expose(), cli.concurrency)?;
    let stop = Arc::new(AtomicBool::new(false));
    stop::on_request(&stop)
        .map_err(|e| Failure::Runtime(format!("cannot install signal handler: {e}")))?;
    let mut worker = Worker::new(
        pool,
        Senders {
            email: Arc::from(email),
            whatsapp: Arc::from(whatsapp),
        },
        templates,
        cfg,
        stop,
    )
    .with_payment_links(dunning_pay::Links::new(&payments))
    .with_receipts(payments.receipts);
    if let Some(hooks) = &hooks {
        log_hooks(hooks, &hook_settings);
    }
    // Without hooks the events the database records (payments, opt-outs) are dropped.
    worker = worker.with_hooks(hooks.unwrap_or_default(), &hook_settings);
    if let Some(source) = source {
        info!(
            "billing re-check before each send: {} (BILLING_MAX_STALENESS {}s)",
            source.target,
            source.max_staleness.as_secs()
        );
        worker = worker.with_billing_source(source);
    }
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
    log_stopped(&worker);
    Ok(())
}

/// The pool, with one connection per thread plus the heartbeat's and a spare for
/// recording an outcome after the thread's connection broke; the schema migrated.
fn connect(url: &str, concurrency: u32) -> Result<PgPool, Failure> {
    let pool = dunning_store::db::pool(url, concurrency + 2).map_err(runtime)?;
    let mut conn = pool.get().map_err(runtime)?;
    dunning_store::db::ensure_migrated(&mut conn).map_err(runtime)?;
    drop(conn);
    Ok(pool)
}

/// The hook settings and the hooks file, if any. A hook timeout must be shorter than
/// `retry_after`: a run outliving the reservation would be taken over and run twice.
fn load_hooks(retry_after: Duration) -> Result<(HookSettings, Option<Hooks>), Failure> {
    let hook_settings = HookSettings::from_env().map_err(usage)?;
    let hooks = dunning_channels::hooks::load(&hook_settings).map_err(usage)?;
    if hooks.is_some() && hook_settings.timeout >= retry_after {
        return Err(Failure::Usage(format!(
            "DUNNING_HOOK_TIMEOUT={}s is not shorter than --retry-after={}s: a hook still running would be taken over by another worker and run twice. Fix: lower DUNNING_HOOK_TIMEOUT or raise --retry-after",
            hook_settings.timeout.as_secs(),
            retry_after.as_secs()
        )));
    }
    Ok((hook_settings, hooks))
}

fn log_hooks(hooks: &Hooks, hook_settings: &HookSettings) {
    info!(
        "escalation hooks from {}: {} stage(s){}{} (DUNNING_HOOK_TIMEOUT {}s)",
        hook_settings.file.display(),
        hooks.stages.len(),
        if hooks.paid.is_some() { ", paid" } else { "" },
        if hooks.optout.is_some() {
            ", optout"
        } else {
            ""
        },
        hook_settings.timeout.as_secs()
    );
}

fn log_stopped(worker: &Worker) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &worker.stats;
    info!(
        "dunning-worker stopped: {} sent, {} failed, {} skipped, {} retried later, {} held or paused",
        s.sent.load(Relaxed),
        s.failed.load(Relaxed),
        s.skipped.load(Relaxed),
        s.retried.load(Relaxed),
        s.released.load(Relaxed)
    );
}
