//! `GET /healthz`: for load balancers and monitoring.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::{AppState, with_conn};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// 200 `{"status":"ok","database":"ok"}` when the database answers a query, else 503
/// with the reason (no credentials in it).
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match with_conn(&state.pool, |c| dunning_store::payments::ping(c)).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok"})),
        ),
        Err(e) => {
            log::warn!("healthz: database check failed: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "error", "database": e})),
            )
        }
    }
}
