//! The operator commands: everything the seed's operator did by hand (artisan test
//! commands, SQL in `psql`, `tail | grep`) as subcommands of `dunning-schedule`.

mod confirm;
mod doctor;
mod failed;
mod holds;
mod import;
mod invoice;
mod payments;
mod report;
mod stats;
pub(crate) mod sync;
mod test_dunning;
mod test_whatsapp;
mod web_user;

use dunning_core::Settings;
use dunning_core::message::Templates;
use time::OffsetDateTime;

use crate::app::UsageError;
use crate::cli::{Command, InvoiceAction, WebUserAction};
use crate::output::Marks;

/// Runs an operator command (the scheduler run and `migrate` are dispatched by the caller).
pub fn dispatch(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::TestWhatsapp {
            phone,
            message,
            yes,
            emoji,
        } => test_whatsapp::run(settings, &phone, &message, yes, Marks::detect(emoji)),
        Command::TestDunning {
            email,
            phone,
            stage,
            yes,
            to,
            emoji,
        } => test_dunning::run(
            settings,
            &test_dunning::Args {
                email: &email,
                phone: &phone,
                stage: &stage,
                yes,
                queue: &to.queue,
            },
            Marks::detect(emoji),
        ),
        Command::Stats {
            date,
            days,
            json,
            emoji,
        } => stats::run(settings, date.as_deref(), days, json, Marks::detect(emoji)),
        Command::Failed { since, json } => failed::list(settings, since.as_deref(), json),
        Command::Retry {
            ids,
            all,
            channel,
            to,
        } => failed::retry(settings, &ids, all, channel.as_deref(), &to.queue),
        Command::Doctor {
            heartbeat_max_age,
            emoji,
        } => doctor::run(settings, heartbeat_max_age, Marks::detect(emoji)),
        Command::Import {
            customers,
            invoices,
            skip_invalid,
        } => import::run(
            settings,
            customers.as_deref(),
            invoices.as_deref(),
            skip_invalid,
        ),
        Command::Sync { full, json } => sync::run(settings, full, json),
        Command::Invoice { action } => match action {
            InvoiceAction::Paid { numbers } => invoice::set_status(settings, &numbers, "paid"),
            InvoiceAction::Void { numbers } => invoice::set_status(settings, &numbers, "void"),
            InvoiceAction::Unpaid { numbers } => invoice::set_status(settings, &numbers, "unpaid"),
        },
        Command::Pause { target } => holds::pause(settings, &target),
        Command::Unpause { target } => holds::unpause(settings, &target),
        Command::Optout { target } => holds::opt(settings, &target, false),
        Command::Optin { target } => holds::opt(settings, &target, true),
        Command::Pauses { json } => holds::list(settings, json),
        Command::Replies { done, json } => holds::replies(settings, &done, json),
        Command::Report { date, send, json } => report::run(settings, date.as_deref(), send, json),
        Command::WebUser { action } => match action {
            WebUserAction::Add {
                name,
                role,
                password_stdin,
            } => web_user::add(settings, &name, &role, password_stdin),
            WebUserAction::List => web_user::list(settings),
            WebUserAction::Remove { name } => web_user::remove(settings, &name),
        },
        Command::Run(_) | Command::Migrate | Command::Resume { .. } => {
            unreachable!("the scheduler run and migrate are dispatched by lib.rs")
        }
    }
}

/// Loads and checks the message templates (the `DUNNING_TEMPLATES_DIR` overrides and
/// the built-in texts) exactly as the worker will at its start. Called before anything
/// is queued: a broken template must stop the 08:00 run (exit 2, file:line and the
/// variable), not the workers after the jobs are in the queue.
pub fn load_templates(settings: &Settings) -> anyhow::Result<Templates> {
    Templates::load(
        &settings.company_name,
        settings.templates_dir.as_deref(),
        &settings.stages,
    )
    .map_err(|e| {
        UsageError(format!(
            "template error, nothing was queued: {e}. Fix or remove the file named (docs/examples/templates/README.md), then run again"
        ))
        .into()
    })
}

/// An instant as the operator reads it: local time in `DUNNING_TIMEZONE`, zone named,
/// e.g. `2025-11-15 08:00:03 Asia/Jakarta (UTC+07:00)`.
pub fn local_time(settings: &Settings, at: OffsetDateTime) -> String {
    let local = settings.zone.local(at);
    format!(
        "{} {:02}:{:02}:{:02} {}",
        local.date(),
        local.hour(),
        local.minute(),
        local.second(),
        settings.zone
    )
}

/// The seed's markers that [`Marks`] does not carry, emoji or plain like it.
#[derive(Debug, Clone, Copy)]
struct Extra {
    build: &'static str,
    invoice: &'static str,
    chart: &'static str,
}

impl Extra {
    fn of(m: Marks) -> Extra {
        if m.ok == Marks::EMOJI.ok {
            Extra {
                build: "🔧",
                invoice: "🧾",
                chart: "📊",
            }
        } else {
            Extra {
                build: "*",
                invoice: "*",
                chart: "*",
            }
        }
    }
}

/// `95` → `1m 35s`; `90061` → `1d 1h`.
fn human_secs(secs: i64) -> String {
    dunning_core::format::duration_in(secs, ["s", "m", "h", "d"])
}

#[cfg(test)]
mod tests {
    use super::human_secs;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_secs(-3), "0s");
        assert_eq!(human_secs(59), "59s");
        assert_eq!(human_secs(95), "1m 35s");
        assert_eq!(human_secs(7260), "2h 1m");
        assert_eq!(human_secs(90061), "1d 1h");
    }
}
