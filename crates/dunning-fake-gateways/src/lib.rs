//! Local fakes of the payment gateways' create APIs, for tests and benchmarks only.
//!
//! One HTTP server on `127.0.0.1:0` serves, under a prefix per gateway:
//! - `/xendit`: `POST /v2/invoices`, `GET /balance` (Basic auth, secret key as user);
//! - `/midtrans`: Snap `POST /snap/v1/transactions`, Core `GET /v2/{order_id}/status`
//!   (Basic auth, server key as user);
//! - `/tripay/api`: `POST /transaction/create` (checks the request signature),
//!   `GET /merchant/payment-channel` (Bearer API key).
//!
//! Answers, including error bodies (401 for a wrong key, 400 for validation, a
//! reused Midtrans order id), follow the gateways' docs as summarised in
//! `shared/research/payment-gateways.md`. The [`sign`] module builds callback bodies
//! and signs them the documented way with `ring` — a second implementation,
//! independent of the `hmac`/`sha2` code in `dunning-pay` that verifies them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The keys the fakes accept.
pub mod keys {
    pub const XENDIT_SECRET_KEY: &str = "xnd_development_fakesecret0001";
    pub const XENDIT_CALLBACK_TOKEN: &str = "fake-xendit-callback-token-0001";
    pub const MIDTRANS_SERVER_KEY: &str = "SB-Mid-server-fakeserverkey0001";
    pub const TRIPAY_API_KEY: &str = "DEV-fakeapikey0001";
    pub const TRIPAY_PRIVATE_KEY: &str = "fake-private-key-0001";
    pub const TRIPAY_MERCHANT_CODE: &str = "T0001";
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    midtrans_orders: HashSet<String>,
    next: u64,
}

#[derive(Clone)]
struct Fake {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    fn record(&self, method: &str, path: &str, body: &Value) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.requests.push(Request {
            method: method.into(),
            path: path.into(),
            body: body.clone(),
        });
        inner.next += 1;
        inner.next
    }
}

/// The running fakes; stopped when dropped.
pub struct GatewayFake {
    base: String,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(body),
    )
        .into_response()
}

