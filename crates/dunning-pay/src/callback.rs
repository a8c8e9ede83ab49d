//! What a verified callback says, and whether it pays its invoice. Pure.
//!
//! Each `parse_*` function is called only after the request was authenticated
//! ([`crate::verify`]). For Midtrans, whose signature is inside the JSON,
//! [`midtrans_auth_fields`] reads only the four signed fields first; nothing else
//! of the body is read or stored until [`crate::verify::midtrans_signature_ok`]
//! accepted them.

use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, PrimitiveDateTime};

use dunning_store::payments::PaymentInvoice;

use crate::config::Gateway;

/// A callback body that is not what the gateway sends.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{gateway} callback is malformed: {problem}")]
pub struct Malformed {
    pub gateway: Gateway,
    pub problem: String,
}

/// One verified callback, reduced to what Dunning records.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub gateway: Gateway,
    /// The gateway's id of the payment (idempotency key).
    pub reference: String,
    /// Our order id (the invoice number, maybe with a `~N` suffix).
    pub order_id: String,
    /// The gateway's status word, as sent.
    pub status: String,
    /// True when this status means the money arrived.
    pub paid: bool,
    /// Whole rupiah paid (fractions rounded down).
    pub amount: i64,
    pub currency: String,
    /// When the gateway says it was paid, if it says.
    pub paid_at: Option<OffsetDateTime>,
    /// The whole body.
    pub raw: Value,
}

fn malformed(gateway: Gateway, problem: impl Into<String>) -> Malformed {
    Malformed {
        gateway,
        problem: problem.into(),
    }
}

fn object(gateway: Gateway, body: &[u8]) -> Result<serde_json::Map<String, Value>, Malformed> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(gateway, "the body is not a JSON object")),
        Err(e) => Err(malformed(gateway, format!("the body is not JSON ({e})"))),
    }
}

fn text(
    map: &serde_json::Map<String, Value>,
    gateway: Gateway,
    field: &str,
) -> Result<String, Malformed> {
    match map.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(malformed(gateway, format!("`{field}` is missing"))),
    }
}

/// Whole rupiah from a JSON number or a decimal string ("150000.00"), rounded down.
pub fn rupiah(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
            if whole.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            whole.parse().ok()
        }
        _ => None,
    }
}

fn amount(
    map: &serde_json::Map<String, Value>,
    gateway: Gateway,
    fields: &[&str],
) -> Result<i64, Malformed> {
    fields
        .iter()
        .find_map(|f| map.get(*f).and_then(rupiah))
        .ok_or_else(|| {
            malformed(
                gateway,
                format!("`{}` is missing or not an amount", fields[0]),
            )
        })
}

/// Xendit invoice callback: `id`, `external_id`, `status` (`PAID` counts),
/// `paid_amount` (else `amount`), `currency`, `paid_at` (RFC 3339).
pub fn parse_xendit(body: &[u8]) -> Result<Notice, Malformed> {
    let g = Gateway::Xendit;
    let map = object(g, body)?;
    let status = text(&map, g, "status")?;
    Ok(Notice {
        gateway: g,
        reference: text(&map, g, "id")?,
        order_id: text(&map, g, "external_id")?,
        paid: status == "PAID" || status == "SETTLED",
        amount: amount(&map, g, &["paid_amount", "amount"])?,
        currency: text(&map, g, "currency").unwrap_or_else(|_| "IDR".into()),
        paid_at: map
            .get("paid_at")
            .and_then(Value::as_str)
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
        status,
        raw: Value::Object(map),
    })
}

/// The four fields of a Midtrans notification that its `signature_key` signs.
#[derive(Debug, Deserialize)]
pub struct MidtransAuth {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    pub signature_key: String,
}

/// Reads only `order_id`, `status_code`, `gross_amount` and `signature_key` (every
/// other field is skipped unread), for the signature check.
pub fn midtrans_auth_fields(body: &[u8]) -> Result<MidtransAuth, Malformed> {
    serde_json::from_slice(body).map_err(|e| {
        malformed(
            Gateway::Midtrans,
            format!(
                "order_id, status_code, gross_amount and signature_key are needed as strings ({e})"
            ),
        )
    })
}

