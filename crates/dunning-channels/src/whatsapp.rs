//! WhatsApp: the JSON-lines outbox and the Fonnte API.
//!
//! Fonnte answers HTTP 200 for failures too; the JSON body's `status` decides, and a
//! failure's `reason` says whether to retry (see `classify_reason`), following
//! Fonnte's API documentation (docs.fonnte.com: send, device, the error reasons).

use std::path::PathBuf;
use std::time::Duration;

use dunning_core::config::{FonnteSettings, Secret, WhatsAppDriver};
use dunning_core::contact::normalize_phone;
use dunning_core::mask::mask_phone;
use dunning_core::{Channel, Settings};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fix::{
    FONNTE_URL as FIX_URL, WHATSAPP_DEVICE as FIX_DEVICE, WHATSAPP_QUOTA as FIX_QUOTA,
    WHATSAPP_TOKEN as FIX_TOKEN,
};
use crate::outbox::{append_line, outbox_error};
use crate::{Delivered, OutgoingMessage, PauseKind, SendError, Sender, fix};

/// The most of a Fonnte answer we read; real answers are a few hundred bytes.
const BODY_LIMIT: u64 = 64 * 1024;
/// Idle keep-alive connections kept for reuse (at least the worker's threads).
const IDLE_CONNECTIONS: usize = 64;
/// The shortest timeout used, whatever `FONNTE_TIMEOUT` says.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The state of the Fonnte device behind `FONNTE_TOKEN` (`POST /device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The device's WhatsApp number, e.g. `6285707211646`.
    pub device: String,
    /// True when Fonnte reports `device_status: connect`.
    pub connected: bool,
    /// Messages left, as Fonnte reports it (a string, e.g. `"78"`).
    pub quota: Option<String>,
    /// The package name, e.g. `Free` or `Reguler`.
    pub package: Option<String>,
    /// When the package expires, as Fonnte writes it (e.g. `18 November 2029`).
    pub expired: Option<String>,
}

pub(crate) fn sender(settings: &Settings) -> Result<Box<dyn Sender>, SendError> {
    match &settings.whatsapp {
        WhatsAppDriver::Log => Ok(Box::new(JsonlOutbox {
            path: settings.outbox_dir.join("whatsapp.jsonl"),
        })),
        WhatsAppDriver::Fonnte(fonnte) => Ok(Box::new(Fonnte::new(fonnte))),
    }
}

/// Asks Fonnte about the device behind `FONNTE_TOKEN` (`POST {FONNTE_URL}/device`).
/// A rejected token is [`SendError::ChannelWide`]; with `WHATSAPP_DRIVER=log` there
/// is no device, which is reported as [`SendError::ChannelWide`] too.
pub fn fonnte_device(settings: &Settings) -> Result<DeviceStatus, SendError> {
    let WhatsAppDriver::Fonnte(fonnte) = &settings.whatsapp else {
        return Err(SendError::channel_wide(
            PauseKind::Config,
            "WHATSAPP_DRIVER=log: WhatsApp messages go to the outbox, there is no Fonnte device to check",
            fix::WHATSAPP_LOG_DRIVER,
        ));
    };
    let client = Fonnte::new(fonnte);
    let body = client.post("/device", &[])?;
    match status_of(&body) {
        Some(true) => {
            let text = |key: &str| get_ci(&body, key).and_then(scalar_text);
            let device_status = text("device_status").unwrap_or_default();
            Ok(DeviceStatus {
                device: text("device").unwrap_or_default(),
                connected: matches!(
                    device_status.to_ascii_lowercase().as_str(),
                    "connect" | "connected"
                ),
                quota: text("quota"),
                package: text("package"),
                expired: text("expired"),
            })
        }
        Some(false) => Err(failure(&body)),
        None => Err(no_status(&body)),
    }
}

/// Appends one JSON line per message to `outbox_dir/whatsapp.jsonl`.
struct JsonlOutbox {
    path: PathBuf,
}

