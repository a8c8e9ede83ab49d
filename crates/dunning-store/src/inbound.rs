//! Fonnte's three webhooks, without HTTP: each function takes the URL's `secret`
//! parameter and the raw body, and returns the answer to send. An HTTP handler is a
//! few lines: read at most [`MAX_BODY`]` + 1` bytes, call the function on a
//! blocking thread with a pooled connection, answer `status` with `body` (JSON).
//!
//! Every call is authenticated before its body is parsed (see
//! [`dunning_core::webhook`]), bounded in size, idempotent on replay (Fonnte
//! retries a call 15 times, once a minute, until it gets a 200) and done in one
//! transaction: a call either leaves all its rows or none.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Date as SqlDate, Nullable, Text, Timestamptz};
use log::{info, warn};
use serde_json::json;
use time::{Date, OffsetDateTime};

use dunning_core::Zone;
use dunning_core::mask::mask_phone;
use dunning_core::reply::{Intent, ReplyKind, ReplySettings, reply_text};
pub use dunning_core::webhook::MAX_BODY;
use dunning_core::webhook::{self, WebhookError};

use crate::StoreError;
use crate::holds::{self, Target};
use crate::rows::{self, Id};

/// The pause reason of a device disconnect (also shown by `doctor` and `stats`).
pub const DISCONNECTED: &str = "device disconnected: scan the QR code in the Fonnte dashboard";

/// How long a disconnect pauses WhatsApp when no `connect` follows (Fonnte itself
/// drops messages after 7 days disconnected).
const DISCONNECT_PAUSE_DAYS: i64 = 30;

/// What an inbound call needs besides the connection.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub settings: &'a ReplySettings,
    pub zone: &'a Zone,
    pub company_name: &'a str,
    /// The queue answers and fallback emails go to (the workers' `--queue`).
    pub queue: &'a str,
}

impl Inbound<'_> {
    /// A Fonnte call's payload: `body` authenticated with the webhook secret (in the
    /// query or the body), then read by `parse`.
    fn read<T>(
        &self,
        query_secret: Option<&str>,
        body: &[u8],
        parse: fn(&serde_json::Map<String, serde_json::Value>) -> Result<T, WebhookError>,
    ) -> Result<T, WebhookError> {
        let obj = webhook::authenticate(self.settings.webhook_secret.expose(), query_secret, body)?;
        parse(&obj)
    }
}

/// A 200 answer: `body` is a small JSON object saying what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReply {
    pub status: u16,
    pub body: String,
}

impl InboundReply {
    fn ok(detail: impl Into<String>) -> Self {
        InboundReply {
            status: 200,
            body: json!({"ok": true, "detail": detail.into()}).to_string(),
        }
    }
}

/// A refused call. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// 401, 400 or 413: see [`WebhookError`].
    #[error(transparent)]
    Refused(#[from] WebhookError),
    /// 500: the database failed; Fonnte retries the call.
    #[error("database error: {0}")]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for InboundError {
    fn from(e: diesel::result::Error) -> Self {
        InboundError::Store(e.into())
    }
}

impl InboundError {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            InboundError::Refused(e) => e.http_status(),
            InboundError::Store(_) => 500,
        }
    }

    /// The JSON body to answer with (a database error's details stay in the log).
    pub fn body(&self) -> String {
        let msg = match self {
            InboundError::Refused(e) => e.to_string(),
            InboundError::Store(_) => {
                "database error; Fonnte will retry this call (details are in the dunning-web log)"
                    .to_owned()
            }
        };
        json!({"ok": false, "error": msg}).to_string()
    }
}

