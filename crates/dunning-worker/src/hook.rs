//! Escalation hooks in the worker: queueing `paid`, `optout` and restore runs from
//! the events the database's triggers record, and taking one hook job to its next
//! state (check, run, record) like a delivery.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_channels::hooks::{HookError, HookRunner};
use dunning_core::hooks::{HookSettings, Hooks};
use dunning_store::StoreError;
use dunning_store::hooks::{EventPlan, HookEnd, HookFacts, HookJob};
use log::info;
use serde_json::json;
use time::OffsetDateTime;

use crate::Worker;
use crate::every::Sweep;

/// The variables a hook command gets (next to the worker's own environment);
/// `scripts/check-docs` lets the docs name them.
pub const PASSED_VARIABLES: &[&str] = &[
    "DUNNING_EVENT",
    "DUNNING_ACTION",
    "DUNNING_NOTIFICATION_ID",
    "DUNNING_ATTEMPT",
    "DUNNING_CUSTOMER_ID",
    "DUNNING_CUSTOMER_NAME",
    "DUNNING_CUSTOMER_EMAIL",
    "DUNNING_CUSTOMER_PHONE",
    "DUNNING_INVOICE_NUMBER",
    "DUNNING_INVOICE_AMOUNT",
    "DUNNING_INVOICE_DUE_DATE",
    "DUNNING_CHANNEL",
    "DUNNING_RESTORES",
];

/// How long a restore waits for the run it undoes to finish.
const RESTORE_WAIT: Duration = Duration::from_secs(30);

/// The worker's hooks: the parsed file, the runner, and the sweep that queues runs
/// from hook events.
pub(crate) struct HookWork {
    hooks: Hooks,
    runner: HookRunner,
    pub(crate) events: Sweep<EventPlan>,
}

impl HookWork {
    pub(crate) fn new(hooks: Hooks, settings: &HookSettings) -> Self {
        let plan = EventPlan {
            paid: hooks.paid.clone(),
            optout: hooks.optout.clone(),
            restores: hooks
                .stages
                .iter()
                .filter_map(|h| {
                    let restore = hooks.action(&h.action)?.restore.clone()?;
                    Some((h.stage.to_string(), restore))
                })
                .collect(),
        };
        HookWork {
            hooks,
            runner: HookRunner::new(settings),
            events: Sweep::new(
                plan,
                "hook run(s) queued (paid, optout, restore)",
                dunning_store::hooks::sweep,
            ),
        }
    }
}

/// What the check before a run decided.
enum Decision {
    Run,
    End(HookEnd),
    /// Hand the job back without counting the attempt.
    Wait(Duration, String),
}