fn basic_ok(headers: &HeaderMap, key: &str) -> bool {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn bearer_ok(headers: &HeaderMap, key: &str) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {key}").as_str())
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

async fn xendit_create(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let b = parse(&body);
    let n = f.record("POST", "/xendit/v2/invoices", &b);
    if !basic_ok(&headers, keys::XENDIT_SECRET_KEY) {
        return json_response(
            401,
            json!({"error_code": "INVALID_API_KEY", "message": "API key is invalid"}),
        );
    }
    let external_id = b.get("external_id").and_then(Value::as_str).unwrap_or("");
    let amount = b.get("amount").and_then(Value::as_i64).unwrap_or(0);
    if external_id.is_empty() {
        return json_response(
            400,
            json!({"error_code": "API_VALIDATION_ERROR", "message": "external_id is required"}),
        );
    }
    if amount < 1 {
        return json_response(
            400,
            json!({"error_code": "API_VALIDATION_ERROR", "message": "amount must be greater than or equal to 1"}),
        );
    }
    let duration = b
        .get("invoice_duration")
        .and_then(Value::as_i64)
        .unwrap_or(86400);
    let now = OffsetDateTime::now_utc();
    let id = format!("65f0fake{n:016x}");
    json_response(
        200,
        json!({
            "id": id,
            "external_id": external_id,
            "user_id": "5f0fakeuser0000000000001",
            "status": "PENDING",
            "merchant_name": "Fake Merchant",
            "amount": amount,
            "description": b.get("description").cloned().unwrap_or(Value::Null),
            "expiry_date": rfc3339(now + time::Duration::seconds(duration)),
            "invoice_url": format!("{}/xendit/web/{id}", f.base),
            "currency": b.get("currency").cloned().unwrap_or(json!("IDR")),
            "created": rfc3339(now),
            "updated": rfc3339(now),
        }),
    )
}

async fn xendit_balance(State(f): State<Fake>, headers: HeaderMap) -> Response {
    f.record("GET", "/xendit/balance", &Value::Null);
    if !basic_ok(&headers, keys::XENDIT_SECRET_KEY) {
        return json_response(
            401,
            json!({"error_code": "INVALID_API_KEY", "message": "API key is invalid"}),
        );
    }
    json_response(200, json!({"balance": 1_250_000}))
}

async fn midtrans_snap(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let b = parse(&body);
    let n = f.record("POST", "/midtrans/snap/v1/transactions", &b);
    if !basic_ok(&headers, keys::MIDTRANS_SERVER_KEY) {
        return json_response(
            401,
            json!({"error_messages": [
                "Access denied due to unauthorized transaction, please check client or server key",
                "Visit https://snap-docs.midtrans.com/#request-headers for more details"
            ]}),
        );
    }
    let order_id = b
        .pointer("/transaction_details/order_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let gross = b
        .pointer("/transaction_details/gross_amount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut errors = Vec::new();
    if order_id.is_empty() {
        errors.push("transaction_details.order_id is required".to_owned());
    }
    if gross < 1 {
        errors.push("transaction_details.gross_amount is required".to_owned());
    }
    if let Some(items) = b.get("item_details").and_then(Value::as_array) {
        let sum: i64 = items
            .iter()
            .map(|i| i["price"].as_i64().unwrap_or(0) * i["quantity"].as_i64().unwrap_or(0))
            .sum();
        if sum != gross {
            errors.push(
                "transaction_details.gross_amount is not equal to the sum of item_details"
                    .to_owned(),
            );
        }
    }
    if !errors.is_empty() {
        return json_response(400, json!({"error_messages": errors}));
    }
    {
        let mut inner = f.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.midtrans_orders.insert(order_id.to_owned()) {
            return json_response(
                400,
                json!({"error_messages": ["transaction_details.order_id sudah digunakan"]}),
            );
        }
    }
    let token = format!("fa4e{n:08x}-0000-4000-8000-000000000000");
    json_response(
        201,
        json!({
            "token": token,
            "redirect_url": format!("{}/midtrans/snap/v4/redirection/{token}", f.base),
        }),
    )
}

async fn midtrans_status(
    State(f): State<Fake>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Response {
    f.record("GET", &format!("/midtrans/v2/{order}/status"), &Value::Null);
    if !basic_ok(&headers, keys::MIDTRANS_SERVER_KEY) {
        return json_response(
            401,
            json!({"status_code": "401",
            "status_message": "Transaction cannot be authorized with the current client/server key.",
            "id": "00000000-0000-0000-0000-000000000000"}),
        );
    }
    json_response(
        404,
        json!({"status_code": "404", "status_message": "Transaction doesn't exist.",
        "id": "00000000-0000-0000-0000-000000000000"}),
    )
}

async fn tripay_create(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let b = parse(&body);
    let n = f.record("POST", "/tripay/api/transaction/create", &b);
    if !bearer_ok(&headers, keys::TRIPAY_API_KEY) {
        return json_response(401, json!({"success": false, "message": "Invalid API Key"}));
    }
    for field in [
        "method",
        "merchant_ref",
        "amount",
        "customer_name",
        "customer_email",
        "order_items",
        "signature",
    ] {
        let v = &b[field];
        if v.is_null() || v.as_str() == Some("") {
            return json_response(
                400,
                json!({"success": false,
                "message": format!("The {} field is required.", field.replace('_', " "))}),
            );
        }
    }
    let merchant_ref = b["merchant_ref"].as_str().unwrap_or("");
    let amount = b["amount"].as_i64().unwrap_or(0);
    let want = sign::tripay_request(
        keys::TRIPAY_MERCHANT_CODE,
        merchant_ref,
        amount,
        keys::TRIPAY_PRIVATE_KEY,
    );
    if b["signature"].as_str() != Some(want.as_str()) {
        return json_response(
            400,
            json!({"success": false, "message": "Invalid signature"}),
        );
    }
    let reference = format!("DEV-T0001{n:08}");
    let expired = b["expired_time"]
        .as_i64()
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp() + 86400);
    json_response(
        200,
        json!({
            "success": true,
            "message": "",
            "data": {
                "reference": reference,
                "merchant_ref": merchant_ref,
                "payment_selection_type": "static",
                "payment_method": b["method"],
                "payment_name": "QRIS",
                "customer_name": b["customer_name"],
                "customer_email": b["customer_email"],
                "customer_phone": b["customer_phone"],
                "callback_url": Value::Null,
                "return_url": Value::Null,
                "amount": amount,
                "fee_merchant": 0,
                "fee_customer": 0,
                "total_fee": 0,
                "amount_received": amount,
                "pay_code": Value::Null,
                "pay_url": Value::Null,
                "checkout_url": format!("{}/tripay/checkout/{reference}", f.base),
                "status": "UNPAID",
                "expired_time": expired,
                "order_items": b["order_items"],
            }
        }),
    )
}

async fn tripay_channels(State(f): State<Fake>, headers: HeaderMap) -> Response {
    f.record("GET", "/tripay/api/merchant/payment-channel", &Value::Null);
    if !bearer_ok(&headers, keys::TRIPAY_API_KEY) {
        return json_response(401, json!({"success": false, "message": "Invalid API Key"}));
    }
    json_response(
        200,
        json!({"success": true, "message": "Success", "data": [
            {"group": "Virtual Account", "code": "BRIVA", "name": "BRI Virtual Account", "type": "direct", "active": true},
            {"group": "E-Wallet", "code": "QRIS", "name": "QRIS", "type": "direct", "active": true}
        ]}),
    )
}

impl GatewayFake {
    /// Starts the fakes on a free loopback port.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Mutex::new(Inner::default()));
        let fake = Fake {
            base: base.clone(),
            inner: Arc::clone(&inner),
        };
        let app = Router::new()
            .route("/xendit/v2/invoices", post(xendit_create))
            .route("/xendit/balance", get(xendit_balance))
            .route("/midtrans/snap/v1/transactions", post(midtrans_snap))
            .route("/midtrans/v2/{order}/status", get(midtrans_status))
            .route("/tripay/api/transaction/create", post(tripay_create))
            .route("/tripay/api/merchant/payment-channel", get(tripay_channels))
            .with_state(fake);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        GatewayFake {
            base,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `XENDIT_API_URL` for this fake.
    pub fn xendit_url(&self) -> String {
        format!("{}/xendit", self.base)
    }
    /// `MIDTRANS_API_URL` for this fake (Snap and Core on one server).
    pub fn midtrans_url(&self) -> String {
        format!("{}/midtrans", self.base)
    }
    /// `TRIPAY_API_URL` for this fake.
    pub fn tripay_url(&self) -> String {
        format!("{}/tripay/api", self.base)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
            .clone()
    }

    /// Requests to paths ending with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }
}

impl Drop for GatewayFake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Callback bodies as the gateways send them, signed the documented way with `ring`.
pub mod sign {
    use ring::{digest, hmac};
    use serde_json::json;

    /// Midtrans `signature_key`: hex SHA-512 of order_id + status_code + gross_amount + server key.
    pub fn midtrans(
        order_id: &str,
        status_code: &str,
        gross_amount: &str,
        server_key: &str,
    ) -> String {
        let input = format!("{order_id}{status_code}{gross_amount}{server_key}");
        hex::encode(digest::digest(&digest::SHA512, input.as_bytes()))
    }

    /// Tripay `X-Callback-Signature`: hex HMAC-SHA256 of the raw body with the private key.
    pub fn tripay_callback(body: &[u8], private_key: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, private_key.as_bytes());
        hex::encode(hmac::sign(&key, body))
    }

    /// Tripay request `signature`: hex HMAC-SHA256 of merchant_code + merchant_ref + amount.
    pub fn tripay_request(
        merchant_code: &str,
        merchant_ref: &str,
        amount: i64,
        private_key: &str,
    ) -> String {
        tripay_callback(
            format!("{merchant_code}{merchant_ref}{amount}").as_bytes(),
            private_key,
        )
    }

    /// A Xendit invoice callback body (send with header `x-callback-token`).
    pub fn xendit_invoice(
        id: &str,
        external_id: &str,
        status: &str,
        amount: i64,
        paid_amount: i64,
        currency: &str,
    ) -> String {
        json!({
            "id": id,
            "external_id": external_id,
            "user_id": "5f0fakeuser0000000000001",
            "is_high": false,
            "payment_method": "BANK_TRANSFER",
            "status": status,
            "merchant_name": "Fake Merchant",
            "amount": amount,
            "paid_amount": paid_amount,
            "bank_code": "BRI",
            "paid_at": "2026-12-01T03:04:05.678Z",
            "payer_email": "budi@example.com",
            "description": format!("Tagihan {external_id}"),
            "adjusted_received_amount": paid_amount,
            "fees_paid_amount": 0,
            "updated": "2026-12-01T03:04:06.000Z",
            "created": "2026-11-30T01:00:00.000Z",
            "currency": currency,
            "payment_channel": "BRI",
            "payment_destination": "8808999917965673"
        })
        .to_string()
    }

    /// A Midtrans HTTP notification body with its `signature_key`.
    #[allow(clippy::too_many_arguments)]
    pub fn midtrans_notification(
        order_id: &str,
        transaction_id: &str,
        transaction_status: &str,
        fraud_status: &str,
        status_code: &str,
        gross_amount: &str,
        currency: &str,
        server_key: &str,
    ) -> String {
        json!({
            "transaction_time": "2026-12-01 10:00:00",
            "transaction_status": transaction_status,
            "transaction_id": transaction_id,
            "status_message": "midtrans payment notification",
            "status_code": status_code,
            "signature_key": midtrans(order_id, status_code, gross_amount, server_key),
            "settlement_time": "2026-12-01 10:04:05",
            "payment_type": "bank_transfer",
            "order_id": order_id,
            "merchant_id": "G000000000",
            "gross_amount": gross_amount,
            "fraud_status": fraud_status,
            "currency": currency,
            "va_numbers": [{"bank": "bca", "va_number": "490526303019299"}]
        })
        .to_string()
    }

    /// A Tripay callback body (send with `X-Callback-Event: payment_status` and
    /// [`tripay_callback`] of it as `X-Callback-Signature`).
    pub fn tripay_body(
        reference: &str,
        merchant_ref: &str,
        status: &str,
        total_amount: i64,
    ) -> String {
        json!({
            "reference": reference,
            "merchant_ref": merchant_ref,
            "payment_method": "BRI Virtual Account",
            "payment_method_code": "BRIVA",
            "total_amount": total_amount,
            "fee_merchant": 0,
            "fee_customer": 0,
            "total_fee": 0,
            "amount_received": total_amount,
            "is_closed_payment": 1,
            "status": status,
            "paid_at": 1_764_558_245,
            "note": null
        })
        .to_string()
    }
}