impl Sender for JsonlOutbox {
    fn channel(&self) -> Channel {
        Channel::WhatsApp
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        let target = target(msg.recipient)?;
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let line = serde_json::json!({
            "time": time,
            "target": target,
            "message": msg.body,
            "reference": msg.reference,
        })
        .to_string();
        append_line(&self.path, &line).map_err(|e| outbox_error(&self.path, &e))?;
        log::info!(
            "whatsapp {} to {} written to {}",
            msg.reference,
            mask_phone(&target),
            self.path.display()
        );
        Ok(Delivered {
            provider_message_id: None,
        })
    }
}

fn target(recipient: &str) -> Result<String, SendError> {
    normalize_phone(recipient).map_err(|e| SendError::Permanent(e.to_string()))
}

/// The Fonnte API client. The token lives in a `Secret` and is only ever put into
/// the `Authorization` header.
struct Fonnte {
    agent: ureq::Agent,
    url: String,
    token: Secret,
    timeout: Duration,
}

impl Fonnte {
    fn new(settings: &FonnteSettings) -> Self {
        let timeout = settings.timeout.max(MIN_TIMEOUT);
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // A redirect means a wrong FONNTE_URL; following it would also resend the token.
            .max_redirects(0)
            .user_agent(concat!("dunning/", env!("CARGO_PKG_VERSION")))
            // Keep-alive: one connection per sending thread is reused, instead of a
            // TCP (and TLS) handshake per message. Idle ones are dropped after 15 s,
            // well before web servers close them.
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .max_idle_age(Duration::from_secs(15))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        Fonnte {
            agent,
            url: settings.url.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
            timeout,
        }
    }