impl Worker {
    /// Claims one ready hook job and takes it to its next state: check, run, record.
    /// False: none ready.
    pub(crate) fn run_hook(
        &self,
        conn: &mut PgConnection,
        work: &HookWork,
    ) -> Result<bool, StoreError> {
        let Some(job) = self.queue.claim_hook(conn)? else {
            return Ok(false);
        };
        let started = Instant::now();
        let facts = dunning_store::hooks::facts(conn, &job)?;
        let (event, action) = facts
            .as_ref()
            .map(|f| (f.stage.clone(), f.action.clone().unwrap_or_default()))
            .unwrap_or_default();
        let log = |outcome: &str| log_line(&job, &event, &action, outcome, started);
        let outcome = match self.hook_decision(&job, facts.as_ref()) {
            Decision::End(end) => end,
            Decision::Wait(wait, why) => {
                log(&self.hook_again(conn, &job, wait, &why, false)?);
                return Ok(true);
            }
            Decision::Run => {
                let f = facts.as_ref().expect("a run has facts");
                match self.run_action(work, f, &job) {
                    Ok(end) => end,
                    Err(e) => {
                        let backoff = self.backoff(job.attempts);
                        log(&self.hook_again(conn, &job, backoff, &e, true)?);
                        return Ok(true);
                    }
                }
            }
        };
        dunning_store::hooks::finish(conn, &job, &outcome)?;
        let (counter, line) = match &outcome {
            HookEnd::Done { .. } => (&self.stats.sent, "done".to_owned()),
            HookEnd::Failed { error } => (&self.stats.failed, format!("failed ({error})")),
            HookEnd::Skipped { reason } => (&self.stats.skipped, format!("skipped ({reason})")),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        log(&line);
        Ok(true)
    }

    /// The check of a claimed hook job: out of attempts (its last holder died), its
    /// ledger row gone, else [`check`].
    fn hook_decision(&self, job: &HookJob, facts: Option<&HookFacts>) -> Decision {
        match facts {
            _ if job.attempts > self.cfg.tries as i32 => Decision::End(HookEnd::Failed {
                error: format!(
                    "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
                    job.attempts - 1,
                    self.cfg.tries
                ),
            }),
            None => Decision::End(HookEnd::Skipped {
                reason: "ledger row is gone".to_owned(),
            }),
            Some(f) => check(f),
        }
    }

    /// Runs the job's action. `Err`: a transient failure with attempts left, to retry.
    fn run_action(&self, work: &HookWork, f: &HookFacts, job: &HookJob) -> Result<HookEnd, String> {
        let action = f.action.as_deref().unwrap_or_default();
        let Some(a) = work.hooks.action(action) else {
            return Ok(HookEnd::Failed {
                error: format!(
                    "action {action:?} is not in the hooks file any more. Fix: add [actions.{action}] back, then `dunning-schedule retry {}`",
                    job.notification_id
                ),
            });
        };
        let contacts: Vec<&str> = [f.customer.email.as_deref(), f.customer.phone.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        match work
            .runner
            .run(a, &payload(f, job), &env(f, job), &contacts)
        {
            Ok(output) => Ok(HookEnd::Done { output }),
            Err(HookError::Permanent(error)) => Ok(HookEnd::Failed { error }),
            Err(HookError::Transient(e)) if job.attempts < self.cfg.tries as i32 => Err(e),
            Err(HookError::Transient(e)) => Ok(HookEnd::Failed {
                error: format!("{e} (gave up after {} attempts)", job.attempts),
            }),
        }
    }

    /// Puts `job` back for `wait`: a retry (`count`) or a hold (the attempt handed
    /// back). Returns the log line's outcome.
    fn hook_again(
        &self,
        conn: &mut PgConnection,
        job: &HookJob,
        wait: Duration,
        why: &str,
        count: bool,
    ) -> Result<String, StoreError> {
        dunning_store::hooks::again_at(conn, job, OffsetDateTime::now_utc() + wait, why, count)?;
        let (counter, what) = if count {
            (&self.stats.retried, "retry in")
        } else {
            (&self.stats.released, "held")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(format!("{what} {}s ({why})", wait.as_secs()))
    }
}

/// The check right before a run: a stage's action only while the invoice is unpaid,
/// `paid` while it is paid, a restore once the runs it undoes have ended (one not
/// skipped) and no unpaid invoice keeps the customer isolated, an opt-out always.
fn check(f: &HookFacts) -> Decision {
    let skip = |reason: String| Decision::End(HookEnd::Skipped { reason });
    if f.ledger_status != "queued" {
        return skip(format!("already {}", f.ledger_status));
    }
    let invoice = f.invoice_status.as_deref().unwrap_or("-");
    if f.stage.starts_with("optout:") {
        return Decision::Run;
    }
    if f.stage == dunning_core::hooks::PAID {
        return if invoice == "paid" {
            Decision::Run
        } else {
            skip(format!("invoice is {invoice} again"))
        };
    }
    if let Some(undone) = f.stage.strip_prefix("restore:") {
        if let Some(number) = &f.still_isolated {
            return skip(format!(
                "invoice {number} is unpaid and its {undone} action ran: still isolated, not restored"
            ));
        }
        return match f.undone_status.as_deref() {
            Some("queued") => Decision::Wait(
                RESTORE_WAIT,
                format!("the {undone} action has not finished yet"),
            ),
            Some("skipped") | None => skip(format!(
                "the {undone} action did not run: nothing to restore"
            )),
            Some(_) => Decision::Run,
        };
    }
    if invoice == "unpaid" {
        Decision::Run
    } else {
        skip(format!("invoice is {invoice}"))
    }
}

/// The JSON a hook gets (stdin of a command, body of a POST).
fn payload(f: &HookFacts, job: &HookJob) -> serde_json::Value {
    let (event, extra) = match f.stage.split_once(':') {
        Some(("optout", channel)) => ("optout", json!({ "channel": channel })),
        Some(("restore", stage)) => ("restore", json!({ "restores": stage })),
        _ => (f.stage.as_str(), json!({})),
    };
    let invoice = f.invoice_number.as_ref().map(|number| {
        json!({
            "id": f.invoice_id,
            "number": number,
            "amount": f.amount,
            "due_date": f.due_date.map(|d| d.to_string()),
            "status": f.invoice_status,
            "paid_at": f.paid_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        })
    });
    let mut v = json!({
        "event": event,
        "action": f.action,
        "notification_id": job.notification_id,
        "attempt": job.attempts,
        "run_date": f.run_date.to_string(),
        "invoice": invoice,
        "customer": {
            "id": f.customer.id,
            "name": f.customer.name,
            "email": f.customer.email,
            "phone": f.customer.phone,
        },
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// The `DUNNING_*` variables a command gets, next to the JSON on stdin.
fn env(f: &HookFacts, job: &HookJob) -> Vec<(String, String)> {
    let p = payload(f, job);
    let mut vars = vec![
        (
            "DUNNING_EVENT",
            p["event"].as_str().unwrap_or_default().to_owned(),
        ),
        ("DUNNING_ACTION", f.action.clone().unwrap_or_default()),
        ("DUNNING_NOTIFICATION_ID", job.notification_id.to_string()),
        ("DUNNING_ATTEMPT", job.attempts.to_string()),
        ("DUNNING_CUSTOMER_ID", f.customer.id.to_string()),
        ("DUNNING_CUSTOMER_NAME", f.customer.name.clone()),
        (
            "DUNNING_CUSTOMER_EMAIL",
            f.customer.email.clone().unwrap_or_default(),
        ),
        (
            "DUNNING_CUSTOMER_PHONE",
            f.customer.phone.clone().unwrap_or_default(),
        ),
        (
            "DUNNING_INVOICE_NUMBER",
            f.invoice_number.clone().unwrap_or_default(),
        ),
        (
            "DUNNING_INVOICE_AMOUNT",
            f.amount.map(|a| a.to_string()).unwrap_or_default(),
        ),
        (
            "DUNNING_INVOICE_DUE_DATE",
            f.due_date.map(|d| d.to_string()).unwrap_or_default(),
        ),
    ];
    if let Some(ch) = p["channel"].as_str() {
        vars.push(("DUNNING_CHANNEL", ch.to_owned()));
    }
    if let Some(st) = p["restores"].as_str() {
        vars.push(("DUNNING_RESTORES", st.to_owned()));
    }
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn log_line(job: &HookJob, event: &str, action: &str, outcome: &str, started: Instant) {
    info!(
        "job={} notification={} channel=hook event={} action={} attempt={} outcome={} duration={}ms",
        job.id,
        job.notification_id,
        if event.is_empty() { "-" } else { event },
        if action.is_empty() { "-" } else { action },
        job.attempts,
        outcome,
        started.elapsed().as_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    use dunning_store::rows::CustomerContact;

    #[test]
    fn every_variable_passed_to_a_command_is_listed() {
        let f = HookFacts {
            stage: "optout:whatsapp".into(),
            ledger_status: "queued".into(),
            action: Some("a".into()),
            run_date: time::macros::date!(2026 - 12 - 02),
            invoice_id: None,
            invoice_number: None,
            amount: None,
            due_date: None,
            invoice_status: None,
            paid_at: None,
            customer: CustomerContact {
                id: 1,
                name: "Budi".into(),
                email: None,
                phone: None,
            },
            undone_status: None,
            still_isolated: None,
        };
        let job = HookJob {
            id: 1,
            notification_id: 2,
            attempts: 1,
        };
        for (k, _) in env(&f, &job) {
            assert!(PASSED_VARIABLES.contains(&k.as_str()), "{k}");
        }
    }
}
