//! `dunning-schedule invoice paid|void|unpaid <number>…`.

use dunning_core::Settings;
use dunning_store::billing;

use crate::app;

/// Sets each invoice's status; reminders stop from that moment (the worker re-checks
/// the status right before each send). Exit 1 when a number is unknown.
pub fn set_status(settings: &Settings, numbers: &[String], status: &str) -> anyhow::Result<()> {
    let mut conn = app::connect_migrated(settings)?;
    let mut unknown = Vec::new();
    for number in numbers {
        let number = number.trim();
        if billing::set_invoice_status(&mut conn, number, status)? {
            if status == "unpaid" {
                println!(
                    "{number}: marked unpaid; reminded again from the next scheduler run (a stage already sent for this due date is not sent twice)"
                );
            } else {
                println!("{number}: marked {status}; no more reminders for it");
            }
        } else {
            println!("{number}: no invoice has this number");
            unknown.push(number.to_owned());
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "unknown invoice number(s): {} (check the spelling, e.g. INV-20251115-123456)",
            unknown.join(", ")
        ))
    }
}
