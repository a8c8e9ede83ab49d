//! `dunning-web`: the HTTP side of Dunning.
//!
//! Handlers stay thin: authentication rules and callback parsing are pure functions
//! in `dunning-pay`, SQL is in `dunning-store`, run on the blocking pool
//! (`spawn_blocking`) because diesel is synchronous.
//!
//! Routes (see [`app`]):
//! - `GET /healthz`: 200 when the database answers, 503 otherwise;
//! - `POST /webhooks/{xendit,midtrans,tripay}`: payment callbacks ([`webhooks`]);
//! - `POST /webhooks/fonnte/{status,connect,incoming}`: Fonnte's webhooks
//!   ([`webhooks::fonnte`]).
//!
//! Every webhook route sits under [`webhooks::router`], which refuses bodies over
//! [`WEBHOOK_BODY_LIMIT`] (413) before they are read in full, and each handler
//! authenticates the raw bytes before it parses them. Fonnte's webhooks and the
//! dashboard join the same [`AppState`] and router.

pub mod health;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use dunning_pay::PaymentSettings;
use dunning_store::PgPool;

/// The largest webhook body accepted; larger ones get 413.
pub const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Diesel connections; use them inside `tokio::task::spawn_blocking`.
    pub pool: PgPool,
    /// Gateway secrets for verifying callbacks.
    pub payments: Arc<PaymentSettings>,
    /// The Fonnte webhooks' secret, reply settings and queue.
    pub fonnte: Arc<webhooks::fonnte::FonnteHooks>,
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .nest("/webhooks", webhooks::router())
        .with_state(state)
}

/// Runs `f` with a pooled connection on the blocking thread pool.
pub async fn with_conn<T, F>(pool: &PgPool, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&mut dunning_store::PooledConn) -> Result<T, dunning_store::StoreError>
        + Send
        + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| format!("database pool: {e}"))?;
        f(&mut conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("database task failed: {e}"))?
}
