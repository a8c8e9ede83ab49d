//! `dunning-web`: read settings, connect, serve until SIGTERM or Ctrl+C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use dunning_core::Settings;
use dunning_core::reply::ReplySettings;
use dunning_pay::PaymentSettings;
use dunning_web::webhooks::fonnte::FonnteHooks;
use dunning_web::{AppState, app};
use log::info;

/// The Dunning web server: payment gateway callbacks, Fonnte webhooks and /healthz.
///
/// Put it behind nginx or Caddy for TLS (docs/reference.md, "dunning-web").
#[derive(Debug, Parser)]
#[command(name = "dunning-web", version)]
struct Cli {
    /// Address and port to listen on. Keep it on 127.0.0.1 behind a TLS proxy.
    #[arg(long, env = "DUNNING_WEB_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// The queue that answers to WhatsApp replies and email fallbacks go to (the
    /// workers' queue).
    #[arg(
        long,
        env = "DUNNING_QUEUE",
        default_value = "default",
        value_name = "NAME"
    )]
    queue: String,
}

fn main() -> ExitCode {
    // `.env` first, so that DUNNING_WEB_LISTEN can be set there too.
    let dotenv = match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(format!(
            ".env could not be read: {e}; fix the line it names (values with spaces need quotes)"
        )),
    };
    let cli = Cli::parse();
    if let Err(msg) = dotenv {
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), (u8, String)> {
    let usage = |e: &dyn std::fmt::Display| (2, e.to_string());
    let settings = Settings::from_env().map_err(|e| usage(&e))?;
    let payments = PaymentSettings::from_env().map_err(|e| usage(&e))?;
    let fonnte = FonnteHooks {
        settings: ReplySettings::from_env().map_err(|e| usage(&e))?,
        zone: settings.zone.clone(),
        company_name: settings.company_name.clone(),
        queue: cli.queue.clone(),
    };
    let url = settings.require_database_url().map_err(|e| usage(&e))?;
    let pool = dunning_store::db::pool(url.expose(), 8).map_err(|e| (1, e.to_string()))?;
    {
        let mut conn = pool.get().map_err(|e| (1, e.to_string()))?;
        dunning_store::db::ensure_migrated(&mut conn).map_err(|e| (1, e.to_string()))?;
    }
    let state = AppState {
        pool,
        payments: Arc::new(payments),
        fonnte: Arc::new(fonnte),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(|e| (1, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cli.listen).await.map_err(|e| {
            (
                1,
                format!(
                    "cannot listen on {}: {e}; choose another address with DUNNING_WEB_LISTEN",
                    cli.listen
                ),
            )
        })?;
        let local = listener.local_addr().map_err(|e| (1, e.to_string()))?;
        info!("dunning-web listening on http://{local} (GET /healthz, POST /webhooks/xendit|midtrans|tripay|fonnte/…)");
        axum::serve(listener, app(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| (1, format!("server error: {e}")))?;
        info!("dunning-web stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM (supervisor, systemd) or Ctrl+C; requests in flight finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::warn!("cannot watch SIGTERM ({e}); stop with Ctrl+C");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("dunning-web: stop requested, finishing requests in flight");
}
