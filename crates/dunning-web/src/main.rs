//! `dunning-web`: read settings, connect, serve until SIGTERM or Ctrl+C.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use dunning_core::Settings;
use dunning_core::reply::ReplySettings;
use dunning_core::startup::{self, Exit};
use dunning_dashboard::{DashboardState, Options};
use dunning_pay::PaymentSettings;
use dunning_web::webhooks::fonnte::FonnteHooks;
use dunning_web::{AppState, app};
use log::info;

/// The Dunning web server: the operator dashboard, payment gateway callbacks, Fonnte
/// webhooks and /healthz.
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
    let cli = match startup::begin(Cli::parse, "info") {
        Ok(cli) => cli,
        Err(code) => return code.into(),
    };
    match run(cli) {
        Ok(()) => Exit::Success.into(),
        Err((code, msg)) => {
            startup::print_error(&msg);
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
    let options = Options::from_env().map_err(|e| usage(&e))?;
    let url = settings.require_database_url().map_err(|e| usage(&e))?;
    let pool = dunning_store::db::pool(url.expose(), 8).map_err(|e| (1, e.to_string()))?;
    {
        let mut conn = pool.get().map_err(|e| (1, e.to_string()))?;
        dunning_store::db::ensure_migrated(&mut conn).map_err(|e| (1, e.to_string()))?;
    }
    let dashboard = DashboardState::new(pool.clone(), settings, options);
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
        info!("dunning-web listening on http://{local} (dashboard: http://{local}/masuk; GET /healthz, POST /webhooks/xendit|midtrans|tripay|fonnte/…)");
        // The dashboard's login rate limit needs the peer address: connect info.
        let app = app(state).merge(dunning_dashboard::router(dashboard));
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
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
