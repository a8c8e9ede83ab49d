//! Fonnte's three webhooks: message status, device connect/disconnect and incoming
//! messages. The rules and the SQL are in [`dunning_store::inbound`]; a handler here
//! only
//! 1. takes the body, at most [`MAX_BODY`] bytes (more: 413, unread beyond the limit);
//! 2. checks `FONNTE_WEBHOOK_SECRET` (`?secret=` in the URL, else the payload's
//!    `secret` field) before anything else, without a database connection: a
//!    forged call gets 401 and touches nothing;
//! 3. runs the `inbound` function on the blocking pool and answers its status and
//!    short JSON body (200 for every call that was taken, replays included, so that
//!    Fonnte stops retrying; 500 when the database failed, so that it retries).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use log::{error, warn};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use dunning_core::Zone;
use dunning_core::reply::ReplySettings;
use dunning_core::webhook::{self, WebhookError};
use dunning_store::StoreError;
use dunning_store::inbound::{self, Inbound, InboundError, InboundReply, MAX_BODY};

use crate::AppState;

// The router's body limit is the one `inbound` checks.
const _: () = assert!(crate::WEBHOOK_BODY_LIMIT == MAX_BODY);

/// What the Fonnte webhooks need besides the database.
#[derive(Debug, Clone)]
pub struct FonnteHooks {
    /// `FONNTE_WEBHOOK_SECRET`, reply keywords, `WHATSAPP_FALLBACK`, pause lengths.
    pub settings: ReplySettings,
    pub zone: Zone,
    pub company_name: String,
    /// The queue answers and fallback emails go to (`DUNNING_QUEUE`, the workers').
    pub queue: String,
}

impl FonnteHooks {
    fn ctx(&self) -> Inbound<'_> {
        Inbound {
            settings: &self.settings,
            zone: &self.zone,
            company_name: &self.company_name,
            queue: &self.queue,
        }
    }
}

/// The URL's query: only `secret` is read.
#[derive(Debug, Deserialize)]
pub struct SecretQuery {
    secret: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Hook {
    Status,
    Connect,
    Incoming,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Status => "status",
            Hook::Connect => "connect",
            Hook::Incoming => "incoming",
        }
    }
}

/// `POST /webhooks/fonnte/status`: a message's state (sent, delivered, read,
/// invalid, expired, …).
pub async fn status(
    State(state): State<AppState>,
    query: Result<Query<SecretQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Hook::Status, query, body).await
}

/// `POST /webhooks/fonnte/connect`: the device connected or disconnected.
pub async fn connect(
    State(state): State<AppState>,
    query: Result<Query<SecretQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Hook::Connect, query, body).await
}

/// `POST /webhooks/fonnte/incoming`: a message someone sent to the device.
pub async fn incoming(
    State(state): State<AppState>,
    query: Result<Query<SecretQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(state, Hook::Incoming, query, body).await
}

fn answer(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn refused(hook: Hook, e: InboundError) -> Response {
    match &e {
        InboundError::Store(inner) => error!("Fonnte {} webhook: {inner}", hook.name()),
        // The error names the problem, never the secret or the body.
        InboundError::Refused(inner) => {
            warn!(
                "Fonnte {} webhook refused ({}): {inner}; nothing stored",
                hook.name(),
                inner.http_status()
            )
        }
    }
    answer(e.http_status(), e.body())
}

async fn handle(
    state: AppState,
    hook: Hook,
    query: Result<Query<SecretQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let e = if status == StatusCode::PAYLOAD_TOO_LARGE {
                WebhookError::TooLarge(MAX_BODY + 1)
            } else {
                WebhookError::Malformed(format!("the body could not be read: {rejection}"))
            };
            return refused(hook, e.into());
        }
    };
    // A query that cannot be read carries no usable secret.
    let secret = match query {
        Ok(Query(q)) => q.secret,
        Err(_) => return refused(hook, WebhookError::Unauthorized.into()),
    };
    let hooks = Arc::clone(&state.fonnte);
    // Refuse a forged (or unreadable) call before it takes a database connection;
    // `inbound` checks again, on its own.
    if let Err(e) = webhook::authenticate(
        hooks.settings.webhook_secret.expose(),
        secret.as_deref(),
        &body,
    ) {
        return refused(hook, e.into());
    }
    let pool = state.pool.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<InboundReply, InboundError> {
        let mut conn = pool.get().map_err(StoreError::from)?;
        let ctx = hooks.ctx();
        let q = secret.as_deref();
        match hook {
            Hook::Status => inbound::fonnte_status(&mut conn, &ctx, q, &body),
            Hook::Connect => inbound::fonnte_connect(&mut conn, &ctx, q, &body),
            Hook::Incoming => {
                inbound::fonnte_incoming(&mut conn, &ctx, q, &body, OffsetDateTime::now_utc())
            }
        }
    })
    .await;
    match done {
        Ok(Ok(reply)) => answer(reply.status, reply.body),
        Ok(Err(e)) => refused(hook, e),
        Err(join) => {
            error!("Fonnte {} webhook: the task failed: {join}", hook.name());
            answer(
                500,
                json!({"ok": false, "error": "internal error; Fonnte will retry this call"})
                    .to_string(),
            )
        }
    }
}
