//! Command-line interface of `dunning-schedule`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Dunning scheduler: queues today's payment reminders (T-7, T-3, T-1, T+3) for the
/// worker, and the operator commands around it. Run it daily at 08:00 local time
/// from cron or Task Scheduler. Configuration comes from the environment and from
/// `.env` in the working directory.
#[derive(Debug, Parser)]
#[command(name = "dunning-schedule", version, propagate_version = true)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `--queue`, of every command that queues jobs.
#[derive(Debug, Args, Default, Clone)]
pub struct QueueArg {
    /// The queue the jobs go to (workers take from it with --queue).
    #[arg(
        long,
        value_name = "NAME",
        env = "DUNNING_QUEUE",
        default_value = "default"
    )]
    pub queue: String,
}

/// Options of a scheduler run (the bare command, or `run`).
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    /// Run for this local date instead of today (YYYY-MM-DD): a backfill. Recorded as
    /// a backfill (not today's run) and without catch-up; more than a year from
    /// today needs --force.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,

    /// Accept a --date more than a year from today.
    #[arg(long, requires = "date")]
    pub force: bool,

    /// Write nothing; print what a real run would queue, and the WhatsApp quota it would use.
    #[arg(long)]
    pub dry_run: bool,

    /// Catch up runs missed on up to this many previous days (0 turns catch-up off).
    #[arg(
        long,
        value_name = "N",
        env = "DUNNING_CATCH_UP_DAYS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(0..=366)
    )]
    pub catch_up_days: u32,

    #[command(flatten)]
    pub to: QueueArg,

    /// Print emoji markers even when stdout is not a terminal.
    #[arg(long, env = "DUNNING_EMOJI")]
    pub emoji: bool,

    /// Print only the totals.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,

    /// Print one JSON summary (for monitoring) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Do not sync the billing source first (BILLING_DATABASE_URL): queue from the
    /// mirror as it is, e.g. while the billing database is down.
    #[arg(long)]
    pub no_sync: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Queue today's reminders (the same as running without a command).
    Run(RunArgs),

    /// Apply pending database migrations and list them.
    Migrate,

    /// Send one WhatsApp message now through the configured driver (asks first).
    TestWhatsapp {
        /// Phone number, e.g. 085707211646.
        phone: String,
        /// The message text.
        message: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print emoji markers even when stdout is not a terminal.
        #[arg(long, env = "DUNNING_EMOJI")]
        emoji: bool,
    },

    /// Create a test customer and invoice and queue its reminders now (asks first).
    TestDunning {
        /// The test customer's email address.
        email: String,
        /// The test customer's phone number.
        phone: String,
        /// The stage to test.
        #[arg(long, default_value = "T-3")]
        stage: String,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        to: QueueArg,
        /// Print emoji markers even when stdout is not a terminal.
        #[arg(long, env = "DUNNING_EMOJI")]
        emoji: bool,
    },

    /// Notifications per channel and status, queue health, WhatsApp quota, recent days.
    Stats {
        /// The day to report (local date, default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// How many days the chart covers.
        #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print emoji markers even when stdout is not a terminal.
        #[arg(long, env = "DUNNING_EMOJI")]
        emoji: bool,
    },

    /// List failed deliveries with their last error.
    Failed {
        /// Only those created on or after this local date.
        #[arg(long, value_name = "YYYY-MM-DD")]
        since: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Put failed deliveries back on the queue (payment and once-a-day checks still apply).
    Retry {
        /// Notification ids (from `failed`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Retry every failed delivery.
        #[arg(long)]
        all: bool,
        /// Only this channel (email or whatsapp).
        #[arg(long, value_parser = ["email", "whatsapp"])]
        channel: Option<String>,
        #[command(flatten)]
        to: QueueArg,
    },

    /// Check database, schedule, workers, SMTP, Fonnte and templates; say how to fix each problem.
    Doctor {
        /// How long a worker may stay silent before it counts as dead (seconds).
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        heartbeat_max_age: u64,
        /// Print emoji markers even when stdout is not a terminal.
        #[arg(long, env = "DUNNING_EMOJI")]
        emoji: bool,
    },

    /// Import customers and invoices from CSV files (idempotent upsert).
    Import {
        /// Customers CSV (external_id,name,email,phone).
        #[arg(long, value_name = "FILE")]
        customers: Option<PathBuf>,
        /// Invoices CSV (number,customer_external_id,amount,due_date,status).
        #[arg(long, value_name = "FILE")]
        invoices: Option<PathBuf>,
        /// Import the valid rows and report the invalid ones (default: all or nothing).
        #[arg(long)]
        skip_invalid: bool,
    },

    /// End a channel's pause now, after fixing its cause (Fonnte device reconnected,
    /// token or SMTP login corrected). Without it the pause ends by itself.
    Resume {
        /// The channel: email or whatsapp (default: both).
        channel: Option<String>,
    },

    /// Mirror customers and invoices from the billing database (BILLING_DATABASE_URL,
    /// queries in BILLING_QUERIES); incremental when the invoices query returns updated_at.
    Sync {
        /// Read every row and void the invoices the source no longer returns (the
        /// default when the last full sync is over 24 hours old or there is no updated_at).
        #[arg(long)]
        full: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// Mark invoices paid or void (for operators without a billing application).
    Invoice {
        #[command(subcommand)]
        action: InvoiceAction,
    },
    /// Hold a customer's or an invoice's reminders until a date (inclusive).
    Pause {
        #[command(subcommand)]
        target: PauseTarget,
    },
    /// End a customer's or an invoice's pauses now (the next run queues what is due).
    Unpause {
        #[command(subcommand)]
        target: HoldTarget,
    },
    /// Stop reminders to a customer on a channel until `optin`.
    Optout {
        #[command(subcommand)]
        target: OptTarget,
    },
    /// Start reminders to a customer on a channel again.
    Optin {
        #[command(subcommand)]
        target: OptTarget,
    },
    /// List the pauses and opt-outs in force.
    Pauses {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List customers' WhatsApp replies that need an answer ("perlu dibalas").
    Replies {
        /// Mark these replies answered (ids from the list).
        #[arg(long, value_name = "ID", num_args = 1..)]
        done: Vec<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },

    /// The daily report (09:00, in Indonesian) of yesterday and today: deliveries per
    /// channel, the WhatsApp quota and the month's forecast, failures with their fixes,
    /// replies waiting, payments after a reminder, gateway payments not yet in billing.
    Report {
        /// The report's day (local date, default today); it covers the day before too.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        /// Also send it to DUNNING_REPORT_EMAIL and/or DUNNING_REPORT_WHATSAPP.
        #[arg(long)]
        send: bool,
        /// Print JSON (monitoring) instead of text.
        #[arg(long)]
        json: bool,
    },

    /// Users of the dashboard (dunning-web): add, list, remove.
    WebUser {
        #[command(subcommand)]
        action: WebUserAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum PauseTarget {
    /// Every invoice of one customer, by external id or phone number.
    Customer {
        /// The customer's external id (billing id) or phone number.
        customer: String,
        #[command(flatten)]
        hold: PauseArgs,
    },
    /// One invoice.
    Invoice {
        /// The invoice number, e.g. INV-20251115-123456.
        number: String,
        #[command(flatten)]
        hold: PauseArgs,
    },
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The last local date reminders are held (YYYY-MM-DD); they resume the day after.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub until: String,
    /// Why (shown by `pauses` and kept with the pause).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum HoldTarget {
    /// One customer, by external id or phone number.
    Customer {
        /// The customer's external id (billing id) or phone number.
        customer: String,
    },
    /// One invoice.
    Invoice {
        /// The invoice number, e.g. INV-20251115-123456.
        number: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OptTarget {
    /// One customer, by external id or phone number.
    Customer {
        /// The customer's external id (billing id) or phone number.
        customer: String,
        /// The channel: whatsapp, email or all.
        #[arg(long, value_parser = ["whatsapp", "email", "all"])]
        channel: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebUserAction {
    /// Add a user, or give an existing one a new password and role (asks for the
    /// password twice; ends the user's sessions when it changes).
    Add {
        /// The login name.
        name: String,
        /// admin acts (retry, resume); viewer only reads.
        #[arg(long, value_parser = ["admin", "viewer"])]
        role: String,
        /// Read the password from the first line of stdin instead of asking (scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users, their roles and when each was last seen.
    List,
    /// Remove a user and end their sessions.
    Remove {
        /// The login name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InvoiceAction {
    /// Mark invoices paid: their reminders stop now.
    Paid {
        /// Invoice numbers.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Mark invoices void: their reminders stop now.
    Void {
        /// Invoice numbers.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
    /// Mark invoices unpaid again (one marked paid or void by mistake): reminded from the next run.
    Unpaid {
        /// Invoice numbers.
        #[arg(required = true)]
        numbers: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_dry_run_still_parses() {
        let cli =
            Cli::try_parse_from(["dunning-schedule", "--dry-run", "--date", "2025-11-15"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.run.dry_run);
    }
}