/// `POST /webhooks/fonnte/status`: records each state of a sent message once; an
/// `invalid` or `expired` state fails the delivery (it then shows in `failed`) and,
/// with `WHATSAPP_FALLBACK=email`, queues the same reminder by email once.
pub fn fonnte_status(
    conn: &mut PgConnection,
    ctx: &Inbound<'_>,
    query_secret: Option<&str>,
    body: &[u8],
) -> Result<InboundReply, InboundError> {
    let update = ctx.read(query_secret, body, webhook::status_update)?;
    conn.transaction(|conn| {
        // The message this call is about: its `id`, or the id an earlier call linked
        // to its `stateid`.
        let message_id = match (&update.id, &update.state_id) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(sid)) => message_id_for_state(conn, sid)?,
            (None, None) => None,
        };
        let key = message_id
            .clone()
            .unwrap_or_else(|| format!("stateid:{}", update.state_id.as_deref().unwrap_or("")));
        let notification = match &message_id {
            Some(id) => notification_for_message(conn, id)?,
            None => None,
        };
        let mut new_states = Vec::new();
        for state in &update.states {
            let n = diesel::sql_query(
                "INSERT INTO delivery_states (provider_message_id, notification_id, state, state_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(&key)
            .bind::<Nullable<BigInt>, _>(notification)
            .bind::<Text, _>(state)
            .bind::<Nullable<Text>, _>(update.state_id.as_deref())
            .execute(conn)?;
            if n > 0 {
                new_states.push(state.clone());
            }
        }
        let Some(notification) = notification else {
            warn!(
                "Fonnte status {:?} for unknown message id {key}: stored, matched to no ledger row",
                update.states
            );
            return Ok(InboundReply::ok(format!(
                "unknown message id {key}: state stored, matched to no reminder"
            )));
        };
        if new_states.is_empty() {
            return Ok(InboundReply::ok("duplicate: already recorded"));
        }
        let mut detail = format!(
            "recorded {} for notification {notification}",
            new_states.join(", ")
        );
        if let Some(bad) = new_states.iter().find(|s| webhook::is_undeliverable(s)) {
            let failed = diesel::sql_query(
                "UPDATE notifications SET status = 'failed', error = $2, updated_at = now()
                 WHERE id = $1 AND status = 'sent'",
            )
            .bind::<BigInt, _>(notification)
            .bind::<Text, _>(webhook::undeliverable_reason(bad))
            .execute(conn)?;
            if failed > 0 {
                info!("notification {notification}: Fonnte reports {bad}; delivery failed");
                detail.push_str("; delivery failed");
                if ctx.settings.fallback_email {
                    let today = ctx.zone.date_at(OffsetDateTime::now_utc());
                    if queue_email_fallback(conn, notification, ctx.queue, today)?.is_some() {
                        detail.push_str("; email fallback queued");
                    }
                }
            }
        }
        Ok(InboundReply::ok(detail))
    })
}

fn message_id_for_state(
    conn: &mut PgConnection,
    state_id: &str,
) -> Result<Option<String>, InboundError> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let r: Option<R> = diesel::sql_query(
        "SELECT provider_message_id AS id FROM delivery_states
         WHERE state_id = $1 AND provider_message_id NOT LIKE 'stateid:%' LIMIT 1",
    )
    .bind::<Text, _>(state_id)
    .get_result(conn)
    .optional()?;
    Ok(r.map(|r| r.id))
}

fn notification_for_message(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<i64>, InboundError> {
    let query = diesel::sql_query(
        "SELECT id FROM notifications WHERE provider_message_id = $1 AND channel = 'whatsapp'
         ORDER BY id DESC LIMIT 1",
    )
    .bind::<Text, _>(id);
    Ok(rows::optional_id(query, conn)?)
}

/// `WHATSAPP_FALLBACK=email`: queues the reminder of WhatsApp ledger row
/// `notification` by email, once: only when it is a reminder (not an answer to a
/// reply), the invoice is still unpaid, the customer has an email address, has not
/// opted out of email, is not paused on `today`, and no email for that invoice and
/// day exists yet (the ledger's invoice·channel·day index makes it once). Returns
/// the new email ledger row.
pub fn queue_email_fallback(
    conn: &mut PgConnection,
    notification: i64,
    queue: &str,
    today: Date,
) -> Result<Option<i64>, StoreError> {
    let query = diesel::sql_query(concat!(
        "WITH src AS (
             SELECT n.invoice_id, n.customer_id, n.stage, n.run_date, n.due_date,
                    NULLIF(btrim(c.email), '') AS email
             FROM notifications n
             JOIN customers c ON c.id = n.customer_id
             JOIN invoices i ON i.id = n.invoice_id
             WHERE n.id = $1 AND n.channel = 'whatsapp' AND i.status = 'unpaid'
               AND NOT EXISTS (",
        crate::holds::hold_sql!("n.invoice_id", "n.customer_id", "'email'", "$3"),
        ")
         ), ins AS (
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date,
                                        recipient, status)
             SELECT invoice_id, customer_id, stage, 'email', run_date, due_date, email, 'queued'
             FROM src WHERE email IS NOT NULL
             ON CONFLICT DO NOTHING
             RETURNING id
         )
         INSERT INTO jobs (queue, notification_id, channel)
         SELECT $2, id, 'email' FROM ins
         RETURNING notification_id AS id"
    ))
    .bind::<BigInt, _>(notification)
    .bind::<Text, _>(queue)
    .bind::<SqlDate, _>(today);
    Ok(rows::optional_id(query, conn)?)
}

