//! Payment gateway callbacks. The order of each handler is the security argument:
//! 1. authenticate the raw bytes (Xendit: header token; Tripay: HMAC of the body;
//!    Midtrans: the four signed fields only, then their SHA-512 signature);
//! 2. parse the body ([`dunning_pay::callback`]);
//! 3. record it ([`dunning_store::payments::record_payment`]) and answer.
//!
//! A forged request gets 401 and changes nothing; the log names the gateway and
//! what did not match, never a secret or the signature.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use log::{info, warn};
use serde_json::{Value, json};
use time::OffsetDateTime;

use dunning_pay::callback::{self, Malformed, Notice};
use dunning_pay::{Gateway, verify};
use dunning_store::payments::{NewPayment, Recorded};

use crate::{AppState, with_conn};

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Tripay wants `{"success":…}`; the others only look at the status code.
fn body_for(gateway: Gateway, ok: bool, message: &str) -> Value {
    match gateway {
        Gateway::Tripay if ok => json!({"success": true}),
        Gateway::Tripay => json!({"success": false, "message": message}),
        _ if ok => json!({"status": "ok"}),
        _ => json!({"status": "error", "message": message}),
    }
}

fn refused(gateway: Gateway, what: &str) -> Response {
    warn!("{gateway} callback refused: {what}; nothing recorded");
    answer(
        StatusCode::UNAUTHORIZED,
        body_for(gateway, false, "verification failed"),
    )
}

fn not_configured(gateway: Gateway, var: &str) -> Response {
    warn!(
        "{gateway} callback refused: {var} is not set, so no {gateway} callback can be verified; \
         set it in .env and restart dunning-web (the gateway retries meanwhile)"
    );
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        body_for(gateway, false, "callback verification is not configured"),
    )
}

fn malformed(e: Malformed) -> Response {
    warn!("{e}; nothing recorded");
    answer(
        StatusCode::BAD_REQUEST,
        body_for(e.gateway, false, &e.to_string()),
    )
}

/// `POST /webhooks/xendit`: `x-callback-token` must equal `XENDIT_CALLBACK_TOKEN`.
pub async fn xendit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let g = Gateway::Xendit;
    let token = &state.payments.xendit.callback_token;
    if token.is_empty() {
        return not_configured(g, "XENDIT_CALLBACK_TOKEN");
    }
    let given = headers.get("x-callback-token").map(|v| v.as_bytes());
    if !verify::xendit_token_ok(token, given) {
        return refused(
            g,
            if given.is_none() {
                "no x-callback-token header"
            } else {
                "x-callback-token does not match XENDIT_CALLBACK_TOKEN"
            },
        );
    }
    match callback::parse_xendit(&body) {
        Ok(notice) => settle(&state, notice).await,
        Err(e) => malformed(e),
    }
}

/// `POST /webhooks/midtrans`: `signature_key` must be SHA-512(order_id + status_code +
/// gross_amount + `MIDTRANS_SERVER_KEY`). Only those four fields are read before the
/// check.
pub async fn midtrans(State(state): State<AppState>, body: Bytes) -> Response {
    let g = Gateway::Midtrans;
    let key = &state.payments.midtrans.server_key;
    if key.is_empty() {
        return not_configured(g, "MIDTRANS_SERVER_KEY");
    }
    let auth = match callback::midtrans_auth_fields(&body) {
        Ok(a) => a,
        Err(e) => return malformed(e),
    };
    if !verify::midtrans_signature_ok(
        &auth.order_id,
        &auth.status_code,
        &auth.gross_amount,
        &auth.signature_key,
        key,
    ) {
        return refused(
            g,
            "signature_key does not match SHA-512(order_id+status_code+gross_amount+MIDTRANS_SERVER_KEY)",
        );
    }
    match callback::parse_midtrans(&body) {
        Ok(notice) => settle(&state, notice).await,
        Err(e) => malformed(e),
    }
}

/// `POST /webhooks/tripay`: `X-Callback-Signature` must be HMAC-SHA256(raw body,
/// `TRIPAY_PRIVATE_KEY`) and `X-Callback-Event` `payment_status`.
pub async fn tripay(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let g = Gateway::Tripay;
    let key = &state.payments.tripay.private_key;
    if key.is_empty() {
        return not_configured(g, "TRIPAY_PRIVATE_KEY");
    }
    let signature = headers.get("x-callback-signature").map(|v| v.as_bytes());
    if !verify::tripay_callback_ok(&body, signature, key) {
        return refused(
            g,
            if signature.is_none() {
                "no X-Callback-Signature header"
            } else {
                "X-Callback-Signature does not match HMAC-SHA256(body, TRIPAY_PRIVATE_KEY)"
            },
        );
    }
    let event = headers
        .get("x-callback-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if event != "payment_status" {
        warn!(
            "tripay callback ignored: X-Callback-Event is {event:?}, not payment_status; nothing recorded"
        );
        return answer(
            StatusCode::BAD_REQUEST,
            body_for(g, false, "X-Callback-Event must be payment_status"),
        );
    }
    match callback::parse_tripay(&body) {
        Ok(notice) => settle(&state, notice).await,
        Err(e) => malformed(e),
    }
}

/// Records a verified callback. A status that is not a payment (pending, expired,
/// failed) is acknowledged and not stored. A database failure answers 503 so that the
/// gateway retries later.
async fn settle(state: &AppState, notice: Notice) -> Response {
    let g = notice.gateway;
    if !notice.paid {
        info!(
            "{g} callback for order {}: status {} is not a payment; acknowledged, nothing recorded",
            notice.order_id, notice.status
        );
        return answer(StatusCode::OK, body_for(g, true, ""));
    }
    let n = notice.clone();
    let result = with_conn(&state.pool, move |conn| {
        let payment = NewPayment {
            gateway: n.gateway.name(),
            reference: &n.reference,
            order_id: &n.order_id,
            amount: n.amount,
            currency: &n.currency,
            paid_at: n.paid_at.unwrap_or_else(OffsetDateTime::now_utc),
            raw: &n.raw,
        };
        dunning_store::payments::record_payment(conn, &payment, |inv| callback::judge(&n, inv))
    })
    .await;
    match result {
        Ok(Recorded::New {
            payment_id,
            invoice,
            flag,
            marked_paid,
        }) => {
            let number = invoice.as_ref().map_or("-", |i| i.number.as_str());
            match flag {
                None if marked_paid => info!(
                    "{g} payment {} recorded (payment {payment_id}): invoice {number} marked paid, Rp {}",
                    notice.reference, notice.amount
                ),
                None => info!(
                    "{g} payment {} recorded (payment {payment_id}) for invoice {number}",
                    notice.reference
                ),
                Some(flag) => warn!(
                    "{g} payment {} for order {} recorded (payment {payment_id}) and flagged {flag} for the operator: invoice {number} NOT marked paid",
                    notice.reference, notice.order_id
                ),
            }
            answer(StatusCode::OK, body_for(g, true, ""))
        }
        Ok(Recorded::Replay { payment_id, .. }) => {
            info!(
                "{g} payment {} was already recorded (payment {payment_id}): replay acknowledged, nothing changed",
                notice.reference
            );
            answer(StatusCode::OK, body_for(g, true, ""))
        }
        Err(e) => {
            log::error!(
                "{g} payment {} for order {} could not be recorded: {e}; answered 503 so that {g} retries",
                notice.reference,
                notice.order_id
            );
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                body_for(g, false, "temporarily unavailable"),
            )
        }
    }
}
