//! Fonnte's webhook payloads, read without any I/O: size limit, secret check and
//! the fields of the status, connect and incoming-message calls.
//!
//! Order of work for every call (the caller keeps it): [`check_size`] before
//! anything is read; then [`authenticate`]: a `?secret=` query value is compared
//! first, without touching the body; only when the URL carries none is the body
//! parsed as JSON just far enough to read its `secret` field (Fonnte's optional
//! "secret key" webhook data, Feb 2025 update), compared in constant time; only
//! then are the fields read.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// The largest webhook body accepted (Fonnte's payloads are a few hundred bytes;
/// a message text is at most a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The payload field that carries the webhook secret when it is not in the URL.
pub const SECRET_FIELD: &str = "secret";

/// Why a webhook call is refused. [`WebhookError::http_status`] is the answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// No secret, or a wrong one: nothing is stored.
    #[error(
        "webhook secret missing or wrong: put ?secret=<FONNTE_WEBHOOK_SECRET> at the end of the webhook URL in the Fonnte dashboard"
    )]
    Unauthorized,
    /// FONNTE_WEBHOOK_SECRET is not configured on this server: nothing is accepted.
    #[error(
        "FONNTE_WEBHOOK_SECRET is not set on this server, so no Fonnte webhook is accepted: set it in .env and restart dunning-web"
    )]
    NotConfigured,
    /// The body is larger than [`MAX_BODY`].
    #[error("body of {0} bytes is larger than the {MAX_BODY}-byte limit for Fonnte webhooks")]
    TooLarge(usize),
    /// The body is not what Fonnte sends.
    #[error("malformed Fonnte webhook body: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::Unauthorized | WebhookError::NotConfigured => 401,
            WebhookError::TooLarge(_) => 413,
            WebhookError::Malformed(_) => 400,
        }
    }
}

/// Refuses a body over [`MAX_BODY`] before anything reads it.
pub fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY {
        return Err(WebhookError::TooLarge(body.len()));
    }
    Ok(())
}

