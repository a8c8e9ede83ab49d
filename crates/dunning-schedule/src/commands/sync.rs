//! `dunning-schedule sync`, the sync before the daily run, and what `doctor` and
//! `stats` say about the billing source (`BILLING_DATABASE_URL`).

use std::io::IsTerminal;

use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_source::sync::SyncReport;
use dunning_source::{Source, SourceConfig, Timeouts};
use dunning_store::ops::mirror;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use time::OffsetDateTime;

use super::human_secs;
use crate::app::{self, UsageError};

/// The source's settings, or a usage error saying how to configure one.
fn config() -> anyhow::Result<Option<SourceConfig>> {
    Ok(SourceConfig::from_env()?)
}

/// `dunning-schedule sync [--full] [--json]`.
pub fn run(settings: &Settings, full: bool, json: bool) -> anyhow::Result<()> {
    let Some(cfg) = config()? else {
        return Err(UsageError(
            "BILLING_DATABASE_URL is not set: there is no billing source to sync; set it to your billing database (mysql://user:password@host:3306/db, read-only user) and write its two queries in billing.toml (see docs/examples/billing.toml)".into(),
        )
        .into());
    };
    let mut conn = app::connect_migrated(settings)?;
    let report = sync(settings, &cfg, &mut conn, full, !json)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Syncs before the daily run when a source is configured (`--no-sync` skips it).
/// Returns a line for the run's output; an error stops the run before it queues
/// anything from stale data.
pub fn before_run(
    settings: &Settings,
    conn: &mut PgConnection,
    quiet: bool,
) -> anyhow::Result<Option<String>> {
    let Some(cfg) = config()? else {
        return Ok(None);
    };
    let report = sync(settings, &cfg, conn, false, !quiet).map_err(|e| {
        e.context("billing sync failed, so nothing was queued (queueing from stale data could remind customers who have paid); fix the cause and run again, or run with --no-sync to queue from the mirror as it is")
    })?;
    if !quiet {
        for r in &report.rejected {
            println!("{}: {}: {}", r.query, r.key, r.reason);
        }
    }
    Ok(Some(summary(&report)))
}

fn sync(
    settings: &Settings,
    cfg: &SourceConfig,
    conn: &mut PgConnection,
    full: bool,
    show_progress: bool,
) -> anyhow::Result<SyncReport> {
    let opened = match cfg.queries() {
        Ok(q) => Source::connect(cfg, q, settings.zone.offset(), Timeouts::SYNC)
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    let mut src = match opened {
        Ok(src) => src,
        Err(e) => {
            // On record for `stats` and the worker's staleness rule, like any failed sync.
            if let Err(rec) = dunning_source::sync::record_failure(conn, &format!("{e:#}")) {
                log::warn!("could not record the failed sync: {rec}");
            }
            return Err(e);
        }
    };
    let bar = progress(show_progress);
    let report = dunning_source::sync::sync(&mut src, conn, full, &mut |which, n| {
        bar.set_message(which.name());
        bar.set_position(n);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// A spinner with the rows read so far, on a terminal only.
fn progress(show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} sync {msg}: {pos} rows ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn summary(r: &SyncReport) -> String {
    let c = &r.counts;
    format!(
        "Billing sync ({}, {:.1}s): customers {} new, {} changed, {} unchanged, {} rejected; invoices {} new, {} changed, {} unchanged, {} void, {} rejected",
        r.mode.as_str(),
        r.seconds,
        c.customers_new,
        c.customers_changed,
        c.customers_unchanged,
        c.customers_rejected,
        c.invoices_new,
        c.invoices_changed,
        c.invoices_unchanged,
        c.invoices_void,
        c.invoices_rejected
    )
}

fn print_report(r: &SyncReport) {
    for x in &r.rejected {
        println!("{}: {}: {}", x.query, x.key, x.reason);
    }
    let shown = r.rejected.len();
    let total =
        usize::try_from(r.counts.customers_rejected + r.counts.invoices_rejected).unwrap_or(0);
    if total > shown {
        println!("… and {} more rejected row(s)", total - shown);
    }
    println!("{}", summary(r));
}

/// `doctor`'s findings about the source: (name, ok, detail, fix). Nothing when no
/// source is configured.
pub fn doctor(settings: &Settings) -> Vec<(&'static str, bool, String, Option<String>)> {
    let cfg = match config() {
        Ok(Some(c)) => c,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![(
                "Billing source",
                false,
                e.to_string(),
                Some("fix the variable it names in .env".into()),
            )];
        }
    };
    dunning_source::doctor::check(&cfg, settings.zone.offset())
        .into_iter()
        .map(|f| (f.name, f.ok, f.detail, f.fix))
        .collect()
}

/// The last sync, for `stats` (text). Nothing when no source is configured.
pub fn stats_text(conn: &mut PgConnection) -> anyhow::Result<String> {
    if config()?.is_none() {
        return Ok(String::new());
    }
    let now = OffsetDateTime::now_utc();
    let last = mirror::last(conn)?;
    let ok = mirror::last_success(conn, false)?;
    let mut out = String::from("\nBilling sync:\n");
    match &last {
        None => out.push_str("  never synced: run `dunning-schedule sync`\n"),
        Some(l) => {
            let ago = l.finished_at.map_or(0, |t| (now - t).whole_seconds());
            if l.ok == Some(true) {
                let c = l.counts();
                out.push_str(&format!(
                    "  last: {} ago ({}), ok: invoices {} new, {} changed, {} void, {} rejected; customers {} new, {} changed, {} rejected\n",
                    human_secs(ago),
                    l.mode,
                    c.invoices_new,
                    c.invoices_changed,
                    c.invoices_void,
                    c.invoices_rejected,
                    c.customers_new,
                    c.customers_changed,
                    c.customers_rejected
                ));
            } else {
                out.push_str(&format!(
                    "  last: {} ago, FAILED: {}\n",
                    human_secs(ago),
                    l.error.as_deref().unwrap_or("unknown error")
                ));
                match ok.and_then(|o| o.finished_at) {
                    Some(t) => out.push_str(&format!(
                        "  last successful: {} ago\n",
                        human_secs((now - t).whole_seconds())
                    )),
                    None => out.push_str("  no successful sync yet\n"),
                }
            }
        }
    }
    Ok(out)
}

/// The last sync, for `stats --json` (`null` when no source is configured).
pub fn stats_json(conn: &mut PgConnection) -> anyhow::Result<serde_json::Value> {
    if config()?.is_none() {
        return Ok(serde_json::Value::Null);
    }
    let last = mirror::last(conn)?;
    let ok = mirror::last_success(conn, false)?;
    let fmt = |t: Option<OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    };
    Ok(json!({
        "last": last.as_ref().map(|l| json!({
            "finished_at": fmt(l.finished_at),
            "mode": l.mode,
            "ok": l.ok,
            "error": l.error,
            "counts": l.counts(),
        })),
        "last_success_at": fmt(ok.and_then(|o| o.finished_at)),
    }))
}
