//! The gateways' create APIs over ureq: one hosted payment page per invoice, and a
//! cheap authenticated call for `doctor`-style credential checks.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use dunning_store::ops::search::InvoiceRow;
use dunning_store::payments::CreatedLink;

use crate::config::{Gateway, PaymentSettings};
use crate::verify::tripay_request_signature;

/// How long a created payment page stays valid.
pub const LINK_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Largest gateway answer read.
const BODY_LIMIT: u64 = 256 * 1024;

/// Why no payment link could be had. The reminder goes out without one; the caller
/// records this message (it never contains a key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The gateway refused our key.
    #[error("{gateway} refused the API key (HTTP {status}: {detail}): check {var}")]
    Unauthorized {
        gateway: Gateway,
        status: u16,
        detail: String,
        var: &'static str,
    },
    /// The gateway refused the request (validation, duplicate order id, …).
    #[error("{gateway} refused to create the payment page (HTTP {status}: {detail})")]
    Rejected {
        gateway: Gateway,
        status: u16,
        detail: String,
    },
    /// No answer (network, timeout, TLS).
    #[error("{gateway} could not be reached at {url}: {reason}")]
    Unreachable {
        gateway: Gateway,
        url: String,
        reason: String,
    },
    /// An answer that is not the gateway's API (wrong base URL?).
    #[error(
        "{gateway} at {url} answered HTTP {status} without the expected fields ({detail}): check its API URL variable"
    )]
    BadAnswer {
        gateway: Gateway,
        url: String,
        status: u16,
        detail: String,
    },
    /// The invoice does not exist (any more).
    #[error("invoice id {0} does not exist")]
    NoInvoice(i64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] dunning_store::StoreError),
}

/// A synchronous client for the configured gateways.
pub struct GatewayClient {
    agent: ureq::Agent,
    settings: PaymentSettings,
}

struct Answer {
    url: String,
    status: u16,
    body: Value,
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s: String = s.chars().take(160).collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The gateway's own error message in its error body.
fn detail(gateway: Gateway, body: &Value) -> String {
    let found = match gateway {
        Gateway::Xendit => body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Gateway::Midtrans => body
            .get("error_messages")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .or_else(|| {
                body.get("status_message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        Gateway::Tripay => body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    found
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| snippet(body.to_string().as_bytes()))
}

fn secret_var(gateway: Gateway) -> &'static str {
    match gateway {
        Gateway::Xendit => "XENDIT_SECRET_KEY",
        Gateway::Midtrans => "MIDTRANS_SERVER_KEY",
        Gateway::Tripay => "TRIPAY_API_KEY",
    }
}

fn basic(key: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{key}:")))
}

/// Up to `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl GatewayClient {
    /// A client with a 15 s timeout per request; redirects are not followed (they
    /// would resend the key).
    pub fn new(settings: &PaymentSettings) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("dunning/", env!("CARGO_PKG_VERSION")))
            .build();
        GatewayClient {
            agent: config.into(),
            settings: settings.clone(),
        }
    }

    fn call(
        &self,
        gateway: Gateway,
        method: &str,
        url: String,
        auth: String,
        body: Option<&Value>,
    ) -> Result<Answer, LinkError> {
        let unreachable = |e: ureq::Error| LinkError::Unreachable {
            gateway,
            url: url.clone(),
            reason: e.to_string(),
        };
        let response = match (method, body) {
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Accept", "application/json")
                .content_type("application/json")
                .send(b.to_string()),
            _ => self
                .agent
                .get(&url)
                .header("Authorization", &auth)
                .header("Accept", "application/json")
                .call(),
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(unreachable)?;
        let parsed = serde_json::from_slice::<Value>(&bytes).map_err(|_| LinkError::BadAnswer {
            gateway,
            url: url.clone(),
            status,
            detail: format!("not JSON: {}", snippet(&bytes)),
        })?;
        if status == 401 || status == 403 {
            return Err(LinkError::Unauthorized {
                gateway,
                status,
                detail: detail(gateway, &parsed),
                var: secret_var(gateway),
            });
        }
        Ok(Answer {
            url,
            status,
            body: parsed,
        })
    }

    fn field(answer: &Answer, gateway: Gateway, pointer: &str) -> Result<String, LinkError> {
        answer
            .body
            .pointer(pointer)
            .and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| LinkError::BadAnswer {
                gateway,
                url: answer.url.clone(),
                status: answer.status,
                detail: format!("no {pointer}"),
            })
    }