/// `POST /webhooks/fonnte/connect`: `disconnect` pauses WhatsApp for every worker
/// (reason [`DISCONNECTED`]); `connect` ends that pause (or a worker's pause for a
/// disconnected device) and makes every waiting WhatsApp job available now. A
/// retried call older than the last one applied is ignored.
pub fn fonnte_connect(
    conn: &mut PgConnection,
    ctx: &Inbound<'_>,
    query_secret: Option<&str>,
    body: &[u8],
) -> Result<InboundReply, InboundError> {
    let event = ctx.read(query_secret, body, webhook::device_event)?;
    conn.transaction(|conn| {
        #[derive(QueryableByName)]
        struct Last {
            #[diesel(sql_type = Nullable<Timestamptz>)]
            at: Option<OffsetDateTime>,
        }
        let last: Last = diesel::sql_query(
            "SELECT device_event_at AS at FROM channel_state WHERE channel = 'whatsapp' FOR UPDATE",
        )
        .get_result(conn)?;
        if matches!((event.at, last.at), (Some(at), Some(last)) if at < last) {
            return Ok(InboundReply::ok(
                "older than the last device event applied: ignored",
            ));
        }
        if event.connected {
            let resumed = diesel::sql_query(
                "UPDATE channel_state SET paused_until = NULL, updated_at = now(),
                        device_event_at = COALESCE($1, now())
                 WHERE channel = 'whatsapp' AND paused_until > now()
                   AND (pause_reason = $2 OR pause_reason ILIKE '%disconnected device%')",
            )
            .bind::<Nullable<Timestamptz>, _>(event.at)
            .bind::<Text, _>(DISCONNECTED)
            .execute(conn)?;
            diesel::sql_query(
                "UPDATE channel_state SET device_event_at = COALESCE($1, now()) WHERE channel = 'whatsapp'",
            )
            .bind::<Nullable<Timestamptz>, _>(event.at)
            .execute(conn)?;
            // Jobs a worker handed back until the pause's end, or parked for a retry
            // after a disconnected-device error, go out now.
            let released = diesel::sql_query(
                "UPDATE jobs SET available_at = now()
                 WHERE channel = 'whatsapp' AND reserved_at IS NULL AND available_at > now()",
            )
            .execute(conn)?;
            info!(
                "Fonnte device connected: WhatsApp {}, {released} waiting job(s) available now",
                if resumed > 0 { "resumed" } else { "was not paused for a disconnect" }
            );
            Ok(InboundReply::ok(format!(
                "device connected: WhatsApp {}; {released} waiting job(s) available now",
                if resumed > 0 { "resumed" } else { "was not paused for a disconnect" }
            )))
        } else {
            diesel::sql_query(
                "UPDATE channel_state
                    SET paused_until = GREATEST(COALESCE(paused_until, now()), now() + make_interval(days => $2)),
                        pause_reason = $1, updated_at = now(), device_event_at = COALESCE($3, now())
                  WHERE channel = 'whatsapp'",
            )
            .bind::<Text, _>(DISCONNECTED)
            .bind::<diesel::sql_types::Integer, _>(DISCONNECT_PAUSE_DAYS as i32)
            .bind::<Nullable<Timestamptz>, _>(event.at)
            .execute(conn)?;
            warn!(
                "Fonnte device disconnected ({}): WhatsApp paused for all workers: {DISCONNECTED}",
                event.reason.as_deref().unwrap_or("no reason given")
            );
            Ok(InboundReply::ok(format!("device disconnected: WhatsApp paused ({DISCONNECTED})")))
        }
    })
}

