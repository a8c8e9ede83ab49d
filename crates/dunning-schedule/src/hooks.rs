//! Escalation hooks in the scheduler: reading `DUNNING_HOOKS`, and queueing each
//! stage's action for the invoices whose stage day has come (the worker runs them).

use std::fmt::Write as _;

use diesel::pg::PgConnection;
use dunning_core::Settings;
use dunning_core::hooks::{HookSettings, Hooks};
use dunning_store::hooks::{Queued, StagePlan};
use time::Date;

use crate::app::UsageError;

/// The configured hooks (`None`: no hooks file). A bad file is a usage error (exit 2)
/// naming the file, the line and the fix.
pub fn load() -> anyhow::Result<Option<Hooks>> {
    let settings = HookSettings::from_env()?;
    dunning_channels::hooks::load(&settings).map_err(|e| UsageError(e.to_string()).into())
}

/// `settings` without the stages whose hook says `message = false` (they only act).
pub fn message_settings(settings: &Settings, hooks: Option<&Hooks>) -> Settings {
    let mut s = settings.clone();
    if let Some(h) = hooks {
        let silent = h.silent_stages();
        s.stages.retain(|st| !silent.contains(st));
    }
    s
}

/// Queues the stage hooks whose stage day falls in `[first_day, run_date]`.
pub fn queue(
    conn: &mut PgConnection,
    hooks: &Hooks,
    first_day: Date,
    run_date: Date,
    queue: &str,
    dry_run: bool,
) -> anyhow::Result<Vec<Queued>> {
    let plan: Vec<StagePlan> = hooks
        .stages
        .iter()
        .map(|h| StagePlan {
            stage: h.stage.to_string(),
            offset_days: h.stage.offset_days(),
            action: h.action.clone(),
        })
        .collect();
    Ok(dunning_store::hooks::queue_stage_hooks(
        conn, &plan, first_day, run_date, queue, dry_run,
    )?)
}

/// The report's hook lines: one per stage with a hook.
pub fn render(hooks: &Hooks, queued: &[Queued], dry_run: bool) -> String {
    let mut out = String::new();
    for h in &hooks.stages {
        let stage = h.stage.to_string();
        let n = queued
            .iter()
            .find(|q| q.stage == stage)
            .map_or(0, |q| q.runs);
        let _ = write!(
            out,
            "\n   Hook {stage}: action {:?} {} for {n} invoice(s){}",
            h.action,
            if dry_run { "would be queued" } else { "queued" },
            if h.message {
                ""
            } else {
                " (no reminder on this stage)"
            }
        );
    }
    out
}
