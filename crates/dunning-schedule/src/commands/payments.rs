//! What `doctor`, `stats` and `failed` say about payments: the gateway's credentials,
//! reminders that went out without their payment link, flagged payments (unknown
//! order, underpaid, wrong currency, …) and invoices paid at the gateway that the
//! billing source still has unpaid.

use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_pay::{LinkMode, Links, PaymentSettings};
use dunning_source::{Recheck, SourceConfig, Status};
use dunning_store::payments::{self, MissingLinks};
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// How far back "paid at the gateway, not yet in billing" looks, and how many
/// invoices it asks billing about at most.
const AWAITING_DAYS: i64 = 35;
const AWAITING_MAX: i64 = 100;

/// Lines for `stats` and `failed` (empty when every reminder since `since` carried
/// its link).
pub fn text(conn: &mut PgConnection, since: OffsetDateTime, mark: &str) -> anyhow::Result<String> {
    let m = payments::missing_links(conn, since)?;
    if m.count == 0 {
        return Ok(String::new());
    }
    Ok(format!(
        "{mark} Reminders sent WITHOUT their payment link: {} (latest {}: {}); check the gateway with `dunning-schedule doctor`\n",
        m.count,
        m.latest_invoice.as_deref().unwrap_or("-"),
        m.latest_error
            .as_deref()
            .unwrap_or("-")
            .replace(['\r', '\n'], " ")
    ))
}

/// The same for `--json`.
pub fn json(conn: &mut PgConnection, since: OffsetDateTime) -> anyhow::Result<serde_json::Value> {
    let MissingLinks {
        count,
        latest_error,
        latest_invoice,
    } = payments::missing_links(conn, since)?;
    Ok(json!({
        "count": count,
        "latest_invoice": latest_invoice,
        "latest_error": latest_error,
    }))
}

/// Invoices a gateway payment marked paid that the billing source still has unpaid:
/// `None` without a billing source (billing reads Dunning's tables then); `Err` with
/// the reason when the source cannot be asked.
pub fn awaiting_billing(settings: &Settings, conn: &mut PgConnection) -> anyhow::Result<Awaiting> {
    let Some(cfg) = SourceConfig::from_env()? else {
        return Ok(None);
    };
    let since = OffsetDateTime::now_utc() - Duration::days(AWAITING_DAYS);
    let candidates = payments::gateway_paid_from_billing(conn, since, AWAITING_MAX)?;
    let mut recheck = Recheck::new(cfg, settings.zone.offset());
    let mut waiting = Vec::new();
    for c in candidates {
        match recheck.invoice_status(&c.number) {
            Ok(Some(Status::Unpaid)) => waiting.push(c.number),
            Ok(_) => {}
            Err(e) => return Ok(Some(Err(e.to_string()))),
        }
    }
    Ok(Some(Ok(waiting)))
}