    /// POSTs `form` to `{url}{path}` and returns the JSON object Fonnte answered, or
    /// the classified reason there is none.
    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Map<String, Value>, SendError> {
        let url = format!("{}{path}", self.url);
        let response = self
            .agent
            .post(&url)
            .header("Authorization", self.token.expose())
            .send_form(form.iter().copied())
            .map_err(|e| self.transport_error(&url, e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let bytes = body
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => SendError::Transient(format!(
                    "Fonnte ({url}) answered HTTP {status} with more than {} KiB, which is not a Fonnte API answer; check FONNTE_URL",
                    BODY_LIMIT / 1024
                )),
                e => self.transport_error(&url, e),
            })?;
        let parsed = serde_json::from_slice::<Value>(&bytes).ok();
        if let Some(Value::Object(map)) = parsed {
            // Fonnte reports failures in the body, usually with HTTP 200; a body with a
            // status decides even on another HTTP code.
            if status_of(&map).is_some() || (200..300).contains(&status) {
                return Ok(map);
            }
        }
        Err(http_failure(&url, status, location.as_deref(), &bytes))
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> SendError {
        match e {
            ureq::Error::Timeout(_) => SendError::Transient(format!(
                "Fonnte ({url}) did not answer within {}s (FONNTE_TIMEOUT)",
                self.timeout.as_secs_f64()
            )),
            ureq::Error::BadUri(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::RequireHttpsOnly(_) => SendError::channel_wide(
                PauseKind::Config,
                format!("FONNTE_URL={:?} cannot be used: {e}", self.url),
                FIX_URL,
            ),
            ureq::Error::Http(_) => SendError::channel_wide(
                PauseKind::Config,
                // Never format the header value: it is the token.
                "the Fonnte request could not be built; FONNTE_TOKEN or FONNTE_URL contains characters not allowed in HTTP (a line break or space?)",
                fix::WHATSAPP_TOKEN_CHARACTERS,
            ),
            e => SendError::Transient(format!("cannot reach Fonnte ({url}): {e}")),
        }
    }
}

impl Sender for Fonnte {
    fn channel(&self) -> Channel {
        Channel::WhatsApp
    }

    fn send(&self, msg: &OutgoingMessage<'_>) -> Result<Delivered, SendError> {
        let target = target(msg.recipient)?;
        if msg.body.trim().is_empty() {
            return Err(SendError::Permanent(format!(
                "the WhatsApp message for {} is empty: check the template",
                msg.reference
            )));
        }
        let result = self
            .post(
                "/send",
                &[
                    ("target", target.as_str()),
                    ("message", msg.body),
                    // The number is already international; stop Fonnte rewriting it.
                    ("countryCode", "0"),
                ],
            )
            .and_then(|body| match status_of(&body) {
                Some(true) => Ok(Delivered {
                    provider_message_id: get_ci(&body, "id").and_then(first_id),
                }),
                Some(false) => Err(failure(&body)),
                None => Err(no_status(&body)),
            });
        match &result {
            Ok(d) => log::info!(
                "whatsapp {} to {} queued by Fonnte as {}",
                msg.reference,
                mask_phone(&target),
                d.provider_message_id.as_deref().unwrap_or("(no id)")
            ),
            Err(e) => log::warn!(
                "whatsapp {} to {} not sent: {e}",
                msg.reference,
                mask_phone(&target)
            ),
        }
        result
    }
}

/// The value of `key`, matched case-insensitively (`status` or `Status`).
fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// `status` as a boolean: `true`, `"true"`, `1` (and their false forms).
fn status_of(map: &Map<String, Value>) -> Option<bool> {
    match get_ci(map, "status")? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `id` is an array with one entry per target; we send to one.
fn first_id(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) => items.first().and_then(scalar_text),
        v => scalar_text(v),
    }
}

fn failure(body: &Map<String, Value>) -> SendError {
    let reason = get_ci(body, "reason")
        .or_else(|| get_ci(body, "detail"))
        .or_else(|| get_ci(body, "message"))
        .and_then(scalar_text)
        .unwrap_or_default();
    classify_reason(&reason)
}

/// A JSON answer without a usable `status`: we cannot know whether the message was
/// queued, but no documented answer looks like this, so it is treated like an
/// unparsable body (transient).
fn no_status(body: &Map<String, Value>) -> SendError {
    SendError::Transient(format!(
        "Fonnte answered without a status: {}",
        snippet(Value::Object(body.clone()).to_string().as_bytes())
    ))
}

/// Maps a Fonnte `reason` to what the worker should do (Fonnte's documented reasons).
///
/// A `status:false` answer means Fonnte did not queue the message, but retrying it
/// blindly has produced duplicates elsewhere, so only `request timeout` is retried.
/// Reasons we do not know pause the channel rather than fail every following
/// message one by one or retry them.
fn classify_reason(reason: &str) -> SendError {
    let shown = single_line(reason);
    let r = shown.to_ascii_lowercase();
    let says = |needle: &str| r.contains(needle);
    if says("disconnected device") || says("device disconnected") || says("invalid device") {
        SendError::channel_wide(
            PauseKind::Device,
            format!("Fonnte: the WhatsApp device is disconnected ({shown})"),
            FIX_DEVICE,
        )
    } else if says("token invalid") || says("unknown token") || says("invalid token") {
        SendError::channel_wide(
            PauseKind::Token,
            format!("Fonnte rejected FONNTE_TOKEN ({shown})"),
            FIX_TOKEN,
        )
    } else if says("unknown user") {
        SendError::channel_wide(
            PauseKind::Token,
            format!("Fonnte does not know the account of this token ({shown})"),
            FIX_TOKEN,
        )
    } else if says("quota") {
        SendError::channel_wide(
            PauseKind::Quota,
            format!("Fonnte: the device has no quota left ({shown})"),
            FIX_QUOTA,
        )
    } else if says("target invalid") || says("invalid target") {
        SendError::Permanent(format!(
            "Fonnte rejected the WhatsApp number ({shown}): check the customer's number"
        ))
    } else if says("input invalid")
        || says("url invalid")
        || says("file format not supported")
        || says("file size")
        || says("json format invalid")
        || says("id required")
        || says("incorrect otp")
    {
        SendError::Permanent(format!(
            "Fonnte refused the request ({shown}); the message will not be retried"
        ))
    } else if says("request timeout") {
        SendError::Transient(format!("Fonnte: {shown}"))
    } else if r.is_empty() {
        SendError::channel_wide(
            PauseKind::Device,
            "Fonnte refused the message without giving a reason",
            fix::WHATSAPP_UNKNOWN_REASON,
        )
    } else {
        SendError::channel_wide(
            PauseKind::Device,
            format!("Fonnte refused the message with an unknown reason: {shown}"),
            fix::WHATSAPP_UNKNOWN_REASON,
        )
    }
}

/// An answer that is not a Fonnte JSON object: an HTTP error, an HTML page, nothing.
fn http_failure(url: &str, status: u16, location: Option<&str>, body: &[u8]) -> SendError {
    let what = if body.iter().all(u8::is_ascii_whitespace) {
        "an empty body".to_owned()
    } else {
        format!("a body that is not Fonnte JSON: {}", snippet(body))
    };
    match status {
        300..=399 => SendError::channel_wide(
            PauseKind::Config,
            format!(
                "Fonnte ({url}) answered HTTP {status}, a redirect to {}",
                location.unwrap_or("(nowhere)")
            ),
            FIX_URL,
        ),
        401 | 403 => SendError::channel_wide(
            PauseKind::Token,
            format!("Fonnte ({url}) answered HTTP {status} with {what}"),
            FIX_TOKEN,
        ),
        404 | 405 => SendError::channel_wide(
            PauseKind::Config,
            format!("Fonnte ({url}) answered HTTP {status}: no Fonnte API at this address"),
            FIX_URL,
        ),
        _ => SendError::Transient(format!("Fonnte ({url}) answered HTTP {status} with {what}")),
    }
}

/// The start of a body, on one line, for an error message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let mut s = single_line(&text);
    if body.len() > 200 {
        s.push('…');
    }
    s
}

