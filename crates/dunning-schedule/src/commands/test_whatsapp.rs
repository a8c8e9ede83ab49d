//! `dunning-schedule test-whatsapp <phone> <message>`: the seed's `whatsapp:test`.
//!
//! The message is sent once, now, through the configured driver, and recorded in the
//! ledger like a reminder, so it counts against `FONNTE_MONTHLY_QUOTA` (Fonnte counts
//! it too). It is never queued and never retried.

use dunning_channels::{OutgoingMessage, SendError};
use dunning_core::config::WhatsAppDriver;
use dunning_core::contact::normalize_phone;
use dunning_core::{Channel, Settings};
use dunning_store::ops::test_dunning::{self, TestWhatsApp};
use dunning_store::scheduling;
use time::OffsetDateTime;

use super::confirm::confirm;
use super::test_dunning::phone_forms;
use crate::app::{self, UsageError};
use crate::output::Marks;

/// The name given to a customer that has to be created for the ledger row.
const CUSTOMER_NAME: &str = "Customer Test";

/// Sends one WhatsApp message now through the configured driver, after confirmation,
/// and records it in the ledger (it counts against the monthly quota).
pub fn run(
    settings: &Settings,
    phone: &str,
    message: &str,
    yes: bool,
    m: Marks,
) -> anyhow::Result<()> {
    let phone = phone.trim();
    let normalized = normalize_phone(phone)
        .map_err(|e| UsageError(format!("{e}; write it like 085707211646 or +6285707211646")))?;
    if message.trim().is_empty() {
        return Err(UsageError("the message is empty: write the text to send".into()).into());
    }
    let mut conn = app::connect_migrated(settings)?;
    let today = settings.zone.date_at(OffsetDateTime::now_utc());
    let quota = i64::from(settings.fonnte_monthly_quota);
    if quota > 0 {
        let sent = scheduling::whatsapp_sent_this_month(&mut conn, today, settings.zone.offset())?;
        if sent >= quota {
            println!(
                "{} WhatsApp quota used up: {sent} of {quota} sent this month (FONNTE_MONTHLY_QUOTA); nothing was sent",
                m.error
            );
            println!(
                "   Fix: upgrade paket Fonnte atau tunggu reset bulanan (upgrade the Fonnte package, then raise FONNTE_MONTHLY_QUOTA, or wait for next month)"
            );
            return Err(anyhow::anyhow!(
                "WhatsApp test message not sent: the monthly quota is used up ({sent} of {quota})"
            ));
        }
    }
    let question = format!(
        "{} Ini akan mengirim WhatsApp ke {phone}. Lanjutkan?",
        m.warn
    );
    if !confirm(&question, yes)? {
        println!("Dibatalkan: tidak ada yang dikirim.");
        return Ok(());
    }
    let sender = dunning_channels::whatsapp_sender(settings).map_err(|e| failed(m, &e))?;
    println!("Mengirim WhatsApp ke: {phone}");
    println!("Pesan: {message}");
    let delivered = sender
        .send(&OutgoingMessage {
            recipient: phone,
            subject: "",
            body: message,
            reference: "test-whatsapp",
        })
        .map_err(|e| failed(m, &e))?;
    println!("{} WhatsApp berhasil dikirim!", m.ok);
    if let Some(id) = &delivered.provider_message_id {
        println!("   Fonnte message id: {id}");
    }
    if settings.whatsapp == WhatsAppDriver::Log {
        println!(
            "   WHATSAPP_DRIVER=log: written to {}, not sent to WhatsApp (set WHATSAPP_DRIVER=fonnte to send)",
            settings.outbox_dir.join("whatsapp.jsonl").display()
        );
    }
    let forms = phone_forms(&normalized);
    let prefix = format!(
        "TEST-WA-{:04}{:02}{:02}-",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    let id = test_dunning::record_whatsapp(
        &mut conn,
        &TestWhatsApp {
            phone,
            phone_forms: &forms,
            customer_name: CUSTOMER_NAME,
            run_date: today,
            number_prefix: &prefix,
            provider_message_id: delivered.provider_message_id.as_deref(),
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "the message was sent, but recording it in the ledger failed ({e}): `stats` and the monthly quota count will miss this one message"
        )
    })?;
    println!(
        "   Recorded as notification {id}: it counts against the monthly WhatsApp quota (FONNTE_MONTHLY_QUOTA={quota})"
    );
    Ok(())
}

/// Prints the provider's reason and the fix; the returned error makes the exit code 1.
/// This command sends once: the reason is shown without the worker's "will retry".
fn failed(m: Marks, e: &SendError) -> anyhow::Error {
    let (reason, fix) = reason_and_fix(Channel::WhatsApp, e);
    let reason = without_retry_promise(&reason);
    let fix = match e {
        SendError::Transient(_) => format!(
            "{fix}; test-whatsapp sends once and does not retry: run it again when the cause is fixed"
        ),
        _ => fix,
    };
    println!("{} WhatsApp gagal dikirim: {reason}", m.error);
    println!("   Fix: {fix}");
    anyhow::anyhow!("WhatsApp test message not sent (not retried): {reason}")
}

/// A channel's reason without what the worker would do next ("will retry", "will not
/// be retried"): true for the worker, not for a command that sends once.
fn without_retry_promise(reason: &str) -> String {
    let mut r = reason.trim_end();
    for tail in [
        "; will retry",
        "; the message will not be retried",
        ", will retry",
    ] {
        r = r.strip_suffix(tail).unwrap_or(r);
    }
    r.replace("; will retry", "")
}

/// The provider's reason and what the operator should do about it, for a failure
/// on `channel` (the fix texts live in `dunning_channels::fix`).
pub(super) fn reason_and_fix(channel: Channel, e: &SendError) -> (String, String) {
    let reason = match e {
        SendError::ChannelWide { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    (reason, dunning_channels::fix::for_error(channel, e))
}

#[cfg(test)]
mod tests {
    use super::without_retry_promise;

    #[test]
    fn the_reason_drops_the_workers_retry_promise() {
        assert_eq!(
            without_retry_promise(
                "Fonnte (http://x) did not answer within 30s (FONNTE_TIMEOUT); will retry"
            ),
            "Fonnte (http://x) did not answer within 30s (FONNTE_TIMEOUT)"
        );
        assert_eq!(
            without_retry_promise(
                "Fonnte refused the request (invalid); the message will not be retried"
            ),
            "Fonnte refused the request (invalid)"
        );
        assert_eq!(without_retry_promise("target invalid"), "target invalid");
    }
}