    fn rejected(answer: &Answer, gateway: Gateway) -> LinkError {
        LinkError::Rejected {
            gateway,
            status: answer.status,
            detail: detail(gateway, &answer.body),
        }
    }

    /// Creates a hosted payment page for `invoice` with order id `order_id`, valid for
    /// [`LINK_VALIDITY`] from `now`.
    pub fn create(
        &self,
        gateway: Gateway,
        invoice: &InvoiceRow,
        order_id: &str,
        now: OffsetDateTime,
    ) -> Result<CreatedLink, LinkError> {
        let description = format!("Tagihan {}", invoice.number);
        let expires = now + LINK_VALIDITY;
        match gateway {
            Gateway::Xendit => {
                let s = &self.settings.xendit;
                let mut customer = json!({ "given_names": invoice.customer.name });
                if let Some(email) = &invoice.customer.email {
                    customer["email"] = json!(email);
                }
                let body = json!({
                    "external_id": order_id,
                    "amount": invoice.amount,
                    "description": description,
                    "invoice_duration": LINK_VALIDITY.as_secs(),
                    "currency": "IDR",
                    "customer": customer,
                });
                let a = self.call(
                    gateway,
                    "POST",
                    format!("{}/v2/invoices", s.api_url),
                    basic(s.secret_key.expose()),
                    Some(&body),
                )?;
                if !(200..300).contains(&a.status) {
                    return Err(Self::rejected(&a, gateway));
                }
                let expires_at = Self::field(&a, gateway, "/expiry_date")
                    .ok()
                    .and_then(|e| OffsetDateTime::parse(&e, &Rfc3339).ok())
                    .unwrap_or(expires);
                Ok(CreatedLink {
                    reference: Self::field(&a, gateway, "/id")?,
                    url: Self::field(&a, gateway, "/invoice_url")?,
                    expires_at,
                })
            }
            Gateway::Midtrans => {
                let s = &self.settings.midtrans;
                let mut customer = json!({ "first_name": cut(&invoice.customer.name, 255) });
                if let Some(email) = &invoice.customer.email {
                    customer["email"] = json!(email);
                }
                if let Some(phone) = &invoice.customer.phone {
                    customer["phone"] = json!(phone);
                }
                let body = json!({
                    "transaction_details": { "order_id": order_id, "gross_amount": invoice.amount },
                    "item_details": [{
                        "id": cut(&invoice.number, 50),
                        "price": invoice.amount,
                        "quantity": 1,
                        "name": cut(&description, 50),
                    }],
                    "customer_details": customer,
                    "page_expiry": { "duration": LINK_VALIDITY.as_secs() / 3600, "unit": "hours" },
                });
                let a = self.call(
                    gateway,
                    "POST",
                    format!("{}/snap/v1/transactions", s.api_url),
                    basic(s.server_key.expose()),
                    Some(&body),
                )?;
                if !(200..300).contains(&a.status) {
                    return Err(Self::rejected(&a, gateway));
                }
                Ok(CreatedLink {
                    reference: Self::field(&a, gateway, "/token")?,
                    url: Self::field(&a, gateway, "/redirect_url")?,
                    expires_at: expires,
                })
            }
            Gateway::Tripay => {
                let s = &self.settings.tripay;
                let body = json!({
                    "method": s.method,
                    "merchant_ref": order_id,
                    "amount": invoice.amount,
                    "customer_name": invoice.customer.name,
                    "customer_email": invoice.customer.email.clone().unwrap_or_default(),
                    "customer_phone": invoice.customer.phone.clone().unwrap_or_default(),
                    "order_items": [{
                        "sku": invoice.number,
                        "name": description,
                        "price": invoice.amount,
                        "quantity": 1,
                    }],
                    "expired_time": expires.unix_timestamp(),
                    "signature": tripay_request_signature(&s.merchant_code, order_id, invoice.amount, &s.private_key),
                });
                let a = self.call(
                    gateway,
                    "POST",
                    format!("{}/transaction/create", s.api_url),
                    format!("Bearer {}", s.api_key.expose()),
                    Some(&body),
                )?;
                if !(200..300).contains(&a.status)
                    || a.body.get("success") != Some(&Value::Bool(true))
                {
                    return Err(Self::rejected(&a, gateway));
                }
                let expires_at = a
                    .body
                    .pointer("/data/expired_time")
                    .and_then(Value::as_i64)
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                    .unwrap_or(expires);
                Ok(CreatedLink {
                    reference: Self::field(&a, gateway, "/data/reference")?,
                    url: Self::field(&a, gateway, "/data/checkout_url")?,
                    expires_at,
                })
            }
        }
    }

