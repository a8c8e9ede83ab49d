//! The operator commands: everything the seed's operator did by hand (artisan test
//! commands, SQL in `psql`, `tail | grep`) as subcommands of `dunning-schedule`.

mod confirm;
mod doctor;
mod failed;
mod import;
mod invoice;
mod stats;
mod test_dunning;
mod test_whatsapp;
mod web_user;

use dunning_core::Settings;

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
            queue,
            emoji,
        } => test_dunning::run(
            settings,
            &test_dunning::Args {
                email: &email,
                phone: &phone,
                stage: &stage,
                yes,
                queue: &queue,
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
            queue,
        } => failed::retry(settings, &ids, all, channel.as_deref(), &queue),
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
        Command::Invoice { action } => match action {
            InvoiceAction::Paid { numbers } => invoice::set_status(settings, &numbers, "paid"),
            InvoiceAction::Void { numbers } => invoice::set_status(settings, &numbers, "void"),
        },
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
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
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