/// One `doctor` line: (name, ok, warn, detail, fix).
pub type DoctorLine = (&'static str, bool, bool, String, Option<String>);

/// `doctor`'s payment checks: the link mode and, for a gateway, one cheap
/// authenticated call with its key (Xendit `GET /balance`, Midtrans Core
/// `GET /v2/{order}/status`, Tripay `GET /merchant/payment-channel`); the callback
/// secret's presence; then, with the database, flagged payments and invoices paid at
/// the gateway that billing has not caught up with.
pub fn doctor(settings: &Settings, conn: Option<&mut PgConnection>) -> Vec<DoctorLine> {
    let mut out: Vec<DoctorLine> = Vec::new();
    let pay = match PaymentSettings::from_env() {
        Ok(p) => p,
        Err(e) => {
            out.push((
                "Payment links",
                false,
                false,
                e.to_string(),
                Some("fix the variable it names in .env".into()),
            ));
            return out;
        }
    };
    match &pay.link {
        LinkMode::None => out.push((
            "Payment links",
            true,
            false,
            "PAYMENT_LINK=none: reminders carry no payment link".into(),
            None,
        )),
        LinkMode::Template(t) => out.push((
            "Payment links",
            true,
            false,
            format!("PAYMENT_LINK=template: {t} (billing's own invoices.payment_url wins)"),
            None,
        )),
        LinkMode::Gateway(g) => {
            match Links::new(&pay).check_credentials() {
                Some(Ok(summary)) => out.push((
                    "Payment gateway",
                    true,
                    false,
                    format!("{summary} (an authenticated read, nothing created)"),
                    None,
                )),
                Some(Err(e)) => out.push((
                    "Payment gateway",
                    false,
                    false,
                    e.to_string(),
                    Some(format!(
                        "check the {g} key and API URL in .env (sandbox keys need the sandbox URL); until then reminders go out without a link"
                    )),
                )),
                None => {}
            }
            let (var, missing) = match g {
                dunning_pay::Gateway::Xendit => (
                    "XENDIT_CALLBACK_TOKEN",
                    pay.xendit.callback_token.is_empty(),
                ),
                dunning_pay::Gateway::Midtrans => {
                    ("MIDTRANS_SERVER_KEY", pay.midtrans.server_key.is_empty())
                }
                dunning_pay::Gateway::Tripay => {
                    ("TRIPAY_PRIVATE_KEY", pay.tripay.private_key.is_empty())
                }
            };
            if missing {
                out.push((
                    "Payment callbacks",
                    false,
                    false,
                    format!("{var} is not set: dunning-web refuses every {g} callback"),
                    Some(format!("set {var} in .env and restart dunning-web")),
                ));
            }
        }
    }
    let Some(conn) = conn else {
        return out;
    };
    match payments::flagged_payments(conn, 20) {
        Ok(flagged) if flagged.is_empty() => {
            out.push(("Payments", true, false, "no flagged payment".into(), None));
        }
        Ok(flagged) => {
            let lines: Vec<String> = flagged
                .iter()
                .map(|f| {
                    format!(
                        "{} {} order {} ({}) Rp {} {}: {}",
                        f.gateway,
                        f.reference,
                        f.order_id,
                        f.invoice_number.as_deref().unwrap_or("no such invoice"),
                        f.amount,
                        f.currency,
                        f.flag
                    )
                })
                .collect();
            out.push((
                "Payments",
                true,
                true,
                format!(
                    "{} flagged payment(s), NOT marked paid (latest first):\n     {}",
                    flagged.len(),
                    lines.join("\n     ")
                ),
                Some("check each with the gateway's dashboard; an underpaid or unknown payment needs a refund or an `invoice paid` by hand".into()),
            ));
        }
        Err(e) => out.push((
            "Payments",
            false,
            false,
            e.to_string(),
            Some("check the database connection".into()),
        )),
    }
    match awaiting_billing(settings, conn).map_err(|e| e.to_string()) {
        Ok(None) => {}
        Ok(Some(Ok(waiting))) if waiting.is_empty() => out.push((
            "Paid at the gateway",
            true,
            false,
            "billing has every gateway payment".into(),
            None,
        )),
        Ok(Some(Ok(waiting))) => out.push((
            "Paid at the gateway",
            true,
            true,
            format!(
                "{} invoice(s) paid at the gateway, not yet in billing: {}",
                waiting.len(),
                waiting.join(", ")
            ),
            Some("record these payments in the billing application (Dunning keeps them paid meanwhile and sends no reminder)".into()),
        )),
        Ok(Some(Err(e))) | Err(e) => out.push((
            "Paid at the gateway",
            false,
            false,
            format!("billing could not be asked: {e}"),
            Some("see the billing source check above".into()),
        )),
    }
    out
}

/// Invoices paid at the gateway not yet in billing: `None` without a billing source,
/// `Err` when it could not be asked.
pub type Awaiting = Option<Result<Vec<String>, String>>;

/// `stats`' payment counts: flagged payments by flag, and [`Awaiting`].
pub type PaymentCounts = (Vec<(String, i64)>, Awaiting);

/// `stats`' payment counts: flagged payments by flag and, with a billing source,
/// invoices paid at the gateway not yet in billing.
pub fn stats(settings: &Settings, conn: &mut PgConnection) -> anyhow::Result<PaymentCounts> {
    Ok((
        payments::flagged_counts(conn)?,
        awaiting_billing(settings, conn)?,
    ))
}

/// `stats` text for [`stats`].
pub fn stats_text(counts: &PaymentCounts, warn: &str) -> String {
    let mut out = String::new();
    let (flagged, awaiting) = counts;
    if !flagged.is_empty() {
        let parts: Vec<String> = flagged.iter().map(|(f, n)| format!("{f} {n}")).collect();
        out.push_str(&format!(
            "{warn} Flagged payments (not marked paid): {}; `dunning-schedule doctor` lists them\n",
            parts.join(", ")
        ));
    }
    match awaiting {
        Some(Ok(w)) if !w.is_empty() => out.push_str(&format!(
            "{warn} Paid at the gateway, not yet in billing: {}\n",
            w.len()
        )),
        Some(Err(e)) => out.push_str(&format!(
            "{warn} Paid at the gateway, not yet in billing: unknown (billing could not be asked: {e})\n"
        )),
        _ => {}
    }
    out
}

/// `stats --json` for [`stats`].
pub fn stats_json(counts: &PaymentCounts) -> serde_json::Value {
    let (flagged, awaiting) = counts;
    let flagged: serde_json::Map<String, serde_json::Value> =
        flagged.iter().map(|(f, n)| (f.clone(), json!(n))).collect();
    json!({
        "flagged": flagged,
        "paid_at_gateway_not_in_billing": match awaiting {
            None => serde_json::Value::Null,
            Some(Ok(w)) => json!(w.len()),
            Some(Err(e)) => json!({ "error": e }),
        },
    })
}