fn single_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c == ' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn status_forms() {
        assert_eq!(status_of(&obj(r#"{"status":true}"#)), Some(true));
        assert_eq!(status_of(&obj(r#"{"Status":false}"#)), Some(false));
        assert_eq!(status_of(&obj(r#"{"status":"true"}"#)), Some(true));
        assert_eq!(status_of(&obj(r#"{"STATUS":" False "}"#)), Some(false));
        assert_eq!(status_of(&obj(r#"{"status":"maybe"}"#)), None);
        assert_eq!(status_of(&obj(r#"{"detail":"x"}"#)), None);
        // Both spellings at once: the documented `status` wins.
        assert_eq!(status_of(&obj(r#"{"Status":null,"status":1}"#)), Some(true));
        assert_eq!(
            status_of(&obj(r#"{"Status":true,"status":false}"#)),
            Some(false)
        );
    }

    #[test]
    fn ids() {
        assert_eq!(
            first_id(&serde_json::json!(["80367170", "2"])).as_deref(),
            Some("80367170")
        );
        assert_eq!(
            first_id(&serde_json::json!([80367170])).as_deref(),
            Some("80367170")
        );
        assert_eq!(first_id(&serde_json::json!([])), None);
    }

    #[test]
    fn undocumented_and_empty_reasons_pause_rather_than_fail_every_message() {
        // Every documented reason is classified in tests/whatsapp.rs, against the fake.
        for r in ["something new", ""] {
            assert!(
                matches!(classify_reason(r), SendError::ChannelWide { .. }),
                "{r:?}"
            );
        }
        assert!(classify_reason("request timeout").is_retryable());
    }

    #[test]
    fn fixes_carry_the_seed_advice() {
        let SendError::ChannelWide { fix, .. } =
            classify_reason("request invalid on disconnected device")
        else {
            panic!()
        };
        assert!(fix.contains("fonnte.com") && fix.contains("QR") && fix.contains("Connected"));
        let SendError::ChannelWide {
            fix,
            kind: PauseKind::Quota,
            ..
        } = classify_reason("insufficient quota")
        else {
            panic!()
        };
        assert!(fix.contains("upgrade") && fix.contains("monthly reset"));
        let SendError::ChannelWide { fix, .. } = classify_reason("token invalid") else {
            panic!()
        };
        assert!(fix.contains("FONNTE_TOKEN"));
    }
}
