//! Checking the source's rows: lenient where there is no doubt (`150000.00`, a
//! DATETIME due date), strict elsewhere, and the same contact rules as `import`.
//! Pure functions: no I/O.

use dunning_core::contact::{normalize_phone, validate_email};
use dunning_store::ops::import::{CustomerRow, InvoiceRow};
use time::{Date, PrimitiveDateTime, Time};

use crate::client::{Header, Row};

/// A row that cannot be mirrored, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    /// The row's key (external id or invoice number), or its position when it has none.
    pub key: String,
    pub reasons: Vec<String>,
}

fn text<'r>(h: &Header, row: &'r Row, column: &str) -> Option<&'r str> {
    h.get(row, column).map(str::trim).filter(|s| !s.is_empty())
}

/// A customer row; `position` (1-based) names a row without an external id.
pub fn customer(h: &Header, row: &Row, position: u64) -> Result<CustomerRow, Bad> {
    let mut reasons = Vec::new();
    let external_id = text(h, row, "external_id");
    if external_id.is_none() {
        reasons.push(
            "external_id is NULL or empty: every customer needs the billing system's id".into(),
        );
    }
    let name = text(h, row, "name");
    if name.is_none() {
        reasons.push("name is NULL or empty".to_owned());
    }
    let email = text(h, row, "email").map(str::to_owned);
    if let Some(e) = &email
        && let Err(err) = validate_email(e)
    {
        reasons.push(format!("bad email: {err}"));
    }
    let phone = match text(h, row, "phone") {
        None => None,
        Some(p) => match normalize_phone(p) {
            Ok(n) => Some(n),
            Err(err) => {
                reasons.push(format!("bad phone: {err}"));
                None
            }
        },
    };
    match (external_id, name) {
        (Some(id), Some(name)) if reasons.is_empty() => Ok(CustomerRow {
            external_id: Some(id.to_owned()),
            name: name.to_owned(),
            email,
            phone,
        }),
        _ => Err(Bad {
            key: external_id.map_or_else(|| format!("row {position}"), str::to_owned),
            reasons,
        }),
    }
}

/// An invoice row and its `updated_at` (when the query returns one).
pub fn invoice(
    h: &Header,
    row: &Row,
    position: u64,
) -> Result<(InvoiceRow, Option<PrimitiveDateTime>), Bad> {
    let mut reasons = Vec::new();
    let number = text(h, row, "number");
    if number.is_none() {
        reasons.push("number is NULL or empty".to_owned());
    }
    let customer = text(h, row, "customer_external_id");
    if customer.is_none() {
        reasons.push("customer_external_id is NULL or empty".to_owned());
    }
    let amount = match text(h, row, "amount") {
        None => {
            reasons.push("amount is NULL".to_owned());
            None
        }
        Some(a) => amount(a).map_err(|e| reasons.push(e)).ok(),
    };
    let due_date = match text(h, row, "due_date") {
        None => {
            reasons.push("due_date is NULL".to_owned());
            None
        }
        Some(d) => date_time(d)
            .map(|dt| dt.date())
            .map_err(|e| reasons.push(format!("due_date: {e}")))
            .ok(),
    };
    let status = match text(h, row, "status")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some(s @ ("unpaid" | "paid" | "void")) => Some(s.to_owned()),
        other => {
            reasons.push(format!(
                "bad status {:?}: the query must return unpaid, paid or void (map yours with CASE … END AS status)",
                other.unwrap_or("NULL")
            ));
            None
        }
    };
    let payment_url = text(h, row, "payment_url").map(str::to_owned);
    if let Some(u) = &payment_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        reasons.push(format!(
            "bad payment_url {u:?}: it must start with https://"
        ));
    }
    let updated_at = match text(h, row, "updated_at") {
        None => None,
        Some(u) => date_time(u)
            .map_err(|e| reasons.push(format!("updated_at: {e}")))
            .ok(),
    };
    match (number, customer, amount, due_date, status) {
        (Some(number), Some(customer), Some(amount), Some(due_date), Some(status))
            if reasons.is_empty() =>
        {
            Ok((
                InvoiceRow {
                    number: number.to_owned(),
                    customer_external_id: customer.to_owned(),
                    amount,
                    due_date,
                    status,
                    payment_url,
                },
                updated_at,
            ))
        }
        _ => Err(Bad {
            key: number.map_or_else(|| format!("row {position}"), str::to_owned),
            reasons,
        }),
    }
}

/// A customer row's `updated_at`, if any and readable.
pub fn updated_at(h: &Header, row: &Row) -> Option<PrimitiveDateTime> {
    text(h, row, "updated_at").and_then(|u| date_time(u).ok())
}

/// Whole rupiah: an integer, or a DECIMAL whose fraction is zero (`150000.00`).
pub fn amount(raw: &str) -> Result<i64, String> {
    let s = raw.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = int.strip_prefix('-').unwrap_or(int);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("bad amount {raw:?}: not a number"));
    }
    if frac.bytes().any(|b| b != b'0') {
        return Err(format!(
            "amount {raw} has a fraction of a rupiah: amounts are whole rupiah (round it in the query, e.g. ROUND(amount) AS amount)"
        ));
    }
    if int.starts_with('-') && digits.bytes().any(|b| b != b'0') {
        return Err(format!("negative amount {raw}: amounts are 0 or more"));
    }
    digits
        .parse()
        .map_err(|_| format!("bad amount {raw:?}: too large"))
}

