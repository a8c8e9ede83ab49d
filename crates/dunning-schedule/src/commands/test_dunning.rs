//! `dunning-schedule test-dunning <email> <phone> [--stage T-3]`: the seed's `dunning:test`.

use dunning_core::contact::{normalize_phone, validate_email};
use dunning_core::message::customer_label;
use dunning_core::{Settings, Stage};
use dunning_store::ops::{health, test_dunning};
use time::OffsetDateTime;

use super::Extra;
use super::confirm::confirm;
use crate::app::{self, UsageError};
use crate::output::Marks;

/// The command line of `test-dunning`.
pub struct Args<'a> {
    pub email: &'a str,
    pub phone: &'a str,
    pub stage: &'a str,
    pub yes: bool,
    pub queue: &'a str,
}

/// The seed's test invoice amount.
const AMOUNT: i64 = 150_000;
/// The name given to a test customer that has to be created.
const CUSTOMER_NAME: &str = "Customer Test";

/// Creates (or reuses) a test customer, creates an invoice whose `stage` falls on
/// today and queues its reminders for the worker, after confirmation.
pub fn run(settings: &Settings, args: &Args<'_>, m: Marks) -> anyhow::Result<()> {
    let x = Extra::of(m);
    let email = args.email.trim();
    validate_email(email).map_err(|e| UsageError(e.to_string()))?;
    let phone = args.phone.trim();
    let normalized = normalize_phone(phone)
        .map_err(|e| UsageError(format!("{e}; write it like 085707211646 or +6285707211646")))?;
    let stage: Stage = args
        .stage
        .parse()
        .map_err(|e| UsageError(format!("--stage: {e}")))?;
    if !settings.stages.contains(&stage) {
        let configured: Vec<String> = settings.stages.iter().map(ToString::to_string).collect();
        return Err(UsageError(format!(
            "--stage {stage} is not one of the configured stages (DUNNING_STAGES={}): the worker would never send it",
            configured.join(",")
        ))
        .into());
    }
    super::load_templates(settings)?;
    let mut conn = app::connect_migrated(settings)?;
    let question = format!(
        "{} Ini akan mengirim WhatsApp & Email ke customer. Lanjutkan?",
        m.warn
    );
    if !confirm(&question, args.yes)? {
        println!("Dibatalkan: tidak ada yang dikirim.");
        return Ok(());
    }
    let today = settings.zone.date_at(OffsetDateTime::now_utc());
    let due = stage.target_due_date(today);
    let forms = phone_forms(&normalized);
    let prefix = format!(
        "INV-{:04}{:02}{:02}-",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    println!("{} Membuat customer test...", x.build);
    let created = test_dunning::create(
        &mut conn,
        &test_dunning::TestRequest {
            customer_name: CUSTOMER_NAME,
            email,
            phone,
            phone_forms: &forms,
            stage: &stage.to_string(),
            run_date: today,
            due_date: due,
            amount: AMOUNT,
            number_prefix: &prefix,
            queue: args.queue,
        },
    )?;
    if created.customer_created {
        println!(
            "{} Customer test dibuat: {} (ID: {})",
            m.ok,
            customer_label(&created.customer_name),
            created.customer_id
        );
    } else {
        println!(
            "{} Menggunakan customer existing: {} (ID: {})",
            m.ok,
            customer_label(&created.customer_name),
            created.customer_id
        );
    }
    println!("{} Membuat invoice test...", x.invoice);
    println!("{} Invoice created: {}", m.ok, created.invoice_number);
    println!("{} Mengirim dunning notification ({stage})...", m.whatsapp);
    println!("{} Job dispatched!", m.ok);
    println!(
        "   {} is a test invoice: the daily run never reminds it (no later stage follows)",
        created.invoice_number
    );
    let ids: Vec<String> = created
        .notification_ids
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "   Due {due} ({stage} falls on today, {today}); notifications {} on queue {:?}",
        ids.join(", "),
        args.queue
    );
    let alive = health::running_workers(&mut conn)?
        .iter()
        .any(|w| w.silent_secs <= 120);
    if !alive {
        println!(
            "   {} No worker is running, so nothing is sent yet: start `dunning-worker` (see `dunning-schedule doctor`).",
            m.warn
        );
    }
    Ok(())
}

/// Every way a phone (normalised `628…`) may be stored: `628…`, `08…`, `8…`.
pub(super) fn phone_forms(normalized: &str) -> [String; 3] {
    let national = normalized.strip_prefix("62").unwrap_or(normalized);
    [
        normalized.to_owned(),
        format!("0{national}"),
        national.to_owned(),
    ]
}