fn same(a: &str, b: &str) -> bool {
    // Length is not secret (a constant-time compare of unequal lengths is false).
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks the secret and returns the parsed JSON object. `query_secret` is the
/// URL's `secret` parameter, if any. See the module doc for the order.
pub fn authenticate(
    expected: &str,
    query_secret: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, WebhookError> {
    check_size(body)?;
    if expected.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    match query_secret {
        Some(q) => {
            if !same(q, expected) {
                return Err(WebhookError::Unauthorized);
            }
            parse_object(body)
        }
        None => {
            // The secret can only be in the body: an unreadable body has none.
            let obj = parse_object(body).map_err(|_| WebhookError::Unauthorized)?;
            let given = obj.get(SECRET_FIELD).and_then(text);
            match given {
                Some(s) if same(&s, expected) => Ok(obj),
                _ => Err(WebhookError::Unauthorized),
            }
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, WebhookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(WebhookError::Malformed(format!(
            "expected a JSON object such as {{\"id\":\"80367170\",\"status\":\"sent\"}}, got {}",
            kind(&other)
        ))),
        Err(e) => Err(WebhookError::Malformed(format!(
            "not JSON ({e}); Fonnte sends a JSON object: check that the webhook URL points at this endpoint"
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field as text: strings as they are, numbers written out; blank is `None`.
fn text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

fn field(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.get(name).and_then(text)
}

/// A Unix timestamp field (seconds; milliseconds are recognised by size).
fn timestamp(obj: &Map<String, Value>, name: &str) -> Option<OffsetDateTime> {
    let raw = field(obj, name)?;
    let n: i64 = raw.parse().ok()?;
    let secs = if n > 100_000_000_000 { n / 1000 } else { n };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// At most 200 characters of a value that came from outside (for messages and logs).
fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// A message-status call: `{"device","id","stateid","status","state"}`. The first
/// call for a message carries `id` and `status`; later ones `stateid` and `state`
/// (with `id` when Fonnte links the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub device: Option<String>,
    pub id: Option<String>,
    pub state_id: Option<String>,
    /// Lowercase states named by the call (`status`, then `state`), e.g. `sent`, `read`.
    pub states: Vec<String>,
}

/// Reads a message-status call.
pub fn status_update(obj: &Map<String, Value>) -> Result<StatusUpdate, WebhookError> {
    let id = field(obj, "id");
    let state_id = field(obj, "stateid");
    if id.is_none() && state_id.is_none() {
        return Err(WebhookError::Malformed(
            "a message-status call needs \"id\" or \"stateid\": is this the message-status webhook URL?".into(),
        ));
    }
    let mut states = Vec::new();
    for name in ["status", "state"] {
        if let Some(s) = field(obj, name) {
            let s = s.to_lowercase();
            if s.len() > 40 {
                return Err(WebhookError::Malformed(format!(
                    "\"{name}\" is {} characters long; Fonnte's states are words such as sent, read, invalid",
                    s.len()
                )));
            }
            if !states.contains(&s) {
                states.push(s);
            }
        }
    }
    if states.is_empty() {
        return Err(WebhookError::Malformed(
            "a message-status call needs \"status\" or \"state\" (sent, delivered, read, pending, invalid, expired)".into(),
        ));
    }
    Ok(StatusUpdate {
        device: field(obj, "device"),
        id,
        state_id,
        states,
    })
}

/// True for the states that mean the message will never arrive.
pub fn is_undeliverable(state: &str) -> bool {
    matches!(state, "invalid" | "expired")
}

/// Why an undeliverable state failed the delivery, with the fix, for `failed`.
pub fn undeliverable_reason(state: &str) -> String {
    match state {
        "invalid" => "Fonnte: invalid target (the number is not on WhatsApp or is wrong): correct the customer's phone number, then `dunning-schedule retry`".into(),
        "expired" => "Fonnte: expired (the device was disconnected for 7 days): scan the QR code in the Fonnte dashboard, then `dunning-schedule retry`".into(),
        other => format!("Fonnte: {other}"),
    }
}

/// A device connect/disconnect call: `{"device","status","timestamp","reason"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    pub device: Option<String>,
    pub connected: bool,
    pub reason: Option<String>,
    pub at: Option<OffsetDateTime>,
}

/// Reads a connect call.
pub fn device_event(obj: &Map<String, Value>) -> Result<DeviceEvent, WebhookError> {
    let status = field(obj, "status").map(|s| s.to_lowercase());
    let connected = match status.as_deref() {
        Some("connect") | Some("connected") => true,
        Some("disconnect") | Some("disconnected") => false,
        Some(other) => {
            return Err(WebhookError::Malformed(format!(
                "\"status\" is {:?}; the connect webhook sends connect or disconnect",
                short(other)
            )));
        }
        None => {
            return Err(WebhookError::Malformed(
                "a connect call needs \"status\" (connect or disconnect): is this the connect webhook URL?".into(),
            ));
        }
    };
    Ok(DeviceEvent {
        device: field(obj, "device"),
        connected,
        reason: field(obj, "reason").map(|r| short(&r)),
        at: timestamp(obj, "timestamp"),
    })
}

/// An incoming-message call: `{"device","sender","message","text","member","name",
/// "location","pollname","choices","timestamp","inboxid",…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    pub device: Option<String>,
    /// The sender's number as Fonnte writes it (`6281234567890`), or a group id.
    pub sender: String,
    pub name: Option<String>,
    /// The text (`message`, or the button text `text` when there is no message).
    pub message: String,
    /// True for a group message (`member` set, or a group id as sender): never acted on.
    pub group: bool,
    pub at: Option<OffsetDateTime>,
    pub inbox_id: Option<String>,
}

/// Reads an incoming-message call.
pub fn incoming_message(obj: &Map<String, Value>) -> Result<IncomingMessage, WebhookError> {
    let sender = field(obj, "sender").ok_or_else(|| {
        WebhookError::Malformed(
            "an incoming-message call needs \"sender\": is this the incoming-message webhook URL?"
                .into(),
        )
    })?;
    if sender.len() > 64 {
        return Err(WebhookError::Malformed(format!(
            "\"sender\" is {} characters long; Fonnte sends a phone number or group id",
            sender.len()
        )));
    }
    let message = field(obj, "message")
        .or_else(|| field(obj, "text"))
        .unwrap_or_default();
    let group = field(obj, "member").is_some() || sender.contains('@') || sender.contains('-');
    Ok(IncomingMessage {
        device: field(obj, "device"),
        sender,
        name: field(obj, "name"),
        message,
        group,
        at: timestamp(obj, "timestamp"),
        inbox_id: field(obj, "inboxid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-Value";

    #[test]
    fn query_secret_is_checked_before_the_body_is_read() {
        assert_eq!(
            authenticate(SECRET, Some("wrong"), b"not json").unwrap_err(),
            WebhookError::Unauthorized
        );
        assert_eq!(
            authenticate(SECRET, Some(SECRET), b"not json")
                .unwrap_err()
                .http_status(),
            400
        );
        assert!(authenticate(SECRET, Some(SECRET), br#"{"id":"1","status":"sent"}"#).is_ok());
    }

    #[test]
    fn payload_secret_works_without_a_query() {
        let body = format!(r#"{{"id":"1","status":"sent","secret":"{SECRET}"}}"#);
        assert!(authenticate(SECRET, None, body.as_bytes()).is_ok());
        let forged = br#"{"id":"1","status":"sent","secret":"s3cret-Valuf"}"#;
        assert_eq!(
            authenticate(SECRET, None, forged).unwrap_err(),
            WebhookError::Unauthorized
        );
        assert_eq!(
            authenticate(SECRET, None, b"{oops").unwrap_err(),
            WebhookError::Unauthorized
        );
        assert_eq!(
            authenticate("", Some(""), b"{}").unwrap_err(),
            WebhookError::NotConfigured
        );
    }

    #[test]
    fn size_is_checked_first() {
        let big = vec![b' '; MAX_BODY + 1];
        let e = authenticate(SECRET, Some("wrong"), &big).unwrap_err();
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn reads_fonnte_fields_as_strings_or_numbers() {
        let obj = authenticate(
            SECRET,
            Some(SECRET),
            br#"{"device":"6282227097005","id":80367170,"stateid":"","status":"Sent","state":""}"#,
        )
        .unwrap();
        let u = status_update(&obj).unwrap();
        assert_eq!(u.id.as_deref(), Some("80367170"));
        assert_eq!(u.states, vec!["sent"]);
        let obj = authenticate(SECRET, Some(SECRET), br#"{"device":"1"}"#).unwrap();
        assert!(
            status_update(&obj)
                .unwrap_err()
                .to_string()
                .contains("\"id\"")
        );
    }

    #[test]
    fn connect_and_incoming() {
        let obj = authenticate(
            SECRET,
            Some(SECRET),
            br#"{"device":"628","status":"disconnect","timestamp":1764547200,"reason":"logout"}"#,
        )
        .unwrap();
        let e = device_event(&obj).unwrap();
        assert!(!e.connected);
        assert_eq!(e.at.unwrap().unix_timestamp(), 1764547200);
        let obj = authenticate(
            SECRET,
            Some(SECRET),
            br#"{"device":"628","sender":"6281234567890","message":"STOP","member":"","name":"Budi","timestamp":"1764547200","inboxid":"991"}"#,
        )
        .unwrap();
        let m = incoming_message(&obj).unwrap();
        assert_eq!(m.message, "STOP");
        assert!(!m.group);
        assert_eq!(m.inbox_id.as_deref(), Some("991"));
    }
}
