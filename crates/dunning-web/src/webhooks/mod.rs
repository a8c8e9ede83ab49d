//! `POST /webhooks/…`: requests from outside services. Each is authenticated before
//! its body is parsed, bounded to [`WEBHOOK_BODY_LIMIT`](crate::WEBHOOK_BODY_LIMIT),
//! idempotent on replay, and answered fast.

pub mod fonnte;
pub mod payments;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

use crate::{AppState, WEBHOOK_BODY_LIMIT};

/// The webhook routes. The body limit applies to every route added here: a body
/// whose `Content-Length` is over it is refused (413) unread, a chunked one as soon
/// as it passes it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xendit", post(payments::xendit))
        .route("/midtrans", post(payments::midtrans))
        .route("/tripay", post(payments::tripay))
        .route("/fonnte/status", post(fonnte::status))
        .route("/fonnte/connect", post(fonnte::connect))
        .route("/fonnte/incoming", post(fonnte::incoming))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
}