/// `POST /webhooks/fonnte/incoming`: stores every message once; for a known
/// customer acts on its keyword (opt-out, opt-in, paid claim, promise to pay) and
/// queues the answer as a WhatsApp ledger row and job (paced and counted like a
/// reminder). Unknown senders and group messages are stored, never answered.
pub fn fonnte_incoming(
    conn: &mut PgConnection,
    ctx: &Inbound<'_>,
    query_secret: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<InboundReply, InboundError> {
    let msg = ctx.read(query_secret, body, webhook::incoming_message)?;
    let today = ctx.zone.date_at(now);
    conn.transaction(|conn| {
        let customers = if msg.group {
            Vec::new()
        } else {
            holds::customers_by_phone(conn, &msg.sender)?
        };
        let intent = if msg.group {
            Intent::Other
        } else {
            ctx.settings.parse(&msg.message, today)
        };
        let flagged = intent.flagged() || customers.is_empty();
        let stored: Option<Id> = diesel::sql_query(
            "INSERT INTO whatsapp_replies (dedup_key, device, sender, sender_name, message, received_at,
                                           customer_id, intent, flagged)
             VALUES (COALESCE('inbox:' || $1,
                              'md5:' || md5(concat_ws('|', $2, $3, $4::text, $5))),
                     $2, $3, $6, $5, COALESCE($4, now()), $7, $8, $9)
             ON CONFLICT (dedup_key) DO NOTHING
             RETURNING id",
        )
        .bind::<Nullable<Text>, _>(msg.inbox_id.as_deref())
        .bind::<Nullable<Text>, _>(msg.device.as_deref())
        .bind::<Text, _>(&msg.sender)
        .bind::<Nullable<Timestamptz>, _>(msg.at)
        .bind::<Text, _>(&msg.message)
        .bind::<Nullable<Text>, _>(msg.name.as_deref())
        .bind::<Nullable<BigInt>, _>(customers.first().map(|c| c.id))
        .bind::<Text, _>(intent.as_str())
        .bind::<Bool, _>(flagged)
        .get_result(conn)
        .optional()?;
        let Some(Id { id: reply_id }) = stored else {
            return Ok(InboundReply::ok("duplicate: message already stored"));
        };
        let sender = mask_phone(&msg.sender);
        if customers.is_empty() {
            info!("reply {reply_id} from {sender}: no customer has this number; stored, flagged, not answered");
            return Ok(InboundReply::ok(format!(
                "stored as reply {reply_id}: sender is not a customer, no answer"
            )));
        }
        let ids: Vec<i64> = customers.iter().map(|c| c.id).collect();
        let by = format!("whatsapp:reply {reply_id}");
        let paid_until = ctx.settings.paid_claim_until(today);
        match intent {
            Intent::OptOut => {
                for id in &ids {
                    holds::opt_out(
                        conn,
                        *id,
                        dunning_core::Channel::WhatsApp,
                        "customer replied STOP on WhatsApp",
                        &by,
                    )?;
                }
            }
            Intent::OptIn => {
                for id in &ids {
                    holds::opt_in(conn, *id, dunning_core::Channel::WhatsApp)?;
                }
            }
            Intent::PaidClaim => {
                for id in &ids {
                    holds::pause(
                        conn,
                        Target::Customer(*id),
                        today,
                        paid_until,
                        "customer says paid (WhatsApp reply): verify the payment",
                        &by,
                    )?;
                }
            }
            Intent::Promise { promised, until } => {
                for id in &ids {
                    holds::pause(
                        conn,
                        Target::Customer(*id),
                        today,
                        until,
                        &format!("promise to pay on {promised} (WhatsApp reply)"),
                        &by,
                    )?;
                }
            }
            Intent::PromiseUnclear | Intent::Other => {}
        }
        let detail = match ReplyKind::for_intent(&intent, paid_until) {
            Some(kind) => {
                let text = reply_text(&kind, ctx.company_name, ctx.settings);
                queue_answer(conn, reply_id, ids[0], &msg.sender, &kind, &text, today, ctx.queue)?;
                format!("stored as reply {reply_id}: {}; answer queued", intent.as_str())
            }
            None => format!("stored as reply {reply_id}: flagged for an operator (perlu dibalas)"),
        };
        info!("reply {reply_id} from {sender}: {}", intent.as_str());
        Ok(InboundReply::ok(detail))
    })
}

/// Queues the answer to reply `reply_id` as a WhatsApp ledger row (no invoice,
/// stage `reply:<kind>`, the text in `body`) and its job. Once per reply.
#[allow(clippy::too_many_arguments)]
fn queue_answer(
    conn: &mut PgConnection,
    reply_id: i64,
    customer_id: i64,
    to: &str,
    kind: &ReplyKind,
    text: &str,
    today: Date,
    queue: &str,
) -> Result<(), InboundError> {
    diesel::sql_query(
        "WITH ins AS (
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, recipient,
                                        status, reply_id, body)
             VALUES (NULL, $1, $2, 'whatsapp', $3, $4, 'queued', $5, $6)
             ON CONFLICT DO NOTHING
             RETURNING id
         )
         INSERT INTO jobs (queue, notification_id, channel) SELECT $7, id, 'whatsapp' FROM ins",
    )
    .bind::<BigInt, _>(customer_id)
    .bind::<Text, _>(kind.stage_label())
    .bind::<SqlDate, _>(today)
    .bind::<Text, _>(to)
    .bind::<BigInt, _>(reply_id)
    .bind::<Text, _>(text)
    .bind::<Text, _>(queue)
    .execute(conn)?;
    Ok(())
}

/// Marks replies handled by `by`. Returns how many were open.
pub fn mark_handled(conn: &mut PgConnection, ids: &[i64], by: &str) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE whatsapp_replies SET handled_at = now(), handled_by = $2
         WHERE id = ANY ($1) AND handled_at IS NULL",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Text, _>(by)
    .execute(conn)?)
}