    /// A cheap authenticated call that proves the key works, for `doctor`: Xendit
    /// `GET /balance`, Midtrans `GET /v2/{order}/status` on the Core API (a 404 for an
    /// unknown order means the key was accepted), Tripay `GET /merchant/payment-channel`.
    /// Returns a one-line summary.
    pub fn check_credentials(&self, gateway: Gateway) -> Result<String, LinkError> {
        match gateway {
            Gateway::Xendit => {
                let s = &self.settings.xendit;
                let a = self.call(
                    gateway,
                    "GET",
                    format!("{}/balance", s.api_url),
                    basic(s.secret_key.expose()),
                    None,
                )?;
                if a.status != 200 {
                    return Err(Self::rejected(&a, gateway));
                }
                Ok(format!(
                    "Xendit accepted XENDIT_SECRET_KEY (balance {})",
                    Self::field(&a, gateway, "/balance")?
                ))
            }
            Gateway::Midtrans => {
                let s = &self.settings.midtrans;
                let a = self.call(
                    gateway,
                    "GET",
                    format!(
                        "{}/v2/dunning-credential-check/status",
                        midtrans_core_url(&s.api_url)
                    ),
                    basic(s.server_key.expose()),
                    None,
                )?;
                let code = a
                    .body
                    .get("status_code")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match code {
                    "401" | "403" => Err(LinkError::Unauthorized {
                        gateway,
                        status: a.status,
                        detail: detail(gateway, &a.body),
                        var: "MIDTRANS_SERVER_KEY",
                    }),
                    "404" | "200" | "201" | "407" => {
                        Ok("Midtrans accepted MIDTRANS_SERVER_KEY".into())
                    }
                    _ => Err(Self::rejected(&a, gateway)),
                }
            }
            Gateway::Tripay => {
                let s = &self.settings.tripay;
                let a = self.call(
                    gateway,
                    "GET",
                    format!("{}/merchant/payment-channel", s.api_url),
                    format!("Bearer {}", s.api_key.expose()),
                    None,
                )?;
                if a.status != 200 || a.body.get("success") != Some(&Value::Bool(true)) {
                    return Err(Self::rejected(&a, gateway));
                }
                let channels = a
                    .body
                    .get("data")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                Ok(format!(
                    "Tripay accepted TRIPAY_API_KEY ({channels} payment channels)"
                ))
            }
        }
    }
}

/// The Core API base for a Snap base URL: `app.midtrans.com` → `api.midtrans.com`,
/// `app.sandbox.midtrans.com` → `api.sandbox.midtrans.com`; any other URL (a local
/// fake) serves both.
pub fn midtrans_core_url(snap: &str) -> String {
    snap.replacen("://app.", "://api.", 1)
}