/// Midtrans notification (after its signature was checked): `transaction_status`
/// `settlement`, or `capture` with `fraud_status` `accept`, counts; the reference is
/// `transaction_id`; `settlement_time` is Jakarta time.
pub fn parse_midtrans(body: &[u8]) -> Result<Notice, Malformed> {
    let g = Gateway::Midtrans;
    let map = object(g, body)?;
    let status = text(&map, g, "transaction_status")?;
    let fraud = map
        .get("fraud_status")
        .and_then(Value::as_str)
        .unwrap_or("");
    let paid = status == "settlement" || (status == "capture" && fraud == "accept");
    let order_id = text(&map, g, "order_id")?;
    let when = map
        .get("settlement_time")
        .or_else(|| map.get("transaction_time"))
        .and_then(Value::as_str)
        .and_then(|s| {
            PrimitiveDateTime::parse(
                s,
                format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
            )
            .ok()
        })
        .map(|t| t.assume_offset(offset!(+7)));
    Ok(Notice {
        gateway: g,
        reference: text(&map, g, "transaction_id").unwrap_or_else(|_| order_id.clone()),
        order_id,
        paid,
        amount: amount(&map, g, &["gross_amount"])?,
        currency: text(&map, g, "currency").unwrap_or_else(|_| "IDR".into()),
        paid_at: if paid { when } else { None },
        status,
        raw: Value::Object(map),
    })
}

/// Tripay callback (after its HMAC was checked): `reference`, `merchant_ref`,
/// `status` (`PAID` counts), `total_amount`, `paid_at` (unix seconds). Tripay pays in
/// rupiah only.
pub fn parse_tripay(body: &[u8]) -> Result<Notice, Malformed> {
    let g = Gateway::Tripay;
    let map = object(g, body)?;
    let status = text(&map, g, "status")?;
    Ok(Notice {
        gateway: g,
        reference: text(&map, g, "reference")?,
        order_id: text(&map, g, "merchant_ref")?,
        paid: status == "PAID",
        amount: amount(&map, g, &["total_amount", "amount_received"])?,
        currency: "IDR".into(),
        paid_at: map
            .get("paid_at")
            .and_then(Value::as_i64)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
        status,
        raw: Value::Object(map),
    })
}

/// Why a verified payment does not mark its invoice paid, or `None` when it does:
/// no invoice has its order id; it is not in rupiah; it pays less than the
/// invoice amount; the invoice is no longer unpaid (paid before, or void).
pub fn judge(notice: &Notice, invoice: Option<&PaymentInvoice>) -> Option<&'static str> {
    let Some(invoice) = invoice else {
        return Some("unknown_invoice");
    };
    if !notice.currency.eq_ignore_ascii_case("IDR") {
        Some("wrong_currency")
    } else if notice.amount < invoice.amount {
        Some("underpaid")
    } else if invoice.status != "unpaid" {
        Some("invoice_not_unpaid")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(amount: i64, status: &str) -> PaymentInvoice {
        PaymentInvoice {
            id: 1,
            number: "INV-1".into(),
            amount,
            status: status.into(),
        }
    }

    #[test]
    fn rupiah_rounds_fractions_down() {
        assert_eq!(rupiah(&Value::from("150000.00")), Some(150000));
        assert_eq!(rupiah(&Value::from("149999.99")), Some(149999));
        assert_eq!(rupiah(&serde_json::json!(150000)), Some(150000));
        assert_eq!(rupiah(&serde_json::json!(150000.5)), Some(150000));
        assert_eq!(rupiah(&Value::from("1e9")), None);
        assert_eq!(rupiah(&Value::Null), None);
    }

    #[test]
    fn midtrans_capture_counts_only_when_accepted() {
        let body = |status: &str, fraud: &str| {
            serde_json::json!({"order_id":"INV-1","status_code":"200","gross_amount":"150000.00",
                "transaction_status":status,"fraud_status":fraud,"transaction_id":"t-1","currency":"IDR"})
            .to_string()
        };
        assert!(
            parse_midtrans(body("settlement", "accept").as_bytes())
                .unwrap()
                .paid
        );
        assert!(
            parse_midtrans(body("capture", "accept").as_bytes())
                .unwrap()
                .paid
        );
        assert!(
            !parse_midtrans(body("capture", "challenge").as_bytes())
                .unwrap()
                .paid
        );
        assert!(
            !parse_midtrans(body("pending", "accept").as_bytes())
                .unwrap()
                .paid
        );
    }

    #[test]
    fn judge_flags_what_must_not_mark_paid() {
        let mut n = parse_tripay(
            br#"{"reference":"T1","merchant_ref":"INV-1","status":"PAID","total_amount":150000}"#,
        )
        .unwrap();
        assert_eq!(judge(&n, Some(&invoice(150000, "unpaid"))), None);
        assert_eq!(judge(&n, None), Some("unknown_invoice"));
        assert_eq!(
            judge(&n, Some(&invoice(150001, "unpaid"))),
            Some("underpaid")
        );
        assert_eq!(
            judge(&n, Some(&invoice(150000, "paid"))),
            Some("invoice_not_unpaid")
        );
        n.currency = "USD".into();
        assert_eq!(
            judge(&n, Some(&invoice(150000, "unpaid"))),
            Some("wrong_currency")
        );
    }
}
