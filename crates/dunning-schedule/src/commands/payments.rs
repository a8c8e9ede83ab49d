//! What `stats` and `failed` say about payments: reminders that went out without
//! their payment link (`PAYMENT_LINK`: gateway down, key refused, …).

use diesel::pg::PgConnection;
use dunning_store::payments::{self, MissingLinks};
use serde_json::json;
use time::OffsetDateTime;

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