/// A DATE, DATETIME or TIMESTAMP as text (already in `DUNNING_TIMEZONE`: the
/// session's time zone), with optional fraction and offset, which are dropped.
pub fn date_time(raw: &str) -> Result<PrimitiveDateTime, String> {
    let s = raw.trim();
    let bad = || {
        format!(
            "{raw:?} is not a date: return a DATE, DATETIME or TIMESTAMP (YYYY-MM-DD[ HH:MM:SS])"
        )
    };
    let date_part = s.get(..10).ok_or_else(bad)?;
    let date = Date::parse(
        date_part,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| bad())?;
    let rest = s[10..].trim_start_matches(['T', ' ']);
    let time = if rest.is_empty() {
        Time::MIDNIGHT
    } else {
        let hms = rest.get(..8).ok_or_else(bad)?;
        Time::parse(
            hms,
            time::macros::format_description!("[hour]:[minute]:[second]"),
        )
        .map_err(|_| bad())?
    };
    Ok(PrimitiveDateTime::new(date, time))
}

/// `2025-11-18 10:00:00`: how a watermark is stored and sent back to the source.
pub fn watermark_text(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn amounts_whole_rupiah_with_zero_fraction() {
        assert_eq!(amount("150000"), Ok(150_000));
        assert_eq!(amount("150000.00"), Ok(150_000));
        assert_eq!(amount("0.0"), Ok(0));
        assert!(amount("150000.50").unwrap_err().contains("fraction"));
        assert!(amount("-5").unwrap_err().contains("negative"));
        assert!(amount("1e5").is_err());
        assert!(amount("").is_err());
        assert!(
            amount("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn dates_from_date_datetime_and_timestamp() {
        assert_eq!(
            date_time("2025-11-18").unwrap().date(),
            date!(2025 - 11 - 18)
        );
        assert_eq!(
            date_time("2025-11-18 23:59:59").unwrap(),
            datetime!(2025-11-18 23:59:59)
        );
        assert_eq!(
            date_time("2025-11-18 23:59:59.123+07").unwrap(),
            datetime!(2025-11-18 23:59:59)
        );
        assert_eq!(
            date_time("2025-11-18T01:02:03").unwrap(),
            datetime!(2025-11-18 01:02:03)
        );
        assert!(date_time("0000-00-00").is_err());
        assert!(date_time("18/11/2025").is_err());
        assert_eq!(
            watermark_text(datetime!(2025-01-02 03:04:05)),
            "2025-01-02 03:04:05"
        );
    }

    fn header(cols: &[&str]) -> Header {
        crate::client::header_for_tests(cols)
    }

    #[test]
    fn invoice_rows_are_checked_with_every_reason() {
        let h = header(&[
            "number",
            "customer_external_id",
            "amount",
            "due_date",
            "status",
        ]);
        let row =
            |v: [Option<&str>; 5]| -> Row { v.iter().map(|x| x.map(str::to_owned)).collect() };
        let (inv, up) = invoice(
            &h,
            &row([
                Some("INV-1"),
                Some("7"),
                Some("150000.00"),
                Some("2025-11-18 00:00:00"),
                Some("Unpaid"),
            ]),
            1,
        )
        .unwrap();
        assert_eq!(
            (inv.amount, inv.due_date, inv.status.as_str(), up),
            (150_000, date!(2025 - 11 - 18), "unpaid", None)
        );
        let bad = invoice(
            &h,
            &row([
                Some("INV-2"),
                None,
                Some("150000.50"),
                Some("soon"),
                Some("lunas"),
            ]),
            2,
        )
        .unwrap_err();
        assert_eq!(bad.key, "INV-2");
        assert_eq!(bad.reasons.len(), 4, "{bad:?}");
        let bad = invoice(
            &h,
            &row([None, Some("7"), Some("1"), Some("2025-01-01"), Some("paid")]),
            3,
        )
        .unwrap_err();
        assert_eq!(bad.key, "row 3");
    }

    #[test]
    fn customer_rows_need_a_name_and_valid_contacts() {
        let h = header(&["external_id", "name", "email", "phone"]);
        let row =
            |v: [Option<&str>; 4]| -> Row { v.iter().map(|x| x.map(str::to_owned)).collect() };
        let c = customer(
            &h,
            &row([
                Some("7"),
                Some("Budi"),
                Some("budi@example.id"),
                Some("0857-0721-1646"),
            ]),
            1,
        )
        .unwrap();
        assert_eq!(c.phone.as_deref(), Some("6285707211646"));
        let bad = customer(
            &h,
            &row([Some("8"), None, Some("not-an-email"), Some("12")]),
            2,
        )
        .unwrap_err();
        assert_eq!(bad.key, "8");
        assert_eq!(bad.reasons.len(), 3, "{bad:?}");
        assert!(bad.reasons[0].contains("name is NULL"));
    }
}
