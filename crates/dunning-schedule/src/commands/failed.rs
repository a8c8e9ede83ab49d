//! `dunning-schedule failed` and `dunning-schedule retry`.

use dunning_core::Settings;
use dunning_core::mask::mask_ledger_recipient;
use dunning_store::ops::failed::{self, Selection};
use serde_json::json;
use time::OffsetDateTime;

use crate::app::{self, UsageError};

/// Lists failed deliveries (created on or after `since`, a local date), recipients masked.
pub fn list(settings: &Settings, since: Option<&str>, json: bool) -> anyhow::Result<()> {
    let since = since
        .map(|d| app::parse_date("--since", d))
        .transpose()?
        .map(|d| d.midnight().assume_offset(settings.zone.offset()));
    let mut conn = app::connect_migrated(settings)?;
    let rows = failed::list(&mut conn, since)?;
    // Reminders that went out without their payment link are not failed deliveries,
    // but the failure to get the link is: listed after them.
    let link_since = since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let masked = |r: &failed::Failed| {
        r.recipient.as_deref().map_or_else(
            || "-".to_owned(),
            |to| mask_ledger_recipient(&r.channel, to),
        )
    };
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "invoice": r.invoice_number,
                    "customer": r.customer_name,
                    "stage": r.stage,
                    "channel": r.channel,
                    "run_date": r.run_date.to_string(),
                    "recipient": masked(r),
                    "attempts": r.attempts,
                    "error": r.error,
                    "failed_at": r.failed_at.to_offset(settings.zone.offset()).to_string(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let links = super::payments::text(&mut conn, link_since, "!")?;
    if rows.is_empty() {
        println!("No failed deliveries.");
        print!("{links}");
        return Ok(());
    }
    println!(
        "{:>8}  {:<22} {:<5} {:<9} {:<16} {:>8}  {:<10} last error",
        "id", "invoice", "stage", "channel", "recipient", "attempts", "run date"
    );
    for r in &rows {
        let error = r.error.as_deref().unwrap_or("-").replace(['\r', '\n'], " ");
        println!(
            "{:>8}  {:<22} {:<5} {:<9} {:<16} {:>8}  {:<10} {error}",
            r.id,
            r.invoice_number,
            r.stage,
            r.channel,
            masked(r),
            r.attempts,
            r.run_date.to_string()
        );
    }
    println!(
        "{} failed deliveries. Re-send with `dunning-schedule retry <id>…` or `retry --all`.",
        rows.len()
    );
    print!("{links}");
    Ok(())
}

/// Puts failed deliveries back on the queue. Exit 1 when a given id was not retried.
pub fn retry(
    settings: &Settings,
    ids: &[i64],
    all: bool,
    channel: Option<&str>,
    queue: &str,
) -> anyhow::Result<()> {
    if !all && ids.is_empty() {
        return Err(UsageError("give notification ids (from `failed`) or --all".into()).into());
    }
    let mut conn = app::connect_migrated(settings)?;
    let selection = if all {
        Selection::All
    } else {
        Selection::Ids(ids)
    };
    let retried = failed::retry(&mut conn, selection, channel, queue)?;
    for r in &retried {
        println!("Queued {} ({}) again on queue {queue:?}", r.id, r.channel);
    }
    let mut not_retried = Vec::new();
    if !all {
        let statuses = failed::statuses(&mut conn, ids)?;
        for id in ids {
            if retried.iter().any(|r| r.id == *id) {
                continue;
            }
            let why = match statuses.iter().find(|(i, _)| i == id) {
                None => "no notification has this id".to_owned(),
                Some((_, status)) if status == "failed" => {
                    format!("not on channel {}", channel.unwrap_or("?"))
                }
                Some((_, status)) => format!("its status is {status}, not failed"),
            };
            println!("Not retried {id}: {why}");
            not_retried.push(*id);
        }
    }
    println!(
        "{} delivery(ies) back on the queue; the worker still skips an invoice that was paid meanwhile or already reminded on that channel today.",
        retried.len()
    );
    if not_retried.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} id(s) not retried: {}",
            not_retried.len(),
            not_retried
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}
